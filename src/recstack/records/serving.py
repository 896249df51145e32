"""The serving level's record: a deployment (a pool of inference engines), the LoadGen tests
it ran (each one's verdict, latencies and logs) and every request it served."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recstack.records.declare import column, point_key_columns, table

_V = 13  # the schema version that added the serving level


@dataclass(frozen=True, kw_only=True)
class ServingSummary:
    """One serving point: the deployment, what it held, and what its search found."""

    scenario: str = column("VARCHAR", "LoadGen scenario: server, offline or singlestream",
                           since=_V)
    engines: int = column("INTEGER", "CPU inference engines (processes)", since=_V)
    cores: str = column("VARCHAR", "the cores each engine was pinned to, e.g. 0|1", since=_V)
    gpu_engine: bool = column("BOOLEAN", "a GPU engine took the offloaded requests", since=_V)
    offload_threshold: int | None = column("INTEGER", "requests of at least this many items "
                                           "ran whole on the GPU", "items", since=_V,
                                           default=None)
    splits: bool = column("BOOLEAN", "the sub-batch size splits some requests", since=_V)
    query_sizes: str = column("VARCHAR", "the request-size distribution", since=_V)
    mean_items: float = column("DOUBLE", "mean items per request in the library", "items",
                               since=_V)
    max_items: int = column("INTEGER", "the largest request size the distribution allows",
                            "items", since=_V)
    library_requests: int = column("INTEGER", "distinct requests generated before the run",
                                   since=_V)
    library_bytes: int = column("BIGINT", "input bytes of the library (shared memory)",
                                "bytes", since=_V)
    target_ms: float = column("DOUBLE", "the tail-latency bound", "ms", since=_V)
    percentile: float = column("DOUBLE", "the percentile the bound applies to", since=_V)
    latency_bounded_qps: float | None = column(
        "DOUBLE", "the highest offered rate LoadGen judged VALID (NULL: none was)",
        "queries/s", since=_V, default=None)
    lowest_invalid_qps: float | None = column(
        "DOUBLE", "the lowest offered rate above it judged INVALID", "queries/s", since=_V,
        default=None)
    capacity_qps: float | None = column("DOUBLE", "queries per second completed in the "
                                        "offline capacity test", "queries/s", since=_V,
                                        default=None)
    converged: bool | None = column("BOOLEAN", "the search closed within its tolerance",
                                    since=_V, default=None)
    search_note: str | None = column("VARCHAR", "how the search ended", since=_V,
                                     default=None)
    tests: int = column("INTEGER", "LoadGen tests the point ran", since=_V)
    peak_memory_bytes: int | None = column("BIGINT", "peak proportional set size of the "
                                           "serving process and its engines together",
                                           "bytes", since=_V, default=None)
    ready_memory_bytes: int | None = column("BIGINT", "the same, once every engine was "
                                            "ready and before the first test", "bytes",
                                            since=_V, default=None)
    model_bytes: int = column("BIGINT", "bytes of the model's parameters (one copy, shared)",
                              "bytes", since=_V)
    loadgen_version: str | None = column("VARCHAR", "the LoadGen that ran it", since=_V,
                                         default=None)


@dataclass(frozen=True, kw_only=True)
class ServingTest:
    """One LoadGen test of a serving point. Latencies are LoadGen's (from each query's
    scheduled issue to its completion) unless named ``sut_``: those are the system under
    test's own (from ``issue_queries`` to the last sub-batch's return)."""

    test: int = column("INTEGER", "its order within the point", since=_V)
    role: str = column("VARCHAR", "capacity (offline estimate), search (a rate the search "
                       "tried) or given (a rate asked for)", since=_V)
    scenario: str = column("VARCHAR", "the test's LoadGen scenario", since=_V)
    offered_qps: float = column("DOUBLE", "the Poisson arrival rate asked of LoadGen "
                                "(server) or its expected rate", "queries/s", since=_V)
    scheduled_qps: float | None = column("DOUBLE", "queries per second LoadGen scheduled",
                                         "queries/s", since=_V, default=None)
    achieved_qps: float | None = column("DOUBLE", "queries per second completed",
                                        "queries/s", since=_V, default=None)
    items_per_s: float | None = column("DOUBLE", "candidate items ranked per second",
                                       "items/s", since=_V, default=None)
    valid: bool = column("BOOLEAN", "LoadGen's verdict: VALID", since=_V)
    verdict: str = column("VARCHAR", "VALID, or every reason LoadGen gave for INVALID",
                          since=_V)
    latency_met: bool | None = column("BOOLEAN", "the percentile met the bound (LoadGen's "
                                      "performance constraints)", since=_V, default=None)
    min_duration_met: bool | None = column("BOOLEAN", "LoadGen's minimum duration was met",
                                           since=_V, default=None)
    min_queries_met: bool | None = column("BOOLEAN", "LoadGen's minimum query count was met",
                                          since=_V, default=None)
    early_stopping_met: bool | None = column("BOOLEAN", "LoadGen's early-stopping estimate "
                                             "met the bound", since=_V, default=None)
    query_count: int | None = column("INTEGER", "queries LoadGen issued", since=_V,
                                     default=None)
    overlatency_count: int | None = column("INTEGER", "queries over the bound", since=_V,
                                           default=None)
    p50_ms: float | None = column("DOUBLE", "median latency (LoadGen)", "ms", since=_V,
                                  default=None)
    p90_ms: float | None = column("DOUBLE", "90th percentile latency (LoadGen)", "ms",
                                  since=_V, default=None)
    p95_ms: float | None = column("DOUBLE", "95th percentile latency (LoadGen)", "ms",
                                  since=_V, default=None)
    p99_ms: float | None = column("DOUBLE", "99th percentile latency (LoadGen)", "ms",
                                  since=_V, default=None)
    max_ms: float | None = column("DOUBLE", "largest latency (LoadGen)", "ms", since=_V,
                                  default=None)
    sut_tail_ms: float | None = column("DOUBLE", "the SUT's own latency at the target "
                                       "percentile", "ms", since=_V, default=None)
    service_median_ms: float | None = column("DOUBLE", "median time an engine spent on one "
                                             "sub-batch", "ms", since=_V, default=None)
    engine_utilization: float | None = column("DOUBLE", "busy time over engines x run time",
                                              since=_V, default=None)
    duration_s: float = column("DOUBLE", "LoadGen's test, start to end", "s", since=_V)
    loadgen_summary: str = column("VARCHAR", "mlperf_log_summary.txt as LoadGen wrote it",
                                  since=_V)
    loadgen_detail: str = column("VARCHAR", "mlperf_log_detail.txt as LoadGen wrote it",
                                 since=_V)


@dataclass(frozen=True, kw_only=True)
class ServedRequest:
    """One request as the system under test served it."""

    test: int = column("INTEGER", "the LoadGen test that sent it", since=_V)
    request: int = column("INTEGER", "its order of arrival in the test", since=_V)
    sample_index: int = column("INTEGER", "the library request LoadGen chose", since=_V)
    items: int = column("INTEGER", "candidate items it carried", "items", since=_V)
    sub_batches: int = column("INTEGER", "sub-batches it was cut into", since=_V)
    offloaded: bool = column("BOOLEAN", "it ran whole on the GPU engine", since=_V)
    issued_ms: float = column("DOUBLE", "when it arrived, from the first arrival", "ms",
                              since=_V)
    latency_ms: float = column("DOUBLE", "arrival to its last sub-batch's return (SUT)",
                               "ms", since=_V)


@dataclass(frozen=True)
class ServingRecord:
    """What the serving collector returns."""

    summary: ServingSummary
    tests: pd.DataFrame
    """Columns of :class:`ServingTest`, one row per LoadGen test."""
    requests: pd.DataFrame
    """Columns of :class:`ServedRequest`."""

    def rows(self) -> Iterator[tuple[type, Any]]:
        yield ServingSummary, self.summary
        yield ServingTest, self.tests
        yield ServedRequest, self.requests


SERVING = table("serving", ServingSummary, key=point_key_columns(),
                primary_key=("run_id", "point_key"),
                meaning="a serving point: its deployment and its latency-bounded throughput")
SERVING_TESTS = table("serving_tests", ServingTest, key=point_key_columns(),
                      primary_key=("run_id", "point_key", "test"),
                      meaning="every LoadGen test of a serving point: verdict, latencies, logs")
SERVED_REQUESTS = table("served_requests", ServedRequest, key=point_key_columns(),
                        meaning="every request a serving point served, with its latency")
