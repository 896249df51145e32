"""The results store: one DuckDB file, the only place results live.

Its tables are declared in :mod:`recstack.records` (each row class names its columns, units,
meanings and the schema version that added them); the schema version is kept in ``meta``.
Opening, locking and upgrading the file is :mod:`recstack.store.connection`.

- ``platforms``, ``runs``: machines, and measuring commands with whether they finished.
- ``points`` and the per-point tables of each level: ``samples`` and ``timing``
  (:mod:`recstack.records.timing`), ``operators`` and ``profiles``
  (:mod:`recstack.records.profile`), ``hardware`` (:mod:`recstack.records.hardware`).
- ``design_space``: a design-space run's variants (their points are ordinary points).
- ``ceilings``: per platform and thread count, the machine's measured ceilings, one
  ``set_id`` per measurement; the newest ``KEEP_CEILING_SETS`` sets are kept, and every run
  is judged against the set measured nearest to it.
- ``backend_choices``: per platform and thread count, the races that chose ``auto``'s
  backends (:mod:`recstack.store.choices`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from recstack import __version__
from recstack.paths import check_run_id
from recstack.records import Platform, PointRow, Record, Run, Table
from recstack.store.choices import BackendChoiceStore
from recstack.store.connection import StoreFile
from recstack.text import CONTROL, printable

RUN_END_STATES = ("complete", "interrupted", "failed")
# Every set of ceilings measured is kept (up to this many per platform and thread count), so
# that a run is judged against the set measured nearest to it, not the newest.
KEEP_CEILING_SETS = 10


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
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


class ResultStore(BackendChoiceStore, StoreFile):
    """The results of every run: writing runs, points and ceilings, and reading them back
    (every table as :data:`recstack.records.SCHEMA` declares it)."""

    # ---- runs ----------------------------------------------------------------------------

    def create_run(self, command: str, settings: dict[str, Any], platform: dict[str, Any],
                   platform_id: str, platform_description: str,
                   run_id: str | None = None) -> str:
        run_id = new_run_id() if run_id is None else check_run_id(run_id)
        machine = Platform(platform_id=platform_id, description=platform_description,
                           info=platform)
        run = Run(run_id=run_id, started_at=datetime.now(UTC), command=command,
                  recstack_version=__version__, git_revision=git_revision(),
                  platform_id=platform_id, settings=settings)
        with self._writer() as db:
            db.execute("BEGIN")
            self._insert(db, self.schema.table("platforms"), {}, [machine],
                         "ON CONFLICT DO NOTHING")
            self._insert(db, self.schema.table("runs"), {}, [run])
            db.execute("COMMIT")
        return run_id

    def record_platform(self, platform_id: str, description: str,
                        info: dict[str, Any]) -> None:
        """Stores a machine that measures points (a cluster node's, beside the run's own);
        one already stored keeps its row."""
        machine = Platform(platform_id=platform_id, description=description, info=info)
        with self._writer() as db:
            self._insert(db, self.schema.table("platforms"), {}, [machine],
                         "ON CONFLICT DO NOTHING")

    def start_run_pass(self, run_id: str, planned_points: int) -> None:
        """Marks the run as being measured now (a new run, or a resumed one) by this
        process, with the points its plan holds."""
        runner = f"{socket.gethostname()}:{os.getpid()}"
        self._update_run(run_id, "planned_points = ?, state = 'running', state_reason = NULL, "
                                 "ended_at = NULL, in_flight = NULL, runner = ?",
                         [planned_points, runner])

    def plan_at_least(self, run_id: str, planned_points: int) -> None:
        """Raises the run's planned points to ``planned_points`` (a run whose points are
        chosen as it goes, as the tuner's are, learns its size point by point)."""
        self._update_run(run_id, "planned_points = greatest(coalesce(planned_points, 0), ?)",
                         [planned_points])

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
                         [state, reason, datetime.now(UTC)])

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

    def served_point(self, run_id: str, point_key: str) -> dict[str, Any] | None:
        """A serving point the run measured successfully: its ``serving`` row (None when
        it has none: not measured, or failed)."""
        if not self.path.is_file():
            return None
        with self._reader() as db:
            frame = db.execute("SELECT s.* FROM serving s JOIN points p USING (run_id, "
                               "point_key) WHERE s.run_id = ? AND s.point_key = ? AND "
                               "p.status = 'ok'", [run_id, point_key]).fetchdf()
        return None if frame.empty else frame.iloc[0].to_dict()

    # ---- points --------------------------------------------------------------------------

    def record_point(self, run_id: str, point_key: str, point: PointRow,
                     record: Record | None = None) -> None:
        """Writes one point with the record its collector returned (none for a failed point),
        atomically. An earlier (failed) record of the same point in the same run is
        replaced. Each of the record's rows goes to the table its class declares."""
        key = {"run_id": run_id, "point_key": point_key}
        rows: dict[str, list[Any]] = {"points": [point]}
        frames: list[tuple[Table, pd.DataFrame]] = []
        for part, value in (record.rows() if record is not None else ()):
            table = self.schema.table_of(part)
            if isinstance(value, pd.DataFrame):
                frames.append((table, value))
            else:
                rows.setdefault(table.name, []).append(value)
        with self._writer() as db:
            db.execute("BEGIN")
            for table in self.per_point_tables():
                db.execute(f"DELETE FROM {table.name} WHERE run_id = ? AND point_key = ?",
                           [run_id, point_key])
            for name, instances in rows.items():
                self._insert(db, self.schema.table(name), key, instances)
            for table, frame in frames:
                if not frame.empty:
                    _insert_frame(db, table.name, table.frame(key, frame))
            db.execute("COMMIT")

    def per_point_tables(self) -> list[Table]:
        return [t for t in self.schema.tables if "point_key" in (c.name for c in t.key)]

    @staticmethod
    def _insert(db: duckdb.DuckDBPyConnection, table: Table, key: dict[str, Any],
                instances: list[Any], conflict: str = "") -> None:
        row = table.row_values(key, *instances)
        db.execute(f"INSERT INTO {table.name} ({', '.join(row)}) VALUES "
                   f"({', '.join('?' * len(row))}) {conflict}", list(row.values()))

    # ---- design spaces ---------------------------------------------------------------------

    def record_design_space(self, run_id: str, variants: pd.DataFrame) -> None:
        """Writes a run's design-space variants (columns of ``design_space`` less run_id),
        replacing any the run held: the design of a run is written once, before its points."""
        with self._writer() as db:
            db.execute("BEGIN")
            db.execute("DELETE FROM design_space WHERE run_id = ?", [run_id])
            table = self.schema.table("design_space")
            _insert_frame(db, table.name, table.frame({"run_id": run_id}, variants))
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
        """Writes the run's rows of every table to ``directory`` (see
        :func:`recstack.store.export.export_run`)."""
        from recstack.store.export import export_run

        return export_run(self, run_id, directory, file_format)

    # ---- machine ceilings ------------------------------------------------------------------

    def write_ceilings(self, ceilings: pd.DataFrame, platform: dict[str, Any],
                       description: str) -> str:
        """Stores a new set of ceilings (rows of the ``ceilings`` table, one platform and
        thread count) beside the sets measured before, keeping the newest
        ``KEEP_CEILING_SETS``, in one transaction. Returns the new set's id."""
        return self.write_set(self.schema.table("ceilings"), ceilings, platform, description,
                              KEEP_CEILING_SETS)

    def write_set(self, table: Table, rows: pd.DataFrame, platform: dict[str, Any],
                  description: str, keep: int) -> str:
        """Stores ``rows`` (of ``table`` less ``set_id``, one platform and thread count) as a
        new set, with its platform, keeping the newest ``keep`` sets of that platform and
        thread count, in one transaction. Returns the new set's id."""
        if rows.empty:
            raise ValueError(f"write_set: no {table.name} to store")
        keys = rows[["platform_id", "threads"]].drop_duplicates()
        if len(keys) != 1:
            raise ValueError(f"write_set: expected {table.name} of one platform and thread "
                             "count")
        platform_id, threads = str(keys.platform_id.iloc[0]), int(keys.threads.iloc[0])
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        set_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        with self._writer() as db:
            db.execute("BEGIN")
            self._insert(db, self.schema.table("platforms"), {},
                         [Platform(platform_id=platform_id, description=description,
                                   info=platform)], "ON CONFLICT DO NOTHING")
            _insert_frame(db, table.name, table.frame({}, rows.assign(set_id=set_id)))
            db.execute(f"""
                DELETE FROM {table.name} WHERE platform_id = ? AND threads = ? AND set_id IN (
                    SELECT set_id FROM {table.name} WHERE platform_id = ? AND threads = ?
                    GROUP BY set_id ORDER BY max(measured_at) DESC OFFSET ?)""",
                       [platform_id, threads, platform_id, threads, keep])
            db.execute("COMMIT")
        return set_id

    def load_ceilings(self, platform_id: str | None = None, threads: int | None = None,
                      every_set: bool = False) -> pd.DataFrame:
        """Stored ceilings (columns of the ``ceilings`` table), optionally of one platform
        and thread count: the newest set of each, or with ``every_set`` every stored set;
        empty when there are none or the store does not exist yet."""
        return self.load_sets("ceilings", ("kind", "shape"), platform_id, threads, every_set)

    def load_sets(self, table: str, order: tuple[str, ...], platform_id: str | None,
                  threads: int | None, every_set: bool) -> pd.DataFrame:
        """Rows of a table of measured sets per platform and thread count (``ceilings``,
        ``backend_choices``: ``set_id`` and ``measured_at`` columns), optionally of one
        platform and thread count: the newest set of each (ties: the larger set id), or with
        ``every_set`` every one; ordered by platform, threads, set, then ``order``."""
        columns = list(self.schema.table(table).names)
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
            where.append(f"""set_id = (SELECT newest.set_id FROM {table} newest
                WHERE newest.platform_id = {table}.platform_id
                      AND newest.threads = {table}.threads
                GROUP BY newest.set_id ORDER BY max(newest.measured_at) DESC, newest.set_id DESC
                LIMIT 1)""")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self.query(f"SELECT {', '.join(columns)} FROM {table} {clause} ORDER BY "
                          f"{', '.join(('platform_id', 'threads', 'set_id', *order))}",
                          parameters)

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


def _insert_frame(db: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    db.register("new_rows", frame)
    try:
        db.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")
    finally:
        db.unregister("new_rows")
