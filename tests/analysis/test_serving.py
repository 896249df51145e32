"""The serving views on small hand-made frames: latency curves and their knees, the baseline
of a run's model, the tuned deployment (never below the baseline; a tie keeps it), the
deployment table, GPU offload pairs."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from recstack.analysis.serving import (DEPLOYMENT_COLUMNS, SERVING_COLUMNS, TUNED_COLUMNS,
                                       baseline_rows, best_deployments, deployment_label,
                                       deployment_table, knees, load_curves, offload_gains,
                                       tuned_vs_baseline)

RUN = "20260101-000000-aaaaaa"


def point(key: str, engines: int, threads: int, sub_batch: int, qps: float | None,
          model: str = "rmc1", offload: int | None = None, **values: Any) -> dict[str, Any]:
    """A row of ``load_serving``'s frame: requests of at most 128 items, p95 <= 100 ms."""
    row: dict[str, Any] = {column: None for column in SERVING_COLUMNS}
    row.update(run_id=RUN, point_key=key, model=model, row_scale=1.0, backend="eager",
               engines=engines, threads=threads, sub_batch=sub_batch,
               offload_threshold=offload, scenario="server", max_items=128, target_ms=100.0,
               percentile=95.0, latency_bounded_qps=qps, converged=True, tests=5,
               peak_memory_bytes=3 * 2**30, model_bytes=2**30, cores="0|1")
    row.update(values)
    return row


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    serving = pd.DataFrame(list(rows), columns=SERVING_COLUMNS)
    serving["offload_threshold"] = serving.offload_threshold.astype("Int64")
    serving["latency_bounded_qps"] = serving.latency_bounded_qps.astype(float)
    return serving


def test_labels_say_engines_threads_and_how_requests_are_cut() -> None:
    rows = frame(point("a", 2, 1, 128, 1.0), point("b", 1, 4, 32, 1.0, offload=256))
    assert deployment_label(rows.iloc[0]) == "2 engines x 1 thread, whole requests"
    assert deployment_label(rows.iloc[1]) == "1 engine x 4 threads, sub-batch 32, GPU >= 256 items"


def curve_tests(key: str, rates: list[float], tails: list[float], valid: list[bool],
                percentile: float = 95.0) -> pd.DataFrame:
    """LoadGen tests of one point: an Offline capacity test, then Server tests."""
    rows = [{"run_id": RUN, "point_key": key, "model": "rmc1", "engines": 2, "threads": 1,
             "sub_batch": 32, "offload_threshold": pd.NA, "target_ms": 100.0,
             "percentile": percentile, "max_items": 128, "test": 0, "role": "capacity",
             "scenario": "offline", "offered_qps": 999.0, "achieved_qps": 999.0,
             "valid": True, "p95_ms": 900.0, "p99_ms": 950.0, "sut_tail_ms": 800.0}]
    for number, (rate, tail, ok) in enumerate(zip(rates, tails, valid), start=1):
        rows.append({**rows[0], "test": number, "role": "search", "scenario": "server",
                     "offered_qps": rate, "achieved_qps": rate * 0.99, "valid": ok,
                     "p95_ms": tail, "p99_ms": tail * 2, "sut_tail_ms": tail / 2})
    return pd.DataFrame(rows)


def test_curves_are_server_tests_at_the_points_percentile_by_offered_rate() -> None:
    tests = pd.concat([curve_tests("a", [300.0, 100.0], [20.0, 10.0], [True, True]),
                       curve_tests("b", [100.0], [10.0], [True], percentile=99.0)])
    curves = load_curves(tests)
    assert set(curves.offered_qps) == {100.0, 300.0}  # the offline test is not on a curve
    a = curves[curves.point_key == "a"]
    assert list(a.offered_qps) == [100.0, 300.0] and list(a.tail_ms) == [10.0, 20.0]
    assert curves[curves.point_key == "b"].tail_ms.iloc[0] == 20.0  # its p99
    # a percentile LoadGen does not log reads the SUT's own tail
    odd = load_curves(curve_tests("c", [100.0], [10.0], [True], percentile=97.5))
    assert odd.tail_ms.iloc[0] == 5.0
    assert load_curves(pd.DataFrame()).empty


def test_the_knee_is_the_last_rate_before_the_tail_passes_the_factor() -> None:
    tests = pd.concat([
        curve_tests("a", [100, 200, 300, 400, 500], [10, 12, 19, 25, 160],
                    [True, True, True, True, False]),
        curve_tests("b", [100, 200], [150, 400], [False, False]),
        # A noisy curve that comes back under the factor: the knee is before the first rise.
        curve_tests("c", [100, 200, 300, 400], [10, 25, 15, 30], [True] * 4)])
    knee = knees(load_curves(tests)).set_index("point_key")
    assert knee.knee_qps["a"] == 300 and knee.knee_tail_ms["a"] == 19
    assert knee.latency_bounded_qps["a"] == 400
    assert knee.knee_qps["b"] == 100  # the calm tail is its own
    assert pd.isna(knee.latency_bounded_qps["b"])  # nothing VALID
    assert knee.knee_qps["c"] == 100


def test_the_baseline_is_the_most_single_threaded_engines_never_splitting() -> None:
    serving = frame(point("whole2", 2, 1, 128, 900.0), point("whole4", 4, 1, 128, 1000.0),
                    point("threads", 1, 4, 128, 2000.0), point("split", 4, 1, 32, 3000.0),
                    point("gpu", 4, 1, 128, 4000.0, offload=64),
                    point("other", 2, 1, 128, 10.0, model="rmc2"))
    base = baseline_rows(serving).set_index("model")
    assert base.point_key.to_dict() == {"rmc1": "whole4", "rmc2": "other"}


def test_tuned_is_the_best_measured_and_never_below_the_baseline() -> None:
    serving = frame(point("base", 2, 1, 128, 1000.0), point("s32", 2, 1, 32, 1200.0),
                    point("s64", 2, 1, 64, 800.0),
                    point("rmc2-base", 2, 1, 128, 500.0, model="rmc2"),
                    point("rmc2-s16", 1, 2, 16, 400.0, model="rmc2"),
                    point("rmc2-none", 1, 2, 8, None, model="rmc2"))
    table = tuned_vs_baseline(serving)
    assert list(table.columns) == TUNED_COLUMNS
    rows = table.set_index("model")
    assert rows.tuned_key["rmc1"] == "s32" and rows.gain["rmc1"] == pytest.approx(1.2)
    assert rows.tuned["rmc1"] == "2 engines x 1 thread, sub-batch 32"
    assert rows.tuned_sub_batch["rmc1"] == 32 and rows.tuned_splits["rmc1"]
    # every other deployment of rmc2 did worse (or met no rate): the baseline stays
    assert rows.tuned_key["rmc2"] == "rmc2-base" and rows.gain["rmc2"] == 1.0
    assert not rows.tuned_splits["rmc2"] and rows.deployments["rmc2"] == 3
    for row in table.itertuples():
        assert row.tuned_qps >= row.baseline_qps


def test_a_tie_keeps_the_baseline() -> None:
    serving = frame(point("s32", 2, 1, 32, 1000.0), point("base", 2, 1, 128, 1000.0))
    row = tuned_vs_baseline(serving).iloc[0]
    assert row.tuned_key == row.baseline_key == "base" and row.gain == 1.0


def test_a_baseline_that_met_no_rate_has_no_gain() -> None:
    serving = frame(point("base", 2, 1, 128, None), point("s32", 2, 1, 32, 700.0),
                    point("lone", 2, 1, 128, 50.0, model="rmc2"))
    table = tuned_vs_baseline(serving).set_index("model")
    assert table.tuned_key["rmc1"] == "s32" and pd.isna(table.gain["rmc1"])
    # a baseline measured alone was not tuned
    assert list(tuned_vs_baseline(serving, tuned_only=True).model) == ["rmc1"]
    assert tuned_vs_baseline(frame(), tuned_only=True).empty


def test_the_deployment_table_names_roles_knees_and_memory() -> None:
    serving = frame(point("base", 2, 1, 128, 1000.0), point("a", 2, 1, 32, 1200.0),
                    point("kept", 2, 1, 128, 90.0, model="rmc2"),
                    point("worse", 1, 2, 32, 60.0, model="rmc2"))
    tests = curve_tests("a", [100, 200, 300], [10, 15, 40], [True, True, True])
    table = deployment_table(serving, tests)
    assert list(table.columns) == DEPLOYMENT_COLUMNS
    table = table.set_index("point_key")
    assert table.role.to_dict() == {"base": "baseline", "a": "tuned",
                                    "kept": "baseline, tuned", "worse": ""}
    assert table.knee_qps["a"] == 200 and pd.isna(table.knee_qps["base"])
    assert table.memory_over_model["a"] == 3.0
    assert deployment_table(frame(), pd.DataFrame()).empty


def test_offload_is_set_against_the_same_deployment_without_it() -> None:
    serving = frame(point("cpu", 2, 1, 32, 1000.0), point("g256", 2, 1, 32, 1100.0, offload=256),
                    point("g64", 2, 1, 32, 1300.0, offload=64),
                    point("alone", 1, 2, 16, 900.0, offload=64))  # no twin without offload
    gains = offload_gains(serving)
    assert len(gains) == 1
    row = gains.iloc[0]
    assert row.offload_threshold == 64 and row.gain == pytest.approx(1.3)
    assert row.thresholds == 2 and row.deployment == "2 engines x 1 thread, sub-batch 32"
    assert offload_gains(frame(point("cpu", 2, 1, 32, 1000.0))).empty


def test_best_deployments_skip_points_that_met_no_rate() -> None:
    serving = frame(point("a", 2, 1, 128, 1000.0), point("b", 2, 1, 32, 1500.0),
                    point("c", 1, 2, 32, None, model="rmc2"))
    best = best_deployments(serving)
    assert list(best.point_key) == ["b"]
    assert best.deployment.iloc[0] == "2 engines x 1 thread, sub-batch 32"


def test_served_points_carry_their_precision(tmp_path) -> None:
    """A serving run's precision reaches the serving frame (a run has one; stores made
    before precisions read fp32)."""
    from recstack import api
    from recstack.analysis.serving import load_serving
    from recstack.precision import Precision
    from tests.serving_stubs import SyntheticServing

    store = tmp_path / "s.duckdb"
    options = {"row_scale": 1e-4, "query_sizes": "fixed:8", "qps": [50.0], "target_ms": 100}
    api.serve(["ncf"], store, executor=SyntheticServing(),
              precision=Precision.parse("emb=int8"), **options)
    api.serve(["ncf"], store, executor=SyntheticServing(), **options)
    frame = load_serving(api.ResultStore(store))
    assert sorted(zip(frame.embedding_precision, frame.dense_precision)) == [
        ("fp32", "fp32"), ("int8", "fp32")]
    from recstack.analysis.serving import deployment_label

    labels = sorted(deployment_label(row) for _, row in frame.iterrows())
    assert labels == ["2 engines x 1 thread, whole requests",
                      "2 engines x 1 thread, whole requests, emb=int8,dense=fp32"]
