"""How the locality of the generated inputs meets a cache, from the access streams alone.

No simulator runs here: the embedding-row ids that :func:`recstack.inputs.generate_batches`
produces are read as per-table *access streams* (:func:`table_streams`), and each access gets
its exact LRU *stack distance* (:func:`stack_distances`). From the distances follow the hit
rate of an LRU cache of any size (:func:`lru_hit_rate`, :func:`hit_rate_curve`), a reuse
histogram (:func:`reuse_distance_histogram`) and a per-table summary
(:func:`locality_profile`).

Stack distance versus time distance
-----------------------------------
The stack distance of an access is the number of *distinct* rows accessed since the previous
access to the same row (0 for an immediate repeat; :data:`COLD`, -1, for the first access to
a row). A fully associative LRU cache of ``C`` rows hits an access exactly when
``0 <= distance < C`` (Mattson et al., 1970), so one pass gives the hit rate at every size.

The ``"locality"`` distribution of :mod:`recstack.inputs` draws a *time* distance ``d``: the
access repeats the row accessed ``d`` accesses earlier. Rows repeat inside those ``d``
accesses too, so the time distance is an upper bound on the stack distance, not the stack
distance itself: a stream generated with ``reuse_distance_max = 4096`` hits in caches of
fewer than 4096 rows more often than ``d`` alone suggests. The stack distances computed here
are the exact ones, whatever the generator.

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

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from recstack.batch import Batch
from recstack.errors import RecstackError
from recstack.layout import table_layout
from recstack.specs import ModelSpec

COLD = -1
"""The stack distance :func:`stack_distances` gives a first access (a compulsory miss)."""

BYTES_PER_VALUE = 4
"""Embedding values are float32."""

PROFILE_COLUMNS = ["table", "rows", "accesses", "unique_rows", "unique_fraction",
                   "reuse_fraction", "median_stack_distance", "p90_stack_distance"]
"""The fixed columns of :func:`locality_profile`; one ``hit_rate_<size>`` column per cache
size follows them."""

CURVE_COLUMNS = ["capacity_rows", "hit_rate"]
HISTOGRAM_COLUMNS = ["label", "bin_low", "bin_high", "count", "fraction"]
SHARED_COLUMNS = ["cache_bytes", "capacity_rows", "hit_rate"]

# Pairs (j, i) inside one aligned block of this many accesses are counted by direct
# comparison; the levels above it by sorted merges. A power of two.
_DIRECT_BLOCK = 32


# --------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------


def _as_numpy(values: object) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on a device
        values = values.detach().cpu().numpy()  # type: ignore[attr-defined]
    return np.asarray(values)


def _batch_streams(spec: ModelSpec, batch: Batch) -> dict[int, list[np.ndarray]]:
    """One batch's ids per table: pooled ids first, then the sequence columns, sample-major."""
    layout = table_layout(spec)
    if len(batch.bag_indices) != len(layout.pooled):
        raise RecstackError(
            f"batch has {len(batch.bag_indices)} pooled tables but spec {spec.name!r} has "
            f"{len(layout.pooled)}; pass batches generated for this spec")
    parts: dict[int, list[np.ndarray]] = {}
    for table, ids in zip(layout.pooled, batch.bag_indices, strict=True):
        parts.setdefault(table, []).append(_as_numpy(ids).reshape(-1).astype(np.int64))
    if layout.sequence_length > 0:
        if batch.sequence is None:
            raise RecstackError(f"spec {spec.name!r} reads a behaviour sequence but the batch "
                                "has none; pass batches generated for this spec")
        sequence = _as_numpy(batch.sequence).astype(np.int64)
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
# Stack distances
# --------------------------------------------------------------------------------------------


def previous_occurrence(stream: np.ndarray) -> np.ndarray:
    """``(n,)`` int64: the index of the previous access to the same value, -1 when none."""
    stream = _as_1d(stream)
    n = stream.size
    previous = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return previous
    order = np.argsort(stream, kind="stable")  # equal values keep their stream order
    ordered = stream[order]
    same = ordered[1:] == ordered[:-1]
    previous[order[1:][same]] = order[:-1][same]
    return previous


def _as_1d(stream: object) -> np.ndarray:
    array = _as_numpy(stream)
    if array.ndim != 1:
        raise RecstackError(f"an access stream must be one-dimensional, got shape "
                            f"{tuple(array.shape)}")
    return array


def stack_distances(stream: np.ndarray) -> np.ndarray:
    """The exact LRU stack distance of every access: ``(n,)`` int64.

    ``distance[i]`` is the number of distinct values in ``stream[p + 1 : i]``, where ``p`` is
    the previous access to ``stream[i]``; :data:`COLD` (-1) when there is none. For
    ``[a, b, c, b, a]``: ``[-1, -1, -1, 1, 2]``. Values may be any sortable 1-D array
    (numpy or a torch tensor).

    Algorithm, O(n log n) in vectorized numpy passes (about 0.5-0.8 s for 1e6 accesses):
    with ``prev[j]`` the previous occurrence of access ``j``, the accesses in the window
    ``(p, i)`` that repeat a value already seen in that window are exactly those with
    ``prev[j] > p``, so ``distance[i] = (i - p - 1) - #{j in (p, i): prev[j] > p}``. Since
    ``prev[j] < j``, no ``j <= p`` has ``prev[j] > p``, and the count is the 2-D dominance
    count ``#{j < i: prev[j] > prev[i]}``. It is answered offline like a bottom-up merge
    sort: pairs inside aligned blocks of 32 accesses by direct comparison; then, level by
    level, for every ``i`` in the right half of an aligned block of ``2s`` accesses, the
    left-half ``j`` of its block with ``prev[j] > prev[i]``, from one global sort of
    ``block * (n + 1) + prev`` keys and two ``searchsorted`` calls. Every pair ``j < i`` is
    counted at exactly one level. Accesses with ``prev = -1`` never count and are left out.
    """
    stream = _as_1d(stream)
    n = stream.size
    previous = previous_occurrence(stream)
    distances = np.full(n, COLD, dtype=np.int64)
    queries = np.flatnonzero(previous >= 0)  # the re-accesses; also the only points that count
    if queries.size == 0:
        return distances
    query_prev = previous[queries]
    counts = np.zeros(queries.size, dtype=np.int64)

    # Pairs inside one aligned block of _DIRECT_BLOCK accesses.
    width = _DIRECT_BLOCK
    padded = -(-n // width) * width
    blocks = np.full(padded, -1, dtype=np.int64)
    blocks[:n] = previous
    blocks = blocks.reshape(-1, width)
    direct = np.zeros(blocks.shape, dtype=np.int64)
    for shift in range(1, width):
        direct[:, shift:] += blocks[:, :-shift] > blocks[:, shift:]
    counts += direct.reshape(-1)[queries]
    del blocks, direct

    # Pairs (j in the left half, i in the right half) of aligned blocks of 2 * half.
    stride = n + 1  # > any prev value, so keys of different blocks never interleave
    half = width
    while half < n:
        block = 2 * half
        left = queries[(queries & half) == 0]
        # A right-half access whose previous occurrence is at or past the left half's last
        # index has no left-half j with prev[j] > prev[i] (prev[j] < j): skip it.
        start = queries - (queries & (block - 1))
        right_mask = ((queries & half) != 0) & (query_prev < start + half - 1)
        if left.size and right_mask.any():
            keys = np.sort((left // block) * stride + previous[left])
            right_block = queries[right_mask] // block
            high = np.searchsorted(keys, (right_block + 1) * stride)
            low = np.searchsorted(keys, right_block * stride + query_prev[right_mask],
                                  side="right")
            counts[right_mask] += high - low
        half = block

    distances[queries] = (queries - query_prev - 1) - counts
    return distances


# --------------------------------------------------------------------------------------------
# Hit rates and histograms
# --------------------------------------------------------------------------------------------


def _distances(distances: object) -> np.ndarray:
    array = _as_1d(distances)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise RecstackError(f"stack distances must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_capacity(capacity: object) -> int:
    if (isinstance(capacity, (bool, np.bool_))
            or not isinstance(capacity, (int, np.integer)) or capacity < 0):
        raise RecstackError(f"cache capacity {capacity!r} is not allowed; expected an integer "
                            ">= 0 (rows)")
    return int(capacity)


def lru_hit_rate(distances: np.ndarray, capacity_rows: int) -> float:
    """Hit rate of a fully associative LRU cache of ``capacity_rows`` rows, starting empty.

    An access hits iff ``0 <= distance < capacity_rows``; first accesses always miss. NaN
    for an empty stream. Raises RecstackError for a negative or non-integer capacity.
    """
    capacity = _check_capacity(capacity_rows)
    distances = _distances(distances)
    if distances.size == 0:
        return float("nan")
    hits = np.count_nonzero((distances >= 0) & (distances < capacity))
    return hits / distances.size


def hit_rate_curve(distances: np.ndarray, capacities: Iterable[int]) -> pd.DataFrame:
    """LRU hit rate at each capacity: columns ``capacity_rows`` (int), ``hit_rate`` (float).

    One row per capacity, in the order given (duplicates kept). Sorts the distances once, so
    a long list of capacities costs little. Hit rates are NaN for an empty stream.
    """
    capacity_list = [_check_capacity(c) for c in capacities]
    distances = _distances(distances)
    reuses = np.sort(distances[distances >= 0])
    if distances.size == 0:
        rates = np.full(len(capacity_list), np.nan)
    else:
        hits = np.searchsorted(reuses, np.asarray(capacity_list, dtype=np.int64), side="left")
        rates = hits / distances.size
    return pd.DataFrame({"capacity_rows": np.asarray(capacity_list, dtype=np.int64),
                         "hit_rate": np.asarray(rates, dtype=np.float64)},
                        columns=CURVE_COLUMNS)


def _bin_label(low: int, high: int) -> str:
    return str(low) if high == low + 1 else f"{low}-{high - 1}"


def reuse_distance_histogram(distances: np.ndarray,
                             bins: Sequence[int] | None = None) -> pd.DataFrame:
    """How many accesses fall in each stack-distance range.

    Columns: ``label`` (str), ``bin_low`` (int, inclusive), ``bin_high`` (int, exclusive),
    ``count`` (int), ``fraction`` (count over all accesses, cold ones included; NaN when
    there are none). The first row is always the first accesses: ``label = "cold"``,
    ``bin_low = -1``, ``bin_high = 0``.

    ``bins=None`` gives log2 bins ``[0, 1), [1, 2), [2, 4), [4, 8), ...`` up to the first
    power of two above the largest distance (only the cold row when there are no
    re-accesses). Otherwise ``bins`` are strictly increasing integer edges ``>= 0``; 0 is
    prepended when missing, and distances at or past the last edge go to a final open bin
    ``[last edge, largest distance + 1)`` labelled ``">=<last edge>"`` (present only when
    non-empty). A bin of width one is labelled by its value, a wider one ``"low-high"``
    with ``high`` inclusive (e.g. ``"4-7"``).
    """
    distances = _distances(distances)
    reuses = distances[distances >= 0]
    largest = int(reuses.max()) if reuses.size else -1
    if bins is None:
        edges = [0, 1]
        while edges[-1] <= largest:
            edges.append(edges[-1] * 2)
        if largest < 0:
            edges = [0]
        open_bin = False
    else:
        given = list(bins)
        if (any(isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer))
                for e in given)
                or any(e < 0 for e in given)
                or any(b <= a for a, b in zip(given, given[1:]))):
            raise RecstackError(f"histogram bins {given!r} are not allowed; expected "
                                "strictly increasing integers >= 0")
        edges = [int(e) for e in given]
        if not edges or edges[0] != 0:
            edges = [0, *edges]
        open_bin = largest >= edges[-1]

    labels, lows, highs = ["cold"], [COLD], [0]
    for low, high in zip(edges, edges[1:]):
        labels.append(_bin_label(low, high))
        lows.append(low)
        highs.append(high)
    counts = [int(np.count_nonzero(distances < 0))]
    if len(edges) > 1:
        counts.extend(np.histogram(reuses[reuses < edges[-1]], bins=edges)[0].tolist())
    if open_bin:
        labels.append(f">={edges[-1]}")
        lows.append(edges[-1])
        highs.append(largest + 1)
        counts.append(int(np.count_nonzero(reuses >= edges[-1])))
    total = distances.size
    fractions = [c / total if total else float("nan") for c in counts]
    return pd.DataFrame({"label": labels, "bin_low": np.asarray(lows, dtype=np.int64),
                         "bin_high": np.asarray(highs, dtype=np.int64),
                         "count": np.asarray(counts, dtype=np.int64),
                         "fraction": np.asarray(fractions, dtype=np.float64)},
                        columns=HISTOGRAM_COLUMNS)


# --------------------------------------------------------------------------------------------
# Per-model summaries
# --------------------------------------------------------------------------------------------


def capacity_rows(spec: ModelSpec, cache_bytes: int) -> int:
    """Embedding rows a cache of ``cache_bytes`` holds: ``cache_bytes // (dim * 4)``."""
    size = _check_capacity(cache_bytes)
    return size // (spec.embedding_dim * BYTES_PER_VALUE)


def cache_label(cache_bytes: int) -> str:
    """``"32KiB"``, ``"2MiB"``, ``"1GiB"``; bytes (``"1000B"``) when not a whole KiB."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if cache_bytes >= size and cache_bytes % size == 0:
            return f"{cache_bytes // size}{unit}"
    return f"{cache_bytes}B"


def hit_rate_column(cache_bytes: int) -> str:
    """The :func:`locality_profile` column of one cache size, e.g. ``"hit_rate_32KiB"``."""
    return f"hit_rate_{cache_label(cache_bytes)}"


def _unique_sizes(cache_bytes: Iterable[int]) -> list[int]:
    sizes: list[int] = []
    for size in cache_bytes:
        size = _check_capacity(size)
        if size not in sizes:
            sizes.append(size)
    return sizes


def locality_profile(spec: ModelSpec, batches: Iterable[Batch],
                     cache_bytes: Iterable[int] = ()) -> pd.DataFrame:
    """One row per table the model reads, ascending table index. Columns (PROFILE_COLUMNS):

    - ``table``: index into ``spec.rows``; ``rows``: the table's (scaled) size;
    - ``accesses``: length of its stream (:func:`table_streams`);
    - ``unique_rows``: distinct rows in it; ``unique_fraction``: ``unique_rows / accesses``;
    - ``reuse_fraction``: share of accesses that re-access a row (``1 - unique_fraction``);
    - ``median_stack_distance``, ``p90_stack_distance``: over the re-accesses only
      (``numpy.percentile``, linear interpolation); NaN when there are none;
    - then, per cache size in ``cache_bytes`` (first occurrence order, duplicates dropped),
      ``hit_rate_<size>`` (:func:`hit_rate_column`): the LRU hit rate of this table alone
      in a cache of ``capacity_rows(spec, size) = size // (embedding_dim * 4)`` rows, one
      row being one float32 embedding vector; the cache starts empty, so first accesses
      count as misses.

    Fractions and hit rates are NaN for a table with no accesses. Raises RecstackError when
    the batches do not fit ``spec`` or a cache size is negative.
    """
    sizes = _unique_sizes(cache_bytes)
    capacities = [capacity_rows(spec, size) for size in sizes]
    rows = spec.rows
    records = []
    for table, stream in table_streams(spec, batches).items():
        distances = stack_distances(stream)
        accesses = int(stream.size)
        reuses = distances[distances >= 0]
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
        curve = hit_rate_curve(distances, capacities)
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
