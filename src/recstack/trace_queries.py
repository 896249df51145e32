"""Queries from a user's file: a real trace's ids cut into batches, or ids generated from a
reuse profile fitted to one (the ``trace`` and ``profile`` distributions of
:class:`~recstack.inputs.QuerySpec`).

Tables. The file's tables are mapped onto the model's, in ``spec.rows`` order: by default the
model's table ``t`` reads the file's table ``t`` (a file with fewer tables than the model is
refused; extra tables are left unread); ``QuerySpec.table_map`` names the file's table for
each model table instead (repeats allowed). A trace's ids at or beyond the model table's
rows are folded in modulo the rows, as the DLRM reference hashes Criteo's categoricals; how
many were folded is reported (:func:`folding`), never hidden.

Batches. A trace's samples are cut into batches in the trace's order, or in a seeded
permutation of it (``order``), wrapping around when more batches are asked for than the
trace holds. A pooled table's bag is the trace's bag of that (table, sample), of the
trace's length (not the spec's pooling factor). A behaviour sequence (DIN, DIEN) reads the
sample's bag of its table, truncated to the steps that table serves, a short bag repeated
to fill them (an empty one fills with row 0). Dense features come from the trace where it
has as many as the model (Criteo's 13, transformed log(x + 1)); otherwise they are drawn
uniform in [0, 1) as for synthetic queries. Everything is made before timing, as always.

The file is read once per process (it is the same for every point of a run) and its digest
checked against the one planned: a file changed since planning is refused.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recstack.errors import RecstackError
from recstack.inputs import FILE_DISTRIBUTIONS, QuerySpec, expected_distinct_rows
from recstack.layout import table_layout
from recstack.specs import ModelSpec
from recstack.trace_files import file_digest

FOLDING_COLUMNS = ["table", "source_table", "rows", "ids", "folded_ids", "folded_fraction"]

# Spawn-key tag of the sample permutation: inputs uses 0 and 1, batch sets 2.
_ORDER_STREAM = 3


# --------------------------------------------------------------------------------------------
# Reading (once per process) and resolving an option
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _load(distribution: str, source: str, digest: str, samples: int) -> Any:
    from recstack.reuse_profile import read_profile
    from recstack.trace_files import read_trace

    if distribution == "trace":
        loaded = read_trace(source, "--queries", max_samples=samples or None)
        found = loaded.digest
    else:
        loaded = read_profile(source, "--queries")
        found = file_digest(source)
    if digest and found != digest:
        raise RecstackError(f"{Path(source).name}: changed since the points were planned "
                            f"(digest {found}, planned {digest}); plan them again")
    return loaded


def loaded_source(query: QuerySpec) -> Any:
    """The query's :class:`~recstack.trace_files.Trace` or
    :class:`~recstack.reuse_profile.TraceProfile`, read once and checked."""
    if query.distribution not in FILE_DISTRIBUTIONS:
        raise ValueError(f"{query.distribution!r} queries read no file")
    return _load(query.distribution, query.source, query.source_digest, query.samples)


def file_query(distribution: str, path: str | Path, seed: int = 0,
               table_map: tuple[int, ...] | str = (), order: str = "sequential",
               samples: int = 0) -> QuerySpec:
    """A ``trace`` or ``profile`` query of the file at ``path`` (``table_map``: a map, or
    ``"cycle"``; a trace's first ``samples`` only, when not 0), read now (so a bad file is
    refused before anything is planned) and keyed to its content."""
    path = Path(path).expanduser().resolve()
    cycle = table_map == "cycle"
    query = QuerySpec(distribution=distribution, seed=seed, source=str(path),
                      table_map=() if cycle else table_map, order=order, samples=samples,
                      cycle_tables=cycle)
    if path.is_file():  # else reading says what is wrong with it
        query = dataclasses.replace(query, source_digest=file_digest(path))
    loaded_source(query)
    return query


def parse_queries(text: str, seed: int = 0, table_map: tuple[int, ...] | str = (),
                  order: str = "sequential", samples: int = 0) -> QuerySpec:
    """``--queries``: ``uniform``, ``zipf``, ``locality``, ``trace:FILE`` or
    ``profile:FILE``."""
    kind, _, path = text.partition(":")
    if kind in FILE_DISTRIBUTIONS:
        if not path:
            raise RecstackError(f"--queries: {text!r} names no file; expected {kind}:FILE")
        return file_query(kind, path, seed, table_map, order, samples)
    if table_map:
        raise RecstackError("--trace-tables: only trace:FILE and profile:FILE queries map "
                            "tables")
    if samples:
        raise RecstackError("--trace-samples: only trace:FILE queries read samples")
    from recstack.errors import SpecError

    try:
        return QuerySpec(distribution=text, seed=seed)
    except SpecError:
        raise RecstackError(f"--queries: {text!r} is not allowed; expected uniform, zipf, "
                            "locality, trace:FILE or profile:FILE") from None


def held_bytes(query: QuerySpec) -> int:
    """Memory a worker holds for a trace query beyond its batches: the trace read whole, a
    mapped copy of its ids (folding makes one) and its dense features; 0 for the others."""
    if query.distribution != "trace":
        return 0
    trace = loaded_source(query)
    dense = 0 if trace.dense is None else trace.dense.numel() * trace.dense.element_size()
    return 2 * (trace.indices.numel() + trace.offsets.numel()) * 8 + dense


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def table_mapping(spec: ModelSpec, query: QuerySpec, available: int) -> list[int]:
    """The file's table for each of the model's tables, in ``spec.rows`` order."""
    name = Path(query.source).name
    wanted = len(spec.rows)
    if query.cycle_tables:
        return [table % available for table in range(wanted)]
    if query.table_map:
        if len(query.table_map) != wanted:
            raise RecstackError(
                f"{name}: the table map names {len(query.table_map)} tables; {spec.name} "
                f"has {wanted} (one of the file's tables for each, in the spec's order)")
        beyond = [t for t in query.table_map if t >= available]
        if beyond:
            raise RecstackError(f"{name}: the table map names table {beyond[0]}; the file "
                                f"has {available} (0..{available - 1})")
        return list(query.table_map)
    if available < wanted:
        raise RecstackError(
            f"{name}: {available} tables for {spec.name}'s {wanted}; map them with "
            f"--trace-tables (one of the file's tables for each model table, repeats "
            f"allowed, or cycle)")
    return list(range(wanted))


def check_fits(spec: ModelSpec, query: QuerySpec) -> None:
    """Refuses a file whose tables cannot be mapped onto ``spec``'s (its RecstackError)."""
    loaded = loaded_source(query)
    count = loaded.tables if query.distribution == "trace" else len(loaded.tables)
    table_mapping(spec, query, count)


@dataclass(frozen=True)
class MappedTable:
    """One model table's ids from the trace: ``ids`` ``(n,)`` int64 folded into
    ``[0, rows)``, ``offsets`` ``(samples + 1,)`` where each sample's bag starts."""

    table: int
    source_table: int
    rows: int
    ids: np.ndarray
    offsets: np.ndarray
    folded: int


# A mapped trace is as large as the trace: keep one or two, not one per model of a run.
@functools.lru_cache(maxsize=2)
def mapped_tables(spec: ModelSpec, query: QuerySpec) -> tuple[MappedTable, ...]:
    """Every model table's trace ids, mapped and folded (see the module docstring)."""
    trace = loaded_source(query)
    tables = []
    for table, source in enumerate(table_mapping(spec, query, trace.tables)):
        rows = int(spec.rows[table])
        raw = trace.table_ids(source).numpy()
        offsets = np.append(trace.table_offsets(source).numpy(), raw.size).astype(np.int64)
        beyond = raw >= rows
        ids = np.where(beyond, raw % rows, raw) if beyond.any() else raw
        tables.append(MappedTable(table, source, rows, ids, offsets,
                                  int(np.count_nonzero(beyond))))
    return tuple(tables)


def folding(spec: ModelSpec, query: QuerySpec) -> pd.DataFrame:
    """One row per model table: ``table``, ``source_table`` (the trace's), ``rows``,
    ``ids`` (in the whole trace), ``folded_ids`` (at or beyond ``rows``, folded modulo),
    ``folded_fraction`` (NaN for a table without ids)."""
    records = [{"table": t.table, "source_table": t.source_table, "rows": t.rows,
                "ids": int(t.ids.size), "folded_ids": t.folded,
                "folded_fraction": t.folded / t.ids.size if t.ids.size else float("nan")}
               for t in mapped_tables(spec, query)]
    return pd.DataFrame.from_records(records, columns=FOLDING_COLUMNS)


@functools.lru_cache(maxsize=64)  # the recorder asks for every point it stores
def folded_fraction(spec: ModelSpec, query: QuerySpec) -> float:
    """The share of all the trace ids the model reads that were folded."""
    tables = mapped_tables(spec, query)
    total = sum(t.ids.size for t in tables)
    return sum(t.folded for t in tables) / total if total else 0.0


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


def bag_ids(table: MappedTable, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bags of ``samples`` back to back ``(ids,)`` and their lengths ``(samples,)``."""
    starts = table.offsets[samples]
    lengths = table.offsets[samples + 1] - starts
    run_starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=run_starts[1:])
    positions = np.repeat(starts - run_starts, lengths) + np.arange(int(lengths.sum()))
    return table.ids[positions], lengths


def sequence_ids(table: MappedTable, samples: np.ndarray, steps: int) -> np.ndarray:
    """``(samples, steps)``: each sample's bag truncated to ``steps``, a short bag repeated,
    an empty one row 0."""
    starts = table.offsets[samples]
    lengths = table.offsets[samples + 1] - starts
    within = np.arange(steps, dtype=np.int64)[None, :] % np.maximum(lengths, 1)[:, None]
    positions = np.minimum(starts[:, None] + within, max(table.ids.size - 1, 0))
    ids = table.ids[positions] if table.ids.size else np.zeros((len(samples), steps),
                                                               dtype=np.int64)
    return np.where(lengths[:, None] > 0, ids, 0)


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


def profile_ids(spec: ModelSpec, query: QuerySpec, table: int, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` ids of model table ``table`` generated from its mapped profile table: one
    LRU stream (:func:`recstack.reuse_profile.generate_ids`)."""
    from recstack.reuse_profile import generate_ids

    profile = loaded_source(query)
    source = table_mapping(spec, query, len(profile.tables))[table]
    return generate_ids(profile.tables[source], n, int(spec.rows[table]), rng)


# --------------------------------------------------------------------------------------------
# Working sets
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _first_touches(spec: ModelSpec, query: QuerySpec) -> dict[int, np.ndarray]:
    """Per model table, the sorted query slots (in sample order) where each distinct row is
    first read: the distinct rows of the first ``n`` slots are ``searchsorted(first, n)``."""
    tables = mapped_tables(spec, query)
    samples = tables[0].offsets.size - 1 if tables else 0
    order = sample_order(samples, query, samples)
    firsts = {}
    for table in tables:
        ids, lengths = bag_ids(table, order)
        slot = np.repeat(np.arange(samples, dtype=np.int64), lengths)
        _, first = np.unique(ids, return_index=True)
        firsts[table.table] = np.sort(slot[first])
    return firsts


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
        profile = loaded_source(query)
        mapping = table_mapping(spec, query, len(profile.tables))
        distinct = {}
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


def trace_batch_set(spec: ModelSpec, query: QuerySpec, batch_size: int, count: int) -> Any:
    """``count`` batches of ``batch_size`` samples cut from the query's trace, as a
    :class:`~recstack.batch_set.BatchSet` of the shapes synthetic queries have."""
    import torch

    from recstack.batch_set import (_DENSE_STREAM, BatchSet, _columns, _place, _shared_rows,
                                    _stream, bag_layout)
    from recstack.inputs import _steps_by_table

    trace = loaded_source(query)
    tables = {t.table: t for t in mapped_tables(spec, query)}
    layout = table_layout(spec)
    slots = sample_order(trace.samples, query, batch_size * count)

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

    dense = None
    if spec.dense_features > 0:
        if trace.dense is not None and trace.dense.shape[1] == spec.dense_features:
            dense = trace.dense.numpy()[slots]
        else:
            dense = _stream(query.seed, _DENSE_STREAM).random(
                (count * batch_size, spec.dense_features), dtype=np.float32)

    def tensor(array: np.ndarray | None, *shape: int) -> torch.Tensor | None:
        return None if array is None else torch.from_numpy(
            np.ascontiguousarray(array)).view(*shape)

    return BatchSet(batch_size, torch.from_numpy(pooled), starts.tolist(),
                    _shared_rows(per_table), torch.from_numpy(bag_offsets),
                    torch.from_numpy(pooled_offsets),
                    tensor(dense, count, batch_size, spec.dense_features),
                    tensor(sequence, count, batch_size, layout.sequence_length), False)


def dense_source(spec: ModelSpec, query: QuerySpec) -> str:
    """Where a trace query's dense features come from: ``"trace"`` or ``"uniform"``."""
    if spec.dense_features == 0:
        return "none"
    trace = loaded_source(query)
    if trace.dense is not None and trace.dense.shape[1] == spec.dense_features:
        return "trace"
    return "uniform"


def query_note(spec: ModelSpec, query: QuerySpec) -> str:
    """One line for the plan's notes: the file, the mapping, what was folded. Raises the
    mapping's RecstackError for a file that does not fit ``spec``."""
    loaded = loaded_source(query)
    name = Path(query.source).name
    if query.distribution == "profile":
        mapping = table_mapping(spec, query, len(loaded.tables))
        return (f"queries: {spec.name} generated from profile {name} "
                f"(tables {_ranges(mapping)})")
    mapping = table_mapping(spec, query, loaded.tables)
    return (f"queries: {spec.name} reads trace {name} ({loaded.samples} samples, "
            f"{query.order}; tables {_ranges(mapping)}; "
            f"{100 * folded_fraction(spec, query):.1f}% of ids folded into the tables' rows; "
            f"dense features {dense_source(spec, query)})")


def describe_file(query: QuerySpec) -> str:
    """:func:`recstack.inputs.describe` of a file query: the file's name and digest, the
    mapping when not the default, and for a trace the samples and their order."""
    mapped = (", tables cycled" if query.cycle_tables else
              f", tables {_ranges(list(query.table_map))}" if query.table_map else "")
    ids = (f"{query.distribution} {Path(query.source).name} "
           f"({query.source_digest[:8] or 'no digest'}{mapped})")
    if query.distribution != "trace":
        return f"{ids}, seed {query.seed}"
    first = f"first {query.samples} " if query.samples else ""
    return f"{ids}, {first}{query.order} samples, seed {query.seed}"


def _ranges(values: list[int]) -> str:
    """``0..7 as the model's``, else runs of consecutive tables: ``0-25,0-5``."""
    if values == list(range(len(values))):
        return f"0..{len(values) - 1} as the model's" if values else "none"
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)
