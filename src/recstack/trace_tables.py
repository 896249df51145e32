"""Traces as tables of accesses (CSV, optionally gzip-compressed, or Parquet) read as
untrusted input, and written (sample traces).

One row per access, with integer columns ``sample`` and ``id`` and optionally ``table``
(absent: one table, table 0); other columns are ignored. Tables are numbered ``0..T-1``, every
number used; samples ``0..S-1`` (``S``: the largest sample number plus one) are shared by all
tables, and a sample with no row in a table is an empty bag there. Within a (table, sample)
bag the ids keep their order in the file. With ``max_samples`` only the rows of samples below
it are kept (``S`` is at most ``max_samples``); the whole file is still read, as a table's
rows may come in any order.

Files are read with DuckDB through its Python API, the path given as an argument (never
formatted into SQL text) with its glob characters escaped, so ``trace[1].csv`` names that
file and no other. Every value must be an integer (``1.5``, ``1e3`` and empty cells are
refused, not rounded), ids and samples non-negative; every problem is one
:class:`~recstack.errors.RecstackError` line naming the file.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import numpy as np

from recstack.errors import RecstackError
from recstack.text import shown
from recstack.trace_files import GZIP_MAGIC, Trace, file_digest, most_bytes
from recstack.userfiles import require_file

MAX_BAGS = 1 << 28
"""The most (table, sample) bags a table trace may describe (2 GB of offsets): a hostile
sample number of ``10**12`` is refused, not allocated."""
COLUMNS = ("table", "sample", "id")
_INTEGER = "'[+-]?[0-9]+'"  # digits only: DuckDB's casts would round 1.5 and read 1e3
_GLOB = re.compile(r"([\[*?])")


def read_table_file(path: str | Path, option: str = "--trace",
                    max_samples: int | None = None) -> Trace:
    """The table of accesses in ``path`` (CSV, ``.csv.gz`` or Parquet by its name) as a
    trace (see the module docstring); only its samples below ``max_samples`` when given.
    ``option`` names where the path came from in errors."""
    import duckdb

    path = Path(path)
    require_file(path, option, most_bytes(max_samples), "a table of accesses", "bytes of trace")
    digest = file_digest(path)
    if path.stat().st_size == 0:
        raise RecstackError(f"{path.name}: an empty file; expected a table of accesses")
    connection = duckdb.connect()  # in memory, private to this read
    try:
        kind = "Parquet" if path.name.lower().endswith(".parquet") else "CSV"
        try:
            tables, samples, rows = _read(connection, path, kind, max_samples)
        except duckdb.Error as error:
            lines = str(error).strip().splitlines()
            raise RecstackError(f"{path.name}: cannot be read as {kind} "
                                f"({lines[0][:200] if lines else type(error).__name__})"
                                ) from None
    finally:
        connection.close()
    return _trace(path.name, tables, samples, rows, digest)


def _read(connection: Any, path: Path, kind: str, max_samples: int | None
          ) -> tuple[int, int, dict[str, Any]]:
    """(tables, samples, the kept rows' columns in file order), everything checked."""
    source = _GLOB.sub(r"[\1]", str(path.resolve()))
    if kind == "Parquet":
        relation = connection.read_parquet(source)
    else:
        with open(path, "rb") as handle:
            compressed = handle.read(2) == GZIP_MAGIC
        # all_varchar: each cell is checked as text below, never guessed at or rounded
        relation = connection.read_csv(source, header=True, sep=",", all_varchar=True,
                                       compression="gzip" if compressed else "none")
    found = list(relation.columns)
    for column in ("sample", "id"):
        if column not in found:
            raise RecstackError(f"{path.name}: no column {column!r}; found "
                                f"{shown(', '.join(found))}; expected integer columns "
                                "sample and id, and optionally table")
    present = [column for column in COLUMNS if column in found]
    relation.create_view("accesses")
    summary = _summary(connection, path.name, present)
    tables = summary["tables"]
    samples = summary["samples"] if max_samples is None else min(summary["samples"],
                                                                   max_samples)
    if tables * samples > MAX_BAGS:
        raise RecstackError(f"{path.name}: {tables} tables x {samples} samples is more than "
                            f"{MAX_BAGS} bags; samples must be numbered 0, 1, 2, ...")
    table = 'CAST("table" AS BIGINT)' if "table" in present else "0"
    query = (f'SELECT {table} AS "table", CAST("sample" AS BIGINT) AS "sample", '
             'CAST("id" AS BIGINT) AS "id" FROM accesses')
    params: list[Any] = []
    if max_samples is not None:
        query += ' WHERE CAST("sample" AS BIGINT) < ?'
        params.append(max_samples)
    # file order is kept (DuckDB preserves insertion order without ORDER BY)
    rows = connection.execute(query, params).fetchnumpy()
    return tables, samples, rows


def _summary(connection: Any, name: str, present: list[str]) -> dict[str, int]:
    """Checks every value in one pass; ``tables`` and ``samples`` of the whole file."""
    parts = ["count(*) AS rows"]
    for column in present:
        value = f'"{column}"'
        parts += [f'count(*) FILTER (WHERE {_not_integer(value)}) AS "bad {column}"',
                  f'min(TRY_CAST({value} AS BIGINT)) AS "min {column}"',
                  f'max(TRY_CAST({value} AS BIGINT)) AS "max {column}"']
    if "table" in present:
        parts.append('count(DISTINCT TRY_CAST("table" AS BIGINT)) AS "distinct table"')
    cursor = connection.execute(f"SELECT {', '.join(parts)} FROM accesses")
    summary = dict(zip([column[0] for column in cursor.description], cursor.fetchone()))
    if summary["rows"] == 0:
        raise RecstackError(f"{name}: holds no rows; expected a table of accesses")
    for column in present:
        if summary[f"bad {column}"]:
            raise RecstackError(f"{name}: column {column!r} holds "
                                f"{_bad_value(connection, column)}; expected integers")
        if summary[f"min {column}"] < 0:
            raise RecstackError(f"{name}: column {column!r} holds "
                                f"{summary[f'min {column}']}; expected non-negative integers")
    tables = 1
    if "table" in present:
        tables = summary["max table"] + 1
        if summary["distinct table"] != tables:
            raise RecstackError(f"{name}: tables must be numbered 0 to {tables - 1}, every "
                                f"number used; no row has table {_missing_table(connection)}")
    return {"tables": tables, "samples": summary["max sample"] + 1}


def _bad_value(connection: Any, column: str) -> str:
    value = f'"{column}"'
    found = connection.execute(f"SELECT CAST({value} AS VARCHAR) FROM accesses WHERE "
                               f"{_not_integer(value)} LIMIT 1").fetchone()
    return "an empty cell" if found[0] is None else shown(found[0])


def _not_integer(value: str) -> str:
    """SQL true where ``value`` is missing, not written as digits, or beyond int64."""
    return (f"{value} IS NULL OR TRY_CAST({value} AS BIGINT) IS NULL OR NOT "
            f"regexp_full_match(CAST({value} AS VARCHAR), {_INTEGER})")


def _missing_table(connection: Any) -> int:
    """The smallest table number below the largest that no row has."""
    found = connection.execute(
        'WITH used AS (SELECT DISTINCT CAST("table" AS BIGINT) AS t FROM accesses) '
        "SELECT CASE WHEN min(t) > 0 THEN 0 ELSE (SELECT min(t + 1) FROM used "
        "WHERE t + 1 NOT IN (SELECT t FROM used)) END FROM used").fetchone()
    return int(found[0])


def _trace(name: str, tables: int, samples: int, rows: dict[str, Any], digest: str) -> Trace:
    import torch

    table = np.asarray(rows["table"], dtype=np.int64)
    bag = table * samples + np.asarray(rows["sample"], dtype=np.int64)
    order = np.argsort(bag, kind="stable")  # stable: a bag's ids keep their file order
    lengths = np.bincount(bag, minlength=tables * samples)
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths)])
    indices = np.asarray(rows["id"], dtype=np.int64)[order]
    return Trace(name=name, indices=torch.from_numpy(np.ascontiguousarray(indices)),
                 offsets=torch.from_numpy(offsets.astype(np.int64)), tables=tables,
                 samples=samples, format="table", digest=digest)


def write_table_file(path: str | Path, bags: list[list[list[int]]]) -> Path:
    """Writes a table of accesses, columns ``table, sample, id`` in that order, a row per
    id: ``bags[table][sample]`` the ids of that bag (the same number of samples in every
    table). CSV (``.csv``, or gzip-compressed ``.csv.gz``) or Parquet (``.parquet``) by
    the name. A sample with no id in any table leaves no row: give the last sample an id
    somewhere, or the trace read back has fewer samples. For sample traces (tests,
    examples): recstack never downloads one."""
    import duckdb
    import pandas as pd

    if len({len(table) for table in bags}) != 1:
        raise ValueError("write_table_file: every table needs the same number of samples")
    frame = pd.DataFrame({
        "table": np.array([t for t, table in enumerate(bags) for bag in table for _ in bag],
                          dtype=np.int64),
        "sample": np.array([s for table in bags for s, bag in enumerate(table) for _ in bag],
                           dtype=np.int64),
        "id": np.array([i for table in bags for bag in table for i in bag], dtype=np.int64)})
    path = Path(path)
    lowered = path.name.lower()
    if lowered.endswith(".parquet"):
        connection = duckdb.connect()
        try:
            connection.from_df(frame).write_parquet(str(path))  # writing globs nothing
        finally:
            connection.close()
    elif lowered.endswith((".csv", ".csv.gz")):
        data = frame.to_csv(index=False, lineterminator="\n").encode("ascii")
        # mtime=0: the same bags give the same bytes (the shipped sample traces are compared)
        path.write_bytes(gzip.compress(data, mtime=0) if lowered.endswith(".gz") else data)
    else:
        raise ValueError(f"write_table_file: {path.name} ends neither .csv, .csv.gz nor "
                         ".parquet")
    return path
