"""The library API: a sweep run from Python returns its results as data; points run through
an executor, which can be replaced without touching planning, collectors or the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from recstack import api
from recstack.errors import RecstackError
from recstack.points import Point
from recstack.records import TimingRecord
from tests import fill


def test_a_sweep_from_python_returns_its_timings_as_a_frame(tmp_path: Path) -> None:
    events: list[str] = []
    result = api.sweep(["rmc1"], batch_sizes=[1, 4], threads=[1], backends=["eager"],
                       row_scale=0.0005, min_time=0.02, store=tmp_path / "r.duckdb",
                       progress=lambda event: events.append(event.kind))
    frame = result.timings()
    assert not result.failed and result.outcome.measured == 2
    assert list(frame.batch_size) == [1, 4] and (frame.median_ms > 0).all()
    assert set(frame.method_version) == {Point(tiny_rmc1(), 1).method_version}
    assert events == ["start", "done", "start", "done"]
    assert result.store.run_info(result.run_id)["state"] == "complete"


def tiny_rmc1() -> object:
    from recstack.specs import resolve_spec

    return resolve_spec("rmc1").scaled(0.0005)


@dataclass
class ConstantExecutor:
    """An executor that measures nothing: every point takes 2 ms (what a remote executor's
    results look like to the run)."""

    seen: list[str] = field(default_factory=list)

    def measure(self, point: Point, settings: object, options: object) -> TimingRecord:
        self.seen.append(point.label)
        if point.batch_size == 4:
            raise RecstackError("the remote machine went away")
        samples = pd.DataFrame({"iteration": range(3), "latency_ns": [2_000_000] * 3})
        return TimingRecord(samples=samples, stats=fill.stats(
            iterations=3, median_ms=2.0, throughput_per_s=point.batch_size / 2e-3))


def test_another_executor_runs_the_same_plan_into_the_same_store(tmp_path: Path) -> None:
    planned = api.plan(["rmc1", "ncf"], batch_sizes=[1, 4], threads=[1], backends=["eager"],
                       row_scale=0.0005)
    executor = ConstantExecutor()
    result = api.measure(planned, tmp_path / "r.duckdb", executor=executor)
    assert len(executor.seen) == 4
    assert sorted(label for label, _ in result.failed) == sorted(
        p.label for p in planned.points if p.batch_size == 4)
    frame = result.timings()
    assert set(frame.median_ms) == {2.0} and set(frame.batch_size) == {1}


def test_api_errors_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(RecstackError, match="^--min-time: "):
        api.sweep(["rmc1"], store=tmp_path / "r.duckdb", min_time=-1)
    with pytest.raises(RecstackError, match="^--row-scale: "):
        api.plan(["rmc1"], row_scale=0.0)
