"""Wide & Deep (Cheng et al. 2016) and its multi-task variant (YouTube, Zhao et al. 2019)."""

from __future__ import annotations

import torch
from torch import nn

from recstack.batch import Batch
from recstack.footprint import over_input_width, wide_width
from recstack.models.base import RecModel
from recstack.models.embeddings import pooled_embeddings
from recstack.models.layers import MLP, part_scope
from recstack.models.sequence_embeddings import sequence_embeddings
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec

CROSS_MULTIPLIER = 1_000_003
"""A prime: crossed id ``a * CROSS_MULTIPLIER + b`` stays below 2**63 for tables of up to
2**40 rows, and distinct pairs spread over the buckets."""


class _WideAndDeepBase(RecModel):
    """Shared parts: the deep embeddings, the wide part, the concatenation.

    Wide part: a linear model over the dense features plus one weight per sparse id (a
    width-``wide`` sum-pooled embedding over the same ids as the deep tables) ->
    ``(batch, wide)`` logits. Deep input: ``[dense, table_1, ..., table_T]``
    ``(batch, dense + T * dim)``. Both sets of tables read the same ids, so their lookups
    share one preparation (for the fused layout: one shift and concatenation of the ids).
    With the spec's ``wide_cross_features``, the wide part also sums one weight per
    cross-product feature (Cheng et al.'s transformed features): the crossed features' ids
    hashed into each cross's table (:meth:`cross_ids`), computed in the forward as a model
    serving raw features computes them.
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
        if spec.cross_pairs:
            # Seeded after both sets of tables; step k of the (batch, crosses) ids reads
            # cross k's table.
            self.wide_cross = sequence_embeddings(spec.cross_rows, wide, seed,
                                                  first_table_index=2 * spec.num_tables,
                                                  fused=fused, precision=precision)
            self.register_buffer("cross_buckets", torch.tensor(spec.cross_rows),
                                 persistent=False)
            left, right = zip(*spec.cross_pairs)
            self.register_buffer("cross_left", torch.tensor(left), persistent=False)
            self.register_buffer("cross_right", torch.tensor(right), persistent=False)
        self._cross_pairs = spec.cross_pairs

    def cross_ids(self, batch: Batch) -> torch.Tensor:
        """``(batch, crosses)``: each cross-product feature's hashed id, from the first id of
        each crossed feature's bag (``(a * CROSS_MULTIPLIER + b) % buckets``)."""
        # The all-tables form: every backend's batches carry it (the static backend's only it).
        starts = batch.pooled_offsets.view(-1, batch.size)             # (tables, batch)
        firsts = batch.pooled_ids[starts]                              # each bag's first id
        left = firsts[self._buffers["cross_left"]].transpose(0, 1)     # (batch, crosses)
        right = firsts[self._buffers["cross_right"]].transpose(0, 1)
        return (left * CROSS_MULTIPLIER + right) % self._buffers["cross_buckets"]

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
            if self._cross_pairs:
                crossed = parts["wide_cross"].forward(self.cross_ids(batch))  # (batch, K, wide)
                wide = wide + crossed.sum(dim=1)
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
