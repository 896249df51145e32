"""LoadGen's logs read back: results and the verdict with every reason (recorded logs of
LoadGen 6.0.17 in tests/data/loadgen)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recstack.serving.config import ServingConfig
from recstack.serving.loadgen_run import (
    LoadGenRun,
    loadgen_module,
    loadgen_settings,
    parse_detail,
    percentile_ms,
    verdict,
)

DATA = Path(__file__).parent.parent / "data" / "loadgen"


def _recorded(name: str) -> LoadGenRun:
    detail = (DATA / name / "mlperf_log_detail.txt").read_text()
    results, errors = parse_detail(detail)
    return LoadGenRun((DATA / name / "mlperf_log_summary.txt").read_text(), detail, results,
                      errors)


def test_a_valid_run_reads_valid():
    run = _recorded("valid")
    judged = verdict(run, ServingConfig(target_ms=50))
    assert judged.valid and judged.text == "VALID" and judged.reasons == ()
    assert judged.latency_met and judged.early_stopping_met
    assert 5 < percentile_ms(run, 95) < 50
    assert "Result is : VALID" in run.summary


def test_an_overloaded_run_names_the_latency_bound():
    run = _recorded("overloaded")
    judged = verdict(run, ServingConfig(target_ms=50))
    assert not judged.valid and judged.latency_met is False
    assert "latency bound" in judged.text and "p95 over 50 ms" in judged.text
    assert run.value("result_completed_samples_per_sec") < \
        run.value("result_scheduled_samples_per_sec")


def test_lines_that_are_not_loadgen_json_are_ignored():
    results, errors = parse_detail(':::MLLOG {"key": "a", "value": 1}\nnoise\n'
                                   ':::MLLOG {broken\n:::MLLOG ["list"]\n'
                                   ':::MLLOG {"key": "e", "value": "x", "metadata": '
                                   '{"is_error": true}}\n')
    assert results == {"a": 1, "e": "x"} and errors == ["e: x"]


def test_a_log_without_results_is_invalid_and_says_so():
    judged = verdict(LoadGenRun("", "", {}, []), ServingConfig())
    assert not judged.valid and "no result" in judged.text


def test_settings_follow_the_configuration():
    lg = pytest.importorskip("mlperf_loadgen")
    config = ServingConfig(target_ms=40, percentile=99, min_duration_s=3)
    server = loadgen_settings(config, "server", 120.0)
    assert server.scenario == lg.TestScenario.Server
    assert server.server_target_qps == 120.0
    assert server.server_target_latency_ns == 40_000_000
    assert server.server_target_latency_percentile == pytest.approx(0.99)
    assert server.min_duration_ms == 3000 and server.min_query_count == config.query_count
    offline = loadgen_settings(config, "offline", 500.0)
    assert offline.scenario == lg.TestScenario.Offline and offline.offline_expected_qps == 500
    assert loadgen_module() is lg
