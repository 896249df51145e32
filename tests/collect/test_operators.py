"""The operator collector, in process, on small models."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from recstack.collect.operators import (STATIC_RUNTIME_MODEL_SCOPE, STATIC_RUNTIME_OP_SCOPE,
                                        UNSCOPED_PART, OperatorProfile, _scopes_in,
                                        is_runtime_glue, profile_point, profile_record,
                                        summarize_iterations)
from recstack.collect.timing import TimingSettings
from recstack.points import Point
from recstack.records.profile import PLAIN_DRIFT_TOLERANCE, plain_drift, profiler_overhead_of
from recstack.specs import zoo_spec
from tests.conftest import small_spec

QUICK = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.02,
                       min_iterations=5, profile_iterations=4)


@pytest.mark.parametrize("name, parts", [
    ("rmc1", {"dense", "sparse", "interaction", "over"}),
    ("dien", {"sparse", "recurrent", "attention", "interaction", "over"}),
])
def test_profile_attributes_operators_to_parts(name: str, parts: set[str]) -> None:
    profile = profile_point(Point(small_spec(name), batch_size=8, threads=1), QUICK)
    assert {row["part"] for row in profile.operators} == parts
    # As many plain iterations just before and just after the profiler as profiled ones.
    assert len(profile.profiled_us) == len(profile.plain_before_us) == 4
    assert len(profile.plain_after_us) == 4 and len(profile.unprofiled_us) == 8
    # Iterations slower than 1.5x the median (descheduled) are left out of the summary.
    assert 2 <= len(profile.iteration_wall_us) <= 4
    assert profile.time_basis == "cpu"
    operator_us = sum(row["time_us"] for row in profile.operators)
    wall_us = sum(profile.iteration_wall_us) / len(profile.iteration_wall_us)
    # Top-level operators never overlap on the calling thread: they fit in the wall time.
    assert 0 < operator_us <= wall_us * 1.001
    ops = {row["op"] for row in profile.operators}
    assert "aten::linear" in ops
    assert not any(op.startswith("recstack::") for op in ops)
    # The profiler's cost outside operators: the iteration's scope and one per part entered
    # (DIEN enters "recurrent" twice), each at the measured cost of an empty scope.
    scopes = profile.extra["scopes_per_iteration"]
    assert scopes == 1 + len(parts) + (name == "dien")
    assert profile.profiler_outside_us == pytest.approx(scopes * profile.extra["scope_cost_us"])
    assert profile.extra["scope_cost_us"] >= 0
    # The operator clock ran (this machine has a C++ compiler: see tests/collect/
    # test_opclock.py for where it does not) and saw the same top-level operators.
    if profile.clock is None:
        pytest.skip(f"no operator clock here: {profile.clock_note}")
    assert profile.clock_note is None
    assert profile.clock["operators"] == pytest.approx(
        sum(row["calls"] for row in profile.operators))
    assert profile.clock["observed"] > profile.clock["operators"]  # linear runs addmm
    assert len(profile.clock["plain_us"]) == len(profile.clock["inside_us"]) >= 3


def test_a_static_model_profile_has_its_graph_operators_by_part() -> None:
    from recstack import static_runtime

    if static_runtime.unavailable_reason() is not None:
        pytest.skip(static_runtime.unavailable_reason())
    point = Point(small_spec("din"), batch_size=4, threads=1, backend="static")
    profile = profile_point(point, QUICK)
    parts = {row["part"] for row in profile.operators}
    assert parts == {"sparse", "attention", "interaction", "over"}
    ops = {row["op"] for row in profile.operators}
    assert {"aten::linear", "aten::embedding_bag", "prim::VarConcat"} <= ops
    # The graph's own call is looked into, its list nodes are not operators.
    assert "forward" not in ops and "prim::ListUnpack" not in ops
    # Only the iteration's scope counts towards the profiler's cost outside operators.
    assert profile.extra["scopes_per_iteration"] == 1
    if profile.clock is None:
        pytest.skip(f"no operator clock here: {profile.clock_note}")
    # The clock watched the graph's nodes: the profile's operators, none nested.
    assert profile.clock["operators"] == pytest.approx(
        sum(row["calls"] for row in profile.operators))
    assert profile.clock["observed"] == profile.clock["operators"]


def test_embedding_bags_are_counted_once_per_table() -> None:
    spec = small_spec("rmc2")
    profile = profile_point(Point(spec, batch_size=4, threads=1), QUICK)
    (bags,) = [row for row in profile.operators if row["op"] == "aten::embedding_bag"]
    assert bags["calls"] == spec.num_tables and bags["part"] == "sparse"


def test_the_profilers_overhead_comes_from_the_same_workers_plain_iterations() -> None:
    """rmc1 at a thousandth of its rows, batch 4: plain, profiled and plain iterations in one
    worker; the overhead is the profiled median over both sides' plain median, and it is
    stored with the samples it comes from."""
    point = Point(zoo_spec("rmc1").scaled(0.001), batch_size=4, threads=1)
    profile = profile_point(point, QUICK)
    before, after = profile.plain_before_us, profile.plain_after_us
    assert len(before) == len(after) == len(profile.profiled_us) == 4
    overhead, note = profile.overhead()
    drift = plain_drift(statistics.median(before), statistics.median(after))
    stored = profile_record(profile).profile
    assert stored.plain_before_median_us == statistics.median(before)
    assert stored.plain_after_median_us == statistics.median(after)
    assert stored.unprofiled_median_us == statistics.median(before + after)
    assert stored.overhead_samples_us == {"plain_before": before, "plain_after": after,
                                          "profiled": profile.profiled_us}
    if drift > PLAIN_DRIFT_TOLERANCE:  # the machine moved under the profile: no number
        assert math.isnan(overhead) and "drifted" in note
        assert stored.profiler_overhead != stored.profiler_overhead
        assert stored.overhead_note == note
        return
    assert note is None and stored.overhead_note is None
    assert math.isfinite(overhead) and overhead > -0.5
    assert overhead == pytest.approx(statistics.median(profile.profiled_us)
                                     / statistics.median(before + after) - 1.0)
    assert stored.profiler_overhead == overhead


def test_plain_iterations_that_drift_across_the_profiler_give_no_overhead() -> None:
    """Plain medians 100 us before and 130 us after: the machine slowed while profiling, so
    how much of the profiled 150 us is the profiler is unknown."""
    overhead, note = profiler_overhead_of(150.0, 115.0, 100.0, 130.0)
    assert math.isnan(overhead) and "drifted 30%" in note
    assert plain_drift(130.0, 100.0) == pytest.approx(0.3)  # either direction
    # Within the tolerance the pooled plain median is the reference.
    assert profiler_overhead_of(150.0, 104.0, 100.0, 108.0) == (pytest.approx(150 / 104 - 1),
                                                                 None)
    # Stored without the after side (an older profile): the worker's own reference, unchecked.
    assert profiler_overhead_of(150.0, 100.0, None, None)[0] == pytest.approx(0.5)
    drifted = OperatorProfile(operators=[], iteration_wall_us=[150.0], profiled_us=[150.0] * 3,
                              plain_before_us=[100.0] * 3, plain_after_us=[130.0] * 3,
                              time_basis="cpu")
    stored = profile_record(drifted).profile
    assert math.isnan(stored.profiler_overhead) and "drifted" in stored.overhead_note


def test_trace_is_written_on_request(tmp_path: Path) -> None:
    point = Point(small_spec("ncf"), batch_size=2, threads=1)
    profile = profile_point(point, QUICK, trace_dir=str(tmp_path))
    assert profile.trace_path == str(tmp_path / f"{point.key()}.json")
    trace = json.loads(Path(profile.trace_path).read_text())
    assert any(event.get("name") == "recstack::iteration" for event in trace["traceEvents"])


class FakeEvent:
    def __init__(self, name: str, total: float, children: list[FakeEvent] | None = None):
        self.name, self.cpu_time_total, self.device_time_total = name, total, total / 2
        self.cpu_children = children or []


def test_summary_of_recorded_events() -> None:
    """Scopes are walked through, operators inside operators are not counted twice."""
    inner = FakeEvent("aten::addmm", 8.0)
    iteration = FakeEvent("recstack::iteration", 30.0, [
        FakeEvent("recstack::dense", 12.0, [FakeEvent("aten::linear", 10.0, [inner])]),
        FakeEvent("aten::cat", 5.0),
    ])
    rows, walls = summarize_iterations([iteration, iteration], on_cuda=False)
    assert walls == [30.0, 30.0]
    assert rows == [{"part": "dense", "op": "aten::linear", "calls": 1.0, "time_us": 10.0},
                    {"part": UNSCOPED_PART, "op": "aten::cat", "calls": 1.0, "time_us": 5.0}]
    cuda_rows, _ = summarize_iterations([iteration], on_cuda=True)
    assert cuda_rows[0]["time_us"] == 5.0  # device time of the kernels, not CPU time
    assert _scopes_in(iteration) == 1  # recstack::dense; operators are not scopes


def test_a_static_runtime_graph_is_looked_into_and_its_glue_left_out() -> None:
    def node(name: str, total: float) -> FakeEvent:
        event = FakeEvent(name, total)
        event.scope = STATIC_RUNTIME_OP_SCOPE
        return event

    graph = FakeEvent("forward", 20.0, [
        FakeEvent("recstack::over", 9.0, [node("aten::linear", 6.0),
                                          node("prim::ListUnpack", 1.0),
                                          node("prim::VarConcat", 2.0)])])
    graph.scope = STATIC_RUNTIME_MODEL_SCOPE
    rows, _ = summarize_iterations([FakeEvent("recstack::iteration", 21.0, [graph])],
                                   on_cuda=False)
    assert [(row["part"], row["op"]) for row in rows] == [("over", "aten::linear"),
                                                          ("over", "prim::VarConcat")]
    assert is_runtime_glue("static_runtime::VarTupleUnpack", STATIC_RUNTIME_OP_SCOPE)
    assert not is_runtime_glue("prim::ListUnpack", 0)  # only a graph's nodes are glue


def test_descheduled_iterations_are_left_out_of_the_profile() -> None:
    """One iteration 10x slower than the others (descheduled inside its GEMM) would otherwise
    hand its lost time to the GEMM."""
    def iteration(linear_us: float) -> FakeEvent:
        return FakeEvent("recstack::iteration", linear_us + 5.0, [
            FakeEvent("aten::linear", linear_us), FakeEvent("aten::cat", 5.0)])

    rows, walls = summarize_iterations([iteration(10.0), iteration(11.0), iteration(150.0),
                                        iteration(9.0)], on_cuda=False)
    assert walls == [15.0, 16.0, 14.0]
    linear = next(row for row in rows if row["op"] == "aten::linear")
    assert linear["time_us"] == 10.0 and linear["calls"] == 1.0
