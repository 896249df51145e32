"""A run's rows of every table, written as Parquet or CSV files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from recstack.errors import RecstackError
from recstack.paths import check_folder_destination, file_part
from recstack.text import csv_cell, one_line, shown

if TYPE_CHECKING:
    from recstack.store.results import ResultStore


def export_run(store: ResultStore, run_id: str, directory: str | Path,
               file_format: str) -> list[Path]:
    """Writes the run's rows of every table that holds runs (and its platforms) to
    ``directory`` as Parquet or CSV, each file whole (through a temporary file). File names
    are the run id made safe; CSV text cells are made safe for spreadsheets
    (``text.csv_cell``); Parquet keeps every value as stored."""
    if file_format not in ("parquet", "csv"):
        raise RecstackError(f"--format: {shown(file_format)} is not allowed; expected "
                            "parquet or csv")
    directory = check_folder_destination(Path(directory), "--to")
    tables = [t.name for t in store.schema.tables if t.name == "platforms" or "run_id" in t.names]
    written = []
    with store._reader() as db:
        if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
            raise RecstackError(f"run: {shown(run_id)} is not in {store.path}; `recstack "
                                "results` lists the runs")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for table in tables:
                target = directory / f"{file_part(run_id)}-{table}.{file_format}"
                written.append(_export_table(db, table, run_id, target, file_format))
        except (duckdb.IOException, OSError) as error:
            raise RecstackError(f"--to: cannot write into {directory} "
                                f"({one_line(error, 200)})") from None
    return written


def _export_table(db: duckdb.DuckDBPyConnection, table: str, run_id: str, target: Path,
                  file_format: str) -> Path:
    if table == "platforms":
        # The run's machine and every cluster node that measured one of its points.
        sql = ("SELECT * FROM platforms WHERE platform_id IN "
               "(SELECT platform_id FROM runs WHERE run_id = $run UNION "
               "SELECT platform_id FROM points WHERE run_id = $run)")
    else:
        sql = f"SELECT * FROM {table} WHERE run_id = $run"
    frame = db.execute(sql, {"run": run_id}).df()
    if file_format == "csv":
        for column in frame.columns:
            if pd.api.types.is_object_dtype(frame[column]) \
                    or pd.api.types.is_string_dtype(frame[column]):
                frame[column] = frame[column].map(
                    lambda v: csv_cell(v) if isinstance(v, str) else v)
    options = "FORMAT PARQUET" if file_format == "parquet" else "FORMAT CSV, HEADER"
    temporary = target.with_name(f".{target.name}.tmp")
    # COPY takes no prepared parameters: read into a frame, then copy the frame.
    db.register("export_frame", frame)
    try:
        db.execute(f"COPY export_frame TO '{_sql_path(temporary)}' ({options})")
        temporary.replace(target)
    finally:
        db.unregister("export_frame")
        temporary.unlink(missing_ok=True)
    return target


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
