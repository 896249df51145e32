"""Sweeps into the store: contents, resume after SIGKILL, a crashing point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from recstack.collect.timing import TimingSettings, collect_timing
from recstack.executors import LocalExecutor
from recstack.errors import RecstackError
from recstack.points import Point
from recstack.store import ResultStore
from recstack.sweep import plan_sweep, run_sweep
from recstack.sweepfile import load_sweep_file
from tests.conftest import small_spec

QUICK = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.02,
                       min_iterations=5)
PLATFORM = {"cpu_model": "test cpu", "logical_cores": 2}


def new_run(store: ResultStore) -> str:
    return store.create_run("test", QUICK.to_dict(), PLATFORM, "test-platform", "a test cpu")


@pytest.mark.slow
def test_sweep_writes_points_samples_stats_and_platform(tmp_path: Path) -> None:
    plan = plan_sweep(["rmc1", "dien"], [1, 8, 32], [1, 2], ["cpu"], row_scale=0.0005)
    assert len(plan.points) == 2 * 3 * 2
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = new_run(store)
    events: list[str] = []
    outcome = run_sweep(plan, store, run_id, QUICK, progress=lambda e: events.append(e.kind))
    assert outcome.measured == 12 and not outcome.failed
    assert events.count("start") == 12 and events.count("done") == 12

    points = store.query("SELECT * FROM points WHERE run_id = ? ORDER BY label", [run_id])
    assert len(points) == 12 and set(points.status) == {"ok"}
    assert set(points.model) == {"rmc1", "dien"}
    assert set(points.batch_size) == {1, 8, 32} and set(points.threads) == {1, 2}
    assert (points.threads_used == points.threads).all()
    assert (points.row_scale == 0.0005).all()
    assert points.point_key.is_unique

    samples = store.query("SELECT point_key, count(*) AS n, min(latency_ns) AS fastest, "
                          "max(iteration) AS last FROM samples WHERE run_id = ? "
                          "GROUP BY point_key", [run_id])
    assert len(samples) == 12
    assert (samples.n >= QUICK.min_iterations).all() and (samples.fastest > 0).all()
    assert (samples["last"] == samples.n - 1).all()

    timing = store.query("SELECT * FROM timing WHERE run_id = ?", [run_id])
    merged = timing.merge(samples, on="point_key")
    assert (merged.iterations == merged.n).all()
    assert (timing.p5_ms <= timing.median_ms).all() and (timing.median_ms <= timing.p99_ms).all()

    run = store.query("SELECT r.*, p.description, p.info FROM runs r JOIN platforms p "
                      "USING (platform_id)")
    assert run.loc[0, "description"] == "a test cpu"
    assert '"cpu_model": "test cpu"' in run.loc[0, "info"]
    assert run.loc[0, "recstack_version"]


def test_resuming_skips_finished_points(tmp_path: Path) -> None:
    plan = plan_sweep(["ncf"], [1, 4], [1], ["cpu"], row_scale=0.001)
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = new_run(store)
    first = run_sweep(plan, store, run_id, QUICK)
    again = run_sweep(plan, store, run_id, QUICK)
    assert (first.measured, again.measured, again.skipped) == (2, 0, 2)


def crash_on_batch_4(point: Point, settings: TimingSettings, options: object) -> object:
    """A collector whose worker dies (as under the OOM killer) on one point."""
    if point.batch_size == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return collect_timing(point, settings, options)


def test_a_crashing_point_is_stored_as_failed_and_the_sweep_goes_on(tmp_path: Path) -> None:
    plan = plan_sweep(["ncf"], [1, 4, 16], [1], ["cpu"], row_scale=0.001)
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = new_run(store)
    outcome = run_sweep(plan, store, run_id, QUICK,
                        executor=LocalExecutor(collector=crash_on_batch_4))
    assert outcome.measured == 2
    assert [label for label, _ in outcome.failed] == ["ncf@0.001 b4 cpu t1 eager"]
    points = store.query("SELECT batch_size, status, error FROM points ORDER BY batch_size")
    assert list(points.status) == ["ok", "failed", "ok"]
    assert "killed by SIGKILL" in points.error[1]
    assert store.query("SELECT count(*) AS n FROM samples WHERE point_key IN (SELECT point_key "
                       "FROM points WHERE status = 'failed')").n[0] == 0
    # Resuming measures the failed point again and replaces its record.
    again = run_sweep(plan, store, run_id, QUICK)
    assert (again.measured, again.skipped) == (1, 2)
    assert list(store.query("SELECT status FROM points ORDER BY batch_size").status) == [
        "ok", "ok", "ok"]


def _count_finished(path: Path) -> int:
    try:
        with duckdb.connect(str(path), read_only=True) as db:
            return db.execute("SELECT count(*) FROM points WHERE status = 'ok'").fetchone()[0]
    except (duckdb.Error, TypeError):
        return 0  # not created yet, or the sweep holds the file for a write right now


@pytest.mark.slow
def test_sigkill_loses_no_finished_point_and_resume_completes(tmp_path: Path) -> None:
    store_path = tmp_path / "killed.duckdb"
    command = [sys.executable, "-m", "recstack", "sweep", "-m", "ncf", "-m", "rmc3",
               "--row-scale", "0.0005", "--batch-sizes", "1,2,4,8", "--threads", "1",
               "--min-time", "0.05", "--store", str(store_path)]
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _count_finished(store_path) < 3:
        assert sweep.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.2)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    finished = _count_finished(store_path)
    assert 3 <= finished < 8
    from recstack.analysis.runs import runs_with_status

    (killed,) = runs_with_status(ResultStore(store_path).runs()).itertuples()
    assert killed.status.startswith(f"stopped after {finished} of 8 points") \
        and "in flight: " in killed.status and not killed.complete

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} points were already measured" in resumed.stdout
    with duckdb.connect(str(store_path), read_only=True) as db:
        rows = db.execute("SELECT label, count(*) FROM points GROUP BY label").fetchall()
        statuses = db.execute("SELECT DISTINCT status FROM points").fetchall()
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert len(rows) == 8 and all(count == 1 for _, count in rows)
    assert statuses == [("ok",)]
    assert runs == 1
    (resumed_run,) = runs_with_status(ResultStore(store_path).runs()).itertuples()
    assert resumed_run.status == "complete: 8 of 8 points"


def test_an_interrupted_sweep_records_where_it_stopped(tmp_path: Path) -> None:
    from recstack.analysis.runs import runs_with_status
    from recstack.errors import Interrupted

    plan = plan_sweep(["ncf"], [1, 4, 16], [1], ["cpu"], row_scale=0.001)
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = new_run(store)

    def press_ctrl_c_at_the_second_point(event: object) -> None:
        if event.kind == "start" and event.index == 1:
            raise Interrupted()

    with pytest.raises(Interrupted) as stopped:
        run_sweep(plan, store, run_id, QUICK, progress=press_ctrl_c_at_the_second_point)
    assert (stopped.value.run_id, stopped.value.progress) == (run_id, "point 2 of 3")
    (run,) = runs_with_status(store.runs()).itertuples()
    assert run.status == ("interrupted after 1 of 3 points; in flight: ncf@0.001 b4 cpu t1 "
                          "eager; --resume continues it")


def test_a_store_write_failing_mid_sweep_stops_it_in_one_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recstack.analysis.runs import runs_with_status
    from recstack.errors import StoreError

    plan = plan_sweep(["ncf"], [1, 4], [1], ["cpu"], row_scale=0.001)
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = new_run(store)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise StoreError(f"store {store.path}: cannot write (No space left on device); what "
                         "was stored before is kept")

    monkeypatch.setattr(store, "record_point", disk_full)
    with pytest.raises(StoreError, match=f"No space left on device.*; run {run_id} stopped at "
                                         "point 1 of 2: once the store can be written, "
                                         "--resume continues it"):
        run_sweep(plan, store, run_id, QUICK)
    (run,) = runs_with_status(store.runs()).itertuples()
    assert run.state == "failed" and "No space left on device" in run.status


def test_plan_rejections() -> None:
    with pytest.raises(RecstackError, match="--batch-sizes: 0 is not allowed"):
        plan_sweep(["ncf"], [0], [1], ["cpu"])
    with pytest.raises(RecstackError, match="--threads: 0 is not allowed"):
        plan_sweep(["ncf"], [1], [0], ["cpu"])
    with pytest.raises(RecstackError, match="model: 'nope' is not allowed"):
        plan_sweep(["nope"], [1], [1], ["cpu"])
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RecstackError, match="--device: 'cuda' is not allowed; this machine "
                                                "has no CUDA GPU"):
            plan_sweep(["ncf"], [1], [1], ["cpu", "cuda"])


def test_plan_scales_what_does_not_fit_leaving_a_margin() -> None:
    # 2.4 GB available less the 512 MiB margin leaves 1.86 GB; less the worker (0.54 GB) and
    # batch 1's inputs, RMC1's 4.1 GB of tables, built at up to 1.2x, fit at 0.26.
    plan = plan_sweep(["rmc1", "ncf"], [1], [1], ["cpu"], available_bytes=2_400_000_000)
    scales = {p.spec.name: p.spec.row_scale for p in plan.points}
    assert scales == {"rmc1": 0.26, "ncf": 1.0}
    assert plan.notes == ("rmc1: scaled to row_scale 0.26 to fit the 1.9 GB usable (2.4 GB "
                          "available less a margin of 0.5) up to batch 1; full size does not",)


def test_default_batch_sizes_that_cannot_fit_are_left_out_and_asked_ones_refused() -> None:
    # 4 GB: DIN's tables scale to fit up to batch 1024 (with a warm set's 4 batches); its
    # activations at 4096 alone are 3.3 GB, so that default size is left out, with the reason.
    plan = plan_sweep(["din"], None, [1], ["cpu"], backends=["eager"],
                      available_bytes=4_000_000_000, cache="warm")
    assert sorted({p.batch_size for p in plan.points}) == [1, 4, 16, 64, 256, 1024]
    # A cold set keeps more batches in memory: at 1024, more than the scale left room for.
    cold = plan_sweep(["din"], None, [1], ["cpu"], backends=["eager"],
                      available_bytes=4_000_000_000)
    assert max(p.batch_size for p in cold.points) < 1024
    assert plan.notes[0].startswith("din: scaled to row_scale 0.64")
    assert plan.notes[1].startswith("left out: din at batch 4096: needs about 5.95 GB")
    with pytest.raises(RecstackError, match="din at batch 4096: needs about .* use smaller "
                                            "--batch-sizes or a shorter sequence_length"):
        plan_sweep(["din"], [1, 4096], [1], ["cpu"], backends=["eager"],
                   available_bytes=4_000_000_000, cache="warm")


def test_sweep_file(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("models: [rmc1, din]\nbatch_sizes: [1, 64]\nthreads: [1]\n"
                    "devices: [cpu]\nrow_scale: 0.01\nquery: {distribution: zipf}\n")
    options = load_sweep_file(path)
    plan = plan_sweep(**options)
    assert len(plan.points) == 4
    assert {p.query.distribution for p in plan.points} == {"zipf"}
    path.write_text("model: [rmc1]\n")
    with pytest.raises(RecstackError, match="key 'model' is not allowed; did you mean 'models'"):
        load_sweep_file(path)


def test_a_sweep_file_names_its_precisions(tmp_path: Path) -> None:
    from recstack.precision import FP32, Precision

    path = tmp_path / "sweep.yaml"
    path.write_text("models: [ncf]\nbatch_sizes: [1]\nthreads: [1]\ndevices: [cpu]\n"
                    "backends: [fused]\nrow_scale: 0.01\n"
                    "precisions: [fp32, 'emb=int8,dense=bf16']\n")
    plan = plan_sweep(**load_sweep_file(path))
    assert [p.precision for p in plan.points] == [FP32, Precision("int8", "bf16")]
    path.write_text("models: [ncf]\nprecisions: ['emb=int3']\n")
    with pytest.raises(RecstackError, match="sweep.yaml: precision: 'emb=int3' is not allowed"):
        load_sweep_file(path)
    path.write_text("models: [ncf]\nprecisions: fp32\n")
    with pytest.raises(RecstackError, match="precisions: 'fp32' is not allowed"):
        load_sweep_file(path)


def test_open_run_creates_and_resumes_with_the_same_settings_only(tmp_path: Path) -> None:
    from recstack.sweep import open_run

    store = ResultStore(tmp_path / "r.duckdb")
    with pytest.raises(RecstackError, match="--resume: no run to resume in"):
        open_run(store, QUICK, "recstack sweep", resume=True)
    run_id = open_run(store, QUICK, "recstack sweep")
    assert open_run(store, QUICK, "recstack sweep", resume=True) == run_id
    with pytest.raises(RecstackError, match=r"other settings \(min_seconds\)"):
        open_run(store, replace(QUICK, min_seconds=3.0), "recstack sweep", resume=True)
    with pytest.raises(RecstackError, match="already exists"):
        open_run(store, QUICK, "recstack sweep", run_id=run_id)
    platform = store.query("SELECT p.* FROM platforms p JOIN runs USING (platform_id)")
    assert len(platform) == 1 and platform["description"][0]
    assert '"logical_cores"' in platform["info"][0]


def test_busy_machine_note_only_when_other_work_takes_the_cores_threads_need(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from recstack.specs import zoo_spec
    from recstack.sweep import SweepPlan, busy_machine_note

    spec = zoo_spec("rmc1").scaled(1e-4)
    two = SweepPlan(points=(Point(spec=spec, batch_size=1, threads=2),))
    one = SweepPlan(points=(Point(spec=spec, batch_size=1, threads=1),))
    monkeypatch.setattr("recstack.sweep.plan.usable_cores", lambda: 2)
    note = busy_machine_note(two, busy=0.9)
    assert note is not None and "other work keeps 0.9 of 2 usable cores busy right now" in note
    assert "--threads 1" in note
    assert busy_machine_note(one, busy=0.9) is None  # one thread fits beside the other work
    assert busy_machine_note(two, busy=0.3) is None  # residue, not a rival
    # What the note measures is now, not the last minutes: a quiet machine reads as quiet.
    monkeypatch.setattr("recstack.host.busy_cores", lambda: 0.05)
    assert busy_machine_note(two) is None


def test_busy_cores_from_proc_stat() -> None:
    from recstack.host import busy_cores, cpu_time_totals

    stat = ("cpu  100 0 50 800 50 0 0 0 0 0\n"
            "cpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 5\n")
    assert cpu_time_totals(stat) == (150, 1000, 2)
    assert cpu_time_totals("intr 5\n") is None
    measured = busy_cores(0.05)
    assert measured is None or 0.0 <= measured <= (os.cpu_count() or 1) + 0.01


def test_hardware_points_run_eager_once_whatever_the_backends() -> None:
    from recstack.sweep import plan_sweep

    plan = plan_sweep(["rmc1"], [1], [1], ["cpu"], ["eager", "fused"], row_scale=1e-4,
                      levels=["timing", "hardware"], hardware_mode="simulated")
    hardware = [p for p in plan.points if p.level == "hardware"]
    assert len(hardware) == 1 and hardware[0].backend == "eager"
    assert sorted(p.backend for p in plan.points if p.level == "timing") == ["eager",
                                                                               "fused"]


class _Scripted:
    """An executor whose timing records have the given p5-p95 spreads, in turn."""

    def __init__(self, spreads: list[float]) -> None:
        self.spreads = list(spreads)
        self.calls = 0

    def measure(self, point: Point, settings: object, options: object) -> object:
        from tests import fill

        spread = self.spreads[self.calls]
        self.calls += 1
        return fill.timing(relative_spread=spread, unstable=spread > 0.5,
                           warning=f"spread {spread}" if spread > 0.5 else None)


def test_an_unstable_point_is_measured_again_until_steady() -> None:
    from recstack.levels import LevelOptions
    from recstack.sweep.run import measure_steadily

    point = Point(small_spec("rmc1"), 1)
    executor = _Scripted([0.9, 0.2, 0.8])
    measured, attempts = measure_steadily(point, replace(QUICK, remeasure_attempts=2),
                                          LevelOptions(), executor)
    record = measured.record
    assert attempts == 2 and executor.calls == 2  # stopped at the first steady worker
    assert record.stats.relative_spread == 0.2 and not record.stats.unstable


def test_the_remeasurement_stops_at_its_budget_and_keeps_the_flag() -> None:
    from recstack.levels import LevelOptions
    from recstack.sweep.run import measure_steadily

    point = Point(small_spec("rmc1"), 1)
    executor = _Scripted([0.9, 0.7, 0.8, 0.6, 0.6])
    measured, attempts = measure_steadily(point, replace(QUICK, remeasure_attempts=2),
                                          LevelOptions(), executor)
    record = measured.record
    assert attempts == 3 and executor.calls == 3
    assert record.stats.relative_spread == 0.7 and record.stats.unstable  # the steadiest
    assert "unstable in each of 3 workers" in record.stats.warning
    none = _Scripted([0.9])
    _, attempts = measure_steadily(point, replace(QUICK, remeasure_attempts=0),
                                   LevelOptions(), none)
    assert attempts == 1 and none.calls == 1


class _Losing:
    """An executor whose first ``losses`` calls lose their node, then measure locally."""

    retries = 1

    def __init__(self, losses: int) -> None:
        self.losses = losses
        self.calls = 0

    def measure(self, point: Point, settings: object, options: object) -> object:
        from recstack.executors import PointLost

        self.calls += 1
        if self.calls <= self.losses:
            raise PointLost(f"its node or worker was lost (loss {self.calls})")
        return LocalExecutor().measure(point, settings, options)


@pytest.mark.parametrize("losses, ends", [(1, "ok"), (2, "failed")])
def test_a_point_whose_node_is_lost_is_stored_failed_then_measured_again_once(
        tmp_path: Path, losses: int, ends: str) -> None:
    plan = plan_sweep(["ncf"], [1], [1], ["cpu"], row_scale=0.0005)
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = new_run(store)
    stored: list[str] = []

    def follow(event: object) -> None:
        stored.append(event.kind)
        if event.kind == "retry":  # what the run holds while the point waits for its retry
            row = store.query("SELECT status, error FROM points WHERE run_id = ?", [run_id])
            assert list(row.status) == ["failed"] and "loss 1" in row.error.iloc[0]

    executor = _Losing(losses)
    # No remeasuring of an unstable timing: each call to the executor is one attempt here.
    settings = replace(QUICK, remeasure_attempts=0)
    outcome = run_sweep(plan, store, run_id, settings, progress=follow, executor=executor)
    assert executor.calls == 2 and stored == ["start", "retry", "start", ends.replace(
        "ok", "done")]
    row = store.query("SELECT status, error, retried_after FROM points WHERE run_id = ?",
                      [run_id]).iloc[0]
    assert row.status == ends and row.retried_after == "its node or worker was lost (loss 1)"
    assert (outcome.measured, len(outcome.failed)) == ((1, 0) if ends == "ok" else (0, 1))
    assert store.run_info(run_id)["state"] == "complete"
