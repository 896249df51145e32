"""A model's algorithmic features, computed from its spec alone (nothing is built), in a
numeric precision (:mod:`recstack.precision`; fp32 by default).

These are what the cross-stack correlation relates to the measured bottlenecks. Work and
sizes come from :mod:`recstack.footprint` (the counting rules are documented there); this
module only names and arranges them. Bytes follow the precision (an int8 table's row is
``dim + 8`` bytes); work does not (the FLOPs of a layer are those of its shape).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from recstack.footprint import footprint
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec

# Every feature, in a stable order, with what it means. All are numbers; `interaction` is
# also given as text in the table (column ``interaction``) for people to read.
FEATURES: dict[str, str] = {
    "flops_mlp": "FLOPs per sample in fully connected (MLP) layers",
    "flops_attention": "FLOPs per sample in attention units",
    "flops_recurrent": "FLOPs per sample in recurrent (GRU/AUGRU) layers",
    "flops_interaction": "FLOPs per sample in the feature interaction (DLRM dot)",
    "flops_total": "FLOPs per sample, everything (embedding pooling included)",
    "parameter_bytes": "bytes of all parameters (tables at their rows)",
    "dense_parameter_bytes": "bytes of the parameters outside embedding tables",
    "embedding_bytes": "bytes of the embedding tables",
    "gathered_bytes": "embedding bytes gathered per sample",
    "num_tables": "embedding tables",
    "mean_table_rows": "mean rows per table (after row_scale)",
    "lookups": "embedding rows looked up per sample",
    "pooling_factor": "lookups per pooled table per sample",
    "embedding_dim": "embedding dimension",
    "mlp_depth": "fully connected layers in all MLPs",
    "widest_layer": "widest fully connected layer",
    "has_attention": "1 if the model has an attention unit",
    "attention_width": "summed hidden widths of the attention unit (0 without)",
    "has_recurrence": "1 if the model has recurrent layers",
    "recurrence_length": "recurrent steps per sample (0 without)",
    "sequence_length": "behaviours per user (0 without a behaviour sequence)",
    "interaction_dot": "1 for the DLRM dot interaction, 0 for concatenation",
    "num_tasks": "prediction tasks",
    "bytes_per_flop": "gathered bytes per FLOP: the memory-versus-compute balance",
    "embedding_bytes_per_element": "stored embedding bytes per table element (4 in fp32; "
                                   "int8 rows carry their scale and bias)",
    "dense_bytes_per_parameter": "bytes per parameter outside the tables (4 in fp32)",
}
# Which precision the features were computed in: a model is one row per precision.
PRECISION_KEYS = ["embedding_precision", "dense_precision"]
FEATURE_COLUMNS = ["model", "model_type", "interaction", *FEATURES, *PRECISION_KEYS]
# Features spanning orders of magnitude: the correlation analysis uses their log10(1 + x).
LOG_FEATURES: tuple[str, ...] = ("flops_mlp", "flops_attention", "flops_recurrent",
                                 "flops_interaction", "flops_total", "parameter_bytes",
                                 "dense_parameter_bytes", "embedding_bytes", "gathered_bytes",
                                 "mean_table_rows", "lookups", "bytes_per_flop")


def _mlp_layers(spec: ModelSpec) -> list[int]:
    """Output widths of every fully connected layer, all MLPs of the model."""
    kind = spec.model_type
    layers = list(spec.top_mlp)
    if kind == "dlrm":
        layers += list(spec.bottom_mlp[1:])
    elif kind == "ncf":
        layers += [1]  # the NeuMF output layer
    elif kind == "mtwnd":
        layers += spec.num_tasks * list(spec.tower_widths)
    elif kind in ("din", "dien"):
        layers += [*spec.attention_mlp, 1]  # the attention unit's MLP
    return layers


def spec_features(spec: ModelSpec, precision: Precision = FP32) -> dict[str, Any]:
    """The features of one spec in ``precision`` (keys: ``FEATURE_COLUMNS``)."""
    size = footprint(spec, precision)
    flops = size.flops
    layers = _mlp_layers(spec)
    attention = spec.model_type in ("din", "dien")
    recurrence = spec.model_type == "dien"
    sequence = (spec.sequence_length or 0) if attention else 0
    return {
        "model": spec.name,
        "model_type": spec.model_type,
        "interaction": spec.interaction,
        "flops_mlp": flops.mlp,
        "flops_attention": flops.attention,
        "flops_recurrent": flops.recurrent,
        "flops_interaction": flops.interaction,
        "flops_total": flops.total,
        "parameter_bytes": float(size.model_bytes),
        "dense_parameter_bytes": float(size.dense_bytes),
        "embedding_bytes": float(size.embedding_bytes),
        "gathered_bytes": size.gathered_bytes_per_sample,
        "num_tables": spec.num_tables,
        "mean_table_rows": sum(spec.rows) / spec.num_tables,
        "lookups": size.lookups_per_sample,
        "pooling_factor": spec.pooling_factor,
        "embedding_dim": spec.embedding_dim,
        "mlp_depth": len(layers),
        "widest_layer": max(layers),
        "has_attention": int(attention),
        "attention_width": sum(spec.attention_mlp) if attention else 0,
        "has_recurrence": int(recurrence),
        "recurrence_length": sequence if recurrence else 0,
        "sequence_length": sequence,
        "interaction_dot": int(spec.interaction == "dot"),
        "num_tasks": spec.num_tasks,
        "bytes_per_flop": size.gathered_bytes_per_sample / flops.total,
        "embedding_bytes_per_element": size.embedding_bytes / size.embedding_parameters,
        "dense_bytes_per_parameter": (size.dense_bytes / size.dense_parameters
                                      if size.dense_parameters else 0.0),
        "embedding_precision": precision.embedding,
        "dense_precision": precision.dense,
    }


def feature_table(specs: Iterable[ModelSpec | tuple[ModelSpec, Precision]]) -> pd.DataFrame:
    """One row per distinct spec name and precision: each item a spec (in fp32) or a (spec,
    precision) pair. Columns: ``FEATURE_COLUMNS``."""
    rows = {}
    for item in specs:
        spec, precision = item if isinstance(item, tuple) else (item, FP32)
        rows[(spec.name, precision)] = spec_features(spec, precision)
    return pd.DataFrame(list(rows.values()), columns=FEATURE_COLUMNS)
