"""The serving collector end to end: real LoadGen tests against real engine processes."""

from __future__ import annotations

import time

import pytest

from recstack.collect.serving import collect_serving, engine_cores
from recstack.errors import RecstackError
from recstack.executors import LocalExecutor
from recstack.levels import LevelOptions
from recstack.points import Point
from recstack.serving.config import ServingConfig
from recstack.serving.query_sizes import parse_query_sizes
from tests.conftest import small_spec
from tests.serving_stubs import SleepModel, kill_an_engine_after

pytestmark = pytest.mark.slow
pytest.importorskip("mlperf_loadgen")


def _point(scenario: str = "server", qps: tuple[float, ...] = (), sub_batch: int = 16,
           engines: int = 1, **load) -> Point:
    config = ServingConfig(scenario=scenario, engines=engines, offered_qps=qps,
                           query_sizes=load.pop("sizes", parse_query_sizes("normal:24,6,32")),
                           min_duration_s=load.pop("duration", 1.0), library_requests=32,
                           **load)
    return Point(small_spec("rmc1"), sub_batch, threads=1, backend="fused", level="serving",
                 serving=config)


def test_server_and_offline_run_end_to_end_through_loadgen():
    executor = LocalExecutor(timeout_s=180)
    server = executor.measure(_point(qps=(40.0,), target_ms=50, min_queries=100), None,
                              LevelOptions())
    (test,) = server.tests.itertuples()
    assert test.scenario == "server" and test.role == "given" and test.valid
    assert "Result is : VALID" in test.loadgen_summary and ":::MLLOG" in test.loadgen_detail
    assert test.query_count >= 100 and len(server.requests) == test.query_count
    # Requests were split into the point's sub-batches and served in full.
    assert (server.requests.sub_batches == (server.requests["items"] + 15) // 16).all()
    assert server.summary.latency_bounded_qps == 40.0 and server.summary.splits
    assert server.summary.model_bytes > 0 and server.summary.peak_memory_bytes > 0
    offline = executor.measure(_point("offline"), None, LevelOptions())
    assert list(offline.tests.role) == ["capacity", "capacity"]
    assert offline.summary.capacity_qps > 100 and offline.tests.achieved_qps.iloc[-1] > 0


def test_loadgen_judges_overload_invalid_and_light_load_valid():
    # One engine, 8 ms per request: a capacity of about 125 requests per second.
    config = {"sizes": parse_query_sizes("fixed:8"), "target_ms": 60, "min_queries": 100}
    point = _point(qps=(20.0, 400.0), sub_batch=8, **config)
    start = time.monotonic()
    record = collect_serving(point, None, LevelOptions(), model_override=SleepModel(0.008))
    light, heavy = record.tests.itertuples()
    assert light.valid and light.latency_met
    assert not heavy.valid and heavy.latency_met is False and "latency bound" in heavy.verdict
    assert record.summary.latency_bounded_qps == 20.0
    assert time.monotonic() - start < 60


def test_an_engine_killed_mid_run_fails_the_point_without_hanging():
    point = _point(qps=(100.0,), sub_batch=4, engines=2, duration=6.0, target_ms=100)
    kill_an_engine_after(1.0)
    start = time.monotonic()
    with pytest.raises(RecstackError, match=r"engine \d .*killed by SIGKILL.* mid-run"):
        collect_serving(point, None, LevelOptions(), model_override=SleepModel(0.001))
    # LoadGen's test ends on its own schedule once every request is answered at once.
    assert time.monotonic() - start < 30


def test_engines_get_disjoint_cores():
    cores = engine_cores(2, 1)
    assert len(cores) == 2 and all(len(c) == 1 for c in cores)
