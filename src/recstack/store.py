"""The results store: one DuckDB file, the only place results live.

Tables (schema version in ``meta``):

- ``platforms``: one row per distinct machine and software stack (``platform_id``).
- ``runs``: id, start, command, recstack version, git revision, platform, timing settings.
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
from recstack.errors import RecstackError

SCHEMA_VERSION = 9
# What brings a store of each older version to the next one (applied in order when the store
# is opened). A version missing here is too old to upgrade: it is refused.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 5: seconds the compile backend spent compiling before the point was measured.
    4: ("ALTER TABLE points ADD COLUMN IF NOT EXISTS compile_seconds DOUBLE",),
    # 6: a lower bound on the profiler's added time outside operators, per iteration.
    5: ("ALTER TABLE profiles ADD COLUMN IF NOT EXISTS profiler_outside_us DOUBLE",),
    # 7: the operator clock's reading (medians, raw rounds) or why there is none.
    6: tuple(f"ALTER TABLE profiles ADD COLUMN IF NOT EXISTS {column}"
             for column in ("clock_plain_us DOUBLE", "clock_clocked_us DOUBLE",
                            "clock_inside_us DOUBLE", "clock_outside_us DOUBLE",
                            "clock_operators DOUBLE", "clock_observed DOUBLE", "clock JSON",
                            "clock_note VARCHAR")),
    # 8: ceilings keep every set measured (set_id in the key); a stored set becomes one set.
    7: ("CREATE TABLE IF NOT EXISTS ceilings (platform_id VARCHAR, threads INTEGER, kind "
        "VARCHAR, shape VARCHAR, value DOUBLE, unit VARCHAR, p5 DOUBLE, p95 DOUBLE, repeats "
        "INTEGER, samples JSON, measured_at TIMESTAMPTZ, recstack_version VARCHAR, "
        "torch_version VARCHAR)",
        "DROP TABLE IF EXISTS ceilings_v8",
        "CREATE TABLE ceilings_v8 (platform_id VARCHAR, threads INTEGER, kind VARCHAR, shape "
        "VARCHAR, value DOUBLE, unit VARCHAR, p5 DOUBLE, p95 DOUBLE, repeats INTEGER, samples "
        "JSON, measured_at TIMESTAMPTZ, recstack_version VARCHAR, torch_version VARCHAR, "
        "set_id VARCHAR, PRIMARY KEY (platform_id, threads, set_id, kind, shape))",
        "INSERT INTO ceilings_v8 SELECT *, 'stored-' || strftime(min(measured_at) OVER "
        "(PARTITION BY platform_id, threads), '%Y%m%dT%H%M%SZ') FROM ceilings",
        "DROP TABLE ceilings",
        "ALTER TABLE ceilings_v8 RENAME TO ceilings"),
    # 9: the operator clock's own cost outside each top-level operator (a lower bound).
    8: ("ALTER TABLE profiles ADD COLUMN IF NOT EXISTS clock_callback_outside_us DOUBLE",),
}
# How long opening the store waits for another process's connection to close.
LOCK_WAIT_S = 60.0
TABLES: tuple[str, ...] = ("platforms", "runs", "points", "samples", "timing", "operators",
                           "profiles", "hardware", "design_space")

# Every set of ceilings measured is kept (up to KEEP_CEILING_SETS per platform and thread
# count), so that a run is judged against the set measured nearest to it, not the newest.
_CEILINGS_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    platform_id VARCHAR,
    threads INTEGER,
    kind VARCHAR,
    shape VARCHAR,
    value DOUBLE,
    unit VARCHAR,
    p5 DOUBLE,
    p95 DOUBLE,
    repeats INTEGER,
    samples JSON,
    measured_at TIMESTAMPTZ,
    recstack_version VARCHAR,
    torch_version VARCHAR,
    set_id VARCHAR,
    PRIMARY KEY (platform_id, threads, set_id, kind, shape)
);"""
KEEP_CEILING_SETS = 10

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS platforms (
    platform_id VARCHAR PRIMARY KEY,
    description VARCHAR,
    info JSON
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMPTZ,
    command VARCHAR,
    recstack_version VARCHAR,
    git_revision VARCHAR,
    platform_id VARCHAR,
    settings JSON
);
CREATE TABLE IF NOT EXISTS points (
    run_id VARCHAR,
    point_key VARCHAR,
    config_key VARCHAR,
    collector VARCHAR,
    label VARCHAR,
    model VARCHAR,
    model_type VARCHAR,
    spec_digest VARCHAR,
    spec JSON,
    row_scale DOUBLE,
    batch_size INTEGER,
    device VARCHAR,
    threads INTEGER,
    backend VARCHAR,
    query JSON,
    seed BIGINT,
    status VARCHAR,
    error VARCHAR,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    build_seconds DOUBLE,
    peak_memory_growth_bytes BIGINT,
    input_bytes_per_batch BIGINT,
    distinct_batches INTEGER,
    threads_used INTEGER,
    device_name VARCHAR,
    warmup_iterations INTEGER,
    compile_seconds DOUBLE,
    PRIMARY KEY (run_id, point_key)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id VARCHAR,
    point_key VARCHAR,
    iteration INTEGER,
    latency_ns BIGINT,
    copy_ns BIGINT
);
CREATE TABLE IF NOT EXISTS timing (
    run_id VARCHAR,
    point_key VARCHAR,
    iterations INTEGER,
    median_ms DOUBLE,
    p5_ms DOUBLE,
    p95_ms DOUBLE,
    p99_ms DOUBLE,
    mean_ms DOUBLE,
    std_ms DOUBLE,
    cv DOUBLE,
    relative_spread DOUBLE,
    throughput_per_s DOUBLE,
    copy_median_ms DOUBLE,
    unstable BOOLEAN,
    warning VARCHAR,
    PRIMARY KEY (run_id, point_key)
);
CREATE TABLE IF NOT EXISTS operators (
    run_id VARCHAR,
    point_key VARCHAR,
    part VARCHAR,
    op VARCHAR,
    calls DOUBLE,
    time_us DOUBLE
);
CREATE TABLE IF NOT EXISTS profiles (
    run_id VARCHAR,
    point_key VARCHAR,
    iterations INTEGER,
    time_basis VARCHAR,
    wall_us DOUBLE,
    operator_us DOUBLE,
    uncovered_us DOUBLE,
    profiled_median_us DOUBLE,
    unprofiled_median_us DOUBLE,
    profiler_overhead DOUBLE,
    trace_path VARCHAR,
    profiler_outside_us DOUBLE,
    clock_plain_us DOUBLE,
    clock_clocked_us DOUBLE,
    clock_inside_us DOUBLE,
    clock_outside_us DOUBLE,
    clock_operators DOUBLE,
    clock_observed DOUBLE,
    clock JSON,
    clock_note VARCHAR,
    clock_callback_outside_us DOUBLE,
    PRIMARY KEY (run_id, point_key)
);
CREATE TABLE IF NOT EXISTS hardware (
    run_id VARCHAR,
    point_key VARCHAR,
    source VARCHAR,
    hierarchy VARCHAR,
    instructions DOUBLE,
    ipc DOUBLE,
    l1i_mpki DOUBLE,
    l1d_mpki DOUBLE,
    llc_mpki DOUBLE,
    branch_mpki DOUBLE,
    dtlb_mpki DOUBLE,
    itlb_mpki DOUBLE,
    retiring DOUBLE,
    bad_speculation DOUBLE,
    frontend_bound DOUBLE,
    backend_bound DOUBLE,
    topdown JSON,
    multiplexing DOUBLE,
    caveats JSON,
    raw JSON,
    PRIMARY KEY (run_id, point_key)
);
CREATE TABLE IF NOT EXISTS design_space (
    run_id VARCHAR,
    variant VARCHAR,
    base_model VARCHAR,
    variant_index INTEGER,
    design_seed BIGINT,
    sampler VARCHAR,
    spec_digest VARCHAR,
    factors JSON,
    PRIMARY KEY (run_id, variant)
);
{_CEILINGS_TABLE.format(name="ceilings")}
"""


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connect(read_only=False)
        try:
            # The version first: an older store gets its migrations before CREATE IF NOT
            # EXISTS could add tables of the new version beside them.
            new = self._check_schema(connection)
            connection.execute(_SCHEMA)
            if new:
                connection.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                   [str(SCHEMA_VERSION)])
            yield connection
        finally:
            connection.close()

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.path.is_file():
            raise RecstackError(f"store: {str(self.path)!r} does not exist; run `recstack run` "
                                "or `recstack sweep --out PATH` first")
        connection = self._connect(read_only=True)
        if self._stored_version(connection) in MIGRATIONS:
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
                              if locked else str(error))
                    raise RecstackError(f"store {self.path}: cannot {what} it ({reason})"
                                        ) from None
            except duckdb.Error as error:
                raise RecstackError(f"store {self.path}: cannot be opened ({error})") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    @staticmethod
    def _stored_version(connection: duckdb.DuckDBPyConnection) -> int | None:
        try:
            row = connection.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.CatalogException:
            return None
        return int(row[0]) if row is not None else None

    def _check_schema(self, connection: duckdb.DuckDBPyConnection,
                      missing_ok: bool = True) -> bool:
        """Checks the store's version: a writer (``missing_ok``) upgrades an older store
        through MIGRATIONS (in one transaction), a reader refuses anything but the current
        version. Returns whether the file has no version yet (a new store, for the writer to
        stamp)."""
        version = self._stored_version(connection)
        if version is None:
            if not missing_ok:
                raise RecstackError(f"store {self.path}: not a recstack results file")
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
        if version != SCHEMA_VERSION:
            raise RecstackError(f"store {self.path}: schema version {version}, this recstack "
                                f"reads version {SCHEMA_VERSION}")
        return False

    # ---- runs ----------------------------------------------------------------------------

    def create_run(self, command: str, settings: dict[str, Any], platform: dict[str, Any],
                   platform_id: str, platform_description: str,
                   run_id: str | None = None) -> str:
        run_id = run_id or new_run_id()
        with self._writer() as db:
            db.execute("BEGIN")
            db.execute("INSERT INTO platforms VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       [platform_id, platform_description, json.dumps(platform)])
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [run_id, datetime.now(timezone.utc), command, __version__,
                        git_revision(), platform_id, json.dumps(settings, sort_keys=True)])
            db.execute("COMMIT")
        return run_id

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
        """A read-only SQL query as a DataFrame."""
        with self._reader() as db:
            return db.execute(sql, parameters or []).df()

    def runs(self) -> pd.DataFrame:
        """Every run with its platform and point counts, newest first."""
        return self.query("""
            SELECT r.run_id, r.started_at, r.command, r.recstack_version, r.git_revision,
                   p.description AS platform,
                   count(pt.point_key) FILTER (WHERE pt.status = 'ok') AS points_ok,
                   count(pt.point_key) FILTER (WHERE pt.status = 'failed') AS points_failed
            FROM runs r
            LEFT JOIN platforms p USING (platform_id)
            LEFT JOIN points pt USING (run_id)
            GROUP BY ALL
            ORDER BY r.started_at DESC
        """)

    def export(self, run_id: str, directory: str | Path, file_format: str) -> list[Path]:
        """Writes the run's rows of every table to ``directory`` as Parquet or CSV."""
        if file_format not in ("parquet", "csv"):
            raise RecstackError(f"--format: {file_format!r} is not allowed; expected parquet "
                                "or csv")
        written = []
        with self._reader() as db:
            if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
                raise RecstackError(f"run: {run_id!r} is not in {self.path}; `recstack "
                                    "results` lists the runs")
            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            for table in TABLES:
                if table == "platforms":
                    sql = ("SELECT * FROM platforms WHERE platform_id IN "
                           "(SELECT platform_id FROM runs WHERE run_id = $run)")
                else:
                    sql = f"SELECT * FROM {table} WHERE run_id = $run"
                target = directory / f"{run_id}-{table}.{file_format}"
                options = "FORMAT PARQUET" if file_format == "parquet" else "FORMAT CSV, HEADER"
                # COPY takes no prepared parameters: read into a frame, then copy the frame.
                frame = db.execute(sql, {"run": run_id}).df()
                db.register("export_frame", frame)
                db.execute(f"COPY export_frame TO '{_sql_path(target)}' ({options})")
                db.unregister("export_frame")
                written.append(target)
        return written


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
