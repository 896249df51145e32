"""Reuse profiles: the fits against their definitions, the C generator against the stack
distances it is asked for, and profile files read as untrusted input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recstack import reuse_profile
from recstack.analysis.stack_distance import COLD, stack_distances
from recstack.errors import RecstackError
from recstack.reuse_profile import (FIRST_TOUCH_BINS, TableProfile, TraceProfile, fit_table,
                                    fit_table_deeprecsys, generate_ids, read_profile,
                                    streams_digest, write_profile)


def profile(cold: float, edges: tuple[int, ...], counts: tuple[int, ...],
            first_touch: tuple[float, ...] = (1.0,), method: str = "recstack") -> TableProfile:
    """A hand-made profile: ``counts`` reuses per bin, about ``cold`` of all accesses new."""
    accesses = round(sum(counts) / (1 - cold))
    return TableProfile(1 - sum(counts) / accesses, edges, counts, first_touch, accesses, 1,
                        1 << 20, method)


def reference_trace(new: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """A stream cut from an LRU-stack process, in plain Python: access ``i`` takes a new row
    when ``new[i]``, else the row at depth ``depths[i]`` (0 = most recent), a new row when
    the stack is not that deep yet. Ids count first touches."""
    stack: list[int] = []  # most recent last
    out = np.empty(new.size, dtype=np.int64)
    rows = 0
    for i, depth in enumerate(depths.tolist()):
        if new[i] or depth >= len(stack):
            row, rows = rows, rows + 1
        else:
            row = stack.pop(-1 - depth)
        stack.append(row)
        out[i] = row
    return out


def deeprecsys_reference(trace: list[int], window: int) -> list[int]:
    """DeepRecSys's profiling loop as they describe it, quadratically: 0 for a new reference,
    else the distinct rows from the previous access (in the last ``window``) to now."""
    distances = []
    for i, row in enumerate(trace):
        recent = trace[max(0, i - window):i]
        if row in recent:
            last = len(recent) - 1 - recent[::-1].index(row)
            distances.append(len(set(recent[last:])))
        else:
            distances.append(0)
    return distances


# ---- the generator -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["recstack", "deeprecsys"])
def test_every_reuse_is_at_the_distance_asked_for(method: str) -> None:
    ids = generate_ids(profile(0.1, (3, 4), (900,), method=method), 20_000, 1 << 20,
                       np.random.default_rng(0))
    distances = stack_distances(ids)
    assert set(distances[distances >= 0].tolist()) == {3}
    assert 0.05 < np.mean(distances == COLD) < 0.15


def test_generated_distances_follow_the_profile() -> None:
    shape = profile(0.2, (0, 1, 10, 20, 1000, 1100), (300, 200, 0, 200, 100))
    ids = generate_ids(shape, 200_000, 1 << 22, np.random.default_rng(1))
    distances = stack_distances(ids)[20_000:]  # well past the first 1100 distinct rows
    shares = [np.mean(distances == COLD), np.mean(distances == 0),
              np.mean((distances >= 1) & (distances < 10)), np.mean((distances >= 10) &
                                                                      (distances < 20)),
              np.mean((distances >= 20) & (distances < 1000)),
              np.mean((distances >= 1000) & (distances < 1100))]
    assert shares == pytest.approx([0.2, 0.3, 0.2, 0.0, 0.2, 0.1], abs=0.01)


def test_ids_are_in_range_and_follow_the_seed() -> None:
    shape = profile(0.3, (0, 5, 500), (10, 10))
    first = generate_ids(shape, 10_000, 777, np.random.default_rng(5))
    assert first.dtype == np.int64 and first.shape == (10_000,)
    assert first.min() >= 0 and first.max() < 777
    assert np.array_equal(first, generate_ids(shape, 10_000, 777, np.random.default_rng(5)))
    assert not np.array_equal(first, generate_ids(shape, 10_000, 777,
                                                  np.random.default_rng(6)))
    assert generate_ids(shape, 0, 10, np.random.default_rng(0)).shape == (0,)


def test_first_touches_never_repeat_while_rows_remain_then_take_the_least_recent() -> None:
    # Every first touch wants the first 256th of the ids: it fills, then any row serves.
    skewed = (1.0,) + (0.0,) * (FIRST_TOUCH_BINS - 1)
    shape = TableProfile(1.0, (0, 1), (0,), skewed, 10, 10, 10)
    ids = generate_ids(shape, 3 * 5000, 5000, np.random.default_rng(2))
    assert np.array_equal(np.sort(ids[:5000]), np.arange(5000))
    assert np.array_equal(ids[5000:], ids[:-5000])  # all touched: cold takes the LRU row


def test_a_table_smaller_than_the_profile_reach_works() -> None:
    shape = profile(0.2, (0, 10, 100, 5000), (50, 30, 20))
    ids = generate_ids(shape, 50_000, 50, np.random.default_rng(3))
    distances = stack_distances(ids)
    assert ids.min() >= 0 and ids.max() < 50 and np.unique(ids).size == 50
    assert distances.max() < 50


def test_first_touches_land_where_the_trace_puts_them_at_any_table_size() -> None:
    rng = np.random.default_rng(4)
    upper = rng.integers(7_500, 10_000, 20_000)  # the trace touches only the top quarter
    shape = fit_table(upper, rows=10_000)
    ids = generate_ids(shape, 20_000, 1_000_000, np.random.default_rng(0))
    assert ids.min() >= 750_000


def test_generation_refuses_bad_sizes() -> None:
    shape = profile(0.5, (0, 1), (1,))
    for n, rows in [(-1, 10), (10, 0), (1.5, 10), (10, True)]:
        with pytest.raises(RecstackError, match="not allowed"):
            generate_ids(shape, n, rows, np.random.default_rng(0))  # type: ignore[arg-type]


def test_no_compiler_says_to_install_gcc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    reuse_profile._library.cache_clear()
    try:
        with pytest.raises(RecstackError, match="gcc") as error:
            generate_ids(profile(0.5, (0, 1), (1,)), 10, 10, np.random.default_rng(0))
        assert "\n" not in str(error.value)
    finally:
        reuse_profile._library.cache_clear()


# ---- the fits -----------------------------------------------------------------------------


def test_the_fit_reproduces_a_known_cold_fraction() -> None:
    rng = np.random.default_rng(8)
    stream = reference_trace(rng.random(100_000) < 0.2, rng.integers(0, 100, 100_000))
    fitted = fit_table(stream)
    assert fitted.cold_fraction == pytest.approx(0.2, abs=0.005)
    assert fitted.unique_rows == np.unique(stream).size and fitted.accesses == stream.size
    assert fitted.rows == stream.max() + 1 and fitted.method == "recstack"
    # Rows first, then only reuses within the window: DeepRecSys sees exactly the first share.
    exact = np.concatenate([np.arange(1000), rng.integers(0, 1000, 3000)])
    assert fit_table_deeprecsys(exact).cold_fraction == 0.25


def test_the_recstack_fit_keeps_exact_short_distances_and_log_bins() -> None:
    rng = np.random.default_rng(9)
    stream = reference_trace(rng.random(50_000) < 0.1,
                             np.exp(rng.uniform(0, np.log(5000), 50_000)).astype(int))
    fitted = fit_table(stream)
    edges = np.asarray(fitted.distance_edges)
    assert np.array_equal(edges[:65], np.arange(65))
    low, high = edges[:-1], edges[1:]
    used = np.asarray(fitted.distance_counts) > 0  # empty runs merge; the rest are bins
    assert np.all(high[used] - low[used] <= np.maximum(1, 0.1 * low[used] + 1))
    assert edges[-1] == stack_distances(stream).max() + 1
    assert sum(fitted.first_touch) == pytest.approx(1.0)
    assert len(fitted.first_touch) == FIRST_TOUCH_BINS


def test_the_deeprecsys_fit_matches_their_profiling_loop() -> None:
    rng = np.random.default_rng(10)
    trace = rng.integers(0, 60, 1500).tolist()
    for window in (1, 7, 100, 10_000):
        theirs = np.asarray(deeprecsys_reference(trace, window))
        fitted = fit_table_deeprecsys(np.asarray(trace), window=window)
        assert fitted.cold_fraction == pytest.approx(np.mean(theirs == 0))
        ours = theirs[theirs > 0] - 1  # theirs counts the reused row itself
        values, counts = np.unique(ours, return_counts=True)
        edges, fitted_counts = fitted.distance_edges, fitted.distance_counts
        got = {edges[i]: c for i, c in enumerate(fitted_counts) if c}
        assert all(edges[i + 1] == edges[i] + 1 for i, c in enumerate(fitted_counts) if c)
        assert got == dict(zip(values.tolist(), counts.tolist()))
        assert fitted.first_touch == (1.0,) and fitted.method == "deeprecsys"


def test_fits_take_torch_tensors() -> None:
    import torch

    stream = np.random.default_rng(12).integers(0, 300, 2000)
    assert fit_table(torch.from_numpy(stream)) == fit_table(stream)
    assert fit_table_deeprecsys(torch.from_numpy(stream)) == fit_table_deeprecsys(stream)


def test_fits_refuse_what_is_no_stream() -> None:
    for bad in (np.array([], dtype=np.int64), np.array([[1, 2]]), np.array([1.5, 2.0]),
                np.array([3, -1])):
        with pytest.raises(RecstackError):
            fit_table(bad)
    with pytest.raises(RecstackError, match="rows"):
        fit_table(np.array([5, 6]), rows=6)
    with pytest.raises(RecstackError, match="window"):
        fit_table_deeprecsys(np.array([5, 6]), window=0)


# ---- files --------------------------------------------------------------------------------


def sample_profile() -> TraceProfile:
    rng = np.random.default_rng(11)
    streams = [rng.integers(0, 500, 4000), rng.integers(0, 50, 3000)]
    return TraceProfile("sample.pt", streams_digest(streams),
                        (fit_table(streams[0]), fit_table_deeprecsys(streams[1], rows=64)))


def test_a_profile_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    write_profile(path, sample_profile())
    assert read_profile(path) == sample_profile()
    assert json.loads(path.read_text())["format"] == "recstack-reuse-profile"


def edited(tmp_path: Path, change: object) -> Path:
    """The sample profile's file with ``change`` (a function of its data) applied."""
    path = tmp_path / "bad.json"
    write_profile(path, sample_profile())
    data = json.loads(path.read_text())
    result = change(data)  # type: ignore[operator]
    path.write_text(json.dumps(result if isinstance(result, list) else data))
    return path


def set_field(field: str, value: object) -> object:
    return lambda data: data["tables"][0].__setitem__(field, value)


@pytest.mark.parametrize("change, names", [
    (lambda data: [data], "JSON object"),
    (set_field("accesses", "many"), "tables[0].accesses"),
    (set_field("rows", 2.5), "tables[0].rows"),
    (set_field("cold_fraction", 1.5), "tables[0].cold_fraction"),
    (set_field("method", "magic"), "tables[0].method"),
    (set_field("distance_counts", [-1] * 10), "tables[0].distance_counts"),
    (set_field("distance_edges", [5, 4, 3]), "tables[0].distance_edges"),
    (set_field("first_touch", [0.5, 0.4]), "tables[0].first_touch"),
    (set_field("first_touch", [True]), "tables[0].first_touch"),
    (lambda data: data["tables"][1].pop("rows"), "tables[1]: fields"),
    (lambda data: data["tables"][1].__setitem__("extra", 1), "tables[1]: fields"),
    (lambda data: data.pop("source"), "source"),
    (lambda data: data.__setitem__("version", 99), "version"),
    (lambda data: data.__setitem__("tables", {}), "tables"),
    (lambda data: data["tables"].__setitem__(0, 3), "tables[0]"),
])
def test_malformed_profile_files_are_one_line_errors(tmp_path: Path, change: object,
                                                     names: str) -> None:
    with pytest.raises(RecstackError) as error:
        read_profile(edited(tmp_path, change))
    message = str(error.value)
    assert message.startswith("bad.json") and names in message and "\n" not in message


def test_counts_must_add_up_to_the_reuses(tmp_path: Path) -> None:
    def inflate(data: dict) -> None:
        data["tables"][0]["distance_counts"][0] += 1000
    with pytest.raises(RecstackError, match="distance_counts"):
        read_profile(edited(tmp_path, inflate))


def test_files_that_are_no_json_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(RecstackError, match="broken.json: not valid JSON"):
        read_profile(path)
    with pytest.raises(RecstackError, match="does not exist"):
        read_profile(tmp_path / "missing.json")


def test_a_profile_too_large_to_read_back_is_not_written(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import recstack.reuse_profile

    monkeypatch.setattr(recstack.reuse_profile, "MOST_VALUES", 50_000)  # the real one: 8M
    wide = sample_profile().tables[1]
    values = tuple(range(0, 40_000, 2))
    wide = replace(wide, distance_edges=(*values, 40_000), distance_counts=(1,) * len(values),
                   accesses=len(values), unique_rows=1, cold_fraction=0.0)
    path = tmp_path / "huge.json"
    with pytest.raises(RecstackError, match="fewer tables"):
        write_profile(path, TraceProfile("t", "d", (wide,) * 4))
    assert list(tmp_path.iterdir()) == []


def test_hand_made_profiles_are_checked() -> None:
    with pytest.raises(RecstackError, match="TableProfile.first_touch"):
        TableProfile(0.5, (0, 1), (1,), (0.3,), 2, 1, 10)
