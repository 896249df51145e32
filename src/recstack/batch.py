"""A batch of queries, in the form every model's forward takes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Batch:
    """One batch of inference queries.

    The pooled tables' ids come in two forms over the same memory:

    - per table, in ``nn.EmbeddingBag`` form: ``bag_indices[k]`` flat ids ``(lookups_k,)``
      of the ``k``-th pooled table of the model's :class:`~recstack.layout.TableLayout`, and
      ``bag_offsets[k]`` the start of each sample's bag ``(batch,)``;
    - all tables at once, as a serving system receives them (TorchRec's
      ``KeyedJaggedTensor``): ``pooled_ids`` ``(sum_k lookups_k,)``, every table's ids back to
      back (``bag_indices[k]`` are views of it), ``pooled_offsets`` ``(tables * batch,)``
      where each bag starts in ``pooled_ids``, table after table, and ``lookups`` the ids
      per table as plain ints.

    Give the per-table form alone and the batch derives the other (one concatenation, made
    when the batch is made, never inside a timed forward); give ``pooled_ids``,
    ``pooled_offsets`` and ``lookups`` with it and they are taken as they are.
    """

    size: int
    dense: torch.Tensor | None
    """``(batch, dense_features)`` float, or None for models without dense features."""
    bag_indices: tuple[torch.Tensor, ...]
    bag_offsets: tuple[torch.Tensor, ...]
    sequence: torch.Tensor | None = None
    """``(batch, sequence_length)`` behaviour ids (DIN, DIEN), or None."""
    pooled_ids: torch.Tensor | None = field(default=None, repr=False)
    pooled_offsets: torch.Tensor | None = field(default=None, repr=False)
    lookups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.pooled_ids is not None:
            return
        lookups = tuple(int(ids.shape[0]) for ids in self.bag_indices)
        if self.bag_indices:
            pooled = torch.cat(self.bag_indices)
            pooled_offsets = torch.cat([offsets + start for offsets, start
                                        in zip(self.bag_offsets, run_starts(lookups))])
        else:
            pooled = torch.empty(0, dtype=torch.int64)
            pooled_offsets = torch.empty(0, dtype=torch.int64)
        # Frozen: the derived fields are set once, here, as the dataclass machinery does.
        object.__setattr__(self, "pooled_ids", pooled)
        object.__setattr__(self, "pooled_offsets", pooled_offsets)
        object.__setattr__(self, "lookups", lookups)
        object.__setattr__(self, "bag_indices", _split_by_table(pooled, lookups))

    def map_tensors(self, move: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The same batch with ``move`` applied to each tensor it holds (once to the pooled
        ids; the per-table ids stay views of the result)."""

        def apply(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else move(tensor)

        pooled = apply(self.pooled_ids)
        return Batch(
            size=self.size,
            dense=apply(self.dense),
            bag_indices=_split_by_table(pooled, self.lookups),
            bag_offsets=tuple(move(t) for t in self.bag_offsets),
            sequence=apply(self.sequence),
            pooled_ids=pooled,
            pooled_offsets=apply(self.pooled_offsets),
            lookups=self.lookups,
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on ``device`` (the host-to-device copy the paper counts on GPUs)."""
        return self.map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    @property
    def nbytes(self) -> int:
        """Bytes of input data (what a host-to-device copy moves: both offset forms, the
        ids once)."""
        tensors = [self.dense, self.sequence, self.pooled_ids, self.pooled_offsets,
                   *self.bag_offsets]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def run_starts(counts: tuple[int, ...]) -> list[int]:
    """Where each of ``counts`` consecutive runs starts: ``[0, c0, c0 + c1, ...]``."""
    return list(itertools.accumulate(counts[:-1], initial=0))


def _split_by_table(pooled: torch.Tensor, lookups: tuple[int, ...]
                    ) -> tuple[torch.Tensor, ...]:
    """Each table's ids: consecutive views of ``pooled``."""
    return tuple(torch.split(pooled, list(lookups))) if lookups else ()
