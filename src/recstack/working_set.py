"""The query working set: how many distinct batches a point cycles, decided by its cache state.

A point's latency at small batch depends on whether the embedding rows its batches read are
still in the last-level cache when they come round again: with the same settings except the
number of distinct batches, RMC2 at batch 1 measured 0.053 ms cycling 4 batches and 0.078 to
0.079 ms cycling 139 to 3,096 (one thread, static, full size, a 2-core AMD EPYC VM:
``benchmarks/working_set.py``). So the cache state is part of what a point is, and the batch
count follows from it:

- ``cold`` (the default, what a production server sees): enough distinct batches that the
  embedding bytes they touch, counted as distinct rows (:func:`recstack.inputs.
  expected_distinct_rows`), reach ``cold_multiple`` times the last-level cache. A timing loop
  going round a set four times the LLC in the same order misses on every row under LRU. Tables
  smaller than that cannot get there: then as many batches as bring the expected distinct bytes
  to 99% of what the input budget allows, and the shortfall is recorded.
- ``warm``: a few batches cycled (``warm_batches``): at small batch their rows stay cached,
  which is the state a microbenchmark that reuses one input measures.

Either way the batches must fit ``max_input_bytes`` of query memory. The working set, the LLC
it was sized against and the multiple are stored with every point; the roofline, the operator
profiles and the hardware points use the same batch count.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from recstack.errors import SpecError
from recstack.inputs import FILE_DISTRIBUTIONS, QuerySpec, expected_distinct_rows
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec

CACHE_STATES: tuple[str, ...] = ("cold", "warm")
DEFAULT_CACHE = "cold"
COLD_LLC_MULTIPLE = 4.0
"""Distinct embedding bytes of a cold point's batches, in last-level caches."""
SATURATION = 0.99
"""Where tables are too small for the multiple: the share of the reachable distinct bytes
that is enough (the last 1% of a coupon collector costs as many batches as the rest)."""


def machine_llc_bytes() -> int:
    """This machine's last-level cache: the largest data or unified cache cpu0 reports
    (32 MiB when it reports none)."""
    from recstack.collect.ceilings import llc_bytes
    from recstack.host import read_caches

    return llc_bytes({"caches": read_caches()})


def check_cache_state(cache: object, option: str = "cache") -> str:
    if not isinstance(cache, str) or cache not in CACHE_STATES:
        raise SpecError(option, cache, f"expected one of {', '.join(CACHE_STATES)}")
    return cache


@dataclass(frozen=True)
class CycledSet:
    """The batches a point cycles through and the embedding bytes they touch."""

    cache: str
    batches: int
    working_set_bytes: int
    """Expected distinct embedding bytes the ``batches`` touch (rows, not cache lines)."""
    llc_bytes: int
    target_bytes: int
    """What ``cold`` aimed at (``cold_multiple`` x LLC); 0 for ``warm``."""

    @property
    def reached(self) -> bool:
        """Whether a cold set reached its target (warm sets have none)."""
        return self.working_set_bytes >= self.target_bytes

    @property
    def llc_multiple(self) -> float:
        return self.working_set_bytes / self.llc_bytes if self.llc_bytes > 0 else 0.0


def distinct_embedding_bytes(spec: ModelSpec, query: QuerySpec, batch_size: int,
                             batches: int, precision: Precision = FP32) -> float:
    """Expected distinct embedding bytes that ``batches`` batches of ``batch_size`` touch:
    per table, the distinct rows among all their draws times the row's stored bytes (in
    ``precision``: an int4 point needs about six times the batches of an fp32 one to be
    as cold)."""
    from recstack.batch_work import table_gathers

    if query.distribution in FILE_DISTRIBUTIONS:
        from recstack.trace_batches import distinct_bytes

        return distinct_bytes(spec, query, batch_size, batches,
                              table_gathers(spec, batch_size, precision))
    return sum(expected_distinct_rows(query, g.rows, g.draws * batches) * g.row_bytes
               for g in table_gathers(spec, batch_size, precision))


# Planning (admission), the driver (the point's row) and perf's request ask for the same
# sets; a Zipf expectation sums over every row of a table at each bisection step.
@functools.lru_cache(maxsize=1024)
def cycled_set(spec: ModelSpec, query: QuerySpec, batch_size: int, cache: str, llc_bytes: int,
               warm_batches: int = 4, cold_multiple: float = COLD_LLC_MULTIPLE,
               max_input_bytes: int = 1 << 29, precision: Precision = FP32) -> CycledSet:
    """How many distinct batches a point of ``cache`` state cycles (see the module
    docstring), within ``max_input_bytes`` of query batches (always at least one)."""
    from recstack.admission import input_bytes_per_batch

    check_cache_state(cache)
    per_batch = max(1, input_bytes_per_batch(spec, batch_size, query))
    most = max(1, max_input_bytes // per_batch)

    def touched(count: int) -> int:
        return int(distinct_embedding_bytes(spec, query, batch_size, count, precision))

    if cache == "warm":
        count = min(warm_batches, most)
        return CycledSet(cache, count, touched(count), llc_bytes, 0)
    target = int(cold_multiple * llc_bytes)
    enough = min(target, int(SATURATION * touched(most)))
    # The distinct bytes grow with the batch count: the fewest batches that reach `enough`.
    low, high = min(warm_batches, most), most
    if touched(low) >= enough:
        high = low
    while low < high:
        middle = (low + high) // 2
        if touched(middle) >= enough:
            high = middle
        else:
            low = middle + 1
    return CycledSet(cache, high, touched(high), llc_bytes, target)
