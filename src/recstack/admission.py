"""Memory admission: a point is measured only when everything it holds fits in memory.

A point holds its model (the tables and dense layers, built at up to
``footprint.BUILD_MEMORY_FACTOR`` times the parameters), its query batches (the distinct
batches the timing loop cycles, plus one more while each is assembled from its per-table
draws, and one copy of the ids that a fused forward shifts), the activations of a forward
pass (every stage's inputs and outputs as ``batch_work.stage_work`` counts them, all taken as
alive at once, times :data:`ACTIVATION_FACTOR` for the element-wise results between them)
and the worker's interpreter. Measured peaks (VmHWM of a worker, scale 0.001, one thread)
stayed under the estimate: RMC1 at batch 250,000 3.2 GB (fused) and 4.5 GB
(static) against 7.9; DIN at 4,096 2.2 GB (static) against 3.9; DIEN at 4,096 1.8 GB
(static, whose memory planner keeps every step's intermediates) against 2.3. The plan
checks every point against the memory available less :func:`memory_margin`, before anything
runs; the worker checks its point again before it builds anything (memory may have gone to
something else since). Building a model checks the model alone (:func:`require_memory`),
whoever builds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recstack import footprint as sizes
from recstack.batch_work import stage_work
from recstack.errors import RecstackError
from recstack.layout import table_layout
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec

if TYPE_CHECKING:
    from recstack.inputs import QuerySpec

ID_BYTES = 8  # int64 ids and offsets
ACTIVATION_FACTOR = 1.5
"""Element-wise results (activations, gates, sums) beside the products' inputs and outputs
that ``stage_work`` counts; Static Runtime keeps them all for the whole forward."""
WORKER_BYTES = 512 * 2**20
"""A worker's interpreter with torch imported (0.23 GB measured), rounded up."""
TRANSIENT_BATCHES = 2
"""Batches' worth of memory beyond those kept: one being assembled (per-table draws, then
their concatenation), one for the ids a fused forward shifts by each table's first row."""
MARGIN_FRACTION = 0.1
MARGIN_MIN_BYTES = 512 * 2**20
"""Memory left to the rest of the machine (and this process) when admitting a point:
a tenth of what is available, at least 512 MiB."""
LOCALITY_BYTES_PER_ACCESS = 64
"""Working memory of the locality analysis per access (ids, sort keys, stack distances)."""


def available_memory_bytes() -> int:
    """Memory the OS can give this process now without swapping."""
    import psutil

    return int(psutil.virtual_memory().available)


def scale_that_fits(spec: ModelSpec, available_bytes: int,
                    precision: Precision = FP32) -> float | None:
    """The largest ``row_scale`` (2 significant digits, rounded down) whose build fits in
    ``available_bytes``.

    None when even the dense part alone does not fit.
    """
    whole = sizes.footprint(spec.scaled(1.0), precision)
    budget = ((available_bytes - whole.fill_overhead_bytes) / sizes.BUILD_MEMORY_FACTOR
              - whole.dense_bytes)
    return sizes.row_scale_for_budget(spec, budget, precision=precision)


def require_memory(spec: ModelSpec, available_bytes: int | None = None,
                   precision: Precision = FP32) -> None:
    """Refuses, before allocation, a spec whose build would not fit in memory.

    The error gives the estimate, what is available and the ``--row-scale`` that would fit.
    """
    available = available_memory_bytes() if available_bytes is None else available_bytes
    cost = sizes.footprint(spec, precision)
    need = cost.build_memory_bytes
    if need <= available:
        return
    fits = scale_that_fits(spec, available, precision)
    advice = (f"use --row-scale {fits:g} or smaller" if fits is not None
              else "its dense layers alone do not fit")
    raise RecstackError(
        f"{spec.name} at row_scale {spec.row_scale:g} needs about {need / 1e9:.2f} GB to build "
        f"({cost.model_bytes / 1e9:.2f} GB of parameters) but "
        f"{available / 1e9:.2f} GB is available; {advice}"
    )


def memory_margin(available_bytes: int) -> int:
    """What admission leaves free of ``available_bytes``."""
    return int(max(MARGIN_FRACTION * available_bytes, MARGIN_MIN_BYTES))


def usable_memory(available_bytes: int | None = None) -> int:
    """The memory a point may use: what is available now, less the margin."""
    available = available_memory_bytes() if available_bytes is None else available_bytes
    return max(0, available - memory_margin(available))


def describe_usable(available_bytes: int) -> str:
    """``the X GB usable (Y GB available less a margin of Z)``, for messages."""
    return (f"the {usable_memory(available_bytes) / 1e9:.1f} GB usable "
            f"({available_bytes / 1e9:.1f} GB available less a margin of "
            f"{memory_margin(available_bytes) / 1e9:.1f})")


def input_bytes_per_batch(spec: ModelSpec, batch_size: int, query: QuerySpec | None = None
                          ) -> int:
    """Bytes of one query batch: dense features, every pooled id (at the largest bag size;
    under a trace ``query``, the trace's mean bag lengths, which may be far from the spec's
    pooling), both offset forms, and the behaviour sequence (what ``Batch.nbytes`` counts)."""
    layout = table_layout(spec)
    pooled: float = sum(layout.pooling)
    if query is not None and query.distribution == "trace":
        from recstack.trace_batches import ids_per_sample

        pooled = ids_per_sample(spec, query)
    ids = pooled + layout.sequence_length
    offsets = 2 * len(layout.pooled)
    return math.ceil(batch_size * ((ids + offsets) * ID_BYTES
                                   + spec.dense_features * sizes.FLOAT_BYTES))


@dataclass(frozen=True)
class PointMemory:
    """What one point holds at its peak, in bytes."""

    model: int
    inputs: int
    activations: int
    worker: int = WORKER_BYTES
    source: int = 0
    """A trace the queries are cut from, held whole (and mapped) in the worker."""

    @property
    def total(self) -> int:
        return self.model + self.inputs + self.activations + self.worker + self.source

    def describe(self) -> str:
        trace = f", trace {self.source / 1e9:.2f}" if self.source else ""
        return (f"{self.total / 1e9:.2f} GB (model {self.model / 1e9:.2f}, query batches "
                f"{self.inputs / 1e9:.2f}{trace}, activations {self.activations / 1e9:.2f}, "
                f"worker {self.worker / 1e9:.2f})")


def point_memory(spec: ModelSpec, batch_size: int, distinct_batches: int = 4,
                 max_input_bytes: int = 1 << 29, precision: Precision = FP32,
                 source_bytes: int = 0, query: QuerySpec | None = None) -> PointMemory:
    """The peak memory of a point of ``spec`` at ``batch_size`` whose timing loop keeps up
    to ``distinct_batches`` batches of ``query`` within ``max_input_bytes`` (at least one
    batch, as ``collect.timing.prepare_point`` keeps them), its queries cut from a trace
    holding ``source_bytes`` (:func:`recstack.trace_queries.held_bytes`)."""
    per_batch = input_bytes_per_batch(spec, batch_size, query)
    kept = max(1, min(distinct_batches, max_input_bytes // max(1, per_batch)))
    activations = ACTIVATION_FACTOR * sum(stage.activation_bytes
                                          for stage in stage_work(spec, batch_size))
    return PointMemory(model=sizes.footprint(spec, precision).build_memory_bytes,
                       inputs=(kept + TRANSIENT_BATCHES) * per_batch,
                       activations=int(activations), source=source_bytes)


def _advice(spec: ModelSpec, batch_size: int, need: PointMemory) -> str:
    if need.model >= need.inputs + need.activations:
        return "use a smaller --row-scale"
    if spec.sequence_length and spec.model_type in ("din", "dien"):
        return "use smaller --batch-sizes or a shorter sequence_length"
    return "use smaller --batch-sizes"


def require_point_memory(spec: ModelSpec, batch_size: int, label: str,
                         distinct_batches: int = 4, max_input_bytes: int = 1 << 29,
                         available_bytes: int | None = None,
                         precision: Precision = FP32, source_bytes: int = 0,
                         query: QuerySpec | None = None) -> PointMemory:
    """Refuses, before anything is allocated, a point that would not fit; returns its
    estimate otherwise."""
    need = point_memory(spec, batch_size, distinct_batches, max_input_bytes, precision,
                        source_bytes, query)
    available = available_memory_bytes() if available_bytes is None else available_bytes
    if need.total > usable_memory(available):
        raise RecstackError(f"{label}: needs about {need.describe()} but only "
                            f"{describe_usable(available)} may be used; "
                            f"{_advice(spec, batch_size, need)}")
    return need


def require_stream_memory(spec: ModelSpec, batch_size: int, batches: int, option: str,
                          available_bytes: int | None = None) -> None:
    """Refuses a query stream (``batches`` batches of ``batch_size``, analysed for
    locality) that would not fit, naming ``option``."""
    layout = table_layout(spec)
    accesses = batches * batch_size * (sum(sizes.mean_bag_size(spec, p) for p in layout.pooling)
                                       + layout.sequence_length)
    need = ((batches + 1) * input_bytes_per_batch(spec, batch_size)
            + accesses * LOCALITY_BYTES_PER_ACCESS)
    usable = usable_memory(available_bytes)
    if need > usable:
        raise RecstackError(f"{option}: {batches} batches of {batch_size} ({accesses:.3g} "
                            f"accesses) need about {need / 1e9:.2f} GB but {usable / 1e9:.2f} "
                            "GB may be used; expected fewer batches or smaller ones")
