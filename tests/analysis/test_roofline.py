"""Roofline arithmetic against hand computations for a tiny DLRM, and the join of a run's
points with stored ceilings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from recstack.analysis.roofline import (Ceilings, clocked_overhead_shares, gather_bound,
                                        nearest_ceiling_sets, overhead_shares, point_bound,
                                        roofline_table, stage_bounds)
from recstack.errors import RecstackError
from recstack.batch_work import Gemm, stage_work, table_gathers
from recstack.footprint import footprint
from recstack.inputs import QuerySpec, expected_distinct_rows
from recstack.points import Point
from recstack.records import Build, Record, TimingRecord
from recstack.specs import ZOO_NAMES, spec_from_config, zoo_spec
from recstack.store import ResultStore
from tests import fill

TINY = spec_from_config({
    "model_name": "tiny", "model_type": "dlrm", "arch_mlp_bot": "4-3", "arch_mlp_top": "2-1",
    "arch_embedding_size": "10-10", "arch_sparse_feature_size": 3,
    "num_indices_per_lookup": 2, "num_indices_per_lookup_fixed": True,
    "arch_interaction_op": "cat"})


def ceilings_frame(platform_id: str = "p1", threads: int = 1,
                   measured_at: datetime | None = None, dispatch_us: float = 2.0
                   ) -> pd.DataFrame:
    rows = [("cache", "llc", 1e9, "bytes"), ("dispatch", "add 1 float", dispatch_us, "us"),
            ("triad_dram", "1000 B", 10.0, "GB/s"), ("triad_cached", "100 B", 100.0, "GB/s"),
            ("gather_dram", "row 12 B", 1.0, "GB/s"),
            ("gather_cached", "row 12 B", 0.5, "GB/s"),
            ("gather_cached", "row 128 B", 50.0, "GB/s"),
            ("gemm_large", "64x64x64", 100.0, "GFLOP/s"), ("gemm", "2x4x3", 1.0, "GFLOP/s")]
    frame = pd.DataFrame(rows, columns=["kind", "shape", "value", "unit"])
    return frame.assign(platform_id=platform_id, threads=threads, p5=frame.value,
                        p95=frame.value, repeats=3, samples="[]",
                        measured_at=measured_at or datetime.now(timezone.utc),
                        recstack_version="t",
                        torch_version="t")


def test_stage_work_by_hand():
    stages = {s.stage: s for s in stage_work(TINY, 2)}
    assert list(stages) == ["embedding", "bottom_mlp", "interaction", "top_mlp"]
    embedding = stages["embedding"]
    assert embedding.gathered == ((12, 8.0),)      # 2 samples x 2 tables x 2 ids, 3 floats
    assert embedding.flops == 24 and embedding.activation_bytes == 48
    bottom = stages["bottom_mlp"]
    assert bottom.gemms == (Gemm(2, 4, 3),) and bottom.flops == 48
    assert bottom.weight_bytes == 60 and bottom.activation_bytes == 56
    assert stages["interaction"].bytes == 144      # read and write (2, 3 + 2 x 3)
    top = stages["top_mlp"]
    assert top.flops == 80 and top.weight_bytes == 92 and top.activation_bytes == 112


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_stage_flops_add_up_to_the_footprint(name):
    spec = zoo_spec(name)
    for batch in (1, 64):
        total = sum(stage.flops for stage in stage_work(spec, batch))
        assert total == pytest.approx(footprint(spec).flops.total * batch, rel=1e-12)


def test_bound_by_hand():
    ceilings = Ceilings(ceilings_frame())
    stages, gathers = stage_bounds(TINY, 2, ceilings)
    stages = stages.set_index("stage")
    assert gathers.rows_resident
    # Tables fit in the LLC: rows at the cached gather bandwidth of 12-byte rows.
    assert stages.loc["embedding", "memory_ms"] == pytest.approx((96 / 0.5e9 + 48 / 100e9) * 1e3)
    assert stages.loc["bottom_mlp", "compute_ms"] == pytest.approx(48 / 1e9 * 1e3)
    assert stages.loc["bottom_mlp", "limit"] == "compute"
    # Its product was measured at its own shape (2x4x3): that time covers its weights, so
    # only its activations count as memory; the top MLP's products were not: weights count.
    assert stages.loc["bottom_mlp", "memory_ms"] == pytest.approx(56 / 100e9 * 1e3)
    assert stages.loc["top_mlp", "compute_ms"] == pytest.approx(80 / 100e9 * 1e3)
    assert stages.loc["top_mlp", "memory_ms"] == pytest.approx(204 / 100e9 * 1e3)
    total = point_bound(TINY, 2, ceilings)
    expected_ns = 192.48 + 48 + 1.44 + 2.04
    assert total["bound_ms"] == pytest.approx(expected_ns * 1e-6)
    assert total["flops"] == 152 and total["limiting_stage"] == "embedding"
    assert total["operational_intensity"] == pytest.approx(152 / total["bytes"])


def test_gemm_and_gather_lookups():
    ceilings = Ceilings(ceilings_frame())
    assert ceilings.gemm_gflops(Gemm(2, 4, 3)) == 1.0
    assert ceilings.gemm_gflops(Gemm(5, 4, 3)) == 1.0       # largest measured M below
    assert ceilings.gemm_gflops(Gemm(1, 4, 3)) == 100.0     # none below: the large GEMM
    assert ceilings.gemm_gflops(Gemm(2, 4, 3, linear=False)) == 100.0
    assert ceilings.gather_gbps(100, resident=True) == 50.0  # nearest row size
    with pytest.raises(RecstackError, match="gemm_large"):
        Ceilings(ceilings_frame().query("kind != 'gemm_large'"))


def table_ceilings(llc: float) -> Ceilings:
    """Ceilings with gathers measured per table size (12-byte rows) and a given LLC."""
    frame = ceilings_frame()
    frame.loc[frame.kind == "cache", "value"] = llc
    extra = ceilings_frame().head(3).assign(
        kind="gather_table", unit="GB/s",
        shape=["row 12 B, table 60 B", "row 12 B, table 120 B", "row 12 B, table 4000 B"],
        value=[0.4, 0.3, 0.1])
    return Ceilings(pd.concat([frame, extra], ignore_index=True))


def test_table_gather_lookups():
    ceilings = table_ceilings(1e9)
    assert ceilings.table_gather_gbps(12, 120) == 0.3      # measured at that size
    assert ceilings.table_gather_gbps(12, 1000) == 0.3     # largest measured size below
    assert ceilings.table_gather_gbps(12, 10_000) == 0.1
    assert ceilings.table_gather_gbps(12, 30) == 0.5       # all larger: the fastest gather
    assert ceilings.fastest_gather_gbps(12) == 0.5
    # Stored before table sizes were measured: the DRAM gather.
    assert Ceilings(ceilings_frame()).table_gather_gbps(12, 120) == 1.0


def test_table_gather_lookups_by_run_length():
    frame = ceilings_frame()
    runs = ceilings_frame().head(3).assign(
        kind="gather_table", unit="GB/s",
        shape=["row 12 B, table 120 B, ids 2", "row 12 B, table 120 B, ids 8",
               "row 12 B, table 60 B, ids 8"],
        value=[0.2, 0.35, 0.45])
    ceilings = Ceilings(pd.concat([frame, runs], ignore_index=True))
    # Rounded up to the shortest measured run not below it (rates rise with the run) ...
    assert ceilings.table_gather_gbps(12, 120, 1) == 0.2
    assert ceilings.table_gather_gbps(12, 120, 2) == 0.2
    assert ceilings.table_gather_gbps(12, 120, 3) == 0.35
    # ... else the longest measured; and always of the largest table size not above.
    assert ceilings.table_gather_gbps(12, 120, 100) == 0.35
    assert ceilings.table_gather_gbps(12, 100, 3) == 0.45
    # The bound asks for the batch's distinct rows: TINY at batch 2 reads about 3.4 of its 10
    # rows per table, so the 8-id run's rate applies to its first reads.
    bound = gather_bound(TINY, 2, Ceilings(pd.concat([frame.assign(
        value=frame.value.where(frame.kind != "cache", 100)), runs], ignore_index=True)))
    first = expected_distinct_rows(QuerySpec(), 10, 4.0)
    assert bound.seconds == pytest.approx(2 * (first * 12 / 0.35e9 + (4 - first) * 12 / 0.5e9))


def test_gather_bound_by_hand():
    # TINY's two tables are 10 rows x 12 B = 120 B; at batch 2 each gets 4 ids.
    uniform = QuerySpec()
    first = expected_distinct_rows(uniform, 10, 4.0)
    assert first == pytest.approx(10 * (1 - 0.9 ** 4))
    # An LLC smaller than the tables and than the rows of the cycled batches: first reads at
    # the 120 B tables' ceiling (0.3 GB/s), repeats at the fastest gather (0.5 GB/s).
    small = gather_bound(TINY, 2, table_ceilings(llc=100), uniform, cycled_batches=4)
    assert not small.rows_resident
    expected = 2 * (first * 12 / 0.3e9 + (4 - first) * 12 / 0.5e9)
    assert small.seconds == pytest.approx(expected)
    assert small.cycled_rows_bytes == pytest.approx(2 * expected_distinct_rows(uniform, 10, 16)
                                                    * 64)
    # Everything fits in a large LLC: every read at the fastest gather.
    large = gather_bound(TINY, 2, table_ceilings(llc=1e9), uniform, cycled_batches=4)
    assert large.rows_resident and large.seconds == pytest.approx(8 * 12 / 0.5e9)
    # Zipf ids repeat more: fewer first reads, a smaller bound.
    zipf = gather_bound(TINY, 2, table_ceilings(llc=100), QuerySpec(distribution="zipf"), 4)
    assert zipf.seconds < small.seconds


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_table_gathers_add_up_to_the_stage(name):
    spec = zoo_spec(name)
    for batch in (1, 64):
        gathers = table_gathers(spec, batch)
        embedding = stage_work(spec, batch)[0]
        assert sum(g.draws * g.row_bytes for g in gathers) == pytest.approx(
            embedding.gathered_bytes, rel=1e-12)
        assert {g.row_bytes for g in gathers} == {row for row, _ in embedding.gathered}
        assert all(g.table_bytes == spec.rows[g.table] * g.row_bytes for g in gathers)


def test_overhead_bracket():
    low, high = overhead_shares(measured_ms=1.0, operator_ms=0.6, profiler_added_ms=0.5)
    assert low == pytest.approx(0.4) and high == pytest.approx(0.9)
    assert overhead_shares(1.0, 1.05, 0.0) == (0.0, pytest.approx(0.0))  # clipped
    # Operators net of the profiler's cost take 30% longer than the whole iteration: the two
    # points did not run alike; no share, rather than a zero.
    low, high = overhead_shares(1.0, 1.5, 0.2)
    assert low != low and high != high
    low, high = overhead_shares(1.0, float("nan"), 0.1)
    assert low != low and high != high
    # 0.3 ms of the profiler's 0.5 fell between operators (its scopes): operators took at
    # least 0.6 - 0.2, the high end falls from 0.9 to 0.6; the low end does not move.
    assert overhead_shares(1.0, 0.6, 0.5, 0.3) == (pytest.approx(0.4), pytest.approx(0.6))
    # A bound above the added time itself (measurement noise) counts as all of it, no more;
    # unknown (NaN: not stored) counts as nothing.
    assert overhead_shares(1.0, 0.6, 0.5, 0.9)[1] == pytest.approx(0.4)
    assert overhead_shares(1.0, 0.6, 0.5, float("nan"))[1] == pytest.approx(0.9)


def test_clocked_overhead_bracket():
    # Plain 10 us; clocked: 8 us inside top-level operators, 3 us outside (the callbacks
    # added 1 us somewhere): outside lies in [10 - 8, 3].
    assert clocked_overhead_shares(10.0, 8.0, 3.0) == (pytest.approx(0.2), pytest.approx(0.3))
    # Noise can put the clocked outside time under the low end: the bracket stays ordered.
    assert clocked_overhead_shares(10.0, 8.0, 1.5) == (pytest.approx(0.2), pytest.approx(0.2))
    assert clocked_overhead_shares(10.0, 11.0, 0.5) == (0.0, pytest.approx(0.05))
    for missing in ((float("nan"), 8.0, 3.0), (10.0, float("nan"), 3.0), (0.0, 1.0, 1.0)):
        low, high = clocked_overhead_shares(*missing)
        assert low != low and high != high
    # 4 top-level operators, each costing the clock at least 0.2 us outside itself: 0.8 us of
    # the 3 us outside is the clock's. Unknown (not stored) counts as nothing.
    assert clocked_overhead_shares(10.0, 8.0, 3.0, 4.0, 0.2) == (pytest.approx(0.2),
                                                                  pytest.approx(0.22))
    assert clocked_overhead_shares(10.0, 8.0, 3.0, 4.0, float("nan"))[1] == pytest.approx(0.3)
    assert clocked_overhead_shares(10.0, 8.0, 3.0, 4.0, 0.5)[1] == pytest.approx(0.2)


def test_roofline_prefers_the_operator_clock(tmp_path):
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = store.create_run("test", {}, {}, "p1", "test platform")
    _record_profiled(store, run_id, clock_plain_us=1.2, clock_clocked_us=1.3,
                     clock_inside_us=0.9, clock_outside_us=0.4, clock_operators=2.0,
                     clock_observed=4.0, clock_callback_outside_us=0.03)
    store.write_ceilings(ceilings_frame(), {}, "test platform")
    row = roofline_table(store, run_id).iloc[0]
    assert row.overhead_basis == "operator clock"
    assert row.overhead_share_low == pytest.approx(0.3 / 1.2)
    assert row.overhead_share_high == pytest.approx((0.4 - 2 * 0.03) / 1.2)


def _record_profiled(store: ResultStore, run_id: str, **profile: float) -> None:
    """A 1 us timing point and its profile: one linear layer (2 calls, 0.6 us)."""
    _record_timing(store, run_id)
    _record(store, run_id, "operators", fill.profile(
        pd.DataFrame({"part": ["dense"], "op": ["aten::linear"], "calls": [2.0],
                      "time_us": [0.6]}), **PROFILE, **profile))


PROFILE = {"iterations": 3, "time_basis": "cpu", "wall_us": 1.4, "operator_us": 0.6,
           "uncovered_us": 0.8, "profiled_median_us": 1.5, "unprofiled_median_us": 1.0,
           "profiler_overhead": 0.5}


def _record_timing(store: ResultStore, run_id: str, platform_id: str | None = None) -> None:
    """A 1 us timing point of TINY at batch 2, built in 0.5 s (measured on ``platform_id``;
    None: stored without one, as the run's own)."""
    build = Build(build_seconds=0.5, peak_memory_growth_bytes=1000, input_bytes_per_batch=None,
                  distinct_batches=None, threads_used=None, device_name=None,
                  warmup_iterations=None)
    _record(store, run_id, "timing", TimingRecord(
        pd.DataFrame({"iteration": [], "latency_ns": []}),
        fill.stats(iterations=10, median_ms=0.001, p5_ms=0.0009, p95_ms=0.002), build),
        platform_id)


def _record(store: ResultStore, run_id: str, level: str, record: Record,
            platform_id: str | None = None) -> None:
    import dataclasses

    from recstack.sweep import point_row

    point = Point(spec=TINY, batch_size=2, threads=1, level=level)
    row = point_row(point, "ok", datetime.now(timezone.utc))
    store.record_point(run_id, point.key(), dataclasses.replace(row, platform_id=platform_id),
                       record)


def test_roofline_table_joins_points_and_ceilings(tmp_path):
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = store.create_run("test", {}, {}, "p1", "test platform")
    _record_timing(store, run_id)
    _record(store, run_id, "operators", fill.profile(
        pd.DataFrame({"part": ["dense", "sparse"], "op": ["aten::linear",
                      "aten::embedding_bag"], "calls": [2.0, 2.0], "time_us": [0.2, 0.4]}),
        **PROFILE))
    with pytest.raises(RecstackError, match="ceilings"):
        roofline_table(store, run_id)
    store.write_ceilings(ceilings_frame(), {}, "test platform")
    table = roofline_table(store, run_id)
    assert len(table) == 1
    row = table.iloc[0]
    bound = (192.48 + 48 + 1.44 + 2.04) * 1e-6
    assert row.bound_ms == pytest.approx(bound)
    assert row.efficiency == pytest.approx(bound / 0.001)
    assert row.attained_gflops == pytest.approx(152 / 1e-6 / 1e9)
    assert row.operator_ms == pytest.approx(0.0006) and row.operator_calls == 4
    assert row.dispatch_floor_ms == pytest.approx(4 * 2.0 / 1e3)
    assert row.overhead_share_low == pytest.approx(0.4)
    assert row.overhead_share_high == pytest.approx(0.9)
    assert row.overhead_basis == "profiler"
    assert row.model_bytes == footprint(TINY).model_bytes
    # Another thread count has no ceilings: its points get no bound.
    other = roofline_table(store, run_id, ceilings_frame(threads=2).assign(threads=2)
                           .pipe(lambda f: pd.concat([f, ceilings_frame()])))
    assert other.iloc[0].bound_ms == pytest.approx(bound)


def test_a_point_is_bounded_by_the_ceilings_of_the_machine_that_measured_it(tmp_path):
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = store.create_run("test", {}, {}, "p1", "driver")  # started here, measured on p2
    store.record_platform("p2", "node", {})
    _record_timing(store, run_id, platform_id="p2")
    store.write_ceilings(ceilings_frame(platform_id="p1"), {}, "driver")
    store.write_ceilings(ceilings_frame(platform_id="p2").assign(
        value=lambda f: f.value.where(f.kind != "gemm", 2.0)), {}, "node")
    row = roofline_table(store, run_id).iloc[0]
    assert row.platform_id == "p2" and row.ceilings_set == store.load_ceilings("p2").set_id[0]
    # p2 runs the bottom MLP's product (2x4x3, 48 FLOPs) at 2 GFLOP/s, not p1's 1: that
    # stage's 48 ns of compute (test_roofline_table_joins_points_and_ceilings) halves
    assert row.bound_ms == pytest.approx((192.48 + 24 + 1.44 + 2.04) * 1e-6)


def test_nearest_ceiling_set_to_a_run():
    t0 = datetime(2026, 11, 25, 4, 0, tzinfo=timezone.utc)
    sets = pd.concat([ceilings_frame(measured_at=t0).assign(set_id="a"),
                      ceilings_frame(measured_at=t0 + timedelta(minutes=60)).assign(set_id="b"),
                      ceilings_frame(threads=2, measured_at=t0).assign(set_id="c")])
    chosen, summary = nearest_ceiling_sets(sets, t0 + timedelta(minutes=40),
                                           t0 + timedelta(minutes=55))
    summary = summary.set_index("threads")
    assert summary.set_id[1] == "b" and summary.offset_minutes[1] == pytest.approx(5.0)
    assert summary.sets_stored[1] == 2
    assert summary.set_id[2] == "c" and summary.offset_minutes[2] == pytest.approx(-40.0)
    assert set(chosen.set_id) == {"b", "c"} and len(chosen) == 2 * len(ceilings_frame())
    # During the run: offset 0; unknown time: the newest set, offset NaN.
    summary = nearest_ceiling_sets(sets, t0 - timedelta(minutes=1), t0 + timedelta(minutes=1))[1]
    assert summary.set_index("threads").offset_minutes[1] == 0.0
    summary = nearest_ceiling_sets(sets)[1].set_index("threads")
    assert summary.set_id[1] == "b" and summary.offset_minutes.isna().all()
    # Frames without set ids (one measurement each) are one set per platform and threads.
    chosen, summary = nearest_ceiling_sets(ceilings_frame(), t0, t0)
    assert len(chosen) == len(ceilings_frame()) and list(summary.sets_stored) == [1]


def test_roofline_judges_a_run_by_the_ceilings_nearest_to_it(tmp_path):
    store = ResultStore(tmp_path / "r.duckdb")
    now = datetime.now(timezone.utc)
    # Measured a minute before the run (dispatch 3 us), and a newer set two hours later
    # (dispatch 5 us): the run is judged by the first; later runs reuse the newest.
    store.write_ceilings(ceilings_frame(measured_at=now - timedelta(minutes=1), dispatch_us=3.0),
                         {}, "test platform")
    store.write_ceilings(ceilings_frame(measured_at=now + timedelta(hours=2), dispatch_us=5.0),
                         {}, "test platform")
    run_id = store.create_run("test", {}, {}, "p1", "test platform")
    _record_profiled(store, run_id)
    row = roofline_table(store, run_id).iloc[0]
    assert row.dispatch_floor_ms == pytest.approx(2 * 3.0 / 1e3)
    assert -2 < row.ceilings_offset_minutes <= 0
    assert store.load_ceilings().value[store.load_ceilings().kind == "dispatch"].item() == 5.0


def test_roofline_table_refuses_a_run_without_points(tmp_path):
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = store.create_run("test", {}, {}, "p1", "test platform")
    with pytest.raises(RecstackError, match="no measured CPU timing points"):
        roofline_table(store, run_id)
