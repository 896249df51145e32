"""How the locality of the generated inputs meets a cache, from the access streams alone.

No simulator runs here: the embedding-row ids that :func:`recstack.inputs.generate_batches`
produces are read as per-table *access streams* (:func:`table_streams`), and each access gets
its exact LRU *stack distance* (:mod:`recstack.analysis.stack_distance`). From the distances
follow the hit rate of an LRU cache of any size, and here a per-table summary
(:func:`locality_profile`) and the hit rates of one cache all tables share
(:func:`shared_cache_hit_rates`).

What the hit rates mean
-----------------------
A "row" is one embedding vector of ``spec.embedding_dim`` float32 values, so a cache of
``B`` bytes holds ``B // (embedding_dim * 4)`` rows (:func:`capacity_rows`). Each table is
analysed alone, as if it had the whole cache to itself (:func:`shared_cache_hit_rates`
interleaves all tables into one cache instead). These are the hit rates of an idealized row
cache: fully associative, true LRU, whole rows as the unit. A real CPU or GPU cache is
set-associative, with 64 B lines (a row of 32 float32 spans two lines, and rows need not be
line-aligned), a replacement policy that only approximates LRU, and it also holds the
weights of the MLPs, the activations and the ids themselves. Read the numbers as the
locality the inputs offer, an upper bound of sorts on what a cache of that size can reach,
not as the hit rate a profiler would measure.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from recstack.analysis.stack_distance import (HISTOGRAM_COLUMNS, as_numpy, check_capacity,
                                              hit_rate_curve, reuse_distance_histogram,
                                              stack_distances)
from recstack.batch import Batch
from recstack.errors import RecstackError
from recstack.layout import table_layout
from recstack.specs import ModelSpec
from recstack.units import size_token

BYTES_PER_VALUE = 4
"""Embedding values are float32."""

PROFILE_COLUMNS = ["table", "rows", "accesses", "unique_rows", "unique_fraction",
                   "reuse_fraction", "median_stack_distance", "p90_stack_distance"]
"""The fixed columns of :func:`locality_profile`; one ``hit_rate_<size>`` column per cache
size follows them."""

SHARED_COLUMNS = ["cache_bytes", "capacity_rows", "hit_rate"]


# --------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------


def _batch_streams(spec: ModelSpec, batch: Batch) -> dict[int, list[np.ndarray]]:
    """One batch's ids per table: pooled ids first, then the sequence columns, sample-major."""
    layout = table_layout(spec)
    if len(batch.bag_indices) != len(layout.pooled):
        raise RecstackError(
            f"batch has {len(batch.bag_indices)} pooled tables but spec {spec.name!r} has "
            f"{len(layout.pooled)}; pass batches generated for this spec")
    parts: dict[int, list[np.ndarray]] = {}
    for table, ids in zip(layout.pooled, batch.bag_indices, strict=True):
        parts.setdefault(table, []).append(as_numpy(ids).reshape(-1).astype(np.int64))
    if layout.sequence_length > 0:
        if batch.sequence is None:
            raise RecstackError(f"spec {spec.name!r} reads a behaviour sequence but the batch "
                                "has none; pass batches generated for this spec")
        sequence = as_numpy(batch.sequence).astype(np.int64)
        if sequence.ndim != 2 or sequence.shape[1] != layout.sequence_length:
            raise RecstackError(
                f"batch sequence has shape {tuple(sequence.shape)}, expected "
                f"(batch, {layout.sequence_length}) for spec {spec.name!r}")
        columns: dict[int, list[int]] = {}
        for step in range(layout.sequence_length):
            columns.setdefault(layout.behaviour_table_of_step(step), []).append(step)
        for table, steps in columns.items():
            # Row-major ravel of the selected columns: sample after sample, and within a
            # sample the steps in order, as the generator laid them out.
            parts.setdefault(table, []).append(sequence[:, steps].reshape(-1))
    return parts


def table_streams(spec: ModelSpec, batches: Iterable[Batch]) -> dict[int, np.ndarray]:
    """Each table's access stream: ``{table index: (accesses,) int64 row ids}``.

    Keys are indices into ``spec.rows``, ascending; every table the model reads has one
    (possibly empty when there are no batches). The order is the generation order of
    :mod:`recstack.inputs`, batch after batch; within a batch, a pooled table's flat bag ids
    (``batch.bag_indices[k]``: bag after bag, sample after sample), then, for a behaviour
    table, the sequence entries of the steps that read it, sample-major (sample 0's steps in
    order, then sample 1's, ...). Within one batch this is exactly the stream the generator
    applied its id distribution to, so the ``"locality"`` reuse shows up as generated.

    Raises RecstackError when a batch does not fit ``spec`` (another model's batches).
    """
    layout = table_layout(spec)
    tables = sorted(set(layout.pooled) | set(layout.behaviour))
    parts: dict[int, list[np.ndarray]] = {table: [] for table in tables}
    for batch in batches:
        for table, arrays in _batch_streams(spec, batch).items():
            parts[table].extend(arrays)
    return {table: (np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64))
            for table, arrays in parts.items()}


def combined_stream(spec: ModelSpec, batches: Iterable[Batch]) -> np.ndarray:
    """All tables in one ``(accesses,) int64`` stream of global row keys, for a shared cache.

    Row ``r`` of table ``t`` becomes ``sum(spec.rows[:t]) + r``, so rows of different tables
    never collide. The order is the one a model executes: batch after batch, and within a
    batch table after table in ascending index, each table's ids in the order of
    :func:`table_streams`.
    """
    rows = spec.rows
    offsets = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])
    pieces: list[np.ndarray] = []
    for batch in batches:
        per_table = _batch_streams(spec, batch)
        for table in sorted(per_table):
            pieces.extend(ids + offsets[table] for ids in per_table[table])
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Per-model summaries
# --------------------------------------------------------------------------------------------


def capacity_rows(spec: ModelSpec, cache_bytes: int) -> int:
    """Embedding rows a cache of ``cache_bytes`` holds: ``cache_bytes // (dim * 4)``."""
    size = check_capacity(cache_bytes)
    return size // (spec.embedding_dim * BYTES_PER_VALUE)


def cache_label(cache_bytes: int) -> str:
    """``"32KiB"``, ``"2MiB"``, ``"1GiB"``; bytes (``"1000B"``) when not a whole KiB."""
    return size_token(cache_bytes)


def hit_rate_column(cache_bytes: int) -> str:
    """The :func:`locality_profile` column of one cache size, e.g. ``"hit_rate_32KiB"``."""
    return f"hit_rate_{cache_label(cache_bytes)}"


def _unique_sizes(cache_bytes: Iterable[int]) -> list[int]:
    sizes: list[int] = []
    for size in cache_bytes:
        size = check_capacity(size)
        if size not in sizes:
            sizes.append(size)
    return sizes


def locality_profile(spec: ModelSpec, batches: Iterable[Batch],
                     cache_bytes: Iterable[int] = ()) -> pd.DataFrame:
    """One row per table the model reads, ascending table index: :func:`stream_locality`
    of its access stream (:func:`table_streams`), ``rows`` the table's (scaled) size and
    a cache row one float32 embedding vector (``embedding_dim * 4`` bytes).

    Raises RecstackError when the batches do not fit ``spec`` or a cache size is negative.
    """
    rows = spec.rows
    streams = table_streams(spec, batches)
    return stream_locality(streams, {table: int(rows[table]) for table in streams},
                           spec.embedding_dim * BYTES_PER_VALUE, cache_bytes)


def stream_distances(streams: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Each stream's stack distances, for the analyses below to share (the costly part)."""
    return {table: stack_distances(stream) for table, stream in streams.items()}


def stream_locality(streams: dict[int, np.ndarray], rows: dict[int, int], row_bytes: int,
                    cache_bytes: Iterable[int] = (),
                    distances: dict[int, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per stream (``{table: ids}``, a model's or a trace's), in key order, from
    its stack distances (``distances``: :func:`stream_distances`, computed when None).
    Columns (PROFILE_COLUMNS):

    - ``table``: the key; ``rows``: the table's size (``rows[table]``);
    - ``accesses``: length of its stream;
    - ``unique_rows``: distinct rows in it; ``unique_fraction``: ``unique_rows / accesses``;
    - ``reuse_fraction``: share of accesses that re-access a row (``1 - unique_fraction``);
    - ``median_stack_distance``, ``p90_stack_distance``: over the re-accesses only
      (``numpy.percentile``, linear interpolation); NaN when there are none;
    - then, per cache size in ``cache_bytes`` (first occurrence order, duplicates dropped),
      ``hit_rate_<size>`` (:func:`hit_rate_column`): the LRU hit rate of this table alone
      in a cache of ``size // row_bytes`` rows; the cache starts empty, so first accesses
      count as misses.

    Fractions and hit rates are NaN for a table with no accesses.
    """
    sizes = _unique_sizes(cache_bytes)
    capacities = [size // row_bytes for size in sizes]
    distances = distances if distances is not None else stream_distances(streams)
    records = []
    for table in sorted(streams):
        accesses = int(streams[table].size)
        reuses = distances[table][distances[table] >= 0]
        unique = accesses - int(reuses.size)
        record: dict[str, object] = {
            "table": table,
            "rows": int(rows[table]),
            "accesses": accesses,
            "unique_rows": unique,
            "unique_fraction": unique / accesses if accesses else float("nan"),
            "reuse_fraction": reuses.size / accesses if accesses else float("nan"),
            "median_stack_distance": (float(np.median(reuses)) if reuses.size
                                      else float("nan")),
            "p90_stack_distance": (float(np.percentile(reuses, 90)) if reuses.size
                                   else float("nan")),
        }
        curve = hit_rate_curve(distances[table], capacities)
        for size, rate in zip(sizes, curve["hit_rate"], strict=True):
            record[hit_rate_column(size)] = float(rate)
        records.append(record)
    columns = PROFILE_COLUMNS + [hit_rate_column(size) for size in sizes]
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in ("table", "rows", "accesses", "unique_rows"):
        frame[column] = frame[column].astype(np.int64)
    for column in columns[4:]:
        frame[column] = frame[column].astype(np.float64)
    return frame


DISTANCE_BINS = (16, 256, 4096, 65536, 1 << 20)
"""Coarse stack-distance ranges for :func:`distance_distribution`: cold, 0-15, 16-255, ..."""


def distance_distribution(distances: dict[int, np.ndarray],
                          bins: Iterable[int] = DISTANCE_BINS) -> pd.DataFrame:
    """Each stream's LRU stack-distance distribution, from its stack distances
    (:func:`stream_distances`): ``table`` then the columns of
    :func:`recstack.analysis.stack_distance.reuse_distance_histogram` (``label``,
    ``bin_low``, ``bin_high``, ``count``, ``fraction``), the first row of each table its
    first accesses (``cold``)."""
    frames = []
    for table in sorted(distances):
        histogram = reuse_distance_histogram(distances[table], list(bins))
        frames.append(histogram.assign(table=table))
    if not frames:
        return pd.DataFrame(columns=["table", *HISTOGRAM_COLUMNS])
    return pd.concat(frames, ignore_index=True)[["table", *HISTOGRAM_COLUMNS]]


def shared_cache_hit_rates(spec: ModelSpec, batches: Iterable[Batch],
                           cache_bytes: Iterable[int]) -> pd.DataFrame:
    """LRU hit rate when all tables share one cache (:func:`combined_stream`).

    One row per cache size (first occurrence order, duplicates dropped); columns
    ``cache_bytes``, ``capacity_rows`` (``cache_bytes // (embedding_dim * 4)``), ``hit_rate``
    (over all accesses of all tables; NaN when there are none).
    """
    sizes = _unique_sizes(cache_bytes)
    capacities = [capacity_rows(spec, size) for size in sizes]
    curve = hit_rate_curve(stack_distances(combined_stream(spec, batches)), capacities)
    return pd.DataFrame({"cache_bytes": np.asarray(sizes, dtype=np.int64),
                         "capacity_rows": curve["capacity_rows"].to_numpy(),
                         "hit_rate": curve["hit_rate"].to_numpy()}, columns=SHARED_COLUMNS)
