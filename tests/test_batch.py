"""A batch holds its pooled ids per table and all tables at once, over the same memory."""

from __future__ import annotations

import torch

from recstack.batch import Batch
from recstack.inputs import QuerySpec, generate_batches
from tests.conftest import small_spec


def _per_table() -> Batch:
    return Batch(size=2, dense=torch.zeros(2, 3),
                 bag_indices=(torch.tensor([4, 5, 6]), torch.tensor([7]),
                              torch.tensor([8, 9])),
                 bag_offsets=(torch.tensor([0, 1]), torch.tensor([0, 1]),
                              torch.tensor([0, 1])))


def test_the_all_tables_form_is_derived_from_the_per_table_form() -> None:
    batch = _per_table()
    assert batch.pooled_ids.tolist() == [4, 5, 6, 7, 8, 9]
    # Each table's bags start after the ids of the tables before it.
    assert batch.pooled_offsets.tolist() == [0, 1, 3, 4, 4, 5]
    assert batch.lookups == (3, 1, 2)


def test_per_table_ids_are_views_of_the_pooled_ids() -> None:
    batch = _per_table()
    base = batch.pooled_ids.data_ptr()
    item = batch.pooled_ids.element_size()
    starts = [ids.data_ptr() for ids in batch.bag_indices]
    assert starts == [base, base + 3 * item, base + 4 * item]
    assert [ids.tolist() for ids in batch.bag_indices] == [[4, 5, 6], [7], [8, 9]]


def test_a_moved_batch_keeps_its_views_and_counts_the_ids_once() -> None:
    batch = _per_table()
    moved = batch.map_tensors(lambda t: t.clone())
    assert torch.equal(moved.pooled_ids, batch.pooled_ids)
    assert moved.pooled_ids.data_ptr() != batch.pooled_ids.data_ptr()
    assert moved.bag_indices[1].data_ptr() == (moved.pooled_ids.data_ptr()
                                               + 3 * moved.pooled_ids.element_size())
    assert moved.lookups == batch.lookups
    ids, offsets, per_table_offsets, dense = 6 * 8, 6 * 8, 6 * 8, 6 * 4
    assert batch.nbytes == ids + offsets + per_table_offsets + dense


def test_a_given_all_tables_form_is_taken_as_it_is() -> None:
    pooled = torch.tensor([1, 2])
    batch = Batch(size=1, dense=None, bag_indices=(pooled[:1], pooled[1:]),
                  bag_offsets=(torch.tensor([0]), torch.tensor([0])), pooled_ids=pooled,
                  pooled_offsets=torch.tensor([0, 1]), lookups=(1, 1))
    assert batch.pooled_ids is pooled


def test_generated_batches_agree_in_both_forms() -> None:
    spec = small_spec("rmc2")
    for pooling in ("fixed", "variable"):
        (batch,) = generate_batches(spec, QuerySpec(pooling=pooling), 5, 1)
        assert torch.equal(batch.pooled_ids, torch.cat(batch.bag_indices))
        starts = torch.tensor([0, *torch.tensor(batch.lookups).cumsum(0)[:-1].tolist()])
        expected = torch.cat([o + s for o, s in zip(batch.bag_offsets, starts)])
        assert torch.equal(batch.pooled_offsets, expected)
