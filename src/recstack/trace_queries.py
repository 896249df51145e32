"""Queries from a user's file: a real trace's ids mapped onto a model's tables, or ids
generated from a reuse profile fitted to one (the ``trace`` and ``profile`` distributions of
:class:`~recstack.inputs.QuerySpec`); :mod:`recstack.trace_batches` cuts a mapped trace into
batches.

Tables. The file's tables are mapped onto the model's, in ``spec.rows`` order: by default the
model's table ``t`` reads the file's table ``t`` (a file with fewer tables than the model is
refused; extra tables are left unread); ``QuerySpec.table_map`` names the file's table for
each model table instead (repeats allowed), and ``cycle_tables`` maps table ``t`` to the
file's ``t`` modulo its tables. A trace's ids at or beyond the model table's rows are folded
in modulo the rows, as the DLRM reference hashes Criteo's categoricals; how many were folded
is reported (:func:`folding`), never hidden.

The file is read once per process (it is the same for every point of a run) and its digest
checked against the one planned: a file changed since planning is refused.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recstack.errors import RecstackError
from recstack.inputs import FILE_DISTRIBUTIONS, QuerySpec
from recstack.specs import ModelSpec, resolve_spec
from recstack.trace_files import file_digest

FOLDING_COLUMNS = ["table", "source_table", "rows", "ids", "folded_ids", "folded_fraction"]


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


def source_mapping(spec: ModelSpec, query: QuerySpec) -> list[int]:
    """:func:`table_mapping` onto the query's file (a trace's or a profile's tables);
    refuses a file whose tables cannot be mapped onto ``spec``'s (its RecstackError)."""
    loaded = loaded_source(query)
    count = loaded.tables if query.distribution == "trace" else len(loaded.tables)
    return table_mapping(spec, query, count)


def check_models(names: Iterable[str], query: QuerySpec) -> None:
    """Refuses, before anything runs, a file query whose tables cannot be mapped onto one of
    the models ``names`` (:func:`source_mapping`'s one-line error); nothing for synthetic
    queries."""
    if not query.source:
        return
    for name in names:
        source_mapping(resolve_spec(name), query)


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
    for table, source in enumerate(source_mapping(spec, query)):
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
# Profiles
# --------------------------------------------------------------------------------------------


def profile_ids(spec: ModelSpec, query: QuerySpec, table: int, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` ids of model table ``table`` generated from its mapped profile table: one
    LRU stream (:func:`recstack.reuse_profile.generate_ids`)."""
    from recstack.reuse_profile import generate_ids

    source = source_mapping(spec, query)[table]
    return generate_ids(loaded_source(query).tables[source], n, int(spec.rows[table]), rng)


def query_note(spec: ModelSpec, query: QuerySpec) -> str:
    """One line for the plan's notes: the file, the mapping, what was folded. Raises the
    mapping's RecstackError for a file that does not fit ``spec``."""
    name = Path(query.source).name
    mapping = _ranges(source_mapping(spec, query))
    if query.distribution == "profile":
        return f"queries: {spec.name} generated from profile {name} (tables {mapping})"
    from recstack.trace_batches import dense_source

    return (f"queries: {spec.name} reads trace {name} ({loaded_source(query).samples} samples, "
            f"{query.order}; tables {mapping}; "
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
