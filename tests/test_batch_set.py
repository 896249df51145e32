"""The vectorized batch set: determinism, the shapes generate_batches gives, id ranges and
distributions, views, and model forwards equal to those on plain batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recstack.batch import Batch
from recstack.batch_set import BatchSet, generate_batch_set
from recstack.errors import SpecError
from recstack.inputs import (
    QuerySpec,
    _locality_ids,
    _zipf_rank_map,
    expected_distinct_rows,
    generate_batches,
)
from recstack.layout import table_layout
from recstack.models import build_model
from recstack.specs import ZOO_NAMES, ModelSpec, spec_from_config, zoo_spec

DISTRIBUTIONS = ("uniform", "zipf", "locality")
POOLINGS = ("spec", "variable")


def _dlrm(rows: str, pooling: int = 4) -> ModelSpec:
    return spec_from_config({
        "model_type": "dlrm", "arch_mlp_bot": "8-4", "arch_mlp_top": "4-1",
        "arch_embedding_size": rows, "arch_sparse_feature_size": 4,
        "num_indices_per_lookup": pooling, "num_indices_per_lookup_fixed": True,
    })


def _tiny(name: str) -> ModelSpec:
    return zoo_spec(name).scaled(0.001)


def _tensors(batch: Batch) -> list[torch.Tensor]:
    tensors = [*batch.bag_indices, *batch.bag_offsets, batch.pooled_ids, batch.pooled_offsets]
    return tensors + [t for t in (batch.dense, batch.sequence) if t is not None]


def _plain(batch: Batch) -> Batch:
    """The same batch as generate_batches would hold it: cloned per-table tensors, the
    all-tables form derived by Batch itself."""
    clone = lambda t: None if t is None else t.clone()
    return Batch(size=batch.size, dense=clone(batch.dense),
                 bag_indices=tuple(t.clone() for t in batch.bag_indices),
                 bag_offsets=tuple(t.clone() for t in batch.bag_offsets),
                 sequence=clone(batch.sequence))


def _table_ids(batch_set: BatchSet, position: int) -> np.ndarray:
    """All batches' ids of the pooled table at ``position`` in the layout, batch order."""
    return np.concatenate([batch.bag_indices[position].numpy() for batch in batch_set])


# ---- determinism and the Sequence protocol -------------------------------------------------


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("name", ["rmc1", "dien"])
def test_same_arguments_give_identical_batches(name: str, distribution: str) -> None:
    query = QuerySpec(distribution=distribution, pooling="variable", seed=7)
    first = generate_batch_set(_tiny(name), query, 5, 6)
    second = generate_batch_set(_tiny(name), query, 5, 6)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(_tensors(a), _tensors(b), strict=True):
            assert x.dtype == y.dtype and torch.equal(x, y)
    other = generate_batch_set(_tiny(name), QuerySpec(distribution=distribution, seed=8), 5, 6)
    assert not torch.equal(first.pooled_ids[:20], other.pooled_ids[:20])


def test_is_a_sequence_of_batches() -> None:
    batch_set = generate_batch_set(_tiny("rmc1"), QuerySpec(), 2, 3)
    assert len(batch_set) == 3
    assert torch.equal(batch_set[-1].pooled_ids, batch_set[2].pooled_ids)
    assert [b.lookups for b in batch_set[1:]] == [batch_set[1].lookups, batch_set[2].lookups]
    with pytest.raises(IndexError):
        batch_set[3]
    assert not torch.equal(batch_set[0].pooled_ids, batch_set[1].pooled_ids)


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("count", 0), ("count", 1.5),
                                         ("batch_size", True)])
def test_rejects_bad_sizes(field: str, value: object) -> None:
    sizes = {"batch_size": 2, "count": 2, field: value}
    with pytest.raises(SpecError):
        generate_batch_set(_tiny("rmc1"), QuerySpec(), sizes["batch_size"], sizes["count"])


# ---- shapes, views, sizes ------------------------------------------------------------------


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_items_have_the_shapes_and_dtypes_of_generate_batches(name: str, pooling: str) -> None:
    spec, query = _tiny(name), QuerySpec(pooling=pooling, seed=3)
    reference = generate_batches(spec, query, 4, 1)[0]
    for batch in generate_batch_set(spec, query, 4, 3):
        assert batch.size == 4
        for ours, theirs in ((batch.dense, reference.dense),
                             (batch.sequence, reference.sequence)):
            assert (ours is None) == (theirs is None)
            if ours is not None:
                assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        assert len(batch.bag_indices) == len(reference.bag_indices)
        for ids, offsets, ref_ids, ref_offsets in zip(
                batch.bag_indices, batch.bag_offsets, reference.bag_indices,
                reference.bag_offsets, strict=True):
            assert ids.dtype == ref_ids.dtype and ids.dim() == 1
            assert offsets.shape == ref_offsets.shape and offsets.dtype == ref_offsets.dtype
            if query.fixed_pooling(spec):
                assert ids.shape == ref_ids.shape
                assert torch.equal(offsets, ref_offsets)
        # The all-tables form is what Batch derives from the per-table form.
        plain = _plain(batch)
        assert batch.lookups == plain.lookups
        assert torch.equal(batch.pooled_ids, plain.pooled_ids)
        assert torch.equal(batch.pooled_offsets, plain.pooled_offsets)
        assert batch.pooled_offsets.shape == reference.pooled_offsets.shape


def test_variable_bags_are_one_to_the_pooling_factor_long() -> None:
    spec = _dlrm("50-60-70", pooling=5)
    for batch in generate_batch_set(spec, QuerySpec(pooling="variable"), 64, 4):
        for ids, offsets in zip(batch.bag_indices, batch.bag_offsets, strict=True):
            lengths = np.diff(offsets.numpy(), append=len(ids))
            assert offsets[0] == 0 and lengths.min() >= 1 and lengths.max() <= 5
            assert set(lengths.tolist()) == {1, 2, 3, 4, 5}


def test_items_are_views_of_the_set_tensors() -> None:
    batch_set = generate_batch_set(_tiny("din"), QuerySpec(pooling="variable"), 3, 4)
    batch = batch_set[2]
    base, item = batch_set.pooled_ids.data_ptr(), batch_set.pooled_ids.element_size()
    assert batch.pooled_ids.data_ptr() == base + batch_set.starts[2] * item
    assert batch.bag_indices[0].data_ptr() == batch.pooled_ids.data_ptr()
    assert batch.sequence.data_ptr() == batch_set.sequence[2].data_ptr()
    assert batch.pooled_offsets.data_ptr() == batch_set.pooled_offsets[2].data_ptr()


@pytest.mark.parametrize("pooling", POOLINGS)
def test_sizes_and_moved_tensors(pooling: str) -> None:
    batch_set = generate_batch_set(_tiny("wnd"), QuerySpec(pooling=pooling), 3, 5)
    assert batch_set.nbytes == sum(batch.nbytes for batch in batch_set)
    assert batch_set.nbytes_per_batch == max(batch.nbytes for batch in batch_set)
    moved = batch_set.map_tensors(lambda t: t.clone())
    assert moved.pooled_ids.data_ptr() != batch_set.pooled_ids.data_ptr()
    for a, b in zip(batch_set, moved, strict=True):
        assert b.pooled_ids.data_ptr() != a.pooled_ids.data_ptr()
        for x, y in zip(_tensors(a), _tensors(b), strict=True):
            assert torch.equal(x, y)


# ---- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_ids_in_range(name: str, distribution: str) -> None:
    spec = _tiny(name)
    layout = table_layout(spec)
    query = QuerySpec(distribution=distribution, pooling="variable")
    for batch in generate_batch_set(spec, query, 8, 3):
        for table, ids in zip(layout.pooled, batch.bag_indices, strict=True):
            assert ids.min() >= 0 and ids.max() < spec.rows[table]
        for step in range(layout.sequence_length):
            column = batch.sequence[:, step]
            assert column.min() >= 0
            assert column.max() < spec.rows[layout.behaviour_table_of_step(step)]


def test_uniform_distinct_rows_match_the_expectation() -> None:
    spec, query = _dlrm("2000-50000", pooling=8), QuerySpec()
    batch_set = generate_batch_set(spec, query, 16, 40)  # 5120 draws per table
    for position, rows in enumerate(spec.rows):
        ids = _table_ids(batch_set, position)
        expected = expected_distinct_rows(query, rows, len(ids))
        assert len(np.unique(ids)) == pytest.approx(expected, rel=0.03)


def test_zipf_hot_rows_follow_the_rank_bijection() -> None:
    spec, query = _dlrm("10000-3000", pooling=8), QuerySpec(distribution="zipf", seed=5)
    batch_set = generate_batch_set(spec, query, 64, 6)
    reference = generate_batches(spec, query, 64, 1)[0]
    for position, rows in enumerate(spec.rows):
        a, b = _zipf_rank_map(query.seed, position, rows)
        hottest = [(r * a + b) % rows for r in range(3)]
        # The hottest row in every batch (generate_batches' too), the next ones over all.
        for ids in [*(batch.bag_indices[position].numpy() for batch in batch_set),
                    reference.bag_indices[position].numpy(), _table_ids(batch_set, position)]:
            values, counts = np.unique(ids, return_counts=True)
            top = 3 if len(ids) > 512 else 1
            assert values[np.argsort(-counts)[:top]].tolist() == hottest[:top]


def test_locality_reuses_within_a_batch_never_across() -> None:
    # Rows so many that fresh draws never repeat: every repeated row is a reuse.
    spec = _dlrm(f"{2**40}", pooling=16)
    query = QuerySpec(distribution="locality", reuse_probability=0.6, reuse_distance_max=4096,
                      pooling="variable")
    batch_set = generate_batch_set(spec, query, 8, 50)
    seen: set[int] = set()
    repeats = 0
    for batch in batch_set:
        ids = batch.bag_indices[0].numpy()
        distinct = set(ids.tolist())
        assert not distinct & seen, "a row of an earlier batch came back"
        seen |= distinct
        repeats += len(ids) - len(distinct)
    assert repeats / len(batch_set.pooled_ids) == pytest.approx(0.6, abs=0.1)


def test_locality_segments_change_nothing_for_one_segment() -> None:
    def ids(starts: np.ndarray | None) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64(11))
        return _locality_ids(rng, 500, 10**9, 0.7, 64, starts)

    assert np.array_equal(ids(None), ids(np.array([0])))
    split = ids(np.array([0, 200, 200, 500]))  # an empty segment and a trailing start
    assert not set(split[:200].tolist()) & set(split[200:].tolist())


# ---- model forwards ------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_forward_on_items_equals_forward_on_plain_batches(name: str, pooling: str,
                                                          fused: bool) -> None:
    spec = _tiny(name)
    model = build_model(spec, fused=fused)
    batch_set = generate_batch_set(spec, QuerySpec(pooling=pooling, seed=2), 3, 3)
    with torch.inference_mode():
        for batch in batch_set:
            output = model(batch)
            assert output.shape[0] == 3
            assert torch.equal(output, model(_plain(batch)))


@pytest.mark.parametrize("high", [5, 2**40])  # packed keys; rows too wide to pack
def test_per_batch_lookups_share_one_tuple_per_distinct_row(high: int) -> None:
    from recstack.batch_set import _shared_rows

    per_table = np.random.default_rng(0).integers(1, high, size=(300, 3)) % 4 * (high // 4)
    lookups = _shared_rows(per_table)
    assert lookups == [tuple(row) for row in per_table.tolist()]
    assert len({id(row) for row in lookups}) == len({tuple(row) for row in per_table.tolist()})
