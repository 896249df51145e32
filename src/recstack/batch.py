"""A batch of queries, in the form every model's forward takes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batch:
    """One batch of inference queries.

    ``bag_indices[k]`` and ``bag_offsets[k]`` feed the ``k``-th pooled table of the model's
    :class:`~recstack.layout.TableLayout` in ``nn.EmbeddingBag`` form: flat ids
    ``(lookups_k,)`` and the start of each sample's bag ``(batch,)``.
    """

    size: int
    dense: torch.Tensor | None
    """``(batch, dense_features)`` float, or None for models without dense features."""
    bag_indices: tuple[torch.Tensor, ...]
    bag_offsets: tuple[torch.Tensor, ...]
    sequence: torch.Tensor | None = None
    """``(batch, sequence_length)`` behaviour ids (DIN, DIEN), or None."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on ``device`` (the host-to-device copy the paper counts on GPUs)."""

        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device, non_blocking=non_blocking)

        return Batch(
            size=self.size,
            dense=move(self.dense),
            bag_indices=tuple(move(t) for t in self.bag_indices),
            bag_offsets=tuple(move(t) for t in self.bag_offsets),
            sequence=move(self.sequence),
        )

    @property
    def nbytes(self) -> int:
        """Bytes of input data (what a host-to-device copy moves)."""
        tensors = [self.dense, self.sequence, *self.bag_indices, *self.bag_offsets]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)
