"""Points measured through a real two-node Ray cluster: the same store as a local run,
timed points never sharing a node, a node lost mid-point stored and measured again."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recstack import api
from recstack.collect.timing import TimingSettings
from recstack.designspace import load_design_space
from recstack.fleet import SIMULATION_SHARE, SLOT, RayExecutor
from recstack.levels import LevelOptions
from recstack.platform_info import collect_platform, platform_id
from recstack.points import Point
from recstack.store import ResultStore
from recstack.sweep import plan_sweep, run_sweep
from tests.conftest import small_spec
from tests.fleet.conftest import measuring_node

pytestmark = pytest.mark.slow

QUICK = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.05,
                       min_iterations=5)
DESIGN = """
sampler: lhs
variants_per_model: 5
models: [rmc1]
embedding_budget_mib: 1
factors:
  mlp_width: {kind: ratio, low: 0.25, high: 2.0, applies_to: [dlrm]}
"""


def _run(store_path: Path, plan: Any, settings: TimingSettings = QUICK,
         executor: Any = None, progress: Any = None) -> tuple[ResultStore, str, Any]:
    store = ResultStore(store_path)
    run_id = store.create_run("test", settings.to_dict(), {"cpu_model": "test"},
                              "test-platform", "a test cpu")
    outcome = run_sweep(plan, store, run_id, settings, executor=executor, progress=progress)
    return store, run_id, outcome


def _contents(store: ResultStore, table: str) -> pd.DataFrame:
    return store.query(f"SELECT * FROM {table} ORDER BY point_key")


def test_a_sweep_on_the_cluster_stores_what_a_local_run_stores(cluster: Any,
                                                               tmp_path: Path) -> None:
    plan = plan_sweep(["rmc1"], [8], [1], ["cpu"], row_scale=0.0005,
                      levels=("timing", "operators"))
    local, _, _ = _run(tmp_path / "local.duckdb", plan)
    executor = RayExecutor(address=cluster.address)
    fleet, run_id, outcome = _run(tmp_path / "fleet.duckdb", plan, executor=executor)
    assert outcome.measured == 2 and not outcome.failed
    resumed = run_sweep(plan, fleet, run_id, QUICK, executor=executor)
    assert (resumed.skipped, resumed.measured) == (2, 0)
    for table in ("points", "timing", "samples", "operators", "profiles"):
        here, there = _contents(local, table), _contents(fleet, table)
        assert list(here.columns) == list(there.columns), table
        assert set(here.point_key) == set(there.point_key), table
    here, there = _contents(local, "points"), _contents(fleet, "points")
    same = ["label", "config_key", "level", "model", "batch_size", "threads", "backend",
            "status", "cache_state", "working_set_bytes", "llc_bytes"]
    pd.testing.assert_frame_equal(here[same], there[same])
    # Measured on both nodes, each point's platform the one of the machine it ran on.
    assert there.node.nunique() == 2 and here.node.isna().all()
    assert set(there.platform_id) == {platform_id(collect_platform())}
    assert fleet.query("SELECT count(*) AS n FROM platforms WHERE platform_id = ?",
                       [there.platform_id.iloc[0]]).n.iloc[0] == 1


def test_two_timing_points_never_overlap_on_one_node(cluster: Any, tmp_path: Path) -> None:
    plan = plan_sweep(["ncf"], [1, 2, 3, 4, 5], [1], ["cpu"], row_scale=0.0005)
    store, run_id, outcome = _run(tmp_path / "r.duckdb", plan,
                                  executor=RayExecutor(address=cluster.address))
    assert outcome.measured == 5
    points = store.query("SELECT node, started_at, finished_at FROM points "
                         "WHERE run_id = ? ORDER BY started_at", [run_id])
    # Five points on two nodes: at least one node measured several, one after another.
    assert points.node.nunique() == 2 and points.node.value_counts().max() >= 3
    for node, held in points.groupby("node"):
        starts, ends = held.started_at.tolist(), held.finished_at.tolist()
        assert all(start >= end for start, end in zip(starts[1:], ends[:-1], strict=True)), \
            f"two timed points overlapped on node {node}"
    # While the two nodes measured at once: some point of one overlapped one of the other
    # (not necessarily the first two: a node's Ray worker may start late on a busy machine).
    spans = list(points.itertuples())
    assert any(a.node != b.node and a.started_at < b.finished_at and b.started_at < a.finished_at
               for a in spans for b in spans)


def test_a_design_correlated_on_the_cluster_stores_what_a_local_one_stores(
        cluster: Any, tmp_path: Path) -> None:
    design = tmp_path / "design.yaml"
    design.write_text(DESIGN)
    space = load_design_space(design)
    options = {"batch_sizes": [16], "levels": ("timing",), "min_time": 0.05}
    local = api.correlate(space, store=tmp_path / "local.duckdb", **options)
    fleet = api.correlate(space, store=tmp_path / "fleet.duckdb",
                          executor=RayExecutor(address=cluster.address), **options)
    assert not local.run.failed and not fleet.run.failed
    here = local.run.store.query("SELECT * FROM design_space ORDER BY variant")
    there = fleet.run.store.query("SELECT * FROM design_space ORDER BY variant")
    pd.testing.assert_frame_equal(here.drop(columns="run_id"), there.drop(columns="run_id"))
    points = [run.store.query("SELECT label, config_key, status FROM points ORDER BY label")
              for run in (local.run, fleet.run)]
    pd.testing.assert_frame_equal(*points)
    assert len(points[0]) == 5


def test_simulated_points_share_a_node_and_timed_ones_take_it_whole(cluster: Any) -> None:
    executor = RayExecutor(address=cluster.address)
    timed = Point(small_spec("rmc1"), 1)
    simulated = Point(small_spec("rmc1"), 1, level="hardware")
    exclusive = executor.placement(timed, LevelOptions())
    shared = executor.placement(simulated, LevelOptions(hardware_mode="simulated"))
    assert exclusive["resources"] == {SLOT: 1.0} and exclusive["num_cpus"] == 0
    assert shared["resources"] == {SLOT: SIMULATION_SHARE} and shared["num_cpus"] == 1
    assert executor.parallelism == 2 and len(executor.nodes) == 2


def test_a_node_lost_mid_point_is_stored_failed_and_measured_again(cluster: Any,
                                                                   tmp_path: Path) -> None:
    doomed = measuring_node(cluster)
    executor = RayExecutor(address=cluster.address)
    assert len(executor.nodes) == 3
    doomed_id = doomed.node_id
    settings = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=3.0,
                              min_iterations=5)
    plan = plan_sweep(["rmc1", "ncf", "wnd"], [1], [1], ["cpu"], row_scale=0.0005)
    events: list[Any] = []
    killer = threading.Thread(target=lambda: (time.sleep(3.0),
                                              cluster.remove_node(doomed, allow_graceful=False)))

    def follow(event: Any) -> None:
        events.append(event)
        if event.kind == "start" and not killer.is_alive() and len(events) == 1:
            killer.start()

    store, run_id, outcome = _run(tmp_path / "r.duckdb", plan, settings, executor, follow)
    killer.join()
    retried = [event for event in events if event.kind == "retry"]
    assert len(retried) == 1 and "lost" in retried[0].error
    assert outcome.measured == 3 and not outcome.failed
    assert any("measured again" in warning for warning in outcome.warnings)
    points = store.query("SELECT label, status, node, retried_after FROM points "
                         "WHERE run_id = ?", [run_id])
    assert set(points.status) == {"ok"}
    again = points[points.retried_after.notna()]
    assert list(again.label) == [retried[0].point.label]
    assert "NodeDiedError" in again.retried_after.iloc[0] or "lost" in again.retried_after.iloc[0]
    assert doomed_id not in set(points.node)
    assert store.run_info(run_id)["state"] == "complete"
    # At once, while Ray may still list the dead node alive: the next run leaves it out.
    assert doomed_id not in {node.node_id for node in RayExecutor(address=cluster.address).nodes}


def test_a_point_whose_own_worker_dies_on_a_node_fails_without_a_retry(cluster: Any,
                                                                        tmp_path: Path) -> None:
    from tests.test_sweep import crash_on_batch_4

    plan = plan_sweep(["ncf"], [4], [1], ["cpu"], row_scale=0.001)
    events: list[Any] = []
    store, run_id, outcome = _run(tmp_path / "r.duckdb", plan,
                                  executor=RayExecutor(address=cluster.address,
                                                       collector=crash_on_batch_4),
                                  progress=events.append)
    # The point's own crash (as under the OOM killer) is its result, not a lost node.
    assert [event.kind for event in events] == ["start", "failed"]
    assert len(outcome.failed) == 1 and "killed by SIGKILL" in outcome.failed[0][1]
    row = store.query("SELECT status, node, platform_id, retried_after FROM points "
                      "WHERE run_id = ?", [run_id]).iloc[0]
    assert row.status == "failed" and row.retried_after is None
    assert row.node in {node.node_id for node in RayExecutor(address=cluster.address).nodes}
    assert row.platform_id == platform_id(collect_platform())


def test_ceilings_are_measured_once_per_platform_on_one_of_its_nodes(cluster: Any,
                                                                     tmp_path: Path) -> None:
    store = tmp_path / "r.duckdb"
    frame, measured = api.ceilings(store, 1, quick=True,
                                   executor=RayExecutor(address=cluster.address))
    assert measured and set(frame.platform_id) == {platform_id(collect_platform())}
    assert {"triad_dram", "gather_dram", "gemm", "dispatch"} <= set(frame.kind)
    again, measured_again = api.ceilings(store, 1, quick=True,
                                         executor=RayExecutor(address=cluster.address))
    assert not measured_again and set(again.set_id) == set(frame.set_id)
