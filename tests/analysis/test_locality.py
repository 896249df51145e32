"""Stack distances against brute force, LRU hit rates against a simulated cache, and the
locality of the generated queries (uniform, zipf, locality; pooled and behaviour tables)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch

from recstack.analysis.locality import (COLD, CURVE_COLUMNS, HISTOGRAM_COLUMNS, PROFILE_COLUMNS,
                                        SHARED_COLUMNS, cache_label, capacity_rows,
                                        combined_stream, hit_rate_column, hit_rate_curve,
                                        locality_profile, lru_hit_rate,
                                        reuse_distance_histogram, shared_cache_hit_rates,
                                        stack_distances, table_streams)
from recstack.errors import RecstackError
from recstack.inputs import QuerySpec, generate_batches
from recstack.layout import table_layout
from recstack.specs import zoo_spec

KIB = 1024
CACHES = [16 * KIB, 64 * KIB, 256 * KIB]


def brute_stack_distances(stream: list[int]) -> list[int]:
    """The definition, quadratically: distinct values since the previous same value."""
    distances = []
    for i, value in enumerate(stream):
        previous = next((j for j in range(i - 1, -1, -1) if stream[j] == value), None)
        distances.append(-1 if previous is None else len(set(stream[previous + 1:i])))
    return distances


def simulated_lru_hit_rate(stream: list[int], capacity: int) -> float:
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for value in stream:
        if value in cache:
            hits += 1
            cache.move_to_end(value)
        else:
            cache[value] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits / len(stream)


# --------------------------------------------------------------------------------------------
# stack_distances
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stream", "expected"), [
    ("abca", [-1, -1, -1, 2]),
    ("aa", [-1, 0]),
    ("abab", [-1, -1, 1, 1]),
    ("abcba", [-1, -1, -1, 1, 2]),
    ("", []),
    ("a", [-1]),
    ("aaab", [-1, 0, 0, -1]),
])
def test_stack_distances_by_hand(stream: str, expected: list[int]) -> None:
    ids = np.array([ord(c) for c in stream], dtype=np.int64)
    distances = stack_distances(ids)
    assert distances.dtype == np.int64
    assert distances.tolist() == expected
    assert COLD == -1


@pytest.mark.parametrize("seed", range(6))
def test_stack_distances_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1000, 3000))
    distinct = int(rng.integers(2, 80))
    stream = rng.integers(0, distinct, size=n)
    assert stack_distances(stream).tolist() == brute_stack_distances(stream.tolist())


def test_stack_distances_many_lengths_and_skewed_streams() -> None:
    # Lengths around the block sizes of the algorithm, and long runs of one value.
    rng = np.random.default_rng(42)
    for n in (2, 31, 32, 33, 63, 64, 65, 127, 129, 255, 257, 511, 1000):
        stream = np.minimum(rng.geometric(0.15, size=n), 40)
        assert stack_distances(stream).tolist() == brute_stack_distances(stream.tolist()), n


def test_stack_distances_accept_tensors_and_any_values() -> None:
    values = torch.tensor([10**12, -5, 10**12, 7, -5])
    assert stack_distances(values).tolist() == [-1, -1, 1, -1, 2]
    with pytest.raises(RecstackError):
        stack_distances(np.zeros((2, 2), dtype=np.int64))


def test_stack_distances_of_a_cyclic_stream() -> None:
    # Cycling over k rows: every re-access has exactly k - 1 distinct rows in between, so
    # LRU with fewer than k rows never hits (the classic LRU pathology).
    k = 50
    stream = np.tile(np.arange(k), 20)
    distances = stack_distances(stream)
    assert (distances[:k] == -1).all()
    assert (distances[k:] == k - 1).all()
    assert lru_hit_rate(distances, k - 1) == 0.0
    assert lru_hit_rate(distances, k) == pytest.approx(19 / 20)


# --------------------------------------------------------------------------------------------
# Hit rates and histogram
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_lru_hit_rate_matches_simulation(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    # A skewed stream over a few hundred rows so small and large caches differ.
    stream = (rng.zipf(1.3, size=4000) % 300).tolist()
    distances = stack_distances(np.asarray(stream))
    capacities = [0, 1, 2, 5, 17, 64, 150, 299, 300, 1000]
    curve = hit_rate_curve(distances, capacities)
    assert list(curve.columns) == CURVE_COLUMNS
    assert curve["capacity_rows"].tolist() == capacities
    for capacity, from_curve in zip(capacities, curve["hit_rate"], strict=True):
        simulated = simulated_lru_hit_rate(stream, capacity)
        assert lru_hit_rate(distances, capacity) == pytest.approx(simulated, abs=1e-12)
        assert from_curve == pytest.approx(simulated, abs=1e-12)


def test_hit_rates_of_edge_cases() -> None:
    assert np.isnan(lru_hit_rate(np.array([], dtype=np.int64), 10))
    assert np.isnan(hit_rate_curve(np.array([], dtype=np.int64), [1])["hit_rate"][0])
    for bad in (-1, 1.5, True):
        with pytest.raises(RecstackError):
            lru_hit_rate(np.array([-1, 0]), bad)  # type: ignore[arg-type]


def test_histogram_default_log2_bins() -> None:
    distances = np.array([-1, -1, -1, 0, 0, 1, 2, 3, 4, 7, 8, 100])
    hist = reuse_distance_histogram(distances)
    assert list(hist.columns) == HISTOGRAM_COLUMNS
    assert hist["label"].tolist() == ["cold", "0", "1", "2-3", "4-7", "8-15", "16-31",
                                      "32-63", "64-127"]
    assert hist["bin_low"].tolist() == [-1, 0, 1, 2, 4, 8, 16, 32, 64]
    assert hist["bin_high"].tolist() == [0, 1, 2, 4, 8, 16, 32, 64, 128]
    assert hist["count"].tolist() == [3, 2, 1, 2, 2, 1, 0, 0, 1]
    assert hist["count"].sum() == distances.size
    assert hist["fraction"].sum() == pytest.approx(1.0)
    only_cold = reuse_distance_histogram(np.array([-1, -1]))
    assert only_cold["label"].tolist() == ["cold"]
    assert only_cold["fraction"].tolist() == [1.0]


def test_histogram_custom_bins() -> None:
    distances = np.array([-1, 0, 3, 4, 9, 10, 50])
    hist = reuse_distance_histogram(distances, bins=[4, 10])
    assert hist["label"].tolist() == ["cold", "0-3", "4-9", ">=10"]
    assert hist["bin_low"].tolist() == [-1, 0, 4, 10]
    assert hist["bin_high"].tolist() == [0, 4, 10, 51]
    assert hist["count"].tolist() == [1, 2, 2, 2]
    with pytest.raises(RecstackError):
        reuse_distance_histogram(distances, bins=[4, 4])


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
