"""Behaviour-sequence embeddings (DIN, DIEN): one row per step, not pooled; the tables are
made as :mod:`recstack.models.embeddings` makes pooled ones (same values, same layouts)."""

from __future__ import annotations

import torch
from torch import nn

from recstack.models import table_formats
from recstack.models.embeddings import hold_fused_tables, out_dtype, table_modules, table_views
from recstack.precision import FP32, Precision


class SequenceEmbeddings(nn.Module):
    """Behaviour embeddings, one row per step (not pooled); eager backend: one table each.

    Step ``t`` reads table ``t % num_tables`` (see :mod:`recstack.layout`).
    Input ``(batch, steps)`` ids; output ``(batch, steps, dim)``.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int,
                 precision: Precision = FP32):
        super().__init__()
        self.dim = dim
        stored = precision.table_precision(dim)
        self.stored_precision = stored
        self.tables = table_modules(rows, dim, seed, first_table_index, stored, _fp32_table)
        self._gather = table_formats.row_lookup(stored, dim)
        self._gathered = table_formats.lookup_dtype(stored)
        self._out_dtype = out_dtype(stored, precision)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        gather = self._gather
        if len(self.tables) == 1:
            out = gather(self.tables[0].weight, sequence)
        else:
            batch, steps = sequence.shape
            out = sequence.new_empty((batch, steps, self.dim), dtype=self._gathered)
            stride = len(self.tables)
            for k, table in enumerate(self.tables):
                out[:, k::stride] = gather(table.weight, sequence[:, k::stride])
        return out if self._out_dtype is None else out.to(self._out_dtype)

    def table_weights(self) -> list[torch.Tensor]:
        return [table.weight for table in self.tables]


class FusedSequenceEmbeddings(nn.Module):
    """Fused backend for behaviour sequences: every behaviour table's rows in one weight, and
    one gather for the whole sequence, each step's ids shifted by its table's first row.

    Input ``(batch, steps)`` ids; output ``(batch, steps, dim)``, as
    :class:`SequenceEmbeddings`.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int,
                 precision: Precision = FP32):
        super().__init__()
        stored = hold_fused_tables(self, rows, dim, seed, first_table_index, precision)
        self._step_bases: dict[int, torch.Tensor] = {}
        self._gather = table_formats.row_lookup(stored, dim)

    def _bases_of_steps(self, steps: int) -> torch.Tensor:
        """``(steps,)``: the first row of the table each step reads."""
        if torch.compiler.is_compiling():  # a constant of the graph; a cache would guard on it
            return self.row_bases[torch.arange(steps, device=self.row_bases.device)
                                  % len(self.rows)]
        bases = self._step_bases.get(steps)
        if bases is None or bases.device != self.row_bases.device:
            tables = torch.arange(steps, device=self.row_bases.device) % len(self.rows)
            bases = self.row_bases[tables]
            self._step_bases[steps] = bases
        return bases

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        if len(self.rows) > 1:
            # int(): while torch.jit.trace records a graph, shapes are traced values, and one
            # as a cache key would miss and record the bases' computation into the graph.
            steps = int(sequence.shape[1])
            sequence = sequence + self._bases_of_steps(steps)
        out = self._gather(self.weight, sequence)
        return out if self._out_dtype is None else out.to(self._out_dtype)

    def table_weights(self) -> list[torch.Tensor]:
        return table_views(self.weight, self.row_bases, self.rows)


def sequence_embeddings(rows: tuple[int, ...], dim: int, seed: int, first_table_index: int,
                        fused: bool = False, precision: Precision = FP32
                        ) -> SequenceEmbeddings | FusedSequenceEmbeddings:
    """The behaviour tables of a model in the eager or the fused layout (same values),
    stored in ``precision``."""
    kind = FusedSequenceEmbeddings if fused else SequenceEmbeddings
    return kind(rows, dim, seed, first_table_index, precision)


def _fp32_table(weight: torch.Tensor) -> nn.Module:
    return nn.Embedding.from_pretrained(weight, freeze=True)
