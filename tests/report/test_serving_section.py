"""The report of a store holding serving points (records written directly: no LoadGen, no
engine): the serving section's figures and tables, the serving findings linked to their
figures, the run's figure files; and a store without serving points gains nothing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recstack.collect.timing import timing_stats
from recstack.records import ServingRecord, ServingSummary, TimingRecord
from recstack.report.figures import write_run_figures
from recstack.report.html import build_report, render_html, write_report
from recstack.store import ResultStore
from tests import fill

MAX_ITEMS = 128


def serving_point(store: ResultStore, run_id: str, model: str, engines: int, threads: int,
                  sub_batch: int, qps: float, invalid_above: float, target_ms: float = 100.0,
                  converged: bool = True) -> None:
    """A serving point whose Server tests at 0.5, 0.75, 1 and 1.1 x ``qps`` were VALID up
    to ``qps`` (its tail rising with the rate), after an Offline capacity test."""
    rates = [0.5 * qps, 0.75 * qps, qps, invalid_above]
    tails = [0.1 * target_ms, 0.15 * target_ms, 0.6 * target_ms, 1.5 * target_ms]
    log = "================================================\nMLPerf Results Summary\n"
    tests = pd.DataFrame(
        [{"test": 0, "role": "capacity", "scenario": "offline", "offered_qps": 1.2 * qps,
          "achieved_qps": 1.2 * qps, "valid": True, "verdict": "VALID", "p50_ms": 500.0,
          "p95_ms": 900.0, "p99_ms": 950.0, "duration_s": 2.0}]
        + [{"test": n, "role": "search", "scenario": "server", "offered_qps": rate,
            "achieved_qps": 0.99 * rate, "valid": tail <= target_ms,
            "verdict": "VALID" if tail <= target_ms else "INVALID: latency bound",
            "p50_ms": tail / 4, "p95_ms": tail, "p99_ms": 1.5 * tail, "duration_s": 2.0}
           for n, (rate, tail) in enumerate(zip(rates, tails), start=1)])
    tests = tests.assign(loadgen_summary=log, loadgen_detail="{}")
    summary = ServingSummary(
        scenario="server", engines=engines, cores="|".join(str(c) for c in range(engines)),
        gpu_engine=False, splits=sub_batch < MAX_ITEMS, query_sizes="normal:64,16,128",
        mean_items=64.0, max_items=MAX_ITEMS, library_requests=256,
        library_bytes=2**20, target_ms=target_ms, percentile=95.0,
        latency_bounded_qps=qps, lowest_invalid_qps=invalid_above, capacity_qps=1.2 * qps,
        converged=converged, search_note="bracketed within the tolerance" if converged
        else "stopped after 5 tests", tests=len(tests), peak_memory_bytes=3 * 2**30,
        ready_memory_bytes=2**31, model_bytes=2**30, loadgen_version="6.0.17 @ test")
    key = f"{model}-{engines}x{threads}-{sub_batch}"
    store.record_point(run_id, key, fill.point(
        config_key=key, level="serving", label=key, model=model, model_type="dlrm",
        row_scale=0.5, batch_size=sub_batch, device="cpu", threads=threads, backend="eager",
        backend_basis="as given", attempts=1),
        ServingRecord(summary, tests, pd.DataFrame()))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ResultStore:
    """A tuned run: rmc1's best splits into sub-batches of 32 (1.2x the baseline), rmc2's
    into 16 (one of its deployments' searches did not close)."""
    store = ResultStore(tmp_path_factory.mktemp("serving") / "r.duckdb")
    run_id = store.create_run("recstack serve --tune", {}, {}, "p1", "machine")
    for engines, threads, sub_batch, qps in ((2, 1, MAX_ITEMS, 1000.0), (2, 1, 32, 1200.0),
                                             (1, 2, 32, 700.0)):
        serving_point(store, run_id, "rmc1", engines, threads, sub_batch, qps, qps * 1.08)
    for engines, threads, sub_batch, qps, closed in ((2, 1, MAX_ITEMS, 400.0, True),
                                                     (2, 1, 16, 500.0, True),
                                                     (1, 2, 16, 300.0, False)):
        serving_point(store, run_id, "rmc2", engines, threads, sub_batch, qps, qps * 1.3,
                      target_ms=400.0, converged=closed)
    return store


def test_the_serving_section_shows_curves_deployments_and_the_tuning(
        store: ResultStore) -> None:
    report = build_report(store)
    sections = {s.id: s for s in report.sections}
    serving = sections["serving"]
    assert [f.name for f in serving.figures] == ["serving_latency_vs_qps",
                                                 "serving_tuned_vs_baseline"]
    assert serving.headline == ("Tuned over baseline latency-bounded QPS: rmc1 1.20x (best "
                                "of 3 deployments), rmc2 1.25x (best of 3 deployments)")
    titles = [t.title for t in serving.tables]
    assert titles == ["rmc1 (rows x0.5): deployments", "rmc2 (rows x0.5): deployments",
                      "Tuned deployment against the baseline", "Every LoadGen test"]
    rmc1 = serving.tables[0]
    assert rmc1.columns[:5] == ["deployment", "role", "backend", "target",
                                "latency-bounded QPS"]
    assert [row[:2] for row in rmc1.rows] == [
        ["1 engine x 2 threads, sub-batch 32", ""],
        ["2 engines x 1 thread, sub-batch 32", "tuned"],
        ["2 engines x 1 thread, whole requests", "baseline"]]
    # the knee: the highest rate within 2x the calm tail (0.75 x 1200 QPS)
    assert rmc1.rows[1][4] == "1,200" and rmc1.rows[1][7] == "900"
    assert rmc1.rows[1][-1] == "3x"  # peak memory over the model's bytes
    assert rmc1.row_classes == ["", "best", ""]
    assert serving.tables[1].row_classes[0] == "flag"  # its search did not close
    tuned = serving.tables[2]
    assert [row[0] for row in tuned.rows] == ["rmc1", "rmc2"]
    assert tuned.rows[0][tuned.columns.index("gain")] == "1.20x"
    assert serving.tables[3].collapsed and len(serving.tables[3].rows) == 30
    notes = " ".join(serving.notes)
    assert "LoadGen 6.0.17 @ test" in notes and "pinned to their own cores" in notes
    assert "share one copy of the model's tables" in notes
    assert "rmc2, 1 engine x 2 threads, sub-batch 16: the search ended unbracketed" in notes


def test_the_serving_findings_link_the_serving_figures(store: ResultStore,
                                                       tmp_path: Path) -> None:
    report = build_report(store)
    findings = next(s for s in report.sections if s.id == "findings").tables[0]
    rows = {row[0]: (row, link) for row, link in zip(findings.rows, findings.links)}
    tuned, link = rows["The tuned deployment serves more latency-bounded QPS than the "
                       "baseline, for every model tuned"]
    assert tuned[2:4] == ["holds", "rmc1 1.20x, rmc2 1.25x"]
    assert link == "fig-serving_tuned_vs_baseline"
    sub_batch, link = rows["The best sub-batch size differs between models"]
    # rmc2's 1.25x lies inside its baseline's 30%-wide bracket: a tie, read as whole requests
    assert sub_batch[2:4] == ["holds", "rmc1: sub-batch 32, rmc2: whole requests (sub-batch "
                                       "16 within the baseline's bracket)"]
    assert link == "fig-serving_latency_vs_qps"
    offload, link = rows["GPU offload raises latency-bounded QPS for large requests"]
    assert offload[2] == "not measured" and link == ""
    page = render_html(report)
    assert '<section id="serving"' in page
    assert {"fig-serving_latency_vs_qps", "fig-serving_tuned_vs_baseline"} <= set(
        re.findall(r'id="(fig-[^"]+)"', page))
    assert '<a href="#fig-serving_tuned_vs_baseline">' in page
    summary = write_report(report, None, tmp_path / "r.md")[0].read_text()
    assert "## Serving: latency-bounded throughput under MLPerf LoadGen" in summary
    assert "](r_figures/serving-2.png)" in summary


def test_the_runs_figures_include_the_serving_ones(store: ResultStore, tmp_path: Path) -> None:
    written = write_run_figures(store, store.latest_run_id(), tmp_path)
    assert [path.name for path in written] == ["serving_latency_vs_qps.png",
                                               "serving_tuned_vs_baseline.png"]
    assert all(path.stat().st_size > 0 for path in written)


def test_an_untuned_run_shows_its_best_deployment_and_no_tuning(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "one.duckdb")
    run_id = store.create_run("recstack serve", {}, {}, "p1", "machine")
    serving_point(store, run_id, "rmc1", 2, 1, 32, 900.0, 1000.0, target_ms=5.0)
    serving = next(s for s in build_report(store).sections if s.id == "serving")
    assert [f.name for f in serving.figures] == ["serving_latency_vs_qps"]
    assert serving.headline == ("Highest latency-bounded QPS: rmc1 900 at p95 <= 5 ms "
                                "(2 engines x 1 thread, sub-batch 32)")
    assert any("No model was tuned" in note for note in serving.notes)
    assert [t.title for t in serving.tables] == ["rmc1 (rows x0.5): deployments",
                                                 "Every LoadGen test"]


def test_a_store_without_serving_points_shows_nothing_of_serving(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "timing.duckdb")
    run_id = store.create_run("recstack run", {"min_seconds": 1.0}, {}, "p1", "machine")
    latency = (0.4e6 * np.random.default_rng(0).lognormal(0.0, 0.02, 40)).astype(np.int64)
    samples = pd.DataFrame({"iteration": range(40), "latency_ns": latency})
    store.record_point(run_id, "rmc1-1", fill.point(
        config_key="rmc1-1", model="rmc1", model_type="dlrm", row_scale=1.0, batch_size=1,
        device="cpu", threads=1, backend="eager", backend_basis="as given", attempts=1),
        TimingRecord(samples, timing_stats(list(samples.latency_ns), 1)))
    report = build_report(store)
    assert "serving" not in [s.id for s in report.sections]
    findings = next(s for s in report.sections if s.id == "findings").tables[0]
    assert len(findings.rows) == 11 and not any("GPU offload" in r[0] for r in findings.rows)
    page = render_html(report)
    assert 'id="serving"' not in page and "LoadGen" not in page and "fig-serving" not in page
    assert not [p for p in write_run_figures(store, run_id, tmp_path / "f")
                if p.name.startswith("serving_")]
