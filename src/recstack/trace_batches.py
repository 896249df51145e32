"""A mapped trace (:mod:`recstack.trace_queries`) cut into query batches, and what those
batches touch.

A trace's samples are cut into batches in the trace's order, or in a seeded permutation of
it (``order``), wrapping around when more batches are asked for than the trace holds. A
pooled table's bag is the trace's bag of that (table, sample), of the trace's length (not
the spec's pooling factor). A behaviour sequence (DIN, DIEN) reads the sample's bag of its
table, truncated to the steps that table serves, a short bag repeated to fill them (an empty
one fills with row 0). Dense features come from the trace where it has as many as the model
(Criteo's 13, transformed log(x + 1)); otherwise they are drawn uniform in [0, 1) as for
synthetic queries. Everything is made before timing, as always.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from recstack.inputs import QuerySpec, expected_distinct_rows
from recstack.layout import table_layout
from recstack.specs import ModelSpec
from recstack.trace_queries import MappedTable, loaded_source, mapped_tables, source_mapping

# Spawn-key tag of the sample permutation: inputs uses 0 and 1, batch sets 2.
_ORDER_STREAM = 3


# --------------------------------------------------------------------------------------------
# Samples and bags
# --------------------------------------------------------------------------------------------


def sample_order(samples: int, query: QuerySpec, count: int) -> np.ndarray:
    """``(count,)`` int64: the trace sample each query slot reads, in order or shuffled,
    wrapping around."""
    if query.order == "shuffled":
        rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence(query.seed, spawn_key=(_ORDER_STREAM,))))
        order = rng.permutation(samples).astype(np.int64)
    else:
        order = np.arange(samples, dtype=np.int64)
    return order[np.arange(count, dtype=np.int64) % samples]


def _bags(table: MappedTable, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``samples``' bags starts in ``table.ids``, and its length."""
    starts = table.offsets[samples]
    return starts, table.offsets[samples + 1] - starts


def bag_ids(table: MappedTable, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bags of ``samples`` back to back ``(ids,)`` and their lengths ``(samples,)``."""
    from recstack.batch_set import _exclusive_cumsum

    starts, lengths = _bags(table, samples)
    run_starts = _exclusive_cumsum(lengths)
    positions = np.repeat(starts - run_starts[:-1], lengths) + np.arange(run_starts[-1])
    return table.ids[positions], lengths


def sequence_ids(table: MappedTable, samples: np.ndarray, steps: int) -> np.ndarray:
    """``(samples, steps)``: each sample's bag truncated to ``steps``, a short bag repeated,
    an empty one row 0."""
    starts, lengths = _bags(table, samples)
    within = np.arange(steps, dtype=np.int64)[None, :] % np.maximum(lengths, 1)[:, None]
    positions = np.minimum(starts[:, None] + within, max(table.ids.size - 1, 0))
    ids = table.ids[positions] if table.ids.size else np.zeros((len(samples), steps),
                                                               dtype=np.int64)
    return np.where(lengths[:, None] > 0, ids, 0)




# --------------------------------------------------------------------------------------------
# Working sets
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _first_touches(spec: ModelSpec, query: QuerySpec) -> dict[int, np.ndarray]:
    """Per model table, the sorted query slots (in sample order) where each distinct row is
    first read: the distinct rows of the first ``n`` slots are ``searchsorted(first, n)``."""
    samples = loaded_source(query).samples
    order = sample_order(samples, query, samples)
    tables = mapped_tables(spec, query)
    firsts = {}
    for table in tables:
        ids, lengths = bag_ids(table, order)
        slot = np.repeat(np.arange(samples, dtype=np.int64), lengths)
        _, first = np.unique(ids, return_index=True)
        firsts[table.table] = np.sort(slot[first])
    return firsts


def ids_per_sample(spec: ModelSpec, query: QuerySpec) -> float:
    """The mean ids one trace sample gives the model's pooled tables: the trace's bag
    lengths, not the spec's pooling factors (a Criteo sample has one id per table)."""
    tables = mapped_tables(spec, query)
    return sum(tables[t].ids.size for t in table_layout(spec).pooled) / max(
        1, loaded_source(query).samples)


def distinct_bytes(spec: ModelSpec, query: QuerySpec, batch_size: int, batches: int,
                   gathers: list[Any]) -> float:
    """Distinct embedding bytes ``batches`` batches of ``batch_size`` touch under a file
    query, for the ``gathers`` of :func:`recstack.batch_work.table_gathers`. A trace counts
    its mapped ids exactly (wrapping past its end adds no rows); a profile counts its
    first touches, ``cold_fraction`` of the draws (the support restriction early in a
    stream makes a few more). WnD's cross features are hashed from the ids: counted as
    uniform draws."""
    slots = batch_size * batches
    if query.distribution == "trace":
        firsts = _first_touches(spec, query)
        distinct = {t: int(np.searchsorted(f, slots)) for t, f in firsts.items()}
    else:
        profile, mapping, distinct = loaded_source(query), source_mapping(spec, query), {}
    total = 0.0
    for gather in gathers:
        if gather.part == "cross":
            rows = expected_distinct_rows(QuerySpec(), gather.rows, gather.draws * batches)
        elif query.distribution == "trace":
            rows = distinct[gather.table]
        else:
            cold = profile.tables[mapping[gather.table]].cold_fraction
            rows = min(gather.rows, cold * gather.draws * batches)
        total += rows * gather.row_bytes
    return total




# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def trace_batch_set(spec: ModelSpec, query: QuerySpec, batch_size: int, count: int,
                    positions: np.ndarray | None = None) -> Any:
    """``count`` batches of ``batch_size`` samples cut from the query's trace, as a
    :class:`~recstack.batch_set.BatchSet` of the shapes synthetic queries have. The batches
    read the query slots ``0 .. batch_size * count - 1`` of :func:`sample_order`, or the
    slots ``positions`` ``(batch_size * count,)`` name (a serving library's requests read
    one stream of slots across its sub-batches of every size)."""
    from recstack.batch_set import (_columns, _place, _shared_rows, assemble, bag_layout,
                                    synthetic_dense)
    from recstack.inputs import _steps_by_table

    trace = loaded_source(query)
    tables = {t.table: t for t in mapped_tables(spec, query)}
    layout = table_layout(spec)
    if positions is None:
        slots = sample_order(trace.samples, query, batch_size * count)
    else:
        slots = sample_order(trace.samples, query, int(positions.max()) + 1)[positions]

    gathered = [bag_ids(tables[table], slots) for table in layout.pooled]
    lengths = np.stack([bag_lengths.reshape(count, batch_size) for _, bag_lengths in gathered],
                       axis=1) if gathered else np.zeros((count, 0, batch_size), np.int64)
    per_table, starts, table_starts, bag_offsets, pooled_offsets = bag_layout(lengths)
    pooled = np.empty(int(starts[-1]), dtype=np.int64)
    for k, (ids, _) in enumerate(gathered):
        _place(pooled, ids, per_table[:, k], starts[:-1] + table_starts[:, k], False)

    sequence = None
    if layout.sequence_length > 0:
        sequence = np.empty((count * batch_size, layout.sequence_length), dtype=np.int64)
        for table, steps in _steps_by_table(layout).items():
            sequence[:, _columns(steps)] = sequence_ids(tables[table], slots, len(steps))

    dense = (trace.dense.numpy()[slots] if dense_source(spec, query) == "trace"
             else synthetic_dense(spec, query.seed, count * batch_size))
    return assemble(spec, batch_size, pooled, starts, _shared_rows(per_table), bag_offsets,
                    pooled_offsets, dense, sequence, False)


def dense_source(spec: ModelSpec, query: QuerySpec) -> str:
    """Where a trace query's dense features come from: ``"trace"`` (as many as the model
    has), ``"uniform"`` (drawn as for synthetic queries) or ``"none"``."""
    if spec.dense_features == 0:
        return "none"
    trace = loaded_source(query)
    if trace.dense is not None and trace.dense.shape[1] == spec.dense_features:
        return "trace"
    return "uniform"
