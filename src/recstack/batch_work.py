"""The work of one batch, stage by stage and table by table, from the spec alone.

:func:`stage_work` gives each stage's matrix products, other FLOPs and the bytes it reads and
writes; :func:`table_gathers` the embedding stage's gathers per table. The roofline bounds
each stage by them, admission sizes a point's activations by them, and the ceilings are
measured at the shapes they name. FLOPs follow the counting rules of :mod:`recstack.footprint`.
"""

from __future__ import annotations

from dataclasses import dataclass

from recstack.errors import RecstackError
from recstack.footprint import (FLOAT_BYTES, gru_parameters, interaction_width, mean_bag_size,
                                mlp_parameters, over_input_width, wide_width)
from recstack.layout import table_layout
from recstack.specs import ModelSpec

# In the order they run (DIEN's recurrence and attention interleave; recurrence comes first).
STAGES: tuple[str, ...] = ("embedding", "bottom_mlp", "wide", "recurrence", "attention",
                           "interaction", "top_mlp", "towers")


@dataclass(frozen=True)
class Gemm:
    """A matrix product ``(m, k) x (k, n)``, done ``count`` times (a batched product, or one
    per time step). ``linear`` marks a layer's weight product (an ``nn.Linear``), whose shape
    the ceilings measure; other products (``bmm``) use the large-GEMM ceiling."""

    m: int
    k: int
    n: int
    count: int = 1
    linear: bool = True

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n * self.count

    @property
    def activation_bytes(self) -> float:
        """Input and output read and written once: ``(m k + m n) count`` floats."""
        return float((self.m * self.k + self.m * self.n) * self.count * FLOAT_BYTES)

    @property
    def weight_bytes(self) -> float:
        """A layer's weight and bias ``(k n + n)`` floats; none for other products."""
        return float((self.k * self.n + self.n) * FLOAT_BYTES) if self.linear else 0.0

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


def mlp_gemms(batch: int, in_features: int, widths: tuple[int, ...],
              count: int = 1) -> tuple[Gemm, ...]:
    """The products of an MLP over ``(batch, in_features)``: one ``Gemm`` per layer."""
    shapes, fan_in = [], in_features
    for width in widths:
        shapes.append(Gemm(batch, fan_in, width, count))
        fan_in = width
    return tuple(shapes)


def _dense_stage(stage: str, gemms: tuple[Gemm, ...], parameters: int,
                 extra_activation_bytes: float = 0.0) -> StageWork:
    return StageWork(stage=stage, gemms=gemms, weight_bytes=float(parameters * FLOAT_BYTES),
                     activation_bytes=sum(g.activation_bytes for g in gemms)
                     + extra_activation_bytes)


def _concat_bytes(batch: int, width: int) -> float:
    """A concatenation reads its inputs and writes its output: ``2 batch width`` floats."""
    return float(2 * batch * width * FLOAT_BYTES)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RecstackError(f"batch_size: {batch_size!r} is not allowed; expected an integer "
                            ">= 1")


def stage_work(spec: ModelSpec, batch_size: int) -> tuple[StageWork, ...]:
    """The work of one batch of ``spec``, stage by stage (names from :data:`STAGES`, in the
    order they run). FLOPs follow the counting rules of :func:`footprint`: over the stages
    they add up to ``footprint(spec).flops.total * batch_size``."""
    _check_batch_size(batch_size)
    b = batch_size
    layout = table_layout(spec)
    dim = spec.embedding_dim
    pooled = sum(mean_bag_size(spec, p) for p in layout.pooling)
    steps = layout.sequence_length
    row = dim * FLOAT_BYTES
    gathered: list[tuple[int, float]] = [(row, b * (pooled + steps))]
    pooling_flops = b * pooled * dim
    embedding_out = b * (len(layout.pooled) * dim + steps * dim) * FLOAT_BYTES
    stages: list[StageWork] = []
    kind = spec.model_type

    if kind in ("wnd", "mtwnd"):
        wide = wide_width(spec)
        gathered.append((wide * FLOAT_BYTES, b * pooled))
        pooling_flops += b * pooled * wide
        embedding_out += b * spec.num_tables * wide * FLOAT_BYTES
    stages.append(StageWork("embedding", other_flops=float(pooling_flops),
                            gathered=tuple(gathered), activation_bytes=float(embedding_out)))

    if kind == "dlrm":
        bottom = spec.bottom_mlp
        stages.append(_dense_stage("bottom_mlp", mlp_gemms(b, bottom[0], bottom[1:]),
                                   mlp_parameters(bottom[0], bottom[1:])))
        width = interaction_width(spec)
        if spec.interaction == "dot":
            features = spec.num_tables + 1
            products = Gemm(features, dim, features, count=b, linear=False)
            stages.append(StageWork("interaction", gemms=(products,),
                                    activation_bytes=products.activation_bytes
                                    + _concat_bytes(b, width)))
        else:
            stages.append(StageWork("interaction", activation_bytes=_concat_bytes(b, width)))
        stages.append(_dense_stage("top_mlp", mlp_gemms(b, width, spec.top_mlp),
                                   mlp_parameters(width, spec.top_mlp)))
    elif kind == "ncf":
        # GMF product (read two vectors, write one) and the MLP branch's concatenation.
        stages.append(StageWork("interaction",
                                activation_bytes=float(3 * b * dim * FLOAT_BYTES)
                                + _concat_bytes(b, 2 * dim)))
        mlp_out = spec.top_mlp[-1]
        gemms = mlp_gemms(b, 2 * dim, spec.top_mlp) + mlp_gemms(b, dim + mlp_out, (1,))
        stages.append(_dense_stage("top_mlp", gemms,
                                   mlp_parameters(2 * dim, spec.top_mlp)
                                   + mlp_parameters(dim + mlp_out, (1,)),
                                   _concat_bytes(b, dim + mlp_out)))
    elif kind in ("wnd", "mtwnd"):
        wide = wide_width(spec)
        stages.append(_dense_stage("wide", mlp_gemms(b, spec.dense_features, (wide,)),
                                   mlp_parameters(spec.dense_features, (wide,))))
        width = over_input_width(spec)
        stages.append(StageWork("interaction", activation_bytes=_concat_bytes(b, width)))
        stages.append(_dense_stage("top_mlp", mlp_gemms(b, width, spec.top_mlp),
                                   mlp_parameters(width, spec.top_mlp)))
        if kind == "mtwnd":
            tower = spec.task_mlp + (1,)
            gemms = mlp_gemms(b, spec.top_mlp[-1], tower) * spec.num_tasks
            stages.append(_dense_stage("towers", gemms, spec.num_tasks
                                       * mlp_parameters(spec.top_mlp[-1], tower)))
    else:  # din, dien
        widths = spec.attention_mlp + (1,)
        if kind == "din":
            unit = mlp_gemms(b * steps, 4 * dim, widths)
            weighted_sum = Gemm(1, steps, dim, count=b, linear=False)
            stages.append(_dense_stage("attention", unit + (weighted_sum,),
                                       mlp_parameters(4 * dim, widths),
                                       # the unit's input [b, a, b-a, b*a] is built first
                                       float(b * steps * 4 * dim * FLOAT_BYTES)))
        else:
            hidden = int(spec.gru_hidden_size)  # present for dien: spec validation requires it
            extractor = (Gemm(b * steps, dim, 3 * hidden), Gemm(b, hidden, 3 * hidden, steps))
            evolution = (Gemm(b * steps, hidden, 3 * hidden),
                         Gemm(b, hidden, 3 * hidden, steps))
            stages.append(_dense_stage("recurrence", extractor + evolution,
                                       gru_parameters(dim, hidden)
                                       + gru_parameters(hidden, hidden)))
            query = mlp_gemms(b, dim, (hidden,))
            unit = mlp_gemms(b * steps, 4 * hidden, widths)
            stages.append(_dense_stage("attention", query + unit,
                                       mlp_parameters(dim, (hidden,))
                                       + mlp_parameters(4 * hidden, widths),
                                       float(b * steps * 4 * hidden * FLOAT_BYTES)))
        width = over_input_width(spec)
        stages.append(StageWork("interaction", activation_bytes=_concat_bytes(b, width)))
        stages.append(_dense_stage("top_mlp", mlp_gemms(b, width, spec.top_mlp),
                                   mlp_parameters(width, spec.top_mlp)))
    order = {name: position for position, name in enumerate(STAGES)}
    return tuple(sorted(stages, key=lambda stage: order[stage.stage]))


@dataclass(frozen=True)
class TableGather:
    """One table's part of a batch's embedding gather: ``draws`` ids (the expected count, with
    variable pooling) read rows of ``row_bytes`` from a table of ``rows`` rows. ``part`` is
    ``"deep"`` (the embedding table) or ``"wide"`` (the per-id weights of WnD's wide part,
    gathered with the same ids)."""

    table: int
    part: str
    rows: int
    row_bytes: int
    draws: float

    @property
    def table_bytes(self) -> int:
        return self.rows * self.row_bytes


def table_gathers(spec: ModelSpec, batch_size: int) -> tuple[TableGather, ...]:
    """The embedding stage's gathers of one batch, table by table (tables with no ids in a
    batch are left out). Over the tables they read the embedding stage's ``gathered`` rows of
    :func:`stage_work`; a table serves its bags and its behaviour-sequence steps."""
    _check_batch_size(batch_size)
    layout = table_layout(spec)
    draws = [0.0] * spec.num_tables
    for table, pooling in zip(layout.pooled, layout.pooling):
        draws[table] += batch_size * mean_bag_size(spec, pooling)
    for step in range(layout.sequence_length):
        draws[layout.behaviour_table_of_step(step)] += batch_size
    row = spec.embedding_dim * FLOAT_BYTES
    gathers = [TableGather(t, "deep", rows, row, draws[t])
               for t, rows in enumerate(spec.rows) if draws[t] > 0]
    if spec.model_type in ("wnd", "mtwnd"):
        wide = wide_width(spec) * FLOAT_BYTES
        gathers += [TableGather(t, "wide", spec.rows[t], wide,
                                batch_size * mean_bag_size(spec, pooling))
                    for t, pooling in zip(layout.pooled, layout.pooling)]
    return tuple(gathers)


def table_gather_runs(specs: list[ModelSpec], batch_sizes: tuple[int, ...] | list[int]
                      ) -> list[tuple[int, int, int]]:
    """Distinct ``(row_bytes, table_bytes, ids)`` of the models' gathers at ``batch_sizes``:
    how many ids one batch reads from each table (its run length, what the gather ceilings
    measure at, as the GEMM ceilings measure each layer at each batch size), sorted."""
    return sorted({(g.row_bytes, g.table_bytes, max(1, round(g.draws))) for spec in specs
                   for batch in batch_sizes for g in table_gathers(spec, batch)})


def linear_gemm_shapes(specs: list[ModelSpec], batch_sizes: tuple[int, ...] | list[int]
                       ) -> list[tuple[int, int, int]]:
    """Distinct ``(m, k, n)`` of the layers' weight products of ``specs`` at ``batch_sizes``
    (what the GEMM ceilings measure), sorted."""
    shapes = {(g.m, g.k, g.n) for spec in specs for batch in batch_sizes
              for stage in stage_work(spec, batch) for g in stage.gemms if g.linear}
    return sorted(shapes)


def gathered_row_bytes(specs: list[ModelSpec]) -> list[int]:
    """Distinct row sizes (bytes) the models' embedding gathers read, sorted."""
    return sorted({row for spec in specs for row, _ in stage_work(spec, 1)[0].gathered})
