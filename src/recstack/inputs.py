"""Synthetic inference queries: dense features, pooled-table bags and behaviour sequences.

:func:`generate_batches` turns a :class:`~recstack.specs.ModelSpec` and a :class:`QuerySpec`
into ready :class:`~recstack.batch.Batch` objects. It is meant to run before a timed region,
never inside one.

Every (batch, table) pair draws from its own random stream, derived from the seed with
``np.random.SeedSequence(seed, spawn_key=...)``, so the ids of one table in one batch do not
depend on the order in which tables or batches are generated, nor on how many batches are
asked for. All ids of one table in one batch (its pooled bags, then the behaviour-sequence
columns it serves) form one *access stream*, in the order bag after bag within a sample,
sample after sample; the id distribution is applied to that stream.

Id distributions:

- ``uniform``: every row equally likely.
- ``zipf``: a bounded Zipf law over ranks ``1..rows`` (probability of rank ``k`` proportional
  to ``k ** -s``), sampled exactly by inverse CDF. Ranks map to rows through a seeded affine
  bijection ``(rank * a + b) % rows``, fixed per table for all batches, so the hot rows are
  the same in every batch but scattered over the table rather than packed at its start.
- ``locality``: recstack's own two-parameter reuse model, not DeepRecSys's method
  (DeepRecSys, like the DLRM reference's trace generator, samples LRU stack distances from a
  profile learned from a trace: each access either reuses the row at a drawn stack depth or
  touches a new row). Here each access, with probability
  ``reuse_probability``, repeats the row accessed ``d`` accesses earlier in the same stream;
  otherwise it takes a fresh uniform row. ``d`` is drawn log-uniformly from
  ``1..reuse_distance_max`` and clipped to the access's position. ``d`` is a distance in
  accesses (a time distance), which is an upper bound on the LRU stack distance (the number
  of distinct rows touched in between), not the stack distance itself. The stream restarts
  with every batch: there is no reuse across batches.
- ``trace``: the ids of a real access trace (:mod:`recstack.trace_files`), its tables mapped
  onto the model's and rows beyond a table folded in (:mod:`recstack.trace_queries`); bags
  keep the trace's lengths, samples are cut in order or in a seeded shuffle.
- ``profile``: ids generated from a reuse profile fitted to a trace
  (:mod:`recstack.reuse_profile`): one LRU stream per table across all the batches.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recstack.errors import SpecError
from recstack.layout import TableLayout, table_layout
from recstack.limits import INT32_MAX, SEED_MAX, check_int
from recstack.specs import ModelSpec

if TYPE_CHECKING:  # torch is imported where batches are made: a query spec needs none of it
    import torch

    from recstack.batch import Batch

DISTRIBUTIONS: tuple[str, ...] = ("uniform", "zipf", "locality", "trace", "profile")
FILE_DISTRIBUTIONS: tuple[str, ...] = ("trace", "profile")
"""Distributions whose ids come from a user's file (:mod:`recstack.trace_queries`)."""
POOLING_MODES: tuple[str, ...] = ("spec", "fixed", "variable")
TRACE_ORDERS: tuple[str, ...] = ("sequential", "shuffled")

# Spawn-key tags keep the per-batch streams and the per-table constants (the Zipf rank
# bijection) in disjoint parts of the seed space.
_BATCH_STREAM = 0
_TABLE_CONSTANT = 1
_DENSE_STREAM = 0  # table j uses stream 1 + j

# The Zipf CDF of the largest tables is tens of MB; a few entries cover one model's distinct
# table sizes without holding on to many.
_ZIPF_CDF_CACHE_SIZE = 8


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


@dataclass(frozen=True)
class QuerySpec:
    """How the synthetic queries are drawn. Immutable and hashable; validated on creation.

    ``distribution``: ``"uniform"``, ``"zipf"`` or ``"locality"`` (see the module docstring).
    ``zipf_exponent``: the Zipf exponent ``s > 0`` (used by ``"zipf"``).
    ``reuse_probability``: probability ``0 <= p < 1`` that an access repeats an earlier row
    (used by ``"locality"``).
    ``reuse_distance_max``: the largest reuse distance, in accesses of that table, ``>= 1``
    (used by ``"locality"``).
    ``pooling``: ``"spec"`` follows ``spec.pooling_fixed``; ``"fixed"`` gives every bag
    exactly the table's pooling factor ``L``; ``"variable"`` draws each bag's length uniformly
    from ``1..L`` (the DLRM reference's convention).
    ``seed``: a non-negative integer.
    ``source``: for ``"trace"`` and ``"profile"``, the file's absolute path; ``source_digest``
    the digest of its bytes (measurements are keyed to the content, and a file changed
    since planning is refused); ``table_map``: the file's table for each of the model's
    tables, in ``spec.rows`` order (empty: table ``t`` reads the file's table ``t``, or with
    ``cycle_tables`` the file's table ``t`` modulo its tables);
    ``order``: ``"sequential"`` (samples in the trace's order) or ``"shuffled"`` (a seeded
    permutation of them); ``samples``: read only the trace's first that many (0: all).
    """

    distribution: str = "uniform"
    zipf_exponent: float = 1.05
    reuse_probability: float = 0.5
    reuse_distance_max: int = 4096
    pooling: str = "spec"
    seed: int = 0
    source: str = ""
    source_digest: str = ""
    table_map: tuple[int, ...] = ()
    order: str = "sequential"
    samples: int = 0
    cycle_tables: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.distribution, str) or self.distribution not in DISTRIBUTIONS:
            raise SpecError("distribution", self.distribution,
                            f"expected one of {', '.join(DISTRIBUTIONS)}")
        if (not _is_number(self.zipf_exponent) or not math.isfinite(self.zipf_exponent)
                or self.zipf_exponent <= 0):
            raise SpecError("zipf_exponent", self.zipf_exponent,
                            "expected a finite number greater than 0")
        if (not _is_number(self.reuse_probability)
                or not 0 <= self.reuse_probability < 1):  # NaN fails this comparison too
            raise SpecError("reuse_probability", self.reuse_probability,
                            "expected a number with 0 <= p < 1")
        check_int("reuse_distance_max", self.reuse_distance_max, 1, INT32_MAX)
        if not isinstance(self.pooling, str) or self.pooling not in POOLING_MODES:
            raise SpecError("pooling", self.pooling,
                            f"expected one of {', '.join(POOLING_MODES)}")
        check_int("seed", self.seed, 0, SEED_MAX)
        self._check_source()
        # numpy scalars would leak into to_dict (not JSON-serializable) and into hashing.
        object.__setattr__(self, "zipf_exponent", float(self.zipf_exponent))
        object.__setattr__(self, "reuse_probability", float(self.reuse_probability))
        object.__setattr__(self, "reuse_distance_max", int(self.reuse_distance_max))
        object.__setattr__(self, "seed", int(self.seed))

    def _check_source(self) -> None:
        from_file = self.distribution in FILE_DISTRIBUTIONS
        if not isinstance(self.source, str) or bool(self.source) != from_file:
            raise SpecError("source", self.source,
                            "expected a file for the trace and profile distributions, "
                            "and none for the others")
        if not isinstance(self.source_digest, str):
            raise SpecError("source_digest", self.source_digest, "expected a string")
        if not isinstance(self.table_map, (tuple, list)) or not all(
                _is_int(t) and 0 <= t <= INT32_MAX for t in self.table_map):
            raise SpecError("table_map", self.table_map,
                            "expected a list of table numbers >= 0")
        if (self.table_map or self.cycle_tables) and not from_file:
            raise SpecError("table_map", self.table_map,
                            "only the trace and profile distributions map tables")
        if not isinstance(self.cycle_tables, bool) or (self.cycle_tables and self.table_map):
            raise SpecError("cycle_tables", self.cycle_tables, "true or false, without a map")
        if not isinstance(self.order, str) or self.order not in TRACE_ORDERS:
            raise SpecError("order", self.order, f"expected one of {', '.join(TRACE_ORDERS)}")
        check_int("samples", self.samples, 0, INT32_MAX)
        if self.samples and self.distribution != "trace":
            raise SpecError("samples", self.samples, "only a trace's samples are cut")
        object.__setattr__(self, "table_map", tuple(int(t) for t in self.table_map))

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-compatible values, for storing with results. The file
        fields appear only for the distributions that read one, so the synthetic
        distributions keep the dictionaries (and the point keys) they always had."""
        fields = asdict(self)
        fields["table_map"] = list(self.table_map)
        if self.distribution not in FILE_DISTRIBUTIONS:
            for name in ("source", "source_digest", "table_map", "order", "samples",
                         "cycle_tables"):
                del fields[name]
        return fields

    def fixed_pooling(self, spec: ModelSpec) -> bool:
        """Whether bags have exactly the pooling factor of their table, for ``spec`` (a
        trace's bags have the trace's lengths)."""
        if self.distribution == "trace":
            return False
        if self.pooling == "spec":
            return spec.pooling_fixed
        return self.pooling == "fixed"


def describe(query: QuerySpec) -> str:
    """One line for people, e.g. ``"zipf(s=1.05), fixed pooling, seed 0"``."""
    if query.distribution == "zipf":
        ids = f"zipf(s={query.zipf_exponent:g})"
    elif query.distribution == "locality":
        ids = (f"locality(p={query.reuse_probability:g}, "
               f"reuse distance 1..{query.reuse_distance_max})")
    elif query.distribution in FILE_DISTRIBUTIONS:
        from recstack.trace_queries import describe_file

        return describe_file(query)
    else:
        ids = "uniform"
    pooling = "pooling as in the spec" if query.pooling == "spec" else f"{query.pooling} pooling"
    return f"{ids}, {pooling}, seed {query.seed}"


# --------------------------------------------------------------------------------------------
# Id distributions: each returns ``(n,)`` int64 rows in [0, rows).
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_ZIPF_CDF_CACHE_SIZE)
def _zipf_cdf(rows: int, exponent: float) -> np.ndarray:
    """``(rows,)`` float64 cumulative probabilities of ranks 1..rows, last exactly 1."""
    weights = np.arange(1, rows + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    # Rounding may leave the last value a hair below 1; searchsorted must never pass the end.
    cdf[-1] = 1.0
    cdf.setflags(write=False)  # shared through the cache
    return cdf


def _zipf_rank_map(seed: int, table: int, rows: int) -> tuple[int, int]:
    """``(a, b)`` of the table's rank-to-row bijection ``(rank * a + b) % rows``."""
    if rows == 1:
        return 1, 0
    rng = np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(seed, spawn_key=(_TABLE_CONSTANT, table))))
    # Bounding a keeps rank * a inside int64 for any table size.
    a_high = max(2, min(rows, (2**63 - 1) // rows))
    while True:  # a few draws at most: most integers are coprime to rows
        a = int(rng.integers(1, a_high))
        if math.gcd(a, rows) == 1:
            break
    b = int(rng.integers(0, rows))
    return a, b


def _uniform_ids(rng: np.random.Generator, n: int, rows: int) -> np.ndarray:
    return rng.integers(0, rows, size=n, dtype=np.int64)


def _zipf_ids(rng: np.random.Generator, n: int, rows: int, exponent: float,
              rank_map: tuple[int, int]) -> np.ndarray:
    ranks = np.searchsorted(_zipf_cdf(rows, exponent), rng.random(n), side="right")
    a, b = rank_map
    return (ranks.astype(np.int64) * a + b) % rows


def _locality_ids(rng: np.random.Generator, n: int, rows: int, reuse_probability: float,
                  reuse_distance_max: int, segment_starts: np.ndarray | None = None
                  ) -> np.ndarray:
    """Ids of one access stream under the reuse model (see the module docstring).

    ``segment_starts``: sorted int64 positions in ``[0, n]``, the first 0, where a new
    stream restarts (several streams drawn back to back, e.g. one per batch): no access
    reuses a row from before the start of its own segment. None: one stream."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    fresh = rng.integers(0, rows, size=n, dtype=np.int64)
    reuse = rng.random(n) < reuse_probability
    # Log-uniform on [1, dmax + 1), floored: integers 1..dmax, small distances most likely.
    distance = np.floor(np.exp(rng.random(n) * math.log(reuse_distance_max + 1.0)))
    position = np.arange(n, dtype=np.int64)
    reach = position
    if segment_starts is not None:
        # Each access's own segment start, by a running maximum of the starts placed at
        # their positions (empty segments, repeated or trailing starts, change nothing).
        starts = np.asarray(segment_starts, dtype=np.int64)
        first = np.zeros(n, dtype=np.int64)
        inside = starts[starts < n]
        first[inside] = inside
        np.maximum.accumulate(first, out=first)
        reach = position - first
    distance = np.minimum(distance.astype(np.int64), reach)
    # Each access points at the access it copies (itself when fresh); pointer jumping follows
    # the chains of copies to their fresh root in O(log chain length) vectorized passes.
    source = np.where(reuse, position - distance, position)
    while True:
        jumped = source[source]
        if np.array_equal(jumped, source):
            break
        source = jumped
    return fresh[source]


def _table_ids(query: QuerySpec, rng: np.random.Generator, n: int, table: int,
               rows: int) -> np.ndarray:
    if query.distribution == "zipf":
        rank_map = _zipf_rank_map(query.seed, table, rows)
        return _zipf_ids(rng, n, rows, query.zipf_exponent, rank_map)
    if query.distribution == "locality":
        return _locality_ids(rng, n, rows, query.reuse_probability, query.reuse_distance_max)
    return _uniform_ids(rng, n, rows)


# Memoized: a roofline table asks for the same (query, table rows, draws) for every table of
# a size and every backend, and a Zipf expectation sums over all of a table's rows.
@functools.lru_cache(maxsize=4096)
def expected_distinct_rows(query: QuerySpec, rows: int, draws: float) -> float:
    """The expected number of distinct rows among ``draws`` ids of one table's access stream
    drawn under ``query`` (the rest re-read rows already read). Independent draws (uniform,
    Zipf) give ``sum_k 1 - (1 - p_k)^draws``; under ``locality`` only the fresh accesses,
    a ``1 - reuse_probability`` share, can bring new rows, and they are uniform."""
    if query.distribution in FILE_DISTRIBUTIONS:
        raise ValueError("the distinct rows of a file's ids depend on the table: use "
                         "recstack.trace_batches.distinct_bytes")
    if rows < 1 or not draws > 0:
        return 0.0
    if query.distribution == "zipf":
        probabilities = np.diff(_zipf_cdf(rows, query.zipf_exponent), prepend=0.0)
        return float(-np.expm1(draws * np.log1p(-np.minimum(probabilities, 1.0 - 1e-16))).sum())
    if query.distribution == "locality":
        draws = max(1.0, draws * (1.0 - query.reuse_probability))
    if rows == 1:
        return 1.0
    return float(-rows * math.expm1(draws * math.log1p(-1.0 / rows)))


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def _stream(seed: int, batch_index: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(seed, spawn_key=(_BATCH_STREAM, batch_index, stream))))


def _steps_by_table(layout: TableLayout) -> dict[int, np.ndarray]:
    """For each behaviour table, the sequence steps (columns) whose ids are its rows."""
    steps: dict[int, list[int]] = {}
    for step in range(layout.sequence_length):
        steps.setdefault(layout.behaviour_table_of_step(step), []).append(step)
    return {table: np.asarray(columns, dtype=np.int64) for table, columns in steps.items()}


def generate_batches(spec: ModelSpec, query: QuerySpec, batch_size: int,
                     num_batches: int) -> list[Batch]:
    """``num_batches`` batches of ``batch_size`` synthetic queries for ``spec``.

    Deterministic: the same arguments give bitwise identical tensors. Each batch holds

    - ``dense``: ``(batch, spec.dense_features)`` float32, uniform in [0, 1), or None when the
      model has no dense features;
    - ``bag_indices[k]``: ``(lookups_k,)`` int64 rows of pooled table ``layout.pooled[k]``,
      and ``bag_offsets[k]``: ``(batch,)`` int64 start of each sample's bag (for
      ``nn.EmbeddingBag``); with fixed pooling ``lookups_k = batch * layout.pooling[k]``;
    - ``sequence``: ``(batch, sequence_length)`` int64, column ``t`` holding rows of table
      ``layout.behaviour_table_of_step(t)``, or None for models without behaviour sequences.

    Raises SpecError when ``batch_size`` or ``num_batches`` is not a positive integer.
    """
    import torch

    from recstack.batch import Batch

    for field, value in (("batch_size", batch_size), ("num_batches", num_batches)):
        if not _is_int(value) or value < 1:
            raise SpecError(field, value, "expected an integer >= 1")
    batch_size, num_batches = int(batch_size), int(num_batches)
    if query.distribution in FILE_DISTRIBUTIONS:
        # A file's ids form one stream across all the batches: the batch set cuts it.
        from recstack.batch_set import generate_batch_set

        return list(generate_batch_set(spec, query, batch_size, num_batches))

    layout = table_layout(spec)
    rows = spec.rows
    fixed = query.fixed_pooling(spec)
    pooling_of = dict(zip(layout.pooled, layout.pooling, strict=True))
    steps_of = _steps_by_table(layout)
    tables = sorted(set(layout.pooled) | set(steps_of))

    batches = []
    for b in range(num_batches):
        dense = None
        if spec.dense_features > 0:
            rng = _stream(query.seed, b, _DENSE_STREAM)
            dense = torch.from_numpy(
                rng.random((batch_size, spec.dense_features), dtype=np.float32))

        bags: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        sequence = (np.empty((batch_size, layout.sequence_length), dtype=np.int64)
                    if layout.sequence_length > 0 else None)
        for table in tables:
            rng = _stream(query.seed, b, 1 + table)
            pooled_count = 0
            offsets = None
            if table in pooling_of:
                pooling = pooling_of[table]
                if fixed:
                    offsets = np.arange(batch_size, dtype=np.int64) * pooling
                    pooled_count = batch_size * pooling
                else:
                    lengths = rng.integers(1, pooling + 1, size=batch_size, dtype=np.int64)
                    offsets = np.zeros(batch_size, dtype=np.int64)
                    np.cumsum(lengths[:-1], out=offsets[1:])
                    pooled_count = int(lengths.sum())
            steps = steps_of.get(table)
            sequence_count = batch_size * len(steps) if steps is not None else 0

            ids = _table_ids(query, rng, pooled_count + sequence_count, table, rows[table])
            if offsets is not None:
                bags[table] = (torch.from_numpy(np.ascontiguousarray(ids[:pooled_count])),
                               torch.from_numpy(offsets))
            if steps is not None and sequence is not None:
                sequence[:, steps] = ids[pooled_count:].reshape(batch_size, len(steps))

        batches.append(Batch(
            size=batch_size,
            dense=dense,
            bag_indices=tuple(bags[table][0] for table in layout.pooled),
            bag_offsets=tuple(bags[table][1] for table in layout.pooled),
            sequence=None if sequence is None else torch.from_numpy(sequence),
        ))
    return batches
