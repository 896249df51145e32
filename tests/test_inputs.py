"""The synthetic query generator: determinism, shapes, id ranges and the id distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recstack.batch import Batch
from recstack.errors import RecstackError, SpecError
from recstack.inputs import QuerySpec, describe, generate_batches
from recstack.layout import table_layout
from recstack.specs import ModelSpec, spec_from_config, zoo_spec

DISTRIBUTIONS = ("uniform", "zipf", "locality")


def _dlrm(rows: str, pooling: int = 4, fixed: bool = True) -> ModelSpec:
    return spec_from_config({
        "model_type": "dlrm",
        "arch_mlp_bot": "8-4",
        "arch_mlp_top": "4-1",
        "arch_embedding_size": rows,
        "arch_sparse_feature_size": 4,
        "num_indices_per_lookup": pooling,
        "num_indices_per_lookup_fixed": fixed,
    })


def _dien_mixed_rows() -> ModelSpec:
    """A DIEN with three behaviour tables of different sizes, one per step, cycled."""
    return spec_from_config({
        "model_type": "dien",
        "arch_mlp_top": "8-1",
        "arch_embedding_size": "50-7-300-20-11-13",
        "arch_sparse_feature_size": 4,
        "num_indices_per_lookup": 2,
        "sequence_length": 8,
    })


def _all_tensors(batch: Batch) -> list[torch.Tensor]:
    tensors = [*batch.bag_indices, *batch.bag_offsets]
    tensors += [t for t in (batch.dense, batch.sequence) if t is not None]
    return tensors


def _repeat_fraction(ids: np.ndarray) -> float:
    """Fraction of accesses whose row appeared earlier in the stream."""
    _, first = np.unique(ids, return_index=True)
    return 1.0 - len(first) / len(ids)


# ---- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_same_arguments_give_identical_tensors(distribution: str) -> None:
    spec = _dien_mixed_rows()
    query = QuerySpec(distribution=distribution, pooling="variable", seed=7)
    first = generate_batches(spec, query, 16, 3)
    second = generate_batches(spec, query, 16, 3)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(_all_tensors(a), _all_tensors(b), strict=True):
            assert x.dtype == y.dtype
            assert torch.equal(x, y)


def test_batches_do_not_depend_on_how_many_are_asked_for() -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)
    query = QuerySpec(distribution="locality")
    two = generate_batches(spec, query, 8, 2)
    one = generate_batches(spec, query, 8, 1)
    for x, y in zip(_all_tensors(one[0]), _all_tensors(two[0]), strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_different_seed_gives_different_ids(distribution: str) -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)
    a = generate_batches(spec, QuerySpec(distribution=distribution, seed=0), 32, 1)[0]
    b = generate_batches(spec, QuerySpec(distribution=distribution, seed=1), 32, 1)[0]
    assert not torch.equal(a.bag_indices[0], b.bag_indices[0])
    assert not torch.equal(a.dense, b.dense)


def test_batches_differ_from_each_other() -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)
    first, second = generate_batches(spec, QuerySpec(), 32, 2)
    assert not torch.equal(first.bag_indices[0], second.bag_indices[0])
    assert not torch.equal(first.bag_indices[0], first.bag_indices[1])


# ---- shapes and dtypes ---------------------------------------------------------------------


def test_dlrm_shapes_and_dtypes() -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)
    batches = generate_batches(spec, QuerySpec(), 32, 2)
    assert len(batches) == 2
    batch = batches[0]
    assert batch.size == 32
    assert batch.dense.shape == (32, spec.dense_features) and batch.dense.dtype == torch.float32
    assert 0.0 <= float(batch.dense.min()) and float(batch.dense.max()) < 1.0
    assert batch.sequence is None
    assert len(batch.bag_indices) == len(batch.bag_offsets) == spec.num_tables
    for ids, offsets in zip(batch.bag_indices, batch.bag_offsets, strict=True):
        assert ids.dtype == offsets.dtype == torch.int64
        assert ids.shape == (32 * spec.pooling_factor,)
        assert offsets.shape == (32,)


def test_wnd_has_its_dense_width() -> None:
    spec = zoo_spec("wnd").scaled(1e-3)
    batch = generate_batches(spec, QuerySpec(), 8, 1)[0]
    assert batch.dense.shape == (8, 512)
    assert len(batch.bag_indices) == spec.num_tables


def test_ncf_has_no_dense_features() -> None:
    spec = zoo_spec("ncf").scaled(1e-2)
    batch = generate_batches(spec, QuerySpec(), 8, 1)[0]
    assert batch.dense is None
    assert batch.sequence is None
    assert len(batch.bag_indices) == 4
    assert all(ids.shape == (8,) for ids in batch.bag_indices)


def test_din_sequence_shape() -> None:
    spec = zoo_spec("din").scaled(1e-3)
    layout = table_layout(spec)
    batch = generate_batches(spec, QuerySpec(distribution="zipf"), 16, 1)[0]
    assert batch.dense is None
    assert batch.sequence.shape == (16, spec.sequence_length)
    assert batch.sequence.dtype == torch.int64
    assert len(batch.bag_indices) == len(layout.pooled) == 3
    assert batch.bag_indices[1].shape == (16,)  # one candidate ad per sample
    behaviour_rows = spec.rows[layout.behaviour[0]]
    assert int(batch.sequence.min()) >= 0 and int(batch.sequence.max()) < behaviour_rows


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_sequence_columns_hold_rows_of_their_behaviour_table(distribution: str) -> None:
    spec = _dien_mixed_rows()
    layout = table_layout(spec)
    assert len({spec.rows[t] for t in layout.behaviour}) == 3
    batch = generate_batches(spec, QuerySpec(distribution=distribution), 256, 1)[0]
    sequence = batch.sequence.numpy()
    assert sequence.shape == (256, 8)
    for step in range(8):
        rows = spec.rows[layout.behaviour_table_of_step(step)]
        column = sequence[:, step]
        assert column.min() >= 0 and column.max() < rows
        # The small table is covered, so the bound is tight rather than loose.
        if rows == 7 and distribution == "uniform":
            assert column.max() == rows - 1


# ---- pooling -------------------------------------------------------------------------------


def test_fixed_pooling_offsets() -> None:
    spec = _dlrm("100-200", pooling=5, fixed=False)
    batch = generate_batches(spec, QuerySpec(pooling="fixed"), 64, 1)[0]
    for ids, offsets in zip(batch.bag_indices, batch.bag_offsets, strict=True):
        assert torch.equal(offsets, torch.arange(64, dtype=torch.int64) * 5)
        assert ids.shape == (64 * 5,)


@pytest.mark.parametrize("pooling,spec_fixed", [("variable", True), ("spec", False)])
def test_variable_pooling_lengths(pooling: str, spec_fixed: bool) -> None:
    spec = _dlrm("100-200", pooling=6, fixed=spec_fixed)
    batch = generate_batches(spec, QuerySpec(pooling=pooling), 128, 1)[0]
    for ids, offsets in zip(batch.bag_indices, batch.bag_offsets, strict=True):
        assert int(offsets[0]) == 0
        lengths = torch.diff(offsets, append=torch.tensor([ids.numel()]))
        assert int(lengths.min()) >= 1 and int(lengths.max()) <= 6
        assert len(torch.unique(lengths)) > 1


def test_spec_pooling_follows_the_spec() -> None:
    spec = _dlrm("100", pooling=3, fixed=True)
    batch = generate_batches(spec, QuerySpec(pooling="spec"), 16, 1)[0]
    assert torch.equal(batch.bag_offsets[0], torch.arange(16) * 3)


# ---- id ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("name", ["rmc1", "ncf", "din", "dien"])
def test_ids_in_range_for_every_table(name: str, distribution: str) -> None:
    spec = zoo_spec(name).scaled(1e-3)
    layout = table_layout(spec)
    query = QuerySpec(distribution=distribution, pooling="variable",
                      reuse_probability=0.9, reuse_distance_max=64)
    for batch in generate_batches(spec, query, 32, 2):
        for table, ids in zip(layout.pooled, batch.bag_indices, strict=True):
            assert int(ids.min()) >= 0 and int(ids.max()) < spec.rows[table]


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_single_row_table(distribution: str) -> None:
    spec = _dlrm("1-3", pooling=4)
    batch = generate_batches(spec, QuerySpec(distribution=distribution), 8, 1)[0]
    assert torch.equal(batch.bag_indices[0], torch.zeros(32, dtype=torch.int64))
    assert int(batch.bag_indices[1].max()) < 3


# ---- zipf ----------------------------------------------------------------------------------


def test_zipf_concentrates_on_scattered_hot_rows() -> None:
    rows = 10_000
    spec = _dlrm(str(rows), pooling=50)
    ids = generate_batches(spec, QuerySpec(distribution="zipf", zipf_exponent=1.2),
                           400, 1)[0].bag_indices[0].numpy()
    counts = np.bincount(ids, minlength=rows)
    assert counts.max() / len(ids) > 20 / rows
    top = np.argsort(counts)[::-1][:3]
    assert set(top.tolist()) != {0, 1, 2}
    uniform = generate_batches(spec, QuerySpec(), 400, 1)[0].bag_indices[0].numpy()
    assert np.bincount(uniform).max() / len(uniform) < 20 / rows


def test_zipf_hot_rows_are_the_same_in_every_batch() -> None:
    spec = _dlrm("10000", pooling=50)
    query = QuerySpec(distribution="zipf", zipf_exponent=1.2)
    hottest = [int(np.bincount(b.bag_indices[0].numpy()).argmax())
               for b in generate_batches(spec, query, 200, 3)]
    assert len(set(hottest)) == 1


# ---- locality ------------------------------------------------------------------------------


def test_locality_reuse_grows_with_probability() -> None:
    spec = _dlrm("1000000", pooling=20)
    fractions = []
    for p in (0.0, 0.3, 0.8):
        query = QuerySpec(distribution="locality", reuse_probability=p)
        ids = generate_batches(spec, query, 256, 1)[0].bag_indices[0].numpy()
        fractions.append(_repeat_fraction(ids))
    assert fractions[0] < 0.01
    assert fractions[0] < fractions[1] < fractions[2]
    assert fractions[2] == pytest.approx(0.8, abs=0.03)


def test_locality_reuse_stays_within_the_distance_bound() -> None:
    spec = _dlrm("1000000", pooling=10)
    query = QuerySpec(distribution="locality", reuse_probability=0.5, reuse_distance_max=8)
    ids = generate_batches(spec, query, 200, 1)[0].bag_indices[0].numpy()
    # Fresh rows almost never collide in 1e6 rows, so a repeat is a reuse, and a reuse's row
    # was last seen at most 8 accesses earlier (a chain of reuses re-touches it each time).
    last_seen: dict[int, int] = {}
    gaps = []
    for i, row in enumerate(ids.tolist()):
        if row in last_seen:
            gaps.append(i - last_seen[row])
        last_seen[row] = i
    assert len(gaps) > 0.4 * len(ids)
    assert max(gaps) <= 8


def test_locality_does_not_reuse_across_batches() -> None:
    spec = _dlrm("1000000", pooling=10)
    query = QuerySpec(distribution="locality", reuse_probability=0.8)
    first, second = generate_batches(spec, query, 64, 2)
    shared = np.intersect1d(first.bag_indices[0].numpy(), second.bag_indices[0].numpy())
    assert len(shared) < 5


# ---- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("distribution", "normal"),
    ("distribution", 3),
    ("zipf_exponent", 0.0),
    ("zipf_exponent", -1.5),
    ("zipf_exponent", float("nan")),
    ("zipf_exponent", float("inf")),
    ("zipf_exponent", "1.1"),
    ("zipf_exponent", True),
    ("reuse_probability", 1.0),
    ("reuse_probability", -0.1),
    ("reuse_probability", float("nan")),
    ("reuse_distance_max", 0),
    ("reuse_distance_max", 2.5),
    ("pooling", "random"),
    ("seed", -1),
    ("seed", 1.5),
    ("seed", None),
])
def test_bad_query_field_names_field_and_value(field: str, value: object) -> None:
    with pytest.raises(SpecError) as caught:
        QuerySpec(**{field: value})
    message = str(caught.value)
    assert field in message and repr(value) in message
    assert "\n" not in message
    assert isinstance(caught.value, RecstackError)


@pytest.mark.parametrize("field,value", [
    ("batch_size", 0), ("batch_size", -4), ("batch_size", 2.0), ("num_batches", 0),
])
def test_bad_batch_arguments(field: str, value: object) -> None:
    arguments = {"batch_size": 4, "num_batches": 1, field: value}
    with pytest.raises(SpecError) as caught:
        generate_batches(_dlrm("10"), QuerySpec(), **arguments)
    assert field in str(caught.value) and repr(value) in str(caught.value)


# ---- the spec object -----------------------------------------------------------------------


def test_query_spec_is_hashable_and_storable() -> None:
    query = QuerySpec(distribution="locality", reuse_probability=np.float64(0.25),
                      seed=np.int64(3))
    assert hash(query) == hash(QuerySpec(distribution="locality", reuse_probability=0.25,
                                         seed=3))
    stored = query.to_dict()
    assert stored == {"distribution": "locality", "zipf_exponent": 1.05,
                      "reuse_probability": 0.25, "reuse_distance_max": 4096,
                      "pooling": "spec", "seed": 3}
    assert type(stored["seed"]) is int and type(stored["reuse_probability"]) is float
    assert QuerySpec(**stored) == query


def test_describe() -> None:
    assert describe(QuerySpec(distribution="zipf", pooling="fixed")) == \
        "zipf(s=1.05), fixed pooling, seed 0"
    line = describe(QuerySpec(distribution="locality", reuse_probability=0.8, seed=2))
    assert "locality" in line and "0.8" in line and "4096" in line and "seed 2" in line
    assert "\n" not in describe(QuerySpec())


@pytest.mark.parametrize("query", [QuerySpec(), QuerySpec(distribution="zipf"),
                                   QuerySpec(distribution="locality")],
                         ids=["uniform", "zipf", "locality"])
def test_expected_distinct_rows_match_generated_ids(query):
    from recstack.inputs import _table_ids, expected_distinct_rows

    rng = np.random.default_rng(3)
    for rows, draws in [(1000, 500), (20_000, 60_000)]:
        counts = [len(np.unique(_table_ids(query, rng, draws, 0, rows))) for _ in range(5)]
        expected = expected_distinct_rows(query, rows, draws)
        assert expected <= draws and expected <= rows
        assert np.mean(counts) == pytest.approx(expected, rel=0.06)
    assert expected_distinct_rows(query, 10, 0) == 0.0
