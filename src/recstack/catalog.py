"""A model's description for listings: structure and footprint, as plain data."""

from __future__ import annotations

from typing import Any

from recstack.footprint import footprint
from recstack.layout import table_layout
from recstack.specs import ModelSpec


def model_summary(spec: ModelSpec, available_bytes: int | None = None) -> dict[str, Any]:
    """Everything ``recstack models`` and ``recstack check`` show about a spec.

    ``fits`` is None when ``available_bytes`` is not given.
    """
    layout = table_layout(spec)
    cost = footprint(spec)
    summary: dict[str, Any] = {
        "name": spec.name,
        "model_type": spec.model_type,
        "row_scale": spec.row_scale,
        "tables": spec.num_tables,
        "rows": list(spec.rows),
        "embedding_dim": spec.embedding_dim,
        "lookups_per_table": list(layout.pooling),
        "pooling_fixed": spec.pooling_fixed,
        "sequence_length": layout.sequence_length,
        "dense_features": spec.dense_features,
        "bottom_mlp": list(spec.bottom_mlp),
        "attention_mlp": list(spec.attention_mlp),
        "top_mlp": list(spec.top_mlp),
        "task_mlp": list(spec.task_mlp),
        "num_tasks": spec.num_tasks,
        "interaction": spec.interaction,
        "spec_digest": spec.digest(),
        **cost.to_dict(),
        "build_memory_bytes": cost.build_memory_bytes,
    }
    if available_bytes is not None:
        summary["available_bytes"] = available_bytes
        summary["fits"] = cost.build_memory_bytes <= available_bytes
    return summary
