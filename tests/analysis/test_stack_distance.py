"""Stack distances against brute force, and LRU hit rates against a simulated cache."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

from recstack.analysis.stack_distance import (COLD, CURVE_COLUMNS, HISTOGRAM_COLUMNS,
                                              hit_rate_curve, lru_hit_rate,
                                              reuse_distance_histogram, stack_distances)
from recstack.errors import RecstackError


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
