"""Serving runs: options refused before anything starts, points stored (failed ones with their
reason) and the run going on, resumed without measuring again."""

from __future__ import annotations

import pytest

from recstack import api
from recstack.errors import RecstackError
from recstack.executors import LocalExecutor
from recstack.serving.command import serving_config

pytest.importorskip("mlperf_loadgen")


@pytest.mark.parametrize("options, option", [
    ({"qps": [0]}, "--qps"), ({"qps": [-3]}, "--qps"), ({"target_ms": 0}, "--target-ms"),
    ({"percentile": 100}, "--percentile"), ({"percentile": 0}, "--percentile"),
    ({"engines": 0}, "--engines"), ({"query_sizes": "normal:1,2"}, "--query-sizes"),
    ({"query_sizes": "file:/nonexistent"}, "--query-sizes"),
    ({"min_duration": 0}, "--min-duration"), ({"scenario": "batch"}, "--scenario"),
])
def test_bad_load_options_name_the_option(options, option):
    with pytest.raises(RecstackError) as error:
        serving_config(**options)
    assert str(error.value).startswith(option)


@pytest.mark.parametrize("options, option", [
    ({"sub_batch": 0}, "--sub-batch"), ({"backend": "compile"}, "--backend"),
    ({"engines": 64, "threads": 2}, "--engines"),
    ({"offload_threshold": 8}, "--offload-threshold"),
])
def test_bad_deployments_are_refused_before_anything_is_stored(tmp_path, options, option):
    store = tmp_path / "s.duckdb"
    with pytest.raises(RecstackError) as error:
        api.serve(["rmc1"], store, row_scale=1e-4, query_sizes="fixed:16", **options)
    assert str(error.value).startswith(option)
    assert not store.exists()


@pytest.mark.slow
def test_a_dead_engine_fails_its_point_and_the_run_goes_on_then_resumes(tmp_path):
    store = tmp_path / "s.duckdb"
    executor = LocalExecutor(collector=_collector(), timeout_s=120)
    options = {"row_scale": 1e-4, "query_sizes": "fixed:8", "qps": [50.0], "target_ms": 100,
               "min_duration": 4.0, "engines": 2, "min_queries": 100}
    result = api.serve(["rmc1", "ncf"], store, executor=executor, **options)
    (failed,) = result.outcome.failed
    assert failed[0].startswith("rmc1") and "killed by SIGKILL" in failed[1]
    points = result.store.query("SELECT model, status, error FROM points ORDER BY model")
    assert list(points.status) == ["ok", "failed"]  # ncf, rmc1
    tests = result.store.query("SELECT valid, offered_qps FROM serving_tests")
    assert list(tests.offered_qps) == [50.0] and bool(tests.valid.iloc[0])
    again = api.serve(["ncf"], store, executor=executor, resume=True,
                      run_id=result.run_id, **options)
    assert again.outcome.skipped == 1 and again.outcome.measured == 0


def _collector():
    from tests.serving_stubs import sleepy_collector

    return sleepy_collector
