"""DLRM (RMC1, RMC2, RMC3): bottom MLP, sum-pooled embedding bags, interaction, top MLP."""

from __future__ import annotations

import torch

from recstack.batch import Batch
from recstack.footprint import interaction_width
from recstack.models.base import RecModel
from recstack.models.embeddings import pooled_embeddings
from recstack.models.layers import MLP, CatInteraction, DotInteraction, OutputActivation, part_scope
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec


class DLRM(RecModel):
    """Naumov et al. 2019, as configured by DeepRecSys.

    dense ``(batch, bottom[0])`` -> bottom MLP (ReLU) -> ``(batch, bottom[-1])``;
    tables -> ``(batch, tables, dim)``; interaction -> ``(batch, interaction_width)``;
    top MLP (ReLU, last layer sigmoid) -> ``(batch, top[-1])``.
    """

    def __init__(self, spec: ModelSpec, seed: int, fused: bool = False,
                 precision: Precision = FP32):
        super().__init__(spec, fused, precision)
        self.dense = MLP(spec.bottom_mlp[0], spec.bottom_mlp[1:])
        self.sparse = pooled_embeddings(spec.rows, spec.embedding_dim, seed, fused=fused,
                                        precision=precision)
        self.interaction = (DotInteraction(spec.num_tables + 1) if spec.interaction == "dot"
                            else CatInteraction())
        self.over = MLP(interaction_width(spec), spec.top_mlp, last="none")
        self.output = OutputActivation()

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = self._modules  # see RecModel: no nn.Module.__getattr__ per part
        with part_scope("dense"):
            dense = parts["dense"].forward(self.dense_features(batch))
        with part_scope("sparse"):
            embeddings = parts["sparse"].forward(batch)
        with part_scope("interaction"):
            features = parts["interaction"].forward(dense, embeddings)
        with part_scope("over"):
            return parts["output"].forward(parts["over"].forward(features))
