"""The main job with the serving level: its stage runs after the paper's, into the
characterization run, and its report has the serving section (serving records made up by the
executor: the LoadGen path is tested in tests/collect/test_serving_collector.py)."""

from __future__ import annotations

from recstack.main_job import run_main_job
from tests.serving_stubs import SyntheticServing


def test_the_serving_stage_tunes_into_the_characterization_run(tmp_path):
    store = tmp_path / "r.duckdb"
    stages = []
    result = run_main_job(["rmc1", "ncf"], store, levels=("timing", "serving"), quick=True,
                          batch_sizes=[4], threads=[1], row_scale=1e-4, min_time=0.05,
                          executor=SyntheticServing(), on_stage=stages.append)
    events = {(event.what, event.stage.name) for event in stages if event.stage}
    assert ("done", "serving") in events
    done = next(e for e in stages if e.stage and e.stage.name == "serving" and e.what == "done")
    assert "tuned over baseline: rmc1" in done.detail
    levels = result.store.query("SELECT level, count(*) AS n FROM points WHERE run_id = ? "
                                "GROUP BY level", [result.run_id])
    counts = dict(zip(levels.level, levels.n))
    assert counts["timing"] == 2 and counts["serving"] >= 3  # baseline and a climb
    serving = result.store.query("SELECT DISTINCT p.model FROM points p WHERE level = "
                                 "'serving' AND run_id = ?", [result.run_id])
    assert list(serving.model) == ["rmc1"]  # the quick tier tunes RMC1 only
    report = next(path for path in result.reports if path.suffix == ".md").read_text()
    assert "Serving: latency-bounded throughput under MLPerf LoadGen" in report
