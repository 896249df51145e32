"""The results store: one DuckDB file, the only place results live.

Tables (schema version in ``meta``; their DDL and migrations in ``store_schema.py``):

- ``platforms``: one row per distinct machine and software stack (``platform_id``).
- ``runs``: id, start, command, recstack version, git revision, platform, timing settings,
  and whether it finished: planned points, state of its last pass (running, complete,
  interrupted, failed, and why), when it ended, the point in flight, the process running it.
- ``points``: one row per measured (or failed) point of a run: what it was, its status and
  error, build time and memory.
- ``samples``: every timed iteration's latency (and host-to-device copy on GPUs).
- ``timing``: statistics derived from the samples.
- ``operators``: per operator-profile point, the top-level operators by model part, with
  calls and time per iteration (raw names: classification is analysis).
- ``profiles``: per operator-profile point, iteration wall time, operator time, the time no
  operator covers, the profiler's own overhead, a lower bound on the part of it that
  falls outside operators (its scopes), and the operator clock's reading (plain and clocked
  iterations, time inside and outside top-level operators, operators per iteration, the
  clock's own cost outside each operator; medians and raw rounds) or why it has none.
- ``hardware``: per hardware point, its source (measured or simulated), top-down fractions,
  IPC and misses per kilo-instruction (NULL where not measured), multiplexing, caveats.
- ``design_space``: per design-space run, its model variants: the base model, the sampled
  factor values, the design's seed and sampler (the variants' points are ordinary points).
- ``ceilings``: per platform and thread count, the machine's measured ceilings (bandwidths,
  GEMM throughput, dispatch cost) with their raw samples, one ``set_id`` per measurement;
  the newest set is reused by later runs, and every run is judged against the set measured
  nearest to it (the newest ``KEEP_CEILING_SETS`` sets are kept).

Every point is written in one transaction, through a connection opened for that write only:
a sweep killed at any moment loses at most the point it was measuring, the file stays
readable, and other processes can read the store between points.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from recstack import __version__
from recstack.errors import RecstackError, StoreError
from recstack.paths import check_folder_destination, check_run_id, file_part
from recstack.store_schema import (KEEP_CEILING_SETS, MIGRATIONS, SCHEMA_DDL, SCHEMA_VERSION,
                                   TABLES)
from recstack.text import CONTROL, csv_cell, one_line, printable, shown

# How long opening the store waits for another process's connection to close.
LOCK_WAIT_S = 60.0
RUN_END_STATES = ("complete", "interrupted", "failed")
# What the machine does to a write (a full disk, a read-only file, memory): a user's problem,
# reported in one line. Any other DuckDB error is a bug in recstack and is not disguised.
_WRITE_FAILURES = (duckdb.IOException, duckdb.TransactionException, duckdb.FatalException,
                   duckdb.OutOfMemoryException, duckdb.PermissionException)


def git_revision() -> str | None:
    """The checkout's commit (with ``-dirty`` when it has changes), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


class ResultStore:
    """A DuckDB results file. Created on first write; readers never create it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ---- connections ---------------------------------------------------------------------

    @contextmanager
    def _writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one write. A write that fails (a full disk, a read-only file)
        is a :class:`StoreError`: the transaction is lost, everything committed before it
        stays, and the write-ahead log is folded back into the file where it can be."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"store {self.path}: its folder cannot be created "
                             f"({error.strerror or error})") from None
        connection = self._connect(read_only=False)
        try:
            # The version first: an older store gets its migrations before CREATE IF NOT
            # EXISTS could add tables of the new version beside them.
            new = self._check_schema(connection)
            connection.execute(SCHEMA_DDL)
            if new:
                connection.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                   [str(SCHEMA_VERSION)])
            yield connection
        except (*_WRITE_FAILURES, OSError) as error:
            connection.close()
            self._fold_log()
            raise StoreError(f"store {self.path}: cannot write ({one_line(error, 200)}); "
                             "what was stored before is kept") from None
        finally:
            connection.close()

    def _fold_log(self) -> None:
        """Folds a write-ahead log left by a failed write into the file, where the disk
        allows it now (DuckDB replays a log that is left at every open either way)."""
        if not self.path.with_name(self.path.name + ".wal").is_file():
            return
        try:
            with duckdb.connect(str(self.path)) as connection:
                connection.execute("CHECKPOINT")
        except duckdb.Error:
            pass

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.path.is_file():
            what = "is not a file" if self.path.exists() else "does not exist"
            raise RecstackError(f"store: {shown(str(self.path))} {what}; run `recstack run` "
                                "or `recstack sweep --out PATH` first")
        self._fold_log()
        connection = self._connect(read_only=True)
        try:
            outdated = self._stored_version(connection) in MIGRATIONS
        except BaseException:
            connection.close()
            raise
        if outdated:
            connection.close()  # an older store: upgraded once, by a writer
            with self._writer():
                pass
            connection = self._connect(read_only=True)
        try:
            self._check_schema(connection, missing_ok=False)
            yield connection
        finally:
            connection.close()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Opens the file, waiting while another process holds its lock: every recstack
        connection is held for one point's write or one query, so the wait is short."""
        if self.path.is_dir():
            raise StoreError(f"store {self.path}: is a folder; expected a DuckDB file (e.g. "
                             f"{self.path / 'recstack.duckdb'})")
        deadline = time.monotonic() + LOCK_WAIT_S
        pause = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as error:
                locked = "lock" in str(error).lower()
                if not locked or time.monotonic() > deadline:
                    what = "read" if read_only else "write to"
                    reason = (f"another process has held it for over {LOCK_WAIT_S:g} s"
                              if locked else one_line(error, 200))
                    raise StoreError(f"store {self.path}: cannot {what} it ({reason})"
                                     ) from None
            except duckdb.Error as error:
                raise StoreError(f"store {self.path}: cannot be opened ({one_line(error, 200)})"
                                 ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _stored_version(self, connection: duckdb.DuckDBPyConnection) -> int | None:
        """The store's schema version; None for a file without one (a new, empty store).
        A DuckDB file holding other tables and no recstack version is someone else's
        database: refused, never written into."""
        try:
            row = connection.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.Error:
            row = None
        if row is None:
            tables = [name for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables").fetchall()]
            if tables:
                raise StoreError(f"store {self.path}: a DuckDB database that is not a recstack "
                                 f"store (it holds {', '.join(map(shown, tables[:5]))}"
                                 f"{' ...' if len(tables) > 5 else ''}); choose another file")
            return None
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise StoreError(f"store {self.path}: its schema version {shown(row[0])} is not a "
                             "number; not a recstack store, or a damaged one") from None

    def _check_schema(self, connection: duckdb.DuckDBPyConnection,
                      missing_ok: bool = True) -> bool:
        """Checks the store's version: a writer (``missing_ok``) upgrades an older store
        through MIGRATIONS (in one transaction), a reader refuses anything but the current
        version. Returns whether the file has no version yet (a new store, for the writer to
        stamp)."""
        version = self._stored_version(connection)
        if version is None:
            if not missing_ok:
                raise StoreError(f"store {self.path}: not a recstack results file")
            return True
        if version != SCHEMA_VERSION and missing_ok and version in MIGRATIONS:
            connection.execute("BEGIN")
            while version in MIGRATIONS:
                for statement in MIGRATIONS[version]:
                    connection.execute(statement)
                version += 1
            connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                               [str(version)])
            connection.execute("COMMIT")
        if version > SCHEMA_VERSION:
            raise StoreError(f"store {self.path}: schema version {version} was written by a "
                             f"newer recstack; this one reads version {SCHEMA_VERSION}")
        if version != SCHEMA_VERSION:
            raise StoreError(f"store {self.path}: schema version {version} is too old to "
                             f"upgrade; this recstack reads version {SCHEMA_VERSION}")
        return False

    def check_writable(self) -> None:
        """Refuses, before a long measurement, a store that cannot take its results (not
        recstack's, under a file, read-only); creates it when it does not exist."""
        with self._writer():
            pass

    # ---- runs ----------------------------------------------------------------------------

    def create_run(self, command: str, settings: dict[str, Any], platform: dict[str, Any],
                   platform_id: str, platform_description: str,
                   run_id: str | None = None) -> str:
        run_id = new_run_id() if run_id is None else check_run_id(run_id)
        with self._writer() as db:
            db.execute("BEGIN")
            db.execute("INSERT INTO platforms VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       [platform_id, platform_description, json.dumps(platform)])
            db.execute("INSERT INTO runs (run_id, started_at, command, recstack_version, "
                       "git_revision, platform_id, settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [run_id, datetime.now(timezone.utc), command, __version__,
                        git_revision(), platform_id, json.dumps(settings, sort_keys=True)])
            db.execute("COMMIT")
        return run_id

    def start_run_pass(self, run_id: str, planned_points: int) -> None:
        """Marks the run as being measured now (a new run, or a resumed one) by this
        process, with the points its plan holds."""
        runner = f"{socket.gethostname()}:{os.getpid()}"
        self._update_run(run_id, "planned_points = ?, state = 'running', state_reason = NULL, "
                                 "ended_at = NULL, in_flight = NULL, runner = ?",
                         [planned_points, runner])

    def mark_in_flight(self, run_id: str, label: str) -> None:
        """Records the point the run is measuring now (what a killed run was doing)."""
        self._update_run(run_id, "in_flight = ?", [label])

    def end_run(self, run_id: str, state: str, reason: str | None = None) -> None:
        """Records how the run's pass ended: ``complete`` (every planned point measured or
        failed), ``interrupted`` or ``failed`` (the pass stopped early, for ``reason``). The
        point in flight is kept unless the run is complete."""
        if state not in RUN_END_STATES:
            raise ValueError(f"end_run: state {state!r}; expected one of {RUN_END_STATES}")
        in_flight = "NULL" if state == "complete" else "in_flight"
        self._update_run(run_id, f"state = ?, state_reason = ?, ended_at = ?, "
                                 f"in_flight = {in_flight}",
                         [state, reason, datetime.now(timezone.utc)])

    def _update_run(self, run_id: str, assignments: str, values: list[Any]) -> None:
        with self._writer() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values, run_id])

    def run_info(self, run_id: str) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        with self._reader() as db:
            frame = db.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).df()
        return None if frame.empty else frame.iloc[0].to_dict()

    def latest_run_id(self) -> str | None:
        if not self.path.is_file():
            return None
        with self._reader() as db:
            row = db.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1"
                             ).fetchone()
        return None if row is None else row[0]

    def finished_point_keys(self, run_id: str) -> set[str]:
        """Points of the run measured successfully (failed ones are measured again)."""
        if not self.path.is_file():
            return set()
        with self._reader() as db:
            rows = db.execute("SELECT point_key FROM points WHERE run_id = ? AND status = 'ok'",
                              [run_id]).fetchall()
        return {row[0] for row in rows}

    # ---- points --------------------------------------------------------------------------

    def record_point(self, run_id: str, point: dict[str, Any],
                     samples: pd.DataFrame | None = None,
                     timing: dict[str, Any] | None = None,
                     operators: pd.DataFrame | None = None,
                     profile: dict[str, Any] | None = None,
                     hardware: dict[str, Any] | None = None) -> None:
        """Writes one point with what its collector produced, atomically.

        ``point`` has the columns of ``points``; ``samples`` and ``operators`` are frames with
        the columns of those tables (less run and point); ``timing`` and ``profile`` are one
        row each. An earlier (failed) record of the same point in the same run is replaced.
        """
        key = point["point_key"]
        with self._writer() as db:
            db.execute("BEGIN")
            for table in ("points", "samples", "timing", "operators", "profiles", "hardware"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ? AND point_key = ?",
                           [run_id, key])
            _insert_row(db, "points", {"run_id": run_id, **point})
            for table, frame in (("samples", samples), ("operators", operators)):
                if frame is not None and not frame.empty:
                    _insert_frame(db, table, frame.assign(run_id=run_id, point_key=key))
            for table, row in (("timing", timing), ("profiles", profile),
                               ("hardware", hardware)):
                if row is not None:
                    _insert_row(db, table, {"run_id": run_id, "point_key": key, **row})
            db.execute("COMMIT")

    # ---- design spaces ---------------------------------------------------------------------

    def record_design_space(self, run_id: str, variants: pd.DataFrame) -> None:
        """Writes a run's design-space variants (columns of ``design_space`` less run_id),
        replacing any the run held: the design of a run is written once, before its points."""
        with self._writer() as db:
            db.execute("BEGIN")
            db.execute("DELETE FROM design_space WHERE run_id = ?", [run_id])
            _insert_frame(db, "design_space", variants.assign(run_id=run_id))
            db.execute("COMMIT")

    def design_space(self, run_id: str) -> pd.DataFrame:
        """The run's design-space variants (empty when the run is not a design-space run)."""
        return self.query("SELECT * FROM design_space WHERE run_id = ? ORDER BY variant_index, "
                          "variant", [run_id])

    # ---- reading -------------------------------------------------------------------------

    def query(self, sql: str, parameters: list[Any] | None = None) -> pd.DataFrame:
        """A read-only SQL query as a DataFrame. Text holding control characters (which
        recstack never writes: a store edited by someone else) is read with them shown as
        escapes: every reader then handles plain text (pandas, for one, drops a trailing NUL
        when it compares strings, and the name would match nothing)."""
        with self._reader() as db:
            frame = db.execute(sql, parameters or []).df()
        for column in frame.columns:
            values = frame[column]
            if pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values):
                # Distinct values only: ids repeat on every sample row.
                shown_as = {value: printable(value) for value in values.dropna().unique()
                            if isinstance(value, str) and CONTROL.search(value)}
                if shown_as:
                    frame[column] = values.map(lambda v: shown_as.get(v, v))
        return frame

    def runs(self) -> pd.DataFrame:
        """Every run with its platform and point counts, newest first."""
        return self.query("""
            SELECT r.run_id, r.started_at, r.command, r.recstack_version, r.git_revision,
                   p.description AS platform, r.planned_points, r.state, r.state_reason,
                   r.ended_at, r.in_flight, r.runner,
                   count(pt.point_key) FILTER (WHERE pt.status = 'ok') AS points_ok,
                   count(pt.point_key) FILTER (WHERE pt.status = 'failed') AS points_failed
            FROM runs r
            LEFT JOIN platforms p USING (platform_id)
            LEFT JOIN points pt USING (run_id)
            GROUP BY ALL
            ORDER BY r.started_at DESC
        """)

    def export(self, run_id: str, directory: str | Path, file_format: str) -> list[Path]:
        """Writes the run's rows of every table to ``directory`` as Parquet or CSV, each file
        whole (through a temporary file). File names are the run id made safe; CSV text
        cells are made safe for spreadsheets (``text.csv_cell``); Parquet keeps every value
        as stored."""
        if file_format not in ("parquet", "csv"):
            raise RecstackError(f"--format: {shown(file_format)} is not allowed; expected "
                                "parquet or csv")
        directory = check_folder_destination(Path(directory), "--to")
        written = []
        with self._reader() as db:
            if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
                raise RecstackError(f"run: {shown(run_id)} is not in {self.path}; `recstack "
                                    "results` lists the runs")
            try:
                directory.mkdir(parents=True, exist_ok=True)
                for table in TABLES:
                    target = directory / f"{file_part(run_id)}-{table}.{file_format}"
                    written.append(self._export_table(db, table, run_id, target, file_format))
            except (duckdb.IOException, OSError) as error:
                raise RecstackError(f"--to: cannot write into {directory} "
                                    f"({one_line(error, 200)})") from None
        return written

    @staticmethod
    def _export_table(db: duckdb.DuckDBPyConnection, table: str, run_id: str, target: Path,
                      file_format: str) -> Path:
        if table == "platforms":
            sql = ("SELECT * FROM platforms WHERE platform_id IN "
                   "(SELECT platform_id FROM runs WHERE run_id = $run)")
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

    # ---- machine ceilings ------------------------------------------------------------------

    def write_ceilings(self, ceilings: pd.DataFrame, platform: dict[str, Any],
                       description: str) -> str:
        """Stores a new set of ceilings (rows of the ``ceilings`` table, one platform and
        thread count) beside the sets measured before, keeping the newest
        ``KEEP_CEILING_SETS``, in one transaction. Returns the new set's id."""
        if ceilings.empty:
            raise ValueError("write_ceilings: no ceilings to store")
        keys = ceilings[["platform_id", "threads"]].drop_duplicates()
        if len(keys) != 1:
            raise ValueError("write_ceilings: expected rows of one platform and thread count")
        platform_id, threads = str(keys.platform_id.iloc[0]), int(keys.threads.iloc[0])
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        set_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        with self._writer() as db:
            db.execute("BEGIN")
            db.execute("INSERT INTO platforms VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       [platform_id, description, json.dumps(platform)])
            _insert_frame(db, "ceilings", ceilings.assign(set_id=set_id))
            db.execute("""
                DELETE FROM ceilings WHERE platform_id = ? AND threads = ? AND set_id IN (
                    SELECT set_id FROM ceilings WHERE platform_id = ? AND threads = ?
                    GROUP BY set_id ORDER BY max(measured_at) DESC OFFSET ?)""",
                       [platform_id, threads, platform_id, threads, KEEP_CEILING_SETS])
            db.execute("COMMIT")
        return set_id

    def load_ceilings(self, platform_id: str | None = None, threads: int | None = None,
                      every_set: bool = False) -> pd.DataFrame:
        """Stored ceilings (columns of the ``ceilings`` table), optionally of one platform
        and thread count: the newest set of each, or with ``every_set`` every stored set;
        empty when there are none or the store does not exist yet."""
        columns = ["platform_id", "threads", "kind", "shape", "value", "unit", "p5", "p95",
                   "repeats", "samples", "measured_at", "recstack_version", "torch_version",
                   "set_id"]
        if not self.path.is_file():
            return pd.DataFrame(columns=columns)
        where, parameters = [], []
        if platform_id is not None:
            where.append("platform_id = ?")
            parameters.append(platform_id)
        if threads is not None:
            where.append("threads = ?")
            parameters.append(int(threads))
        if not every_set:
            where.append("""set_id = (SELECT newest.set_id FROM ceilings newest
                WHERE newest.platform_id = ceilings.platform_id
                      AND newest.threads = ceilings.threads
                GROUP BY newest.set_id ORDER BY max(newest.measured_at) DESC LIMIT 1)""")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self.query(f"SELECT {', '.join(columns)} FROM ceilings {clause} "
                          "ORDER BY platform_id, threads, set_id, kind, shape", parameters)

    def run_span(self, run_id: str) -> tuple[datetime | None, datetime | None]:
        """When ``run_id`` started and when its last point finished (None when unknown)."""
        span = self.query("""SELECT r.started_at, max(p.finished_at) AS finished_at
                             FROM runs r LEFT JOIN points p USING (run_id)
                             WHERE r.run_id = ? GROUP BY r.started_at""", [run_id])
        if span.empty:
            return None, None
        start, end = span.started_at.iloc[0], span.finished_at.iloc[0]
        return (None if pd.isna(start) else start.to_pydatetime(),
                None if pd.isna(end) else end.to_pydatetime())


def _insert_row(db: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> None:
    db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
               list(row.values()))


def _insert_frame(db: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    db.register("new_rows", frame)
    try:
        db.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")
    finally:
        db.unregister("new_rows")


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
