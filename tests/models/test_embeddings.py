"""Embedding tables: deterministic whatever the thread count, filled in place."""

from __future__ import annotations

import math

import pytest
import torch

from recstack.models import embeddings
from recstack.models.embeddings import random_table
from recstack.models.sequence_embeddings import SequenceEmbeddings


def test_fill_does_not_depend_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "CHUNK_ELEMENTS", 1000)  # many chunks on a small table
    monkeypatch.setattr(embeddings, "_fill_threads", lambda: 1)
    one_thread = random_table(700, 16, seed=1, table_index=2)
    monkeypatch.setattr(embeddings, "_fill_threads", lambda: 4)
    four_threads = random_table(700, 16, seed=1, table_index=2)
    assert torch.equal(one_thread, four_threads)


def test_values_are_uniform_in_the_dlrm_bound() -> None:
    table = random_table(10_000, 32, seed=0, table_index=0)
    bound = math.sqrt(1 / 10_000)
    assert table.abs().max() <= bound
    assert table.min() < -0.9 * bound and table.max() > 0.9 * bound
    assert abs(table.mean().item()) < 0.01 * bound


def test_tables_and_seeds_differ() -> None:
    a = random_table(100, 8, seed=0, table_index=0)
    assert not torch.equal(a, random_table(100, 8, seed=0, table_index=1))
    assert not torch.equal(a, random_table(100, 8, seed=1, table_index=0))


def test_sequence_steps_read_their_own_tables() -> None:
    tables = SequenceEmbeddings((5, 7, 9), dim=4, seed=0, first_table_index=0)
    sequence = torch.tensor([[4, 6, 8, 0, 1]])
    out = tables(sequence)
    for step in range(5):
        table = tables.tables[step % 3]
        assert torch.equal(out[0, step], table.weight[sequence[0, step]])


def test_large_tables_use_advised_memory_with_the_same_values() -> None:
    from recstack.models.embeddings import (HUGE_PAGE_MIN_BYTES, empty_table, fill_table,
                                            huge_pages_mode)

    rows = HUGE_PAGE_MIN_BYTES // (16 * 4)
    large = fill_table(empty_table(rows, 16), seed=3, table_index=1)
    ordinary = fill_table(torch.empty((rows, 16), dtype=torch.float32), seed=3, table_index=1)
    assert large.shape == (rows, 16) and large.dtype == torch.float32
    assert large.is_contiguous() and torch.equal(large, ordinary)
    assert huge_pages_mode() in ("always", "madvise", "never", "unavailable")
    small = empty_table(10, 16)
    assert small.shape == (10, 16)
