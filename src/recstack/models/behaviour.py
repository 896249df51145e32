"""What DIN and DIEN share: user profile, behaviour sequence, candidate ad, context."""

from __future__ import annotations

import torch

from recstack.batch import Batch
from recstack.models.base import RecModel
from recstack.models.embeddings import pooled_embeddings
from recstack.models.layers import part_scope
from recstack.models.sequence_embeddings import sequence_embeddings
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec


class BehaviourModel(RecModel):
    """Embeds the inputs of a behaviour-sequence model.

    Pooled tables (user profile, candidate ad, context) -> three ``(batch, dim)`` vectors;
    behaviour ids ``(batch, steps)`` -> ``(batch, steps, dim)``.
    """

    def __init__(self, spec: ModelSpec, seed: int, fused: bool = False,
                 precision: Precision = FP32):
        super().__init__(spec, fused, precision)
        rows = spec.rows
        self.sparse = pooled_embeddings(tuple(rows[t] for t in self.layout.pooled),
                                        spec.embedding_dim, seed, fused=fused,
                                        precision=precision)
        self.behaviours = sequence_embeddings(tuple(rows[t] for t in self.layout.behaviour),
                                              spec.embedding_dim, seed,
                                              first_table_index=len(self.layout.pooled),
                                              fused=fused, precision=precision)

    def embed(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                           torch.Tensor]:
        """Returns user ``(batch, dim)``, candidate ``(batch, dim)``, context ``(batch, dim)``
        and behaviours ``(batch, steps, dim)``."""
        parts = self._modules  # see RecModel: no nn.Module.__getattr__ per part
        with part_scope("sparse"):
            user, candidate, context = parts["sparse"].forward(batch).unbind(1)
            behaviours = parts["behaviours"].forward(batch.sequence)
        return user, candidate, context, behaviours
