"""Embedding tables: filled fast, in place, deterministically.

A full-size model holds 2.5 to 4 GB of embeddings. torch's default generator fills on one
thread (about 3 s per GiB measured on a 2-core VM); numpy's PCG64, filling fixed-size chunks
from a thread pool, fills the same GiB in about 0.3 s. Each chunk has its own seed derived from
(model seed, table, chunk), so the values do not depend on the number of threads, and the
fill happens in the tensor's own memory: building needs no second copy of any table.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

CHUNK_ELEMENTS = 1 << 24  # 64 MiB of float32: large enough to amortize, small enough to spread


def _fill_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def random_table(rows: int, dim: int, seed: int, table_index: int) -> torch.Tensor:
    """A ``(rows, dim)`` float32 table, uniform in ``±sqrt(1 / rows)`` (the DLRM reference's
    initialisation), filled in place by a thread pool."""
    table = torch.empty((rows, dim), dtype=torch.float32)
    flat = table.numpy().reshape(-1)
    bound = math.sqrt(1.0 / rows)
    num_chunks = max(1, math.ceil(flat.size / CHUNK_ELEMENTS))

    def fill(chunk: int) -> None:
        part = flat[chunk * CHUNK_ELEMENTS:(chunk + 1) * CHUNK_ELEMENTS]
        generator = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            [seed, table_index, chunk])))
        generator.random(out=part, dtype=np.float32)
        part *= 2 * bound
        part -= bound

    if num_chunks == 1:
        fill(0)
    else:
        with ThreadPoolExecutor(max_workers=min(_fill_threads(), num_chunks)) as pool:
            list(pool.map(fill, range(num_chunks)))
    return table


class PooledEmbeddings(nn.Module):
    """One sum-pooled ``nn.EmbeddingBag`` per table.

    Input: per table flat ids ``(lookups,)`` and bag offsets ``(batch,)``.
    Output: a list of ``(batch, dim)`` tensors, one per table.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int = 0):
        super().__init__()
        self.bags = nn.ModuleList(
            nn.EmbeddingBag.from_pretrained(
                random_table(r, dim, seed, first_table_index + k), freeze=True, mode="sum")
            for k, r in enumerate(rows)
        )

    def forward(self, indices: tuple[torch.Tensor, ...],
                offsets: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        return [bag(i, o) for bag, i, o in zip(self.bags, indices, offsets)]


class SequenceEmbeddings(nn.Module):
    """Behaviour embeddings, one row per step (not pooled).

    Step ``t`` reads table ``t % num_tables`` (see :mod:`recstack.layout`).
    Input ``(batch, steps)`` ids; output ``(batch, steps, dim)``.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int):
        super().__init__()
        self.dim = dim
        self.tables = nn.ModuleList(
            nn.Embedding.from_pretrained(
                random_table(r, dim, seed, first_table_index + k), freeze=True)
            for k, r in enumerate(rows)
        )

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        if len(self.tables) == 1:
            return self.tables[0](sequence)
        batch, steps = sequence.shape
        out = sequence.new_empty((batch, steps, self.dim), dtype=self.tables[0].weight.dtype)
        stride = len(self.tables)
        for k, table in enumerate(self.tables):
            out[:, k::stride] = table(sequence[:, k::stride])
        return out
