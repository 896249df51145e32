"""The serving level's findings on hand-made serving frames: each holds, does not hold or is
not measured, with the numbers measured."""

from __future__ import annotations

import pandas as pd

from recstack.analysis.findings import (DOES_NOT_HOLD, HOLDS, NOT_MEASURED, Evidence,
                                        check_findings, default_findings)
from tests.analysis.test_serving import frame, point

SERVING_IDS = {"tuned_beats_baseline", "best_sub_batch_differs", "gpu_offload_helps"}


def checked(serving: pd.DataFrame | None) -> pd.DataFrame:
    empty = pd.DataFrame()
    table = check_findings(Evidence(empty, empty, empty, serving=serving))
    return table[table.level == "serving"].set_index("id")


def test_the_serving_findings_are_declared_with_their_figures() -> None:
    findings = {f.id: f for f in default_findings().findings if f.level == "serving"}
    assert set(findings) == SERVING_IDS
    assert findings["tuned_beats_baseline"].figure == "serving_tuned_vs_baseline"
    assert all(f.figure.startswith("serving_") for f in findings.values())


def test_no_serving_point_measures_no_serving_finding() -> None:
    for serving in (None, frame()):
        table = checked(serving)
        assert set(table.index) == SERVING_IDS
        assert set(table.status) == {NOT_MEASURED} and set(table.detail) == {
            "no serving points"}


def test_tuning_that_beats_the_baseline_for_every_model_holds() -> None:
    serving = frame(point("base", 2, 1, 128, 1000.0, lowest_invalid_qps=1100.0),
                    point("s32", 2, 1, 32, 1500.0),
                    point("r2-base", 2, 1, 128, 400.0, model="rmc2",
                          lowest_invalid_qps=440.0),
                    point("r2-s64", 1, 2, 64, 420.0, model="rmc2"))
    table = checked(serving)
    assert table.status["tuned_beats_baseline"] == HOLDS
    assert table.measured["tuned_beats_baseline"] == "rmc1 1.50x, rmc2 1.05x"
    # rmc2's 420 lies below the baseline's lowest INVALID rate: within the search's bracket
    assert "1 of the 2 gains pass" in table.detail["tuned_beats_baseline"]
    assert table.figure["tuned_beats_baseline"] == "serving_tuned_vs_baseline"
    assert table.status["best_sub_batch_differs"] == HOLDS
    assert table.measured["best_sub_batch_differs"] == (
        "rmc1: sub-batch 32, rmc2: whole requests (sub-batch 64 within the baseline's "
        "bracket)")
    assert table.status["gpu_offload_helps"] == NOT_MEASURED
    assert "no request was offloaded" in table.detail["gpu_offload_helps"]
    assert table.figure["gpu_offload_helps"] == ""  # not measured links nothing


def test_a_kept_baseline_does_not_hold_and_one_model_cannot_differ() -> None:
    serving = frame(point("base", 2, 1, 128, 1000.0), point("s32", 2, 1, 32, 900.0),
                    point("lone", 2, 1, 128, 50.0, model="rmc2"))  # not tuned
    table = checked(serving)
    assert table.status["tuned_beats_baseline"] == DOES_NOT_HOLD
    assert table.measured["tuned_beats_baseline"] == "rmc1 1.00x"
    assert "not beaten: rmc1" in table.detail["tuned_beats_baseline"]
    assert table.status["best_sub_batch_differs"] == NOT_MEASURED
    assert "at least two tuned models" in table.detail["best_sub_batch_differs"]
    # no model tuned at all
    assert checked(frame(point("base", 2, 1, 128, 1.0))).status[
        "tuned_beats_baseline"] == NOT_MEASURED


def test_the_same_best_sub_batch_everywhere_does_not_hold() -> None:
    serving = frame(point("a", 2, 1, 128, 1000.0), point("b", 2, 1, 32, 900.0),
                    point("c", 2, 1, 128, 500.0, model="rmc2"),
                    point("d", 2, 1, 64, 400.0, model="rmc2"))
    table = checked(serving)
    assert table.status["best_sub_batch_differs"] == DOES_NOT_HOLD
    assert table.measured["best_sub_batch_differs"] == \
        "rmc1: whole requests, rmc2: whole requests"


def test_a_split_within_the_baselines_bracket_is_no_different_best() -> None:
    serving = frame(point("a", 2, 1, 128, 615.0, lowest_invalid_qps=680.0),
                    point("b", 2, 1, 64, 626.0),
                    point("c", 2, 1, 128, 147.0, model="rmc2"),
                    point("d", 2, 1, 32, 130.0, model="rmc2"))
    table = checked(serving)
    assert table.status["best_sub_batch_differs"] == DOES_NOT_HOLD
    assert table.measured["best_sub_batch_differs"].startswith(
        "rmc1: whole requests (sub-batch 64 within")


def test_gpu_offload_against_the_same_deployment_without_it() -> None:
    helped = frame(point("base", 2, 1, 128, 1000.0), point("cpu", 2, 1, 32, 1200.0),
                   point("gpu", 2, 1, 32, 1800.0, offload=256))
    table = checked(helped)
    assert table.status["gpu_offload_helps"] == HOLDS
    assert table.measured["gpu_offload_helps"] == "rmc1 1.50x (>= 256 items)"
    assert table.figure["gpu_offload_helps"] == "serving_latency_vs_qps"
    hurt = frame(point("cpu", 2, 1, 32, 1200.0), point("gpu", 2, 1, 32, 600.0, offload=256))
    assert checked(hurt).status["gpu_offload_helps"] == DOES_NOT_HOLD
    alone = frame(point("gpu", 2, 1, 32, 600.0, offload=256))
    status = checked(alone)
    assert status.status["gpu_offload_helps"] == NOT_MEASURED
    assert "without offload" in status.detail["gpu_offload_helps"]
