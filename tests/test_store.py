"""The results store: schema, atomic point writes, export, refusals."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from recstack.errors import RecstackError, StoreError
from recstack.records import Run
from recstack.store import ResultStore
from tests import fill

RUN_STATE_COLUMNS = [c.name for c in fields(Run)
                     if Run.__dataclass_fields__[c.name].metadata["recstack.column"][3] == 10]


def point_row(key: str, status: str = "ok", **values: object) -> fill.PointRow:
    return fill.point(label=key, model="m", model_type="dlrm", batch_size=1, device="cpu",
                      threads=1, backend="eager", status=status, **values)


BUILD = dict(build_seconds=0.1, peak_memory_growth_bytes=1, input_bytes_per_batch=1,
             distinct_batches=1, threads_used=1, device_name="cpu", warmup_iterations=1)


def samples(n: int) -> pd.DataFrame:
    return pd.DataFrame({"iteration": range(n), "latency_ns": [1000 + i for i in range(n)],
                         "copy_ns": pd.array([None] * n, dtype="Int64")})


@pytest.fixture
def store(tmp_path: Path) -> ResultStore:
    return ResultStore(tmp_path / "sub" / "r.duckdb")


def test_a_run_with_points(store: ResultStore) -> None:
    run_id = store.create_run("recstack test", {"min_seconds": 1.0}, {"cpu": "x"}, "pid", "x")
    store.record_point(run_id, "a", point_row("a"),
                       fill.timing(samples(5), iterations=5, median_ms=1.0))
    store.record_point(run_id, "b", point_row("b", "failed", error="boom"))
    assert store.finished_point_keys(run_id) == {"a"}
    assert store.latest_run_id() == run_id
    runs = store.runs()
    assert runs.loc[0, "points_ok"] == 1 and runs.loc[0, "points_failed"] == 1
    assert store.query("SELECT count(*) AS n FROM samples").n[0] == 5


def test_rewriting_a_point_replaces_it(store: ResultStore) -> None:
    run_id = store.create_run("t", {}, {}, "pid", "x")
    store.record_point(run_id, "a", point_row("a", "failed"))
    store.record_point(run_id, "a", point_row("a"), fill.timing(samples(3), iterations=3))
    store.record_point(run_id, "a", point_row("a"), fill.timing(samples(4), iterations=4))
    assert store.query("SELECT count(*) AS n FROM points").n[0] == 1
    assert store.query("SELECT count(*) AS n FROM samples").n[0] == 4


def test_a_failed_write_leaves_nothing_half_written(store: ResultStore) -> None:
    run_id = store.create_run("t", {}, {}, "pid", "x")
    with pytest.raises(duckdb.Error):
        # The points row and the samples go in; the statistics do not convert.
        store.record_point(run_id, "a", point_row("a"),
                           fill.timing(samples(3), iterations="three"))
    assert store.query("SELECT count(*) AS n FROM points").n[0] == 0
    assert store.query("SELECT count(*) AS n FROM samples").n[0] == 0


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_export(store: ResultStore, tmp_path: Path, file_format: str) -> None:
    run_id = store.create_run("t", {}, {"cpu": "x"}, "pid", "x")
    store.record_point(run_id, "a", point_row("a"), fill.timing(samples(5), iterations=5))
    written = store.export(run_id, tmp_path / "out", file_format)
    assert [p.name for p in written] == [f"{run_id}-{t}.{file_format}" for t in
                                         ("platforms", "runs", "points", "samples", "timing",
                                          "operators", "profiles", "hardware", "design_space",
                                          "serving", "serving_tests", "served_requests")]
    assert duckdb.sql(f"SELECT count(*) FROM '{written[3]}'").fetchall()[0][0] == 5
    with pytest.raises(RecstackError, match="--format: 'xlsx' is not allowed"):
        store.export(run_id, tmp_path, "xlsx")
    with pytest.raises(RecstackError, match="run: 'nope' is not in"):
        store.export("nope", tmp_path, "csv")


def test_reading_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecstackError, match="does not exist; run `recstack run`"):
        ResultStore(tmp_path / "none.duckdb").runs()


def test_a_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    with pytest.raises(RecstackError, match="schema version 99"):
        ResultStore(path).runs()


def test_a_store_of_an_older_version_is_upgraded_in_place(tmp_path: Path) -> None:
    from recstack.records import SCHEMA

    SCHEMA_VERSION = SCHEMA.version

    path = tmp_path / "old.duckdb"
    old = ResultStore(path)
    run_id = old.create_run("test", {}, {}, "p1", "platform")
    old.record_point(run_id, "a", point_row("a"))
    with duckdb.connect(str(path)) as db:  # as version 4 wrote it: five migrations to go
        db.execute("ALTER TABLE points DROP COLUMN compile_seconds")
        db.execute("ALTER TABLE profiles DROP COLUMN profiler_outside_us")
        for column in RUN_STATE_COLUMNS:
            db.execute(f"ALTER TABLE runs DROP COLUMN {column.split()[0]}")
        for column in ("clock_plain_us", "clock_clocked_us", "clock_inside_us",
                       "clock_outside_us", "clock_operators", "clock_observed", "clock",
                       "clock_note", "clock_callback_outside_us"):
            db.execute(f"ALTER TABLE profiles DROP COLUMN {column}")
        # Before version 8 a platform and thread count had one set of ceilings.
        db.execute("DROP TABLE ceilings")
        db.execute("CREATE TABLE ceilings (platform_id VARCHAR, threads INTEGER, kind VARCHAR, "
                   "shape VARCHAR, value DOUBLE, unit VARCHAR, p5 DOUBLE, p95 DOUBLE, "
                   "repeats INTEGER, samples JSON, measured_at TIMESTAMPTZ, "
                   "recstack_version VARCHAR, torch_version VARCHAR, "
                   "PRIMARY KEY (platform_id, threads, kind, shape))")
        db.execute("INSERT INTO ceilings VALUES ('p1', 1, 'dispatch', 'add', 2.0, 'us', 2.0, "
                   "2.0, 3, '[]', TIMESTAMPTZ '2026-11-20 10:00:00+00', 't', 't')")
        db.execute("ALTER TABLE points DROP COLUMN method_version")
        db.execute("ALTER TABLE points RENAME COLUMN level TO collector")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    # Reading upgrades it; what was recorded stays, the new column is empty (not zero).
    query = "SELECT point_key, compile_seconds FROM points WHERE run_id = ? ORDER BY point_key"
    points = ResultStore(path).query(query, [run_id])
    assert list(points.point_key) == ["a"] and points.compile_seconds.isna().all()
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                          ).fetchone()[0] == str(SCHEMA_VERSION)
    columns = ResultStore(path).query("SELECT * FROM profiles LIMIT 0").columns
    assert {"profiler_outside_us", "clock_inside_us", "clock", "clock_note",
            "clock_callback_outside_us"} <= set(columns)
    runs = ResultStore(path).runs()
    assert runs.state.isna().all() and runs.planned_points.isna().all()
    ceilings = ResultStore(path).load_ceilings()
    assert list(ceilings.set_id) == ["stored-20261120T100000Z"] and ceilings.value.item() == 2.0
    ResultStore(path).record_point(run_id, "b", point_row("b"), fill.TimingRecord(
        samples(1), fill.stats(iterations=1), fill.Build(**BUILD, compile_seconds=12.5)))
    points = ResultStore(path).query(query, [run_id]).set_index("point_key")
    assert points.compile_seconds["b"] == 12.5


def test_ceiling_sets_are_kept_the_newest_loaded(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from recstack.store import results as store_module

    store = ResultStore(tmp_path / "c.duckdb")
    day = datetime(2026, 11, 25, tzinfo=timezone.utc)

    def ceilings(hour: int, threads: int = 1) -> pd.DataFrame:
        return pd.DataFrame({"platform_id": ["p1"], "threads": [threads], "kind": ["dispatch"],
                             "shape": ["add"], "value": [float(hour)], "unit": ["us"],
                             "measured_at": [day + timedelta(hours=hour)]})

    monkeypatch.setattr(store_module, "KEEP_CEILING_SETS", 2)
    ids = [store.write_ceilings(ceilings(hour), {}, "platform") for hour in (1, 3, 2)]
    store.write_ceilings(ceilings(9, threads=2), {}, "platform")
    assert len(set(ids)) == 3
    # The newest measurement per platform and thread count (not the last written)...
    newest = store.load_ceilings(threads=1)
    assert list(newest.value) == [3.0] and list(newest.set_id) == [ids[1]]
    assert sorted(store.load_ceilings().threads) == [1, 2]
    # ... and only the newest KEEP_CEILING_SETS sets kept: the 1 o'clock set is gone.
    kept = store.load_ceilings(threads=1, every_set=True)
    assert sorted(kept.value) == [2.0, 3.0]
    with pytest.raises(ValueError, match="no ceilings"):
        store.write_ceilings(ceilings(4).iloc[:0], {}, "platform")


def test_a_writer_waits_for_a_reader_to_let_go(store: ResultStore) -> None:
    """Another process reading the store (another terminal, a test polling it) only delays a
    sweep's write of its next point."""
    import subprocess
    import sys
    import time

    run_id = store.create_run("t", {}, {}, "pid", "x")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], "
         "read_only=True); print('open', flush=True); time.sleep(1.5)", str(store.path)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    start = time.monotonic()
    store.record_point(run_id, "a", point_row("a"), fill.timing(samples(2), iterations=2))
    holder.wait()
    assert time.monotonic() - start > 0.5  # it waited rather than failing
    assert store.finished_point_keys(run_id) == {"a"}


# ---- stores that are not recstack's, and writes the machine refuses ------------------------


def test_another_applications_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE customers (name VARCHAR)")
        db.execute("INSERT INTO customers VALUES ('ada')")
    for action in (lambda s: s.create_run("t", {}, {}, "p", "x"), lambda s: s.runs()):
        with pytest.raises(StoreError, match="a DuckDB database that is not a recstack store "
                                             r"\(it holds 'customers'\); choose another file"):
            action(ResultStore(path))
    with duckdb.connect(str(path), read_only=True) as db:
        tables = [name for (name,) in db.execute("SELECT table_name FROM "
                                                 "information_schema.tables").fetchall()]
    assert tables == ["customers"]


@pytest.mark.parametrize("content, message", [
    (b"not a database at all\n" * 100, "cannot"),
    (b"", "cannot"),
])
def test_a_file_that_is_not_duckdb_is_one_line(tmp_path: Path, content: bytes,
                                               message: str) -> None:
    path = tmp_path / "x.duckdb"
    path.write_bytes(content)
    with pytest.raises(RecstackError, match=message) as error:
        ResultStore(path).runs()
    assert "\n" not in str(error.value)


def test_a_schema_version_that_is_not_a_number_or_is_newer(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    ResultStore(path).create_run("t", {}, {}, "p", "x")
    for value, message in (("abc", "schema version 'abc' is not a number; not a recstack "
                                   "store, or a damaged one"),
                           ("99", "schema version 99 was written by a newer recstack")):
        with duckdb.connect(str(path)) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [value])
        with pytest.raises(StoreError, match=message):
            ResultStore(path).runs()


def test_a_store_under_a_file_or_named_like_a_folder(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="its folder cannot be created"):
        ResultStore(tmp_path / "afile" / "r.duckdb").create_run("t", {}, {}, "p", "x")
    with pytest.raises(StoreError, match="is a folder; expected a DuckDB file"):
        ResultStore(tmp_path).create_run("t", {}, {}, "p", "x")


_FILL_UNTIL_THE_LIMIT = """
import resource, signal, sys
from tests.test_store import fill, point_row, samples
from recstack.errors import StoreError
from recstack.store import ResultStore

store = ResultStore(sys.argv[1])
run_id = store.runs().run_id[0]
# Writes past this size fail with EFBIG, as a full disk fails them with ENOSPC.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
size = store.path.stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 300_000, size + 300_000))
for index in range(1000):
    try:
        store.record_point(run_id, f"p{index}", point_row(f"p{index}"),
                           fill.timing(samples(20_000), iterations=1))
    except StoreError as error:
        print(index, error)
        break
"""


def test_a_write_the_disk_refuses_is_one_error_and_keeps_what_was_stored(
        tmp_path: Path) -> None:
    """A full disk, simulated with a file-size limit (ENOSPC and EFBIG reach DuckDB alike)."""
    import subprocess
    import sys

    path = tmp_path / "r.duckdb"
    ResultStore(path).create_run("t", {}, {}, "p", "x")
    done = subprocess.run([sys.executable, "-c", _FILL_UNTIL_THE_LIMIT, str(path)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    written, message = done.stdout.split(" ", 1)
    assert int(written) >= 1
    assert "cannot write (" in message and "what was stored before is kept" in message
    assert "\n" not in message.strip()
    # Every point written before the failure is whole; the log was folded back on opening.
    kept = ResultStore(path).query("SELECT point_key FROM points")
    assert len(kept) == int(written)
    counts = ResultStore(path).query("SELECT count(*) AS n FROM samples GROUP BY point_key")
    assert set(counts.n) == {20_000}
    assert not path.with_name(path.name + ".wal").exists()


def test_run_states_are_recorded(store: ResultStore) -> None:
    from recstack.analysis.runs import runs_with_status

    run_id = store.create_run("t", {}, {}, "pid", "x")
    store.start_run_pass(run_id, 3)
    store.record_point(run_id, "a", point_row("a"))
    store.mark_in_flight(run_id, "rmc1 b4 cpu t1 eager")
    run = runs_with_status(store.runs()).iloc[0]
    assert run.state == "running" and run.planned_points == 3
    assert run.status == "running: 1 of 3 points; in flight: rmc1 b4 cpu t1 eager"
    store.end_run(run_id, "interrupted")
    run = runs_with_status(store.runs()).iloc[0]
    assert run.status == ("interrupted after 1 of 3 points; in flight: rmc1 b4 cpu t1 eager; "
                          "--resume continues it") and not run.complete
    store.start_run_pass(run_id, 3)
    store.record_point(run_id, "b", point_row("b"))
    store.record_point(run_id, "c", point_row("c", "failed"))
    store.end_run(run_id, "complete")
    run = runs_with_status(store.runs()).iloc[0]
    assert run.status == "complete: 3 of 3 points, 1 failed" and run.complete
    assert pd.isna(run.in_flight)


def test_record_platform_keeps_the_first_row(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.duckdb")
    store.create_run("x", {}, {}, "pa", "machine A")
    store.record_platform("pb", "machine B", {"hostname": "b"})
    store.record_platform("pb", "renamed", {})  # already stored: kept as it was
    store.record_platform("pa", "renamed", {})
    rows = store.query("SELECT platform_id, description, info FROM platforms "
                       "ORDER BY platform_id")
    assert list(rows.description) == ["machine A", "machine B"]
    assert '"hostname": "b"' in rows["info"][1]
