"""A serving configuration: the load LoadGen offers and the deployment that serves it.

A serving point is an ordinary :class:`~recstack.points.Point` at the ``serving`` level whose
``batch_size`` is the sub-batch size (DeepRecSys's per-core batch; a sub-batch at least as
large as the largest request means requests are never split) and whose ``threads`` are each
engine's intra-op threads. Everything else that decides what runs is here, and enters the
point's key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recstack.errors import RecstackError, SpecError
from recstack.limits import check_int, check_number
from recstack.serving.query_sizes import (
    DEFAULT_QUERY_SIZES,
    QuerySizes,
    parse_query_sizes,
)

SCENARIOS = ("server", "offline", "singlestream")
DEFAULT_PERCENTILE = 95.0
MAX_ENGINES = 256
MAX_QPS = 1e7
MAX_TARGET_MS = 600_000.0
DEFAULT_MIN_DURATION_S = 5.0
DEFAULT_LIBRARY_REQUESTS = 256
MAX_LIBRARY_REQUESTS = 1 << 16


def _default_sizes() -> QuerySizes:
    return parse_query_sizes(DEFAULT_QUERY_SIZES)


@dataclass(frozen=True)
class ServingConfig:
    """The load and the deployment of one serving point (validated on creation)."""

    scenario: str = "server"
    engines: int = 1
    """CPU inference engines (worker processes), each pinned to its own cores."""
    offered_qps: tuple[float, ...] = ()
    """Server: the Poisson arrival rates to offer, one LoadGen test each; empty: search the
    highest rate LoadGen judges valid (:mod:`recstack.serving.search`). Offline and
    single-stream: at most one rate, the one LoadGen sizes its test by (empty: measured
    first)."""
    target_ms: float = 25.0
    """The tail-latency bound LoadGen judges a server run against."""
    percentile: float = DEFAULT_PERCENTILE
    query_sizes: QuerySizes = field(default_factory=_default_sizes)
    offload_threshold: int | None = None
    """Requests of at least this many items run whole on the GPU engine (None: no GPU)."""
    library_requests: int = DEFAULT_LIBRARY_REQUESTS
    """Distinct requests generated before the run (LoadGen's query sample library)."""
    min_duration_s: float = DEFAULT_MIN_DURATION_S
    min_queries: int = 0
    """LoadGen's minimum query count (0: enough for early stopping at the percentile)."""
    tolerance: float = 0.1
    """The search stops when the valid and invalid rates around the answer are this close
    (relative)."""
    max_tests: int = 8
    """At most this many LoadGen tests in one point (the search's and the capacity test)."""

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise SpecError("scenario", self.scenario, f"expected one of {', '.join(SCENARIOS)}")
        check_int("engines", self.engines, 1, MAX_ENGINES)
        if not isinstance(self.offered_qps, tuple):
            raise SpecError("offered_qps", self.offered_qps, "expected a tuple of rates")
        for rate in self.offered_qps:
            check_number("qps", rate, 0, MAX_QPS, low_inclusive=False,
                         what="a rate in queries per second")
        if self.scenario != "server" and len(self.offered_qps) > 1:
            raise SpecError("qps", list(self.offered_qps), f"the {self.scenario} scenario "
                            "runs one test; give at most one rate")
        check_number("tolerance", self.tolerance, 0.01, 1.0, what="a relative width")
        check_int("max_tests", self.max_tests, 1, 100)
        check_number("target_ms", self.target_ms, 0, MAX_TARGET_MS, low_inclusive=False,
                     what="a latency in milliseconds")
        check_number("percentile", self.percentile, 0, 99.99, low_inclusive=False,
                     what="a percentile below 100")
        if not isinstance(self.query_sizes, QuerySizes):
            raise SpecError("query_sizes", self.query_sizes, "expected a QuerySizes")
        if self.offload_threshold is not None:
            check_int("offload_threshold", self.offload_threshold, 1,
                      self.query_sizes.maximum, "a request size")
        check_int("library_requests", self.library_requests, 1, MAX_LIBRARY_REQUESTS)
        check_number("min_duration_s", self.min_duration_s, 0, 3600, low_inclusive=False,
                     what="seconds")
        check_int("min_queries", self.min_queries, 0, 10_000_000)
        object.__setattr__(self, "offered_qps", tuple(float(q) for q in self.offered_qps))
        object.__setattr__(self, "target_ms", float(self.target_ms))
        object.__setattr__(self, "percentile", float(self.percentile))

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "engines": self.engines,
                "offered_qps": list(self.offered_qps), "target_ms": self.target_ms,
                "percentile": self.percentile, "query_sizes": self.query_sizes.to_dict(),
                "offload_threshold": self.offload_threshold,
                "library_requests": self.library_requests,
                "min_duration_s": self.min_duration_s, "min_queries": self.min_queries,
                "tolerance": self.tolerance, "max_tests": self.max_tests}

    @property
    def searches(self) -> bool:
        """A server point without given rates searches its latency-bounded throughput."""
        return self.scenario == "server" and not self.offered_qps

    @property
    def query_count(self) -> int:
        """The queries LoadGen must complete: the given minimum, or what early stopping
        needs to judge the percentile when every query meets the bound, with room for a
        few that miss it (LoadGen's early-stopping estimate at 99% confidence needs about
        90 queries for p95 and 460 for p99 with none over the bound)."""
        if self.min_queries:
            return self.min_queries
        tail = 1.0 - self.percentile / 100.0
        return int(max(64, round(8.0 / tail)))

    def describe(self) -> str:
        offload = "" if self.offload_threshold is None else \
            f", GPU offload >= {self.offload_threshold} items"
        load = "searching the highest valid QPS" if self.searches else \
            "at " + ", ".join(f"{q:g}" for q in self.offered_qps) + " QPS" \
            if self.offered_qps else "at the measured rate"
        return (f"{self.scenario} {load}, p{self.percentile:g} <= "
                f"{self.target_ms:g} ms, {self.engines} engine(s), requests "
                f"{self.query_sizes.describe()}{offload}")


def check_deployment(engines: int, threads: int, cores: int, oversubscribe: bool = False
                     ) -> None:
    """Engines are pinned to disjoint cores: ``engines * threads`` must fit ``cores``."""
    if engines * threads > cores and not oversubscribe:
        raise RecstackError(f"--engines: {engines} engines x {threads} threads need "
                            f"{engines * threads} cores; this machine lets recstack use "
                            f"{cores} (fewer engines or threads, or --oversubscribe)")
