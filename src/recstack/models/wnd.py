"""Wide & Deep (Cheng et al. 2016) and its multi-task variant (YouTube, Zhao et al. 2019)."""

from __future__ import annotations

import torch
from torch import nn

from recstack.batch import Batch
from recstack.footprint import over_input_width, wide_width
from recstack.models.base import RecModel
from recstack.models.embeddings import pooled_embeddings
from recstack.models.layers import MLP, part_scope
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec


class _WideAndDeepBase(RecModel):
    """Shared parts: the deep embeddings, the wide part, the concatenation.

    Wide part: a linear model over the dense features plus one weight per sparse id (a
    width-``wide`` sum-pooled embedding over the same ids as the deep tables) ->
    ``(batch, wide)`` logits. Deep input: ``[dense, table_1, ..., table_T]``
    ``(batch, dense + T * dim)``. Both sets of tables read the same ids, so their lookups
    share one preparation (for the fused layout: one shift and concatenation of the ids).
    """

    def __init__(self, spec: ModelSpec, seed: int, fused: bool = False,
                 precision: Precision = FP32):
        super().__init__(spec, fused, precision)
        wide = wide_width(spec)
        self.sparse = pooled_embeddings(spec.rows, spec.embedding_dim, seed, fused=fused,
                                        precision=precision)
        # Seeded after the deep tables so both sets of tables are distinct.
        self.wide_sparse = pooled_embeddings(spec.rows, wide, seed,
                                             first_table_index=spec.num_tables, fused=fused,
                                             precision=precision)
        self.wide_dense = nn.Linear(spec.dense_features, wide)

    def deep_input_and_wide_logits(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        parts = self._modules  # see RecModel: no nn.Module.__getattr__ per part
        dense = self.dense_features(batch)
        with part_scope("sparse"):
            sparse = parts["sparse"]
            ids = sparse.prepare(batch)
            embeddings = sparse.pool(ids)                            # (batch, T, dim)
            wide_weights = parts["wide_sparse"].pool(ids)            # (batch, T, wide)
        with part_scope("wide"):
            wide = parts["wide_dense"].forward(dense) + wide_weights.sum(dim=1)
        with part_scope("interaction"):
            deep_input = torch.cat([dense, embeddings.flatten(1)], dim=1)
        return deep_input, wide


class WideAndDeep(_WideAndDeepBase):
    """Deep MLP ``top`` (ReLU, last layer linear); output sigmoid(deep + wide)
    ``(batch, top[-1])``."""

    def __init__(self, spec: ModelSpec, seed: int, fused: bool = False,
                 precision: Precision = FP32):
        super().__init__(spec, seed, fused, precision)
        self.over = MLP(over_input_width(spec), spec.top_mlp, last="none")

    def forward(self, batch: Batch) -> torch.Tensor:
        deep_input, wide = self.deep_input_and_wide_logits(batch)
        with part_scope("over"):
            return torch.sigmoid(self._modules["over"].forward(deep_input) + wide)


class MultiTaskWideAndDeep(_WideAndDeepBase):
    """A shared deep bottom ``top`` (ReLU) and one tower per task: the widths after the
    first of ``tasks`` (the first is the tower's input, as DeepRecSys reads it: ``512-256-128``
    is 512 -> 256 -> 128, ReLU), then a one-unit output layer (DeepRecSys's towers end at 128
    units with no prediction layer; ``ModelSpec.tower_widths``).
    The wide logit is shared by all tasks. Output ``(batch, num_tasks)`` probabilities."""

    def __init__(self, spec: ModelSpec, seed: int, fused: bool = False,
                 precision: Precision = FP32):
        super().__init__(spec, seed, fused, precision)
        self.over = MLP(over_input_width(spec), spec.top_mlp)
        self.towers = nn.ModuleList(
            MLP(spec.top_mlp[-1], spec.tower_widths, last="none")
            for _ in range(spec.num_tasks)
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        deep_input, wide = self.deep_input_and_wide_logits(batch)
        parts = self._modules  # see RecModel: no nn.Module.__getattr__ per part
        with part_scope("over"):
            shared = parts["over"].forward(deep_input)
            logits = torch.cat([tower.forward(shared) for tower in parts["towers"]], dim=1)
            return torch.sigmoid(logits + wide)
