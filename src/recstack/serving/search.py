"""The latency-bounded throughput of one deployment: the highest Poisson arrival rate LoadGen
judges VALID at the tail-latency target (DeepRecSys's QPS search, with LoadGen's verdict as
the judge).

The search first measures the deployment's capacity with LoadGen's Offline scenario (every
request at once), which places the first Server rate: 0.8 x the capacity. It is an estimate,
not a bound: with all requests queued at once the scheduler's thread competes with the
engines for the cores, so a Server run can sustain more. The search then halves the rate
until one is valid, or raises it by a quarter while each is valid, and once it holds a valid
and an invalid rate it bisects between them in log space until they are within
``tolerance`` of each other, or the tests run out.
Pure logic over a ``run_test`` callable: the collector runs real LoadGen tests, the tests a
stub.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_FRACTION = 0.8
"""The first Server rate, as a fraction of the Offline capacity."""
RAISE_FACTOR = 1.25
"""While every rate tried was valid, the next is this much higher."""
FLOOR_FRACTION = 1 / 32
"""Below this fraction of the capacity the search gives up: a deployment that meets the
target only at a thirty-second of what it completes is not one to deploy, and each test at
a low rate lasts its minimum query count over the rate."""
CALM_FRACTION = 0.5
"""At or below this fraction of the capacity queueing no longer sets the median latency: an
invalid test there whose median misses the target means one request alone misses it."""
CAPACITY_SAMPLES = 32
"""Requests in the rough capacity test that sizes the real one."""


@dataclass(frozen=True)
class TestOutcome:
    """What one LoadGen test told the search."""

    __test__ = False  # a LoadGen test, not a pytest one

    scenario: str
    offered_qps: float
    valid: bool
    achieved_qps: float | None
    p50_ms: float | None = None


@dataclass
class SearchResult:
    latency_bounded_qps: float | None = None
    lowest_invalid_qps: float | None = None
    capacity_qps: float | None = None
    converged: bool = False
    note: str = ""
    tests: list[TestOutcome] = field(default_factory=list)


RunTest = Callable[[str, float, str], TestOutcome]
"""``run_test(scenario, qps, role)``: one LoadGen test."""


def measure_capacity(run_test: RunTest, engines: int, min_duration_s: float
                     ) -> tuple[float | None, list[TestOutcome]]:
    """Offline capacity in queries per second: a rough test of a few requests, then one
    sized by it to last the minimum duration (LoadGen's Offline query holds expected rate x
    duration samples)."""
    rough_rate = max(CAPACITY_SAMPLES, 8 * engines) / min_duration_s
    rough = run_test("offline", rough_rate, "capacity")
    if not rough.achieved_qps:
        return None, [rough]
    sized = run_test("offline", rough.achieved_qps, "capacity")
    return sized.achieved_qps or rough.achieved_qps, [rough, sized]


def search_latency_bounded(run_test: RunTest, engines: int, min_duration_s: float,
                           tolerance: float, max_tests: int,
                           target_ms: float | None = None) -> SearchResult:
    """The highest valid Server rate (see the module docstring). With ``target_ms``, the
    search also stops once a test at a calm rate misses the target at its median: a request
    alone takes longer than the target, and lower rates cannot change that."""
    capacity, tests = measure_capacity(run_test, engines, min_duration_s)
    result = SearchResult(capacity_qps=capacity, tests=tests)
    if not capacity:
        result.note = "the capacity test completed nothing"
        return result
    low: float | None = None
    high: float | None = None
    rate = FIRST_FRACTION * capacity
    while len(result.tests) < max_tests:
        outcome = run_test("server", rate, "search")
        result.tests.append(outcome)
        if outcome.valid:
            low = rate if low is None else max(low, rate)
        else:
            high = rate if high is None else min(high, rate)
        if low is not None and high is not None and high <= low * (1 + tolerance):
            result.converged = True
            break
        if low is None:
            if target_ms is not None and outcome.p50_ms is not None \
                    and rate <= CALM_FRACTION * capacity and outcome.p50_ms > target_ms:
                result.note = (f"no valid rate: at {rate:.3g} QPS, half the capacity or less, "
                               f"the median request took {outcome.p50_ms:.3g} ms, over the "
                               f"{target_ms:g} ms target")
                result.converged = True
                break
            rate /= 2
            if rate < FLOOR_FRACTION * capacity:
                result.note = (f"no rate down to {rate * 2:.3g} QPS met the target: the "
                               "latency of one request exceeds it")
                result.converged = True
                break
        elif high is None:
            rate = low * RAISE_FACTOR
        else:
            rate = math.sqrt(low * high)
    else:
        result.note = f"stopped after {max_tests} tests" + (
            "; every rate tried was valid" if high is None and low is not None else "")
    result.latency_bounded_qps, result.lowest_invalid_qps = low, high
    if not result.note:
        result.note = "bracketed within the tolerance"
    return result
