"""The work of one batch, stage by stage and table by table, from the spec alone.

:func:`stage_work` gives each stage's matrix products, other FLOPs and the bytes it reads and
writes; :func:`table_gathers` the embedding stage's gathers per table. The roofline bounds
each stage by them, admission sizes a point's activations by them, and the ceilings are
measured at the shapes they name. FLOPs follow the counting rules of :mod:`recstack.footprint`.

Bytes follow a point's precision (:mod:`recstack.precision`; FLOPs do not): a gathered row
is the table's stored row (``int8``: ``dim + 8`` bytes, ``int4``: ``dim / 2 + 4``, a table too
narrow to gain stays fp32); a layer's weights are 4, 2 or 1 bytes each (fp32, bf16, int8;
under int8 the bias stays float32 and each output channel adds a float32 scale, as
:func:`recstack.footprint.dense_bytes` counts them); activations are 2 bytes under bf16 dense
layers, else 4 (a dynamically quantized layer takes and gives float32; the embedding stage's
output is counted once, in the dense layers' type it is cast to).
"""

from __future__ import annotations

from dataclasses import dataclass

from recstack.errors import RecstackError
from recstack.footprint import (FLOAT_BYTES, interaction_width, mean_bag_size,
                                over_input_width, wide_width)
from recstack.layout import table_layout
from recstack.precision import DENSE_WEIGHT_BYTES, FP32, Precision
from recstack.specs import ModelSpec

# In the order they run (DIEN's recurrence and attention interleave; recurrence comes first).
STAGES: tuple[str, ...] = ("embedding", "bottom_mlp", "wide", "recurrence", "attention",
                           "interaction", "top_mlp", "towers")


@dataclass(frozen=True)
class Gemm:
    """A matrix product ``(m, k) x (k, n)``, done ``count`` times (a batched product, or one
    per time step). ``linear`` marks a layer's weight product (an ``nn.Linear``), whose shape
    the ceilings measure; other products (``bmm``) use the large-GEMM ceiling. ``dtype`` is
    the type it runs in: ``fp32``, ``bf16`` (operands and result bfloat16) or ``int8`` (a
    dynamically quantized layer: float32 in and out, int8 weights)."""

    m: int
    k: int
    n: int
    count: int = 1
    linear: bool = True
    dtype: str = "fp32"

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n * self.count

    @property
    def activation_bytes(self) -> float:
        """Input and output read and written once: ``(m k + m n) count`` values."""
        return float((self.m * self.k + self.m * self.n) * self.count
                     * activation_width(self.dtype))

    @property
    def weight_bytes(self) -> float:
        """A layer's weight and bias ``(k n + n)`` values (int8: ``k n`` bytes, the float32
        bias and a float32 scale per output channel); none for other products."""
        if not self.linear:
            return 0.0
        if self.dtype == "int8":
            return float(self.k * self.n + 2 * self.n * FLOAT_BYTES)
        return float((self.k * self.n + self.n) * DENSE_WEIGHT_BYTES[self.dtype])

    @property
    def shape(self) -> str:
        return f"{self.m}x{self.k}x{self.n}"


@dataclass(frozen=True)
class StageWork:
    """What one stage of a batch's inference computes and touches.

    ``gemms`` hold the matrix products; ``other_flops`` the rest (sum pooling);
    ``gathered`` the embedding rows read, as ``(row_bytes, rows)`` pairs by row width;
    ``weight_bytes`` the stage's parameters other than embeddings (read once per batch);
    ``activation_bytes`` its inputs and outputs other than gathered rows and weights.
    """

    stage: str
    gemms: tuple[Gemm, ...] = ()
    other_flops: float = 0.0
    gathered: tuple[tuple[int, float], ...] = ()
    weight_bytes: float = 0.0
    activation_bytes: float = 0.0

    @property
    def flops(self) -> float:
        return sum(g.flops for g in self.gemms) + self.other_flops

    @property
    def gathered_bytes(self) -> float:
        return sum(row_bytes * rows for row_bytes, rows in self.gathered)

    @property
    def bytes(self) -> float:
        """Every byte the stage reads or writes once: rows, weights, activations."""
        return self.gathered_bytes + self.weight_bytes + self.activation_bytes


def activation_width(dtype: str) -> int:
    """Bytes of one activation value flowing through dense layers of ``dtype``."""
    return 2 if dtype == "bf16" else FLOAT_BYTES


def mlp_gemms(batch: int, in_features: int, widths: tuple[int, ...],
              count: int = 1, dtype: str = "fp32") -> tuple[Gemm, ...]:
    """The products of an MLP over ``(batch, in_features)``: one ``Gemm`` per layer."""
    shapes, fan_in = [], in_features
    for width in widths:
        shapes.append(Gemm(batch, fan_in, width, count, dtype=dtype))
        fan_in = width
    return tuple(shapes)


def _dense_stage(stage: str, gemms: tuple[Gemm, ...], extra_activation_bytes: float = 0.0
                 ) -> StageWork:
    # Every dense parameter belongs to a layer's product (a GRU's gates included), so the
    # products' weights are the stage's: the tests check them against footprint's bytes.
    return StageWork(stage=stage, gemms=gemms,
                     weight_bytes=sum(g.weight_bytes for g in gemms),
                     activation_bytes=sum(g.activation_bytes for g in gemms)
                     + extra_activation_bytes)


def _concat_bytes(batch: int, width: int, value_bytes: int = FLOAT_BYTES) -> float:
    """A concatenation reads its inputs and writes its output: ``2 batch width`` values."""
    return float(2 * batch * width * value_bytes)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RecstackError(f"batch_size: {batch_size!r} is not allowed; expected an integer "
                            ">= 1")


def stage_work(spec: ModelSpec, batch_size: int, precision: Precision = FP32
               ) -> tuple[StageWork, ...]:
    """The work of one batch of ``spec`` in ``precision``, stage by stage (names from
    :data:`STAGES`, in the order they run). FLOPs follow the counting rules of
    :func:`footprint` (whatever the precision): over the stages they add up to
    ``footprint(spec).flops.total * batch_size``; bytes follow the module's rules."""
    _check_batch_size(batch_size)
    b = batch_size
    layout = table_layout(spec)
    dim = spec.embedding_dim
    pooled = sum(mean_bag_size(spec, p) for p in layout.pooling)
    steps = layout.sequence_length
    dense = precision.dense
    # Products outside the layers (bmm) and DIEN's GRU are not quantized under int8: they run
    # in the type the activations flow in.
    flowing = "bf16" if dense == "bf16" else "fp32"
    value = activation_width(dense)
    gathered: list[tuple[int, float]] = [(precision.table_row_bytes(dim), b * (pooled + steps))]
    pooling_flops = b * pooled * dim
    embedding_out = b * (len(layout.pooled) * dim + steps * dim) * value
    stages: list[StageWork] = []
    kind = spec.model_type

    if kind in ("wnd", "mtwnd"):
        wide = wide_width(spec)
        crosses = len(spec.cross_pairs)
        gathered.append((precision.table_row_bytes(wide), b * (pooled + crosses)))
        pooling_flops += b * (pooled + crosses) * wide
        embedding_out += b * (spec.num_tables + crosses) * wide * value
    stages.append(StageWork("embedding", other_flops=float(pooling_flops),
                            gathered=tuple(gathered), activation_bytes=float(embedding_out)))

    if kind == "dlrm":
        bottom = spec.bottom_mlp
        stages.append(_dense_stage("bottom_mlp", mlp_gemms(b, bottom[0], bottom[1:],
                                                           dtype=dense)))
        width = interaction_width(spec)
        if spec.interaction == "dot":
            features = spec.num_tables + 1
            products = Gemm(features, dim, features, count=b, linear=False, dtype=flowing)
            stages.append(StageWork("interaction", gemms=(products,),
                                    activation_bytes=products.activation_bytes
                                    + _concat_bytes(b, width, value)))
        else:
            stages.append(StageWork("interaction",
                                    activation_bytes=_concat_bytes(b, width, value)))
        stages.append(_dense_stage("top_mlp", mlp_gemms(b, width, spec.top_mlp, dtype=dense)))
    elif kind == "ncf":
        # GMF product (read two vectors, write one) and the MLP branch's concatenation.
        stages.append(StageWork("interaction",
                                activation_bytes=float(3 * b * dim * value)
                                + _concat_bytes(b, 2 * dim, value)))
        mlp_out = spec.top_mlp[-1]
        gemms = (mlp_gemms(b, 2 * dim, spec.top_mlp, dtype=dense)
                 + mlp_gemms(b, dim + mlp_out, (1,), dtype=dense))
        stages.append(_dense_stage("top_mlp", gemms, _concat_bytes(b, dim + mlp_out, value)))
    elif kind in ("wnd", "mtwnd"):
        wide = wide_width(spec)
        stages.append(_dense_stage("wide", mlp_gemms(b, spec.dense_features, (wide,),
                                                     dtype=dense)))
        width = over_input_width(spec)
        stages.append(StageWork("interaction", activation_bytes=_concat_bytes(b, width, value)))
        stages.append(_dense_stage("top_mlp", mlp_gemms(b, width, spec.top_mlp, dtype=dense)))
        if kind == "mtwnd":
            tower = spec.tower_widths
            gemms = mlp_gemms(b, spec.top_mlp[-1], tower, dtype=dense) * spec.num_tasks
            stages.append(_dense_stage("towers", gemms))
    else:  # din, dien
        widths = spec.attention_mlp + (1,)
        if kind == "din":
            unit = mlp_gemms(b * steps, 4 * dim, widths, dtype=dense)
            weighted_sum = Gemm(1, steps, dim, count=b, linear=False, dtype=flowing)
            stages.append(_dense_stage("attention", unit + (weighted_sum,),
                                       # the unit's input [b, a, b-a, b*a] is built first
                                       float(b * steps * 4 * dim * value)))
        else:
            hidden = int(spec.gru_hidden_size)  # present for dien: spec validation requires it
            # The extractor is an nn.GRU (fp32 under int8); AUGRU's gates are linear layers.
            extractor = (Gemm(b * steps, dim, 3 * hidden, dtype=flowing),
                         Gemm(b, hidden, 3 * hidden, steps, dtype=flowing))
            evolution = (Gemm(b * steps, hidden, 3 * hidden, dtype=dense),
                         Gemm(b, hidden, 3 * hidden, steps, dtype=dense))
            stages.append(_dense_stage("recurrence", extractor + evolution))
            query = mlp_gemms(b, dim, (hidden,), dtype=dense)
            unit = mlp_gemms(b * steps, 4 * hidden, widths, dtype=dense)
            stages.append(_dense_stage("attention", query + unit,
                                       float(b * steps * 4 * hidden * value)))
        width = over_input_width(spec)
        stages.append(StageWork("interaction", activation_bytes=_concat_bytes(b, width, value)))
        stages.append(_dense_stage("top_mlp", mlp_gemms(b, width, spec.top_mlp, dtype=dense)))
    order = {name: position for position, name in enumerate(STAGES)}
    return tuple(sorted(stages, key=lambda stage: order[stage.stage]))


@dataclass(frozen=True)
class TableGather:
    """One table's part of a batch's embedding gather: ``draws`` ids (the expected count, with
    variable pooling) read rows of ``row_bytes`` from a table of ``rows`` rows stored in
    ``precision`` (:meth:`recstack.precision.Precision.table_precision`). ``part`` is
    ``"deep"`` (the embedding table), ``"wide"`` (the per-id weights of WnD's wide part,
    gathered with the same ids) or ``"cross"`` (a cross-product feature's hashed weights,
    one id per sample; its ``table`` numbered after the spec's tables)."""

    table: int
    part: str
    rows: int
    row_bytes: int
    draws: float
    precision: str = "fp32"

    @property
    def table_bytes(self) -> int:
        return self.rows * self.row_bytes


def table_gathers(spec: ModelSpec, batch_size: int, precision: Precision = FP32
                  ) -> tuple[TableGather, ...]:
    """The embedding stage's gathers of one batch, table by table (tables with no ids in a
    batch are left out), with tables stored in ``precision``. Over the tables they read the
    embedding stage's ``gathered`` rows of :func:`stage_work`; a table serves its bags and
    its behaviour-sequence steps."""
    _check_batch_size(batch_size)
    layout = table_layout(spec)
    draws = [0.0] * spec.num_tables
    for table, pooling in zip(layout.pooled, layout.pooling):
        draws[table] += batch_size * mean_bag_size(spec, pooling)
    for step in range(layout.sequence_length):
        draws[layout.behaviour_table_of_step(step)] += batch_size
    dim = spec.embedding_dim
    row, stored = precision.table_row_bytes(dim), precision.table_precision(dim)
    gathers = [TableGather(t, "deep", rows, row, draws[t], stored)
               for t, rows in enumerate(spec.rows) if draws[t] > 0]
    if spec.model_type in ("wnd", "mtwnd"):
        wide = wide_width(spec)
        gathers += [TableGather(t, "wide", spec.rows[t], precision.table_row_bytes(wide),
                                batch_size * mean_bag_size(spec, pooling),
                                precision.table_precision(wide))
                    for t, pooling in zip(layout.pooled, layout.pooling)]
        # Cross-product tables are numbered after the spec's own.
        gathers += [TableGather(spec.num_tables + k, "cross", rows,
                                precision.table_row_bytes(wide), float(batch_size),
                                precision.table_precision(wide))
                    for k, rows in enumerate(spec.cross_rows)]
    return tuple(gathers)


def table_gather_runs(specs: list[ModelSpec], batch_sizes: tuple[int, ...] | list[int]
                      ) -> list[tuple[int, int, int]]:
    """Distinct ``(row_bytes, table_bytes, ids)`` of the models' gathers at ``batch_sizes``:
    how many ids one batch reads from each table (its run length, what the gather ceilings
    measure at, as the GEMM ceilings measure each layer at each batch size), sorted."""
    return sorted({(g.row_bytes, g.table_bytes, max(1, round(g.draws))) for spec in specs
                   for batch in batch_sizes for g in table_gathers(spec, batch)})


def linear_gemm_shapes(specs: list[ModelSpec], batch_sizes: tuple[int, ...] | list[int],
                       dtype: str = "fp32") -> list[tuple[int, int, int]]:
    """Distinct ``(m, k, n)`` of the layers' weight products of ``specs`` at ``batch_sizes``
    that run in ``dtype`` when the dense layers are in it (what the GEMM ceilings of that
    dtype measure), sorted."""
    precision = Precision(dense=dtype)
    shapes = {(g.m, g.k, g.n) for spec in specs for batch in batch_sizes
              for stage in stage_work(spec, batch, precision) for g in stage.gemms
              if g.linear and g.dtype == dtype}
    return sorted(shapes)


def gathered_row_bytes(specs: list[ModelSpec]) -> list[int]:
    """Distinct row sizes (bytes) the models' embedding gathers read, sorted."""
    return sorted({row for spec in specs for row, _ in stage_work(spec, 1)[0].gathered})
