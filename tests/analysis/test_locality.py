"""The locality of the generated queries (uniform, zipf, locality; pooled and behaviour
tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recstack.analysis.locality import (PROFILE_COLUMNS, SHARED_COLUMNS, cache_label,
                                        capacity_rows, combined_stream, hit_rate_column,
                                        locality_profile, shared_cache_hit_rates, table_streams)
from recstack.analysis.stack_distance import lru_hit_rate, stack_distances
from recstack.errors import RecstackError
from recstack.inputs import QuerySpec, generate_batches
from recstack.layout import table_layout
from recstack.specs import zoo_spec

KIB = 1024
CACHES = [16 * KIB, 64 * KIB, 256 * KIB]


# --------------------------------------------------------------------------------------------
# Generated queries
# --------------------------------------------------------------------------------------------


def _profile(distribution: str, **query: object) -> pd.DataFrame:
    spec = zoo_spec("rmc1").scaled(1e-3)
    batches = generate_batches(spec, QuerySpec(distribution=distribution, **query), 64, 3)
    return locality_profile(spec, batches, CACHES)


def test_capacity_and_labels() -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)  # 32-wide rows: 128 bytes each
    assert capacity_rows(spec, 16 * KIB) == 128
    assert capacity_rows(spec, 100) == 0
    assert cache_label(32 * KIB) == "32KiB"
    assert cache_label(2 << 20) == "2MiB"
    assert cache_label(1536) == "1536B"
    assert hit_rate_column(256 * KIB) == "hit_rate_256KiB"


def test_table_streams_follow_generation_order() -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)
    batches = generate_batches(spec, QuerySpec(), 16, 2)
    streams = table_streams(spec, batches)
    assert sorted(streams) == list(range(spec.num_tables))
    for k, table in enumerate(table_layout(spec).pooled):
        expected = np.concatenate([b.bag_indices[k].numpy() for b in batches])
        np.testing.assert_array_equal(streams[table], expected)
    combined = combined_stream(spec, batches)
    assert combined.size == sum(s.size for s in streams.values())
    assert table_streams(spec, [])[0].size == 0


def test_uniform_profile() -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)
    profile = _profile("uniform")
    assert list(profile.columns) == PROFILE_COLUMNS + [hit_rate_column(c) for c in CACHES]
    assert profile["table"].tolist() == list(range(spec.num_tables))
    rows = spec.rows[0]
    accesses = 64 * spec.pooling_factor * 3
    assert (profile["rows"] == rows).all()
    assert (profile["accesses"] == accesses).all()
    # Expected distinct rows of n uniform draws over R rows: R (1 - (1 - 1/R)^n).
    expected_unique = rows * (1 - (1 - 1 / rows) ** accesses) / accesses
    assert profile["unique_fraction"].to_numpy() == pytest.approx(expected_unique, abs=0.01)
    assert (profile["unique_fraction"] + profile["reuse_fraction"]).to_numpy() == \
        pytest.approx(1.0)
    assert (profile["median_stack_distance"] <= profile["p90_stack_distance"]).all()
    rates = profile[[hit_rate_column(c) for c in CACHES]].to_numpy()
    assert (np.diff(rates, axis=1) > 0).all()  # grows with the cache
    for cache, column in zip(CACHES, rates.T, strict=True):
        share = capacity_rows(spec, cache) / rows
        # The whole stream includes the cold start, so at most the steady state C / R.
        assert (column <= share + 0.02).all()
        assert (column >= 0.8 * share).all()


def test_uniform_steady_state_hit_rate_is_capacity_over_rows() -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)
    streams = table_streams(spec, generate_batches(spec, QuerySpec(), 64, 4))
    distances = stack_distances(streams[0])
    tail = distances[len(distances) // 2:]  # long after the cache has filled
    rows = spec.rows[0]
    for capacity in (128, 512, 2048):
        assert lru_hit_rate(tail, capacity) == pytest.approx(capacity / rows, abs=0.02)


def test_zipf_hits_more_than_uniform() -> None:
    uniform, zipf = _profile("uniform"), _profile("zipf")
    for cache in CACHES:
        column = hit_rate_column(cache)
        assert (zipf[column] > uniform[column] + 0.15).all()
    assert (zipf["unique_fraction"] < uniform["unique_fraction"]).all()


def test_locality_queries_reuse() -> None:
    profile = _profile("locality", reuse_probability=0.8, reuse_distance_max=256)
    assert (profile["reuse_fraction"] >= 0.75).all()
    # Time distance <= 256 bounds the stack distance of every reuse inside a batch.
    assert (profile["median_stack_distance"] < 256).all()
    uniform = _profile("uniform")
    column = hit_rate_column(CACHES[0])
    assert (profile[column] > uniform[column] + 0.3).all()


def test_shared_cache() -> None:
    spec = zoo_spec("rmc1").scaled(1e-3)
    batches = generate_batches(spec, QuerySpec(), 64, 2)
    shared = shared_cache_hit_rates(spec, batches, [*CACHES, CACHES[0]])
    assert list(shared.columns) == SHARED_COLUMNS
    assert shared["cache_bytes"].tolist() == CACHES
    assert shared["capacity_rows"].tolist() == [capacity_rows(spec, c) for c in CACHES]
    assert shared["hit_rate"].is_monotonic_increasing
    # Eight tables share the cache: no better than one table alone in it.
    alone = locality_profile(spec, batches, CACHES)
    for cache, rate in zip(CACHES, shared["hit_rate"], strict=True):
        assert rate <= alone[hit_rate_column(cache)].mean() + 1e-9


def test_din_behaviour_table_includes_the_sequence() -> None:
    spec = zoo_spec("din").scaled(1e-3)
    layout = table_layout(spec)
    batch_size, num_batches = 32, 2
    batches = generate_batches(spec, QuerySpec(), batch_size, num_batches)
    profile = locality_profile(spec, batches, [4 * KIB]).set_index("table")
    (behaviour,) = layout.behaviour
    assert behaviour not in layout.pooled
    assert profile.loc[behaviour, "accesses"] == \
        batch_size * spec.sequence_length * num_batches
    streams = table_streams(spec, batches)
    expected = np.concatenate([b.sequence.numpy().reshape(-1) for b in batches])
    np.testing.assert_array_equal(streams[behaviour], expected)
    # Pooled tables are there too, with their bag lengths.
    assert profile.loc[layout.candidate_table, "accesses"] == batch_size * num_batches


def test_dien_behaviour_tables_split_the_sequence() -> None:
    spec = zoo_spec("dien").scaled(1e-3)
    layout = table_layout(spec)
    batches = generate_batches(spec, QuerySpec(), 16, 2)
    profile = locality_profile(spec, batches, [4 * KIB]).set_index("table")
    steps_per_table = spec.sequence_length // len(layout.behaviour)
    for table in layout.behaviour:
        assert profile.loc[table, "accesses"] == 16 * 2 * steps_per_table
    assert profile["accesses"].sum() == sum(b.sequence.numel() for b in batches) + sum(
        t.numel() for b in batches for t in b.bag_indices)


def test_batches_of_another_model_are_refused() -> None:
    din = zoo_spec("din").scaled(1e-3)
    rmc1 = zoo_spec("rmc1").scaled(1e-3)
    with pytest.raises(RecstackError):
        locality_profile(din, generate_batches(rmc1, QuerySpec(), 4, 1), CACHES)
