"""The query sample library: every request of a serving run, generated before LoadGen's
clock starts, in shared memory that every engine reads without a copy.

A request of N items is cut into sub-batches of the point's sub-batch size (the last one
smaller), or kept whole when it goes to the GPU engine (N at least the offload threshold).
Each distinct sub-batch size is one :class:`~recstack.batch_set.BatchSet` drawn vectorized,
its tensors moved to shared memory once; an engine turns a sub-batch id into a
:class:`~recstack.batch.Batch` of views, made before the run starts. What crosses a process
boundary on the hot path is the sub-batch id: an integer.

Under a trace query the requests read the trace as one stream: request after request, item
after item, in the trace's order (or its seeded shuffle), whatever sub-batch group an item
lands in. Other queries draw each group's batches from a seed derived from its size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from recstack.batch import Batch
from recstack.batch_set import BatchSet, generate_batch_set
from recstack.inputs import QuerySpec
from recstack.serving.query_sizes import QuerySizes
from recstack.specs import ModelSpec

_SIZES_STREAM = 7  # spawn key of the request sizes' stream (not a query stream)


@dataclass
class SampleLibrary:
    """The requests of a run and their sub-batches.

    ``sizes[i]`` items in request ``i``; its sub-batches are ids ``first[i]`` to
    ``first[i + 1] - 1``; sub-batch ``j`` is item ``index[j]`` of ``sets[group[j]]``.
    ``offloaded[i]``: request ``i`` runs whole on the GPU engine (one sub-batch)."""

    sizes: np.ndarray
    first: np.ndarray
    group: np.ndarray
    index: np.ndarray
    sets: list[BatchSet]
    offloaded: np.ndarray

    @property
    def requests(self) -> int:
        return len(self.sizes)

    def sub_batches(self, request: int) -> range:
        return range(int(self.first[request]), int(self.first[request + 1]))

    def batch(self, sub_batch: int) -> Batch:
        """Sub-batch ``sub_batch`` as a Batch of views of the shared tensors."""
        return self.sets[int(self.group[sub_batch])][int(self.index[sub_batch])]

    @property
    def nbytes(self) -> int:
        return sum(batch_set.nbytes for batch_set in self.sets)

    def share_memory(self) -> SampleLibrary:
        """The same library with its tensors in shared memory (moved once, here)."""
        shared = [batch_set.map_tensors(lambda t: t.share_memory_()) for batch_set in self.sets]
        return dataclasses.replace(self, sets=shared)


def request_sizes(sizes: QuerySizes, count: int, seed: int) -> np.ndarray:
    """``(count,)`` the run's request sizes, seeded."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(
        _SIZES_STREAM,))))
    return sizes.sample(count, rng)


def split(size: int, sub_batch: int) -> list[int]:
    """The sub-batch sizes of a request of ``size`` items (DeepRecSys's partition)."""
    whole, rest = divmod(size, sub_batch)
    return [sub_batch] * whole + ([rest] if rest else [])


def build_library(spec: ModelSpec, query: QuerySpec, sizes: QuerySizes, count: int,
                  sub_batch: int, offload_threshold: int | None = None) -> SampleLibrary:
    """``count`` requests for ``spec`` with sizes from ``sizes`` (seeded by
    ``query.seed``), cut into sub-batches of ``sub_batch`` items; requests of at least
    ``offload_threshold`` items stay whole. Each sub-batch size draws its own queries
    (a query seed derived from the size), so no two groups repeat one another's ids."""
    request_items = request_sizes(sizes, count, query.seed)
    offloaded = np.zeros(count, dtype=bool) if offload_threshold is None \
        else request_items >= offload_threshold
    pieces = [[int(n)] if whole else split(int(n), sub_batch)
              for n, whole in zip(request_items, offloaded)]
    first = np.zeros(count + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=first[1:])
    flat = np.fromiter((size for p in pieces for size in p), dtype=np.int64,
                       count=int(first[-1]))
    group_sizes = sorted(set(flat.tolist()))
    group_of = {size: g for g, size in enumerate(group_sizes)}
    group = np.array([group_of[int(s)] for s in flat], dtype=np.int64)
    index = np.zeros(len(flat), dtype=np.int64)
    counts = np.zeros(len(group_sizes), dtype=np.int64)
    for j, g in enumerate(group):
        index[j] = counts[g]
        counts[g] += 1
    sets = []
    for g, size in enumerate(group_sizes):
        if query.distribution == "trace":
            sets.append(_trace_group(spec, query, flat, group, g, size, int(counts[g])))
            continue
        group_query = dataclasses.replace(
            query, seed=int(np.random.SeedSequence([query.seed, size]).generate_state(1)[0]))
        sets.append(generate_batch_set(spec, group_query, size, int(counts[g])))
    return SampleLibrary(request_items, first, group, index, sets, offloaded)


def _trace_group(spec: ModelSpec, query: QuerySpec, flat: np.ndarray, group: np.ndarray,
                 g: int, size: int, count: int) -> BatchSet:
    """The batch set of group ``g`` (``count`` sub-batches of ``size``): each sub-batch the
    stream positions its items hold among all the library's items (``flat``: every
    sub-batch's size, in order)."""
    from recstack.trace_batches import trace_batch_set

    starts = np.cumsum(flat) - flat
    members = starts[group == g]
    positions = (members[:, None] + np.arange(size, dtype=np.int64)[None, :]).reshape(-1)
    return trace_batch_set(spec, query, size, count, positions)
