"""Many query batches at once: a cold point's thousands of batches, drawn vectorized.

:func:`~recstack.inputs.generate_batches` draws every (batch, table) pair from its own random
stream: 0.4 to 2.4 ms and a few KB of Python objects per batch, while a cold point at batch 1
cycles tens of thousands to hundreds of thousands of batches
(:func:`recstack.working_set.cycled_set`). :func:`generate_batch_set` draws the same kind of
queries (the same :class:`~recstack.inputs.QuerySpec` semantics) with ONE random stream per
table for all batches, whole arrays at a time, and keeps them in a few big tensors;
:class:`BatchSet` hands out each batch as a :class:`~recstack.batch.Batch` of views of them.

The ids are not those of ``generate_batches`` (other streams, spawn-key tag 2), but are drawn
the same way: a table's access stream in one batch is its pooled bags, then the behaviour
steps it serves, sample after sample; Zipf uses the same per-table rank bijection; the
locality reuse stream restarts at every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload

import numpy as np
import torch

from recstack.batch import Batch
from recstack.errors import SpecError
from recstack.inputs import (
    QuerySpec,
    _is_int,
    _locality_ids,
    _steps_by_table,
    _table_ids,
)
from recstack.layout import table_layout
from recstack.specs import ModelSpec

# Spawn-key tag of the set's streams: generate_batches uses 0 (per-batch streams) and 1
# (per-table constants), so no set stream repeats one of its streams.
_SET_STREAM = 2
_DENSE_STREAM = 0  # table j uses stream 1 + j, as in recstack.inputs


def _stream(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(seed, spawn_key=(_SET_STREAM, stream))))


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    """``(n + 1,)`` int64 starts of consecutive runs of ``counts``, the total last."""
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts


class BatchSet(Sequence[Batch]):
    """``count`` batches of ``size`` queries held in a few big tensors.

    ``set[i]`` is a :class:`~recstack.batch.Batch` of views (no copy, no concatenation):

    - ``pooled_ids``: ``(sum of all batches' lookups,)`` int64, batch after batch; within a
      batch table after table in ``layout.pooled`` order (as ``Batch.pooled_ids``). Batch
      ``i`` is ``pooled_ids[starts[i]:starts[i + 1]]``;
    - ``bag_offsets``: ``(count, tables, size)`` int64, each bag's start within its table's
      ids (``Batch.bag_offsets[k]`` of batch ``i`` is ``bag_offsets[i, k]``);
    - ``pooled_offsets``: ``(count, tables * size)`` int64, each bag's start within its
      batch's ``pooled_ids``;
    - ``dense``: ``(count, size, dense_features)`` float32 (rows of a ``(count * size,
      dense_features)`` array), or None;
    - ``sequence``: ``(count, size, sequence_length)`` int64, or None.

    Per-batch metadata (``starts``, each batch's ``lookups`` tuple) is made once as Python
    ints, so making an item is a handful of tensor views. Items are made on demand and not
    kept: take one before a timed region, not inside it.
    """

    def __init__(self, size: int, pooled_ids: torch.Tensor, starts: list[int],
                 lookups: list[tuple[int, ...]], bag_offsets: torch.Tensor,
                 pooled_offsets: torch.Tensor, dense: torch.Tensor | None,
                 sequence: torch.Tensor | None, fixed: bool = False) -> None:
        self.size = size
        self.pooled_ids = pooled_ids
        self.starts = starts
        """``count + 1`` Python ints: where each batch's ids start in ``pooled_ids``."""
        self.lookups = lookups
        """Each batch's ids per table (one shared tuple when pooling is fixed)."""
        self.bag_offsets = bag_offsets
        self.pooled_offsets = pooled_offsets
        self.dense = dense
        self.sequence = sequence
        self.fixed = fixed
        """Fixed pooling: every batch has the same ``lookups`` and offsets."""
        # Then every item shares one tuple of per-table offset views: making an item makes
        # no offset views (one per table, ~0.5 us each).
        self._shared_offsets = bag_offsets[0].unbind(0) if fixed and lookups else None

    def __len__(self) -> int:
        return len(self.lookups)

    @overload
    def __getitem__(self, index: int) -> Batch: ...

    @overload
    def __getitem__(self, index: slice) -> list[Batch]: ...

    def __getitem__(self, index: int | slice) -> Batch | list[Batch]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        count = len(self.lookups)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"batch {index} out of range for {count} batches")
        lookups = self.lookups[index]
        pooled = self.pooled_ids[self.starts[index]:self.starts[index + 1]]
        # split_with_sizes and unbind make every table's view in one call each.
        return Batch(
            size=self.size,
            dense=None if self.dense is None else self.dense[index],
            bag_indices=tuple(pooled.split_with_sizes(lookups)),
            bag_offsets=(self._shared_offsets if self._shared_offsets is not None
                         else self.bag_offsets[index].unbind(0)),
            sequence=None if self.sequence is None else self.sequence[index],
            pooled_ids=pooled,
            pooled_offsets=self.pooled_offsets[index],
            lookups=lookups,
        )

    def map_tensors(self, move: Callable[[torch.Tensor], torch.Tensor]) -> BatchSet:
        """The same set with ``move`` applied once to each big tensor (e.g. ``pin_memory``
        to stage all batches for a GPU); items are then views of the moved tensors."""

        def apply(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else move(tensor)

        return BatchSet(self.size, move(self.pooled_ids), self.starts, self.lookups,
                        move(self.bag_offsets), move(self.pooled_offsets), apply(self.dense),
                        apply(self.sequence), self.fixed)

    def _tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.pooled_ids, self.bag_offsets, self.pooled_offsets,
                            self.dense, self.sequence) if t is not None]

    @property
    def nbytes(self) -> int:
        """Bytes of all batches' input data: the sum of every item's ``Batch.nbytes``."""
        return sum(t.numel() * t.element_size() for t in self._tensors())

    @property
    def nbytes_per_batch(self) -> int:
        """The LARGEST item's ``Batch.nbytes`` (all items are equal with fixed pooling): an
        upper bound to size a host-to-device copy or an input budget with."""
        if not self.lookups:
            return 0
        per_batch = sum(t[0].numel() * t.element_size()
                        for t in (self.bag_offsets, self.pooled_offsets, self.dense,
                                  self.sequence) if t is not None)
        most_ids = max(b - a for a, b in zip(self.starts, self.starts[1:]))
        return per_batch + most_ids * self.pooled_ids.element_size()


def generate_batch_set(spec: ModelSpec, query: QuerySpec, batch_size: int,
                       count: int) -> BatchSet:
    """``count`` batches of ``batch_size`` synthetic queries for ``spec``, drawn vectorized.

    Deterministic: the same arguments give bitwise identical tensors. Every item has the
    shapes and dtypes :func:`~recstack.inputs.generate_batches` gives: ``dense``
    ``(batch, dense_features)`` float32 in [0, 1) or None, ``bag_indices[k]`` ``(lookups_k,)``
    int64 and ``bag_offsets[k]`` ``(batch,)`` int64 for pooled table ``layout.pooled[k]``,
    ``sequence`` ``(batch, sequence_length)`` int64 or None.

    Raises SpecError when ``batch_size`` or ``count`` is not a positive integer.
    """
    for field, value in (("batch_size", batch_size), ("count", count)):
        if not _is_int(value) or value < 1:
            raise SpecError(field, value, "expected an integer >= 1")
    size, count = int(batch_size), int(count)
    if query.distribution == "trace":
        from recstack.trace_batches import trace_batch_set

        return trace_batch_set(spec, query, size, count)
    layout = table_layout(spec)
    steps_of = _steps_by_table(layout)
    tables = sorted(set(layout.pooled) | set(steps_of))
    column_of = {table: k for k, table in enumerate(layout.pooled)}
    fixed = query.fixed_pooling(spec)
    rngs = {table: _stream(query.seed, 1 + table) for table in tables}

    # Bag lengths first (each table's stream draws its lengths, then its ids, as
    # generate_batches does): they fix where every id goes.
    lengths = np.empty((count, len(layout.pooled), size), dtype=np.int64)
    for k, (table, pooling) in enumerate(zip(layout.pooled, layout.pooling, strict=True)):
        lengths[:, k] = (pooling if fixed else
                         rngs[table].integers(1, pooling + 1, size=(count, size), dtype=np.int64))
    per_table, starts, table_starts, bag_offsets, pooled_offsets = bag_layout(lengths)

    pooled = np.empty(int(starts[-1]), dtype=np.int64)
    sequence_shape = (count * size, layout.sequence_length)
    sequence = None
    for table in tables:
        k = column_of.get(table)
        bags = per_table[:, k] if k is not None else np.zeros(count, dtype=np.int64)
        steps = steps_of.get(table)
        steps_count = size * len(steps) if steps is not None else 0
        stream_starts = _exclusive_cumsum(bags + steps_count)  # (count + 1,)
        ids = _set_ids(spec, query, rngs[table], table, spec.rows[table], stream_starts)
        bag_ids, step_ids = _split_streams(ids, bags, steps_count, stream_starts)
        if k is not None:
            _place(pooled, bag_ids, bags, starts[:-1] + table_starts[:, k], fixed)
        if steps is None:
            continue
        if len(steps) == layout.sequence_length and step_ids.flags.c_contiguous:
            # One behaviour table serves every step (DIN): its ids are the sequence as
            # drawn; no second copy of what is most of the set's bytes.
            sequence = step_ids.reshape(sequence_shape)
            continue
        if sequence is None:
            sequence = np.empty(sequence_shape, dtype=np.int64)
        sequence[:, _columns(steps)] = step_ids.reshape(count * size, len(steps))

    # One tuple per distinct lookups (fixed pooling: one for all batches), so the per-batch
    # Python cost is a list slot, not a tuple of ints.
    if fixed:
        lookups = [tuple(per_table[0].tolist())] * count
    else:
        lookups = _shared_rows(per_table)
    return assemble(spec, size, pooled, starts, lookups, bag_offsets, pooled_offsets,
                    synthetic_dense(spec, query.seed, count * size), sequence, fixed)


def synthetic_dense(spec: ModelSpec, seed: int, samples: int) -> np.ndarray | None:
    """``(samples, dense_features)`` float32 uniform in [0, 1) from the set's dense stream,
    or None for a model without dense features."""
    if spec.dense_features == 0:
        return None
    return _stream(seed, _DENSE_STREAM).random((samples, spec.dense_features),
                                               dtype=np.float32)


def assemble(spec: ModelSpec, size: int, pooled: np.ndarray, starts: np.ndarray,
             lookups: list[tuple[int, ...]], bag_offsets: np.ndarray,
             pooled_offsets: np.ndarray, dense: np.ndarray | None,
             sequence: np.ndarray | None, fixed: bool) -> BatchSet:
    """The set over the arrays (no copies): ``dense`` ``(count * size, dense_features)`` and
    ``sequence`` ``(count * size, sequence_length)`` viewed per batch."""
    count = len(lookups)

    def tensor(array: np.ndarray | None, *shape: int) -> torch.Tensor | None:
        return None if array is None else torch.from_numpy(array).view(*shape)

    return BatchSet(size, torch.from_numpy(pooled), starts.tolist(), lookups,
                    torch.from_numpy(bag_offsets), torch.from_numpy(pooled_offsets),
                    tensor(dense, count, size, spec.dense_features),
                    tensor(sequence, count, size, table_layout(spec).sequence_length), fixed)


def bag_layout(lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """Where every id goes, from the bag lengths ``(count, tables, size)``: ids per table per
    batch ``(count, tables)``, each batch's start in the set ``(count + 1,)``, each table's
    start within its batch ``(count, tables)``, each bag's start within its table
    ``(count, tables, size)`` and within its batch ``(count, tables * size)``."""
    count = lengths.shape[0]
    per_table = lengths.sum(axis=2)
    starts = _exclusive_cumsum(per_table.sum(axis=1))
    table_starts = np.zeros_like(per_table)
    np.cumsum(per_table[:, :-1], axis=1, out=table_starts[:, 1:])
    bag_offsets = np.zeros_like(lengths)
    np.cumsum(lengths[:, :, :-1], axis=2, out=bag_offsets[:, :, 1:])
    pooled_offsets = (bag_offsets + table_starts[:, :, None]).reshape(count, -1)
    return per_table, starts, table_starts, bag_offsets, pooled_offsets


def _shared_rows(per_table: np.ndarray) -> list[tuple[int, ...]]:
    """Each row of ``(count, tables)`` as a tuple of ints, one tuple object per distinct row.
    Deduplicated in numpy (rows packed into one int64 key when they fit: sorting rows as
    records is ten times slower), then one cached small int per batch, not a list of ints."""
    radix = per_table.max(axis=0, initial=0) + 1
    if np.prod(radix.astype(np.float64)) < 2.0**62:
        weights = np.cumprod(np.concatenate(([1], radix[:-1])))
        _, first, which = np.unique((per_table * weights).sum(axis=1), return_index=True,
                                    return_inverse=True)
        rows = per_table[first]
    else:
        rows, which = np.unique(per_table, axis=0, return_inverse=True)
    distinct = [tuple(row) for row in rows.tolist()]
    return list(map(distinct.__getitem__, which.reshape(-1).tolist()))


def _set_ids(spec: ModelSpec, query: QuerySpec, rng: np.random.Generator, table: int,
             rows: int, stream_starts: np.ndarray) -> np.ndarray:
    """``(stream_starts[-1],)`` ids of one table's access streams of all batches, back to
    back; batch ``i``'s stream starts at ``stream_starts[i]``."""
    n = int(stream_starts[-1])
    if query.distribution == "profile":  # one LRU stream across the batches, not restarted
        from recstack.trace_queries import profile_ids

        return profile_ids(spec, query, table, n, rng)
    if query.distribution == "locality":  # the only distribution with memory across accesses
        return _locality_ids(rng, n, rows, query.reuse_probability, query.reuse_distance_max,
                             stream_starts[:-1])
    return _table_ids(query, rng, n, table, rows)


def _columns(steps: np.ndarray) -> slice | np.ndarray:
    """``steps`` as a slice when they are evenly spaced (they are: step ``t`` uses behaviour
    table ``t % len(behaviour)``): a strided copy, several times faster than a fancy one."""
    stride = int(steps[1] - steps[0]) if len(steps) > 1 else 1
    columns = slice(int(steps[0]), int(steps[-1]) + 1, stride)
    if stride > 0 and np.array_equal(np.arange(int(steps[-1]) + 1)[columns], steps):
        return columns
    return steps


def _split_streams(ids: np.ndarray, bags: np.ndarray, steps_count: int,
                   stream_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A table's streams (``bags[i]`` bag ids then ``steps_count`` step ids per batch) split
    into ``(sum(bags),)`` bag ids and ``(count, steps_count)`` step ids, batch order kept."""
    count = len(bags)
    if steps_count == 0:
        return ids, ids[:0].reshape(count, 0)
    if bags.min() == bags.max():  # every batch's stream has the same shape: a 2-D view
        streams = ids.reshape(count, -1)
        return streams[:, :bags[0]].reshape(-1), streams[:, bags[0]:]
    within = np.arange(len(ids), dtype=np.int64) - np.repeat(stream_starts[:-1],
                                                             bags + steps_count)
    is_bag = within < np.repeat(bags, bags + steps_count)
    return ids[is_bag], ids[~is_bag].reshape(count, steps_count)


def _place(pooled: np.ndarray, bag_ids: np.ndarray, bags: np.ndarray,
           destination: np.ndarray, fixed: bool) -> None:
    """Writes one table's ``(sum(bags),)`` ids, batch after batch, at ``destination[i]``
    (where batch ``i``'s run of that table starts in ``pooled``)."""
    count = len(bags)
    if fixed:  # every batch has the same ids per table: a column block of a 2-D view
        width, column = int(bags[0]), int(destination[0])
        pooled.reshape(count, -1)[:, column:column + width] = bag_ids.reshape(count, width)
        return
    runs = _exclusive_cumsum(bags)[:-1]
    pooled[np.repeat(destination - runs, bags) + np.arange(len(bag_ids))] = bag_ids
