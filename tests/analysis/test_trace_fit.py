"""Hit-rate curves of synthetic ids against held-out data: the comparison itself, and the
promise that a fitted profile reproduces a trace within TARGET at every size."""

from __future__ import annotations

import numpy as np
import pytest

from recstack.analysis.stack_distance import previous_occurrence
from recstack.analysis.trace_fit import (ERROR_COLUMNS, FIT_COLUMNS, FIT_SIZES,
                                         SUMMARY_COLUMNS, TARGET, evaluate_fit, fit_summary,
                                         hit_rate_errors)
from recstack.errors import RecstackError
from tests.test_reuse_profile import reference_trace

ROW_BYTES = 256  # 1 MiB holds 4096 rows, 1 GiB 4 Mi rows


def known_trace(accesses: int, seed: int) -> np.ndarray:
    """A trace with a known profile, from the plain-Python LRU process: 30% new rows, the
    rest at log-uniform depths from 16 to 2e5, ids spread over 2**20 rows."""
    rng = np.random.default_rng(seed)
    depths = np.exp(rng.uniform(np.log(16), np.log(2e5), accesses)).astype(np.int64)
    stream = reference_trace(rng.random(accesses) < 0.3, depths)
    return rng.permutation(1 << 20)[stream]


def test_the_sizes_run_from_one_mebibyte_to_one_gibibyte() -> None:
    assert FIT_SIZES[0] == 1 << 20 and FIT_SIZES[-1] == 1 << 30 and len(FIT_SIZES) == 11
    assert all(b == 2 * a for a, b in zip(FIT_SIZES, FIT_SIZES[1:]))


def test_hit_rate_errors_compare_each_stream_from_an_empty_cache() -> None:
    cycle = np.tile(np.arange(5000), 4)  # LRU thrashes below 5000 rows, then hits every reuse
    frame = hit_rate_errors(cycle, np.arange(20_000), ROW_BYTES, sizes=[1 << 20, 1 << 21])
    assert list(frame.columns) == ERROR_COLUMNS
    assert frame.capacity_rows.tolist() == [4096, 8192]
    assert frame.real_hit_rate.tolist() == [0.0, 0.75]
    assert frame.synthetic_hit_rate.tolist() == [0.0, 0.0]
    assert frame.error.tolist() == [0.0, -0.75]
    same = hit_rate_errors(cycle, cycle, ROW_BYTES)
    assert len(same) == len(FIT_SIZES) and (same.error == 0).all()


def test_a_fitted_profile_reproduces_a_known_trace_within_the_target() -> None:
    stream = known_trace(400_000, seed=0)
    held_out = stream[200_000:]
    frame = evaluate_fit(stream, ROW_BYTES, seed=1)
    assert list(frame.columns) == FIT_COLUMNS
    assert frame.method.unique().tolist() == ["recstack", "deeprecsys"]
    ours = frame[frame.method == "recstack"]
    assert ours.cache_bytes.tolist() == list(FIT_SIZES)
    # The curve moves across the sizes: the test would pass trivially on a flat one.
    assert ours.real_hit_rate.iloc[-1] - ours.real_hit_rate.iloc[0] > 0.1
    assert (ours.error.abs() < TARGET).all(), ours.to_string()
    # Many reuses lie beyond DeepRecSys's window of 10000 accesses, where it loses them.
    previous = previous_occurrence(held_out)
    reused = previous >= 0
    assert np.mean(np.arange(held_out.size)[reused] - previous[reused] > 10_000) > 0.2
    summary = fit_summary(frame).set_index("method")
    assert summary.max_abs_error["recstack"] <= summary.max_abs_error["deeprecsys"]
    assert bool(summary.within_target["recstack"])


def test_the_summary_has_one_row_per_method() -> None:
    frame = evaluate_fit(np.random.default_rng(0).integers(0, 3000, 20_000), 64,
                         train_fraction=0.25, seed=3)
    summary = fit_summary(frame)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary.method.tolist() == ["recstack", "deeprecsys"]
    for method, row in summary.set_index("method").iterrows():
        errors = frame[frame.method == method].error.abs()
        assert row.max_abs_error == pytest.approx(errors.max())
        assert row.mean_abs_error == pytest.approx(errors.mean())
        assert row.within_target == (errors.max() < TARGET)


@pytest.mark.parametrize("arguments, match", [
    ({"row_bytes": 0}, "row_bytes"),
    ({"train_fraction": 1.0}, "train_fraction"),
    ({"train_fraction": 0}, "train_fraction"),
])
def test_evaluate_fit_refuses_bad_settings(arguments: dict, match: str) -> None:
    settings = {"row_bytes": 64, **arguments}
    with pytest.raises(RecstackError, match=match):
        evaluate_fit(np.arange(100) % 7, **settings)
    with pytest.raises(RecstackError, match="at least 2"):
        evaluate_fit(np.array([1]), 64)
