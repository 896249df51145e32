"""Serving collector: one LoadGen test against a pool of inference engines, in a worker.

Method:
1. Generate the query sample library (every request, cut into the point's sub-batches) and
   move it to shared memory; build the model once with its tables in shared memory. Neither
   is timed, and both happen before LoadGen's clock starts.
2. Start the engines (one process each, pinned to its own cores, ``point.threads`` intra-op
   threads, the point's backend), each warmed up on every sub-batch shape it will see.
3. Run the point's LoadGen tests (:mod:`recstack.serving.search`: an Offline capacity test,
   then Server rates until the highest valid one is bracketed; or the rates given) against
   the same engines, which stay warm from test to test; the scheduler cuts each request
   into its sub-batches and hands them to idle engines. LoadGen measures every latency and
   gives each test's verdict; the scheduler keeps each request's own latency too.
4. The proportional set size (PSS) of this process and its engines, summed, is sampled
   through the test: shared pages count once, so its peak is the deployment's real memory.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from recstack.errors import RecstackError
from recstack.levels import LevelOptions
from recstack.points import Point
from recstack.records import ServingRecord, ServingSummary, ServingTest

READY_TIMEOUT_S = 600.0
"""Engines building Static Runtime graphs for many request sizes take minutes."""
MEMORY_SAMPLE_S = 0.1
SINGLE_STREAM_RATE = 1000.0
"""What a single-stream test without a rate is sized by (it issues one query at a time
anyway; see :func:`recstack.serving.loadgen_run.loadgen_settings`)."""


def engine_cores(engines: int, threads: int) -> list[tuple[int, ...]]:
    """Disjoint cores for each engine from this process's affinity (wrapping around when the
    deployment oversubscribes them)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else list(range(os.cpu_count() or 1))
    return [tuple(cores[(e * threads + t) % len(cores)] for t in range(threads))
            for e in range(engines)]


def collect_serving(point: Point, settings: Any, options: LevelOptions,
                    model_override: Any = "build") -> ServingRecord:
    """Measures one serving point (see the module docstring). ``model_override`` replaces
    the model (None: engines that do no inference, to measure the serving stack itself)."""
    import torch

    from recstack.admission import require_point_memory
    from recstack.serving.engine import EngineSpec
    from recstack.serving.library import build_library
    from recstack.serving.pool import EnginePool

    config = point.serving
    if config is None:
        raise RecstackError("serving: the point has no serving configuration")
    if config.offload_threshold is not None and not torch.cuda.is_available():
        raise RecstackError("serving: the offload threshold needs a CUDA GPU; this machine "
                            "has none")
    library = build_library(point.spec, point.query, config.query_sizes,
                            config.library_requests, point.batch_size,
                            config.offload_threshold).share_memory()
    if isinstance(model_override, str):
        require_point_memory(point.spec, point.batch_size, point.label)
        model = shared_model(point)
    else:
        model = model_override
    model_bytes = 0 if model is None else sum(
        p.numel() * p.element_size() for p in model.parameters())
    specs = [EngineSpec(e, cores, point.threads, "cpu", point.backend)
             for e, cores in enumerate(engine_cores(config.engines, point.threads))]
    if config.offload_threshold is not None:
        specs.append(EngineSpec(len(specs), (), 1, "cuda", "fused"))
    memory = _MemorySampler()
    pool = EnginePool.start(specs, model, library, READY_TIMEOUT_S)
    tests = TestRunner(pool, library, config)
    try:
        memory.start(pool.pids)
        ready_memory = memory.peak
        search = _run_tests(tests, config)
    finally:
        memory.stop()
        pool.close()
    summary = ServingSummary(
        scenario=config.scenario, engines=config.engines,
        cores="|".join(",".join(map(str, spec.cores)) or spec.device for spec in specs),
        gpu_engine=config.offload_threshold is not None,
        offload_threshold=config.offload_threshold,
        splits=bool(np.any(np.diff(library.first) > 1)),
        query_sizes=config.query_sizes.describe(), mean_items=float(library.sizes.mean()),
        max_items=config.query_sizes.maximum, library_requests=library.requests,
        library_bytes=library.nbytes, target_ms=config.target_ms,
        percentile=config.percentile,
        latency_bounded_qps=search.latency_bounded_qps,
        lowest_invalid_qps=search.lowest_invalid_qps, capacity_qps=search.capacity_qps,
        converged=search.converged if config.searches else None,
        search_note=search.note or None, tests=len(tests.rows),
        peak_memory_bytes=memory.peak or None, ready_memory_bytes=ready_memory or None,
        model_bytes=model_bytes,
        loadgen_version=tests.version)
    return ServingRecord(summary, pd.DataFrame(tests.rows), tests.requests())


def _run_tests(tests: TestRunner, config: Any) -> Any:
    """The point's tests: the search, the given rates, or one offline or single-stream
    test; returns what the search found (the capacity, for offline)."""
    from recstack.serving.search import (
        SearchResult,
        measure_capacity,
        search_latency_bounded,
    )

    if config.searches:
        return search_latency_bounded(tests.run, config.engines, config.min_duration_s,
                                      config.tolerance, config.max_tests, config.target_ms)
    result = SearchResult()
    if config.scenario == "offline" and not config.offered_qps:
        result.capacity_qps, result.tests = measure_capacity(tests.run, config.engines,
                                                             config.min_duration_s)
        return result
    rates = config.offered_qps or (SINGLE_STREAM_RATE,)
    result.tests = [tests.run(config.scenario, rate, "given") for rate in rates]
    valid = [t.offered_qps for t in result.tests if t.valid and t.scenario == "server"]
    result.latency_bounded_qps = max(valid) if valid else None
    if config.scenario == "offline":
        result.capacity_qps = result.tests[0].achieved_qps
    return result


class TestRunner:
    """Runs LoadGen tests against a started pool, one scheduler per test, and keeps each
    test's row and requests."""

    __test__ = False  # a LoadGen test, not a pytest one

    def __init__(self, pool: Any, library: Any, config: Any):
        self.pool, self.library, self.config = pool, library, config
        from recstack.serving.loadgen_run import completer

        self.rows: list[dict[str, Any]] = []
        self._requests: list[pd.DataFrame] = []
        self.version: str | None = None
        self._complete = completer()

    def run(self, scenario: str, qps: float, role: str) -> Any:
        from recstack.serving.loadgen_run import (
            loadgen_settings,
            percentile_ms,
            run_loadgen,
            verdict,
        )
        from recstack.serving.scheduler import Scheduler, latencies_frame
        from recstack.serving.search import TestOutcome

        config, library = self.config, self.library
        scheduler = Scheduler(self.pool, library, self._complete,
                              stall_timeout_s=max(60.0, 10 * config.target_ms / 1000))
        scheduler.start()
        try:
            run = run_loadgen(loadgen_settings(config, scenario, qps), library.requests,
                              scheduler.issue)
        finally:
            scheduler.stop()
        if scheduler.failure is not None:
            raise RecstackError(f"serving: {scheduler.failure}")
        judged = verdict(run, config)
        self.version = self.version or _text(run.value("loadgen_version"))
        requests = latencies_frame(scheduler.served, library)
        requests.insert(0, "test", len(self.rows))
        self._requests.append(requests)
        served = scheduler.served
        span = (served.last_ns - served.first_ns) if served.first_ns is not None else 0

        p50_ms = percentile_ms(run, 50)
        longest = _number(run.value("result_max_latency_ns"))
        achieved = _number(run.value("result_completed_samples_per_sec")
                           if scenario != "offline" else run.value("result_samples_per_second"))
        self.rows.append(asdict(ServingTest(
            test=len(self.rows), role=role, scenario=scenario, offered_qps=qps,
            scheduled_qps=_number(run.value("result_scheduled_samples_per_sec")),
            achieved_qps=achieved,
            items_per_s=None if achieved is None or requests.empty
            else achieved * float(requests["items"].mean()),
            valid=judged.valid, verdict=judged.text, latency_met=judged.latency_met,
            min_duration_met=judged.min_duration_met,
            min_queries_met=judged.min_queries_met,
            early_stopping_met=judged.early_stopping_met,
            query_count=_integer(run.value("result_query_count")),
            overlatency_count=_integer(run.value("result_overlatency_query_count")),
            p50_ms=p50_ms, p90_ms=percentile_ms(run, 90), p95_ms=percentile_ms(run, 95),
            p99_ms=percentile_ms(run, 99), max_ms=None if longest is None else longest / 1e6,
            sut_tail_ms=None if requests.empty else
            float(np.percentile(requests["latency_ms"], config.percentile)),
            service_median_ms=float(np.median(served.service_ns)) / 1e6
            if served.service_ns else None,
            engine_utilization=sum(served.service_ns) / (span * len(self.pool.engines))
            if span else None,
            duration_s=run.duration_s, loadgen_summary=run.summary,
            loadgen_detail=run.detail)))
        return TestOutcome(scenario, qps, judged.valid, achieved, p50_ms)

    def requests(self) -> pd.DataFrame:
        frames = [frame for frame in self._requests if not frame.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def shared_model(point: Point) -> Any:
    """The point's model with every tensor in shared memory, built in the layout its backend
    runs (the static backend's graphs are made in each engine, from the fused model)."""
    from recstack.models import build_model
    from recstack.models.embeddings import tables_in_shared_memory

    fused = point.backend in ("fused", "static", "compile")
    with tables_in_shared_memory():
        model = build_model(point.spec, seed=point.seed, fused=fused, check_memory=False,
                            precision=point.precision)
    return model.share_memory()


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _integer(value: Any) -> int | None:
    return None if value is None else int(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class _MemorySampler:
    """The peak of the summed PSS of this process and the given children, sampled."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pids: list[int]) -> None:
        watched = [os.getpid(), *pids]
        self.peak = _total_pss(watched)

        def sample() -> None:
            while not self._stop.wait(MEMORY_SAMPLE_S):
                self.peak = max(self.peak, _total_pss(watched))

        self._thread = threading.Thread(target=sample, name="recstack-memory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _total_pss(pids: list[int]) -> int:
    """Summed proportional set size in bytes (0 where /proc has no smaps_rollup)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total
