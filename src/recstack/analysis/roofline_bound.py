"""The lower bound on one batch's time at the machine's ceilings.

For a spec and a batch size, :func:`recstack.batch_work.stage_work` gives each stage's FLOPs and
bytes; this module turns them into a lower bound on the stage's time with the machine's
measured ceilings (:mod:`recstack.analysis.ceiling_lookup`):

- compute time = each matrix product's FLOPs / the GEMM ceiling at that layer's shape (else the
  same layer at the largest measured ``M`` below it, else the large-GEMM ceiling) + other
  FLOPs (sum pooling) / the large-GEMM ceiling;
- memory time = gathered rows / a random-gather bandwidth + weights and activations / the
  triad bandwidth, except the weights of layers whose product was measured at its own shape
  (that measurement read them, as the model does, and is already the compute time).
  Gathers are bounded table by table: the rows a batch reads for the first time move at the
  ``gather_table`` ceiling of a table of that size and row width and of that run length
  (tables of the largest measured size not above it, runs of the shortest measured length not
  below the batch's distinct rows from the table: bandwidth falls as tables grow and rises
  with the run, so both err fast); rows the batch reads again (the expected repeats of its
  query distribution, from :func:`recstack.inputs.expected_distinct_rows`) move at the
  fastest gather measured at that row width. A lower bound takes the favourable case:
  whatever fits in the last-level cache (all of a model's tables; the rows of every batch the
  timing loop cycles through; all of its dense weights; a stage's activations) is assumed to
  be there and moves at the cached bandwidths;
- a stage's bound = max(compute, memory); the point's (sequential) bound = the sum over stages;
  efficiency = bound / measured median latency (1 = as fast as the ceilings allow).

All of it in the point's precision (:mod:`recstack.precision`): rows, weights and activations
at their stored and flowing bytes (:func:`recstack.batch_work.stage_work`), each product at
the GEMM ceilings of its type and each table's rows at the gather ceilings of its format;
where the stored set measured none in that precision, at fp32's, and :func:`ceiling_basis`
says so. A point is memory-bound when stages limited by memory take at least half its bound
(``memory_share``): precision moves stages across that line, as fewer bytes move and the
products run at another ceiling.

Per-operator dispatch cost is not in the bound (it depends on the backend); the table gives
``dispatch_floor_ms`` (operator calls x the dispatch ceiling) where an operator profile of the
same configuration exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from recstack.analysis.ceiling_lookup import Ceilings
from recstack.ceiling_shapes import CACHE_LINE_BYTES
from recstack.batch_work import StageWork, stage_work, table_gathers
from recstack.footprint import footprint
from recstack.inputs import QuerySpec, expected_distinct_rows
from recstack.precision import FP32, REFERENCE, Precision
from recstack.specs import ModelSpec

STAGE_COLUMNS = ["stage", "flops", "bytes", "gathered_bytes", "weight_bytes",
                 "activation_bytes", "compute_ms", "memory_ms", "bound_ms", "limit"]
MEMORY_BOUND_SHARE = 0.5
"""A point is memory-bound when its memory-limited stages take at least this share of its
bound."""


@dataclass(frozen=True)
class GatherBound:
    """The embedding gathers' lower-bound time of one batch and what it assumed."""

    seconds: float
    cycled_rows_bytes: float
    """Cache lines of the distinct rows read over every batch the timing loop cycles
    through (all tables), in bytes."""
    rows_resident: bool
    """Whether those rows (or all tables) fit in the LLC, so every read was taken as cached."""


def gather_bound(spec: ModelSpec, batch_size: int, ceilings: Ceilings,
                 query: QuerySpec | None = None, cycled_batches: int = 1,
                 precision: Precision = FP32) -> GatherBound:
    """Lower-bound time of one batch's embedding gathers (see the module docstring).

    ``query`` is the distribution the ids were drawn from (default uniform);
    ``cycled_batches`` how many distinct batches the timing loop went round (rows of the
    others can still be cached when a batch comes round again); ``precision`` the tables'."""
    query = query or QuerySpec()
    gathers = table_gathers(spec, batch_size, precision)
    cycled = sum(expected_distinct_rows(query, g.rows, g.draws * cycled_batches)
                 * max(g.row_bytes, CACHE_LINE_BYTES) for g in gathers)
    resident = (cycled <= ceilings.llc_bytes
                or footprint(spec, precision).embedding_bytes <= ceilings.llc_bytes)
    seconds = 0.0
    for g in gathers:
        fastest = ceilings.fastest_gather_gbps(g.row_bytes, g.precision) * 1e9
        if resident:
            seconds += g.draws * g.row_bytes / fastest
            continue
        first = expected_distinct_rows(query, g.rows, g.draws)
        rate = ceilings.table_gather_gbps(g.row_bytes, g.table_bytes, first, g.precision)
        seconds += first * g.row_bytes / (rate * 1e9)
        seconds += (g.draws - first) * g.row_bytes / fastest
    return GatherBound(seconds, cycled, resident)


def _stage_times(stage: StageWork, ceilings: Ceilings, gather_seconds: float,
                 weights_resident: bool) -> tuple[float, float]:
    """(compute, memory) seconds of a stage at the ceilings; ``gather_seconds`` is the time
    of its gathered rows (:func:`gather_bound`, for the embedding stage)."""
    compute = sum(g.flops / (ceilings.gemm_gflops(g) * 1e9) for g in stage.gemms)
    compute += stage.other_flops / (ceilings.peak_gflops * 1e9)
    memory = gather_seconds
    # A layer measured at its own shape moved its weights inside that measurement (the
    # ceiling calls F.linear on the same weights again and again, as a model does batch after
    # batch): its time already bounds their reading, and at batch 1 it reads them faster than
    # the triad ceilings can (a "cached" triad sized to a quarter of an LLC a VM reports but
    # does not hold streams at DRAM speed). Only the other weights count here.
    covered = sum(g.weight_bytes for g in stage.gemms if ceilings.gemm_measured(g))
    weights = max(0.0, stage.weight_bytes - covered)
    memory += weights / (ceilings.triad_gbps(weights_resident) * 1e9)
    activations_resident = stage.activation_bytes <= ceilings.llc_bytes
    memory += stage.activation_bytes / (ceilings.triad_gbps(activations_resident) * 1e9)
    return compute, memory


def stage_bounds(spec: ModelSpec, batch_size: int, ceilings: Ceilings,
                 query: QuerySpec | None = None, cycled_batches: int = 1,
                 precision: Precision = FP32) -> tuple[pd.DataFrame, GatherBound]:
    """Each stage's work and lower-bound time for one batch in ``precision``, and the
    gathers' bound. Columns STAGE_COLUMNS (times in ms; ``limit`` is ``compute`` or
    ``memory``, whichever bounds the stage). ``query`` and ``cycled_batches`` as in
    :func:`gather_bound`."""
    size = footprint(spec, precision)
    weights_resident = size.dense_bytes <= ceilings.llc_bytes
    gathers = gather_bound(spec, batch_size, ceilings, query, cycled_batches, precision)
    rows = []
    for stage in stage_work(spec, batch_size, precision):
        gather_seconds = gathers.seconds if stage.gathered else 0.0
        compute, memory = _stage_times(stage, ceilings, gather_seconds, weights_resident)
        rows.append({"stage": stage.stage, "flops": stage.flops, "bytes": stage.bytes,
                     "gathered_bytes": stage.gathered_bytes, "weight_bytes": stage.weight_bytes,
                     "activation_bytes": stage.activation_bytes, "compute_ms": compute * 1e3,
                     "memory_ms": memory * 1e3, "bound_ms": max(compute, memory) * 1e3,
                     "limit": "compute" if compute >= memory else "memory"})
    return pd.DataFrame(rows, columns=STAGE_COLUMNS), gathers


def ceiling_basis(spec: ModelSpec, batch_size: int, ceilings: Ceilings,
                  precision: Precision = FP32) -> tuple[str, bool]:
    """Which ceilings bound a batch of ``spec`` in ``precision``, and whether any precision
    fell back to fp32's: ``("fp32", False)`` for an fp32 point; else one part per reduced
    precision its products or gathers run in, as ``"gemm bf16: bf16 ceilings"`` or
    ``"gather int8: fp32 ceilings (none stored for int8)"``, joined by ``"; "``."""
    used = ([("gemm", g.dtype, ceilings.gemm_precision(g.dtype))
             for stage in stage_work(spec, batch_size, precision) for g in stage.gemms]
            + [("gather", g.precision, ceilings.gather_precision(g.precision))
               for g in table_gathers(spec, batch_size, precision)])
    parts, fallback = [], False
    for what, wanted, found in dict.fromkeys(used):
        if wanted == REFERENCE:
            continue
        fallback |= found != wanted
        parts.append(f"{what} {wanted}: {found} ceilings"
                     + ("" if found == wanted else f" (none stored for {wanted})"))
    return ("; ".join(parts) or REFERENCE), fallback


def point_bound(spec: ModelSpec, batch_size: int, ceilings: Ceilings,
                query: QuerySpec | None = None, cycled_batches: int = 1,
                precision: Precision = FP32) -> dict[str, object]:
    """The sequential bound of one batch in ``precision`` and its totals: ``bound_ms`` (sum
    over stages), ``flops``, ``bytes``, ``operational_intensity`` (FLOPs per byte),
    ``compute_ms`` and ``memory_ms`` (sums), the ``limiting_stage`` (largest bound) and its
    ``limit``, ``memory_share`` (the share of the bound in memory-limited stages) and
    ``memory_bound`` (at least MEMORY_BOUND_SHARE of it), ``cycled_rows_bytes`` and
    ``rows_resident`` (:class:`GatherBound`), ``ceiling_basis`` and ``ceiling_fallback``
    (:func:`ceiling_basis`)."""
    stages, gathers = stage_bounds(spec, batch_size, ceilings, query, cycled_batches,
                                   precision)
    top = stages.loc[stages.bound_ms.idxmax()]
    flops, moved = float(stages.flops.sum()), float(stages.bytes.sum())
    bound = float(stages.bound_ms.sum())
    memory_share = (float(stages.bound_ms[stages.limit == "memory"].sum()) / bound
                    if bound > 0 else math.nan)
    basis, fallback = ceiling_basis(spec, batch_size, ceilings, precision)
    return {"bound_ms": bound, "flops": flops, "bytes": moved,
            "operational_intensity": flops / moved if moved else math.nan,
            "compute_ms": float(stages.compute_ms.sum()),
            "memory_ms": float(stages.memory_ms.sum()),
            "limiting_stage": str(top.stage), "limit": str(top.limit),
            "memory_share": memory_share,
            "memory_bound": bool(memory_share >= MEMORY_BOUND_SHARE),
            "cycled_rows_bytes": gathers.cycled_rows_bytes,
            "rows_resident": gathers.rows_resident,
            "ceiling_basis": basis, "ceiling_fallback": fallback}
