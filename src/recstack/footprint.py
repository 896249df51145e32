"""Size and work of a model, computed from its spec alone, before anything is allocated.

Counting rules (so numbers can be checked by hand):

- Parameters: every weight and bias, embedding rows included (rows after ``row_scale``).
- FLOPs per sample count matrix products at 2 per multiply-add (fully connected layers, the
  ``dot`` interaction's batched product, attention and GRU projections, DIN's weighted sum)
  plus one addition per gathered element for sum pooling. Element-wise activations, gates and
  the GMF product are not counted.
- Gathered bytes per sample: embedding rows read per sample (ids and offsets excluded). With
  variable pooling a bag holds ``(L + 1) / 2`` ids on average.
- Bytes follow the point's precision (:mod:`recstack.precision`): a table's bytes are its rows
  times its stored row (``int8``: ``dim + 8``, scale and bias included; ``int4``:
  ``dim / 2 + 4``; a table too narrow to gain from quantization stays fp32); a gathered row is
  the stored row. Dense bytes: weights at 4, 2 or 1 bytes (fp32, bf16, int8); under int8
  the biases stay float32 and each output channel adds a float32 scale. Parameter and FLOP
  counts do not depend on the precision.

The model builders in :mod:`recstack.models` are written separately from this module; the
tests check the two against each other (parameter counts, and FLOPs against PyTorch's own
FLOP counter).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from recstack.layout import table_layout
from recstack.precision import DENSE_WEIGHT_BYTES, FP32, REFERENCE, Precision, row_bytes
from recstack.specs import ModelSpec

FLOAT_BYTES = 4
# Building a model may need at most this much memory relative to its parameters
# (the embedding fill works in place; see recstack.models.embeddings).
BUILD_MEMORY_FACTOR = 1.2
REDUCED_FILL_THREADS = 4
"""At most this many threads fill a table in a reduced precision: each holds a generator
chunk and its converted rows, so the build's peak is bounded whatever the core count."""
FILL_CHUNK_ELEMENTS = 1 << 24
"""Float32 values per generator chunk (:data:`recstack.models.embeddings.CHUNK_ELEMENTS`)."""


@dataclass(frozen=True)
class FlopsPerSample:
    """FLOPs of one sample's inference, by kind of work."""

    mlp: float
    interaction: float
    attention: float
    recurrent: float
    embedding: float

    @property
    def total(self) -> float:
        return self.mlp + self.interaction + self.attention + self.recurrent + self.embedding

    @property
    def dense_math(self) -> float:
        """Everything but embedding pooling: what PyTorch's FLOP counter sees."""
        return self.total - self.embedding


@dataclass(frozen=True)
class Footprint:
    """What a spec costs in memory and work, in one precision."""

    embedding_parameters: int
    dense_parameters: int
    flops: FlopsPerSample
    gathered_bytes_per_sample: float
    lookups_per_sample: float
    embedding_bytes: int
    """Bytes of the stored tables (rows times stored row bytes)."""
    dense_bytes: int
    fill_overhead_bytes: int = 0
    """What filling reduced-precision tables takes beyond them (chunks being converted)."""

    @property
    def parameters(self) -> int:
        return self.embedding_parameters + self.dense_parameters

    @property
    def model_bytes(self) -> int:
        return self.embedding_bytes + self.dense_bytes

    @property
    def build_memory_bytes(self) -> int:
        """The most memory building the model may take."""
        return math.ceil(self.model_bytes * BUILD_MEMORY_FACTOR) + self.fill_overhead_bytes

    def to_dict(self) -> dict[str, float]:
        flat = {k: v for k, v in asdict(self).items() if k != "flops"}
        flat.update({f"flops_{k}": v for k, v in asdict(self.flops).items()})
        flat.update(parameters=self.parameters, model_bytes=self.model_bytes,
                    flops_total=self.flops.total)
        return flat


# ---- building blocks ---------------------------------------------------------------------


def mlp_parameters(in_features: int, widths: tuple[int, ...]) -> int:
    total, fan_in = 0, in_features
    for width in widths:
        total += fan_in * width + width
        fan_in = width
    return total


def mlp_flops(in_features: int, widths: tuple[int, ...]) -> float:
    total, fan_in = 0, in_features
    for width in widths:
        total += 2 * fan_in * width
        fan_in = width
    return float(total)


def gru_parameters(input_size: int, hidden: int) -> int:
    # Three gates, each with input and hidden weights and two biases (PyTorch's layout).
    return 3 * hidden * input_size + 3 * hidden * hidden + 6 * hidden


def gru_flops_per_step(input_size: int, hidden: int) -> float:
    return float(2 * 3 * hidden * (input_size + hidden))


def mean_bag_size(spec: ModelSpec, pooling: int) -> float:
    return float(pooling) if spec.pooling_fixed or pooling == 1 else (pooling + 1) / 2


def interaction_width(spec: ModelSpec) -> int:
    """Width of the DLRM interaction output (the top MLP's input)."""
    if spec.interaction == "dot":
        features = spec.num_tables + 1
        return spec.bottom_mlp[-1] + features * (features - 1) // 2
    return spec.bottom_mlp[-1] + spec.num_tables * spec.embedding_dim


def over_input_width(spec: ModelSpec) -> int:
    """Width of the input to the top (over-arch) MLP, per model type."""
    dim = spec.embedding_dim
    if spec.model_type == "dlrm":
        return interaction_width(spec)
    if spec.model_type == "ncf":
        return 2 * dim
    if spec.model_type in ("wnd", "mtwnd"):
        return spec.dense_features + spec.num_tables * dim
    if spec.model_type == "din":
        return 4 * dim  # user profile, attention-pooled behaviours, candidate, context
    return 3 * dim + (spec.gru_hidden_size or 0)  # dien: the final interest state replaces it


def activation_parameters(spec: ModelSpec) -> int:
    """Parameters of DIN's or DIEN's learned activations: one per channel of each hidden
    over-arch layer (PReLU's slope, Dice's alpha); none for ReLU."""
    return sum(spec.top_mlp[:-1]) if spec.activation in ("prelu", "dice") else 0


def wide_width(spec: ModelSpec) -> int:
    """Output width of the wide (linear) part of WnD models: one logit per output."""
    return spec.top_mlp[-1] if spec.model_type == "wnd" else 1


# ---- per model type ----------------------------------------------------------------------


def dense_bytes(spec: ModelSpec, dense_parameters: int, precision: Precision) -> int:
    """Bytes of the dense layers' parameters in ``precision.dense`` (see the module's
    counting rules: int8 keeps float32 biases and adds a float32 scale per channel)."""
    if precision.dense != "int8":
        return dense_parameters * DENSE_WEIGHT_BYTES[precision.dense]
    shapes = dense_layer_shapes(spec)
    channels = sum(width for _, width in shapes)
    weights = sum(fan_in * width for fan_in, width in shapes)
    other = dense_parameters - weights - channels  # recurrent cells stay float32
    return weights + 2 * channels * FLOAT_BYTES + other * FLOAT_BYTES


def _chain(fan_in: int, widths: tuple[int, ...]) -> list[tuple[int, int]]:
    shapes = []
    for width in widths:
        shapes.append((fan_in, width))
        fan_in = width
    return shapes


def dense_layer_shapes(spec: ModelSpec) -> list[tuple[int, int]]:
    """``(in, out)`` of every fully connected layer (not the recurrent cells)."""
    kind, dim = spec.model_type, spec.embedding_dim
    if kind == "dlrm":
        return (_chain(spec.bottom_mlp[0], spec.bottom_mlp[1:])
                + _chain(interaction_width(spec), spec.top_mlp))
    if kind == "ncf":
        return _chain(2 * dim, spec.top_mlp) + [(dim + spec.top_mlp[-1], 1)]
    if kind in ("wnd", "mtwnd"):
        shapes = ([(spec.dense_features, wide_width(spec))]
                  + _chain(over_input_width(spec), spec.top_mlp))
        if kind == "mtwnd":
            shapes += spec.num_tasks * _chain(spec.top_mlp[-1], spec.tower_widths)
        return shapes
    top = _chain(over_input_width(spec), spec.top_mlp)
    attention = spec.attention_mlp + (1,)
    if kind == "din":
        return _chain(4 * dim, attention) + top
    hidden = int(spec.gru_hidden_size)  # dien: the query, the attention MLP, AUGRU's two
    return ([(dim, hidden)] + _chain(4 * hidden, attention)
            + [(hidden, 3 * hidden), (hidden, 3 * hidden)] + top)


def table_bytes(rows: tuple[int, ...], dim: int, precision: Precision) -> int:
    """Bytes of tables of ``rows`` and width ``dim`` stored in ``precision``."""
    return sum(rows) * precision.table_row_bytes(dim)


CONVERT_SLICE_BYTES = 1 << 20
"""Converted rows a fill thread makes at a time (``table_formats.convert_rows``)."""


def chunk_overhead_bytes(dim: int, stored: str, threads: int = REDUCED_FILL_THREADS,
                         chunk_elements: int = FILL_CHUNK_ELEMENTS) -> int:
    """Memory a reduced-precision fill takes beyond the table: per thread one chunk of
    float32 values (plus a row's worth of the next chunk) and a slice of converted rows."""
    slice_bytes = max(CONVERT_SLICE_BYTES, row_bytes(stored, dim))
    return threads * ((chunk_elements + dim) * FLOAT_BYTES + slice_bytes)


def fill_overhead(widths: tuple[int, ...], precision: Precision) -> int:
    """The most a reduced-precision fill holds beyond the tables (tables of ``widths``,
    filled one after another)."""
    stored = [(dim, precision.table_precision(dim)) for dim in widths]
    return max((chunk_overhead_bytes(dim, kind) for dim, kind in stored if kind != REFERENCE),
               default=0)


def footprint(spec: ModelSpec, precision: Precision = FP32) -> Footprint:
    """Parameters, FLOPs and bytes of ``spec`` (at its ``row_scale``) in ``precision``."""
    layout = table_layout(spec)
    dim = spec.embedding_dim
    rows = spec.rows
    bag_sizes = [mean_bag_size(spec, p) for p in layout.pooling]
    pooled_lookups = sum(bag_sizes)
    lookups = pooled_lookups + layout.sequence_length

    embedding_parameters = sum(rows) * dim
    stored_bytes = table_bytes(rows, dim, precision)
    widths: tuple[int, ...] = (dim,)
    gathered_rows_bytes = lookups * precision.table_row_bytes(dim)
    pooling_flops = pooled_lookups * dim
    interaction = attention = recurrent = 0.0

    kind = spec.model_type
    if kind == "dlrm":
        dense = (mlp_parameters(spec.bottom_mlp[0], spec.bottom_mlp[1:])
                 + mlp_parameters(interaction_width(spec), spec.top_mlp))
        mlp = (mlp_flops(spec.bottom_mlp[0], spec.bottom_mlp[1:])
               + mlp_flops(interaction_width(spec), spec.top_mlp))
        if spec.interaction == "dot":
            features = spec.num_tables + 1
            interaction = float(2 * features * features * dim)  # the full batched Z Z^T
    elif kind == "ncf":
        mlp_out = spec.top_mlp[-1]
        dense = mlp_parameters(2 * dim, spec.top_mlp) + mlp_parameters(dim + mlp_out, (1,))
        mlp = mlp_flops(2 * dim, spec.top_mlp) + mlp_flops(dim + mlp_out, (1,))
    elif kind in ("wnd", "mtwnd"):
        wide = wide_width(spec)
        # The wide part: one weight per id and output (an embedding of width `wide`) plus a
        # linear layer over the dense features.
        embedding_parameters += sum(rows) * wide
        stored_bytes += table_bytes(rows, wide, precision)
        widths += (wide,)
        gathered_rows_bytes += pooled_lookups * precision.table_row_bytes(wide)
        pooling_flops += pooled_lookups * wide
        # Cross-product features: one hashed id per cross and sample, a weight per bucket
        # and output, summed into the wide logits with the rest.
        crosses = len(spec.cross_pairs)
        embedding_parameters += sum(spec.cross_rows) * wide
        stored_bytes += table_bytes(spec.cross_rows, wide, precision)
        gathered_rows_bytes += crosses * precision.table_row_bytes(wide)
        pooling_flops += crosses * wide
        lookups += crosses
        dense = (mlp_parameters(spec.dense_features, (wide,))
                 + mlp_parameters(over_input_width(spec), spec.top_mlp))
        mlp = (mlp_flops(spec.dense_features, (wide,))
               + mlp_flops(over_input_width(spec), spec.top_mlp))
        if kind == "mtwnd":
            tower = spec.tower_widths
            dense += spec.num_tasks * mlp_parameters(spec.top_mlp[-1], tower)
            mlp += spec.num_tasks * mlp_flops(spec.top_mlp[-1], tower)
    else:  # din, dien
        steps = layout.sequence_length
        attention_widths = spec.attention_mlp + (1,)
        top = (mlp_parameters(over_input_width(spec), spec.top_mlp)
               + activation_parameters(spec))
        mlp = mlp_flops(over_input_width(spec), spec.top_mlp)
        if kind == "din":
            dense = mlp_parameters(4 * dim, attention_widths) + top
            # The attention MLP runs once per behaviour, then a weighted sum of behaviours.
            attention = steps * mlp_flops(4 * dim, attention_widths) + 2 * steps * dim
        else:
            hidden = int(spec.gru_hidden_size)  # present for dien: spec validation requires it
            dense = (gru_parameters(dim, hidden)                  # interest extractor
                     + mlp_parameters(dim, (hidden,))             # candidate -> query
                     + mlp_parameters(4 * hidden, attention_widths)
                     + gru_parameters(hidden, hidden)             # AUGRU
                     + top)
            recurrent = steps * (gru_flops_per_step(dim, hidden)
                                 + gru_flops_per_step(hidden, hidden))
            attention = mlp_flops(dim, (hidden,)) + steps * mlp_flops(4 * hidden,
                                                                      attention_widths)
    return Footprint(
        embedding_parameters=embedding_parameters,
        dense_parameters=dense,
        flops=FlopsPerSample(mlp=mlp, interaction=interaction, attention=attention,
                             recurrent=recurrent, embedding=float(pooling_flops)),
        gathered_bytes_per_sample=float(gathered_rows_bytes),
        lookups_per_sample=float(lookups),
        embedding_bytes=stored_bytes,
        dense_bytes=dense_bytes(spec, dense, precision),
        fill_overhead_bytes=fill_overhead(widths, precision),
    )


# ---- tables within a budget -----------------------------------------------------------------


def row_scale_for_budget(spec: ModelSpec, budget_bytes: float, significant: int = 2,
                         precision: Precision = FP32) -> float | None:
    """The largest ``row_scale``, at most 1 (full size) and rounded down to ``significant``
    digits, at which the embedding tables of ``spec`` take at most ``budget_bytes``; None
    when no scale does (a budget of nothing, or tables too large at one row each)."""
    if not budget_bytes > 0:
        return None
    scale = 1.0
    # Rows round per table and never below one, so a scale proportional to the budget can
    # still overshoot it: check, and shrink by the overshoot, a few times.
    for _ in range(8):
        size = footprint(spec.scaled(scale), precision).embedding_bytes
        if size <= budget_bytes:
            return scale
        scale = round_down(scale * budget_bytes / size, significant)
    return None


def round_down(value: float, significant: int = 2) -> float:
    """``value`` rounded down to ``significant`` digits: a scale suggested to fit a budget
    must never exceed it (0.4882 -> 0.48)."""
    digits = significant - 1 - math.floor(math.log10(value))
    return math.floor(value * 10**digits) / 10**digits
