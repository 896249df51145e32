"""The timing collector and its statistics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from recstack.collect.timing import (TimingSettings, measure_point, point_cycled_set,
                                     time_cpu_iterations, timing_stats)
from recstack.levels import LevelOptions
from recstack.errors import RecstackError, SpecError
from recstack.points import Point
from recstack.specs import zoo_spec
from recstack.worker import run_isolated
from tests.conftest import small_spec

QUICK = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.02,
                       min_iterations=5)


def test_stats_on_known_samples() -> None:
    samples = [1_000_000] * 98 + [2_000_000, 10_000_000]  # 1 ms, with two outliers
    stats = timing_stats(samples, batch_size=8, spread_threshold=0.5, label="p")
    assert stats.iterations == 100
    assert stats.median_ms == 1.0
    assert stats.p5_ms == 1.0
    assert stats.p99_ms == pytest.approx(2.0 + 0.01 * 8.0)  # numpy's linear interpolation
    assert stats.mean_ms == pytest.approx(1.1)  # (98 + 2 + 10) / 100
    assert stats.cv == pytest.approx(np.std(np.array(samples) / 1e6, ddof=1) / 1.1)
    assert stats.throughput_per_s == pytest.approx(8000.0)
    # The middle 90% is all 1 ms: the two outliers move the CV, not the flag.
    assert stats.relative_spread == 0.0 and not stats.unstable
    wide = timing_stats([1_000_000, 1_200_000, 1_900_000] * 10, batch_size=1, label="p")
    assert wide.relative_spread == pytest.approx(0.75)
    assert wide.unstable and "p5-p95 range 75% of the median, over 50%" in wide.warning
    assert "--min-time" in wide.warning


def test_stable_samples_are_not_flagged() -> None:
    stats = timing_stats([1_000_000, 1_010_000, 990_000, 1_000_000], batch_size=1)
    assert not stats.unstable and stats.warning is None
    assert stats.copy_median_ms is None


def test_copy_times_are_summarised() -> None:
    stats = timing_stats([3_000_000] * 3, batch_size=1, copy_ns=[1_000_000] * 3)
    assert stats.copy_median_ms == 1.0


def test_measure_point_in_process() -> None:
    point = Point(small_spec("din"), batch_size=4, threads=1, cache="warm")
    result = measure_point(point, QUICK)
    assert len(result.latency_ns) >= 5
    assert all(sample > 0 for sample in result.latency_ns)
    assert result.copy_ns is None
    assert result.warmup_iterations >= 2
    assert result.threads_used == 1
    assert result.distinct_batches == QUICK.distinct_batches
    assert result.input_bytes_per_batch > 0


def test_a_cold_point_cycles_the_batches_of_its_working_set() -> None:
    # This small RMC1 has 400 KB of tables; against a stated LLC of 88 KiB its cold set at
    # batch 1 must touch 352 KiB of them, the warm one cycles the settings' four batches.
    options = LevelOptions(llc_bytes=88 << 10)
    cold = Point(small_spec("rmc1"), batch_size=1, threads=1)
    expected = point_cycled_set(cold, QUICK, options)
    assert expected.reached and expected.batches > 2 * QUICK.distinct_batches
    assert measure_point(cold, QUICK, options).distinct_batches == expected.batches
    warm = replace(cold, cache="warm")
    assert measure_point(warm, QUICK, options).distinct_batches == QUICK.distinct_batches


def test_iterations_are_calibrated_to_the_minimum_time() -> None:
    point = Point(small_spec("ncf"), batch_size=1, threads=1)
    settings = TimingSettings(warmup_iterations=3, warmup_seconds=0.0, min_seconds=0.2,
                              min_iterations=5)
    result = measure_point(point, settings)
    assert len(result.latency_ns) > 50  # an NCF forward at batch 1 takes well under 4 ms
    assert sum(result.latency_ns) / 1e9 > 0.1


def _slow_to_warm_model() -> Callable[[object], None]:
    """A model whose first three calls take 10 ms and every later call 1 ms."""
    calls = 0

    def model(batch: object) -> None:
        nonlocal calls
        calls += 1
        time.sleep(0.01 if calls <= 3 else 0.001)

    return model


def test_the_timed_loop_lasts_the_minimum_time_after_a_slow_warm_up() -> None:
    # The warm-up calibrates 20 iterations for 0.2 s; the steady state takes 1 ms, so the loop
    # must go on past the calibrated count until 0.2 s have passed, or max_iterations.
    settings = TimingSettings(warmup_iterations=3, warmup_seconds=0.0, min_seconds=0.2,
                              min_iterations=5)
    latency, warmup = time_cpu_iterations(_slow_to_warm_model(), [0, 1], settings)
    assert warmup == 3
    assert len(latency) > 60 and sum(latency) / 1e9 >= 0.15
    capped = replace(settings, max_iterations=30)
    assert len(time_cpu_iterations(_slow_to_warm_model(), [0, 1], capped)[0]) == 30


def test_cuda_is_refused_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RecstackError, match="device: 'cuda' is not available"):
        measure_point(Point(small_spec("rmc1"), batch_size=1, device="cuda"), QUICK)


def test_settings_are_validated() -> None:
    with pytest.raises(SpecError, match="min_iterations: 0"):
        TimingSettings(min_iterations=0)
    with pytest.raises(SpecError, match="max_iterations: 3"):
        TimingSettings(min_iterations=5, max_iterations=3)


@pytest.mark.slow
def test_full_size_rmc1_builds_within_its_memory_budget() -> None:
    """RMC1 at full size (8 x 4,000,000 x 32, 4.1 GB) needs at most 1.2x its bytes to build."""
    spec = zoo_spec("rmc1")
    result = run_isolated(measure_point, Point(spec, batch_size=1, threads=2), QUICK)
    model_bytes = (8 * 4_000_000 * 32 + 100_833) * 4
    assert result.peak_memory_growth_bytes <= 1.2 * model_bytes
    assert result.peak_memory_growth_bytes >= 0.9 * model_bytes  # it really built it
