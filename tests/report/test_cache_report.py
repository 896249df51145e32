"""The report of a store holding cold and warm points: the cache-state section compares
them, every other section reads the cold ones, tables are model x batch grids, and each
finding links the figure it rests on, present in the page."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recstack.collect.timing import timing_stats
from recstack.records import TimingRecord
from recstack.report.html import build_report, render_html, render_markdown, write_report
from recstack.report.sections import Figure, Section, Table, link_figures
from recstack.store import ResultStore
from tests import fill

LLC = 2**20


def record(store: ResultStore, run_id: str, model: str, batch: int, median_ms: float,
           cache: str, working_set: int) -> None:
    latency = median_ms * 1e6 * np.random.default_rng(batch).lognormal(0.0, 0.02, 40)
    samples = pd.DataFrame({"iteration": range(40), "latency_ns": latency.astype(np.int64)})
    store.record_point(run_id, f"{model}-{batch}-{cache}", fill.point(
        config_key=f"{model}-{batch}-{cache}", model=model, model_type="dlrm", row_scale=1.0,
        batch_size=batch, device="cpu", threads=1, backend="eager", cache_state=cache,
        working_set_bytes=working_set, llc_bytes=LLC, backend_basis="as given", attempts=1),
        TimingRecord(samples, timing_stats(list(samples.latency_ns), batch)))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ResultStore:
    """rmc2 and rmc1 at batch 1 and 16, cold and warm (rmc2's cold set short of 4x the LLC);
    rmc1 at 256 cold only."""
    store = ResultStore(tmp_path_factory.mktemp("cache") / "r.duckdb")
    run_id = store.create_run("recstack run", {"min_seconds": 1.0}, {}, "p1", "machine")
    for model, working_set in (("rmc2", 2 * LLC), ("rmc1", 8 * LLC)):
        for batch in (16, 1):
            record(store, run_id, model, batch, 0.4 * batch, "cold", working_set)
            record(store, run_id, model, batch, 0.1 * batch, "warm", LLC // 4)
    record(store, run_id, "rmc1", 256, 30.0, "cold", 8 * LLC)
    return store


def test_cold_and_warm_meet_in_the_cache_section_only(store: ResultStore,
                                                      tmp_path: Path) -> None:
    report = build_report(store)
    sections = {s.id: s for s in report.sections}
    cache = sections["cache"]
    assert cache.measured and [f.name for f in cache.figures] == ["cache_cold_vs_warm"]
    table = cache.tables[0]
    assert [row[:2] for row in table.rows] == [["rmc1", "1"], ["rmc1", "16"], ["rmc2", "1"],
                                               ["rmc2", "16"]]
    assert table.row_classes == ["", "", "flag", "flag"]  # rmc2 short of 4x the LLC
    assert any("rmc2: the cold working set fell short of 4x" in n for n in cache.notes)
    assert any("4x the last-level cache" in n for n in cache.notes)
    grid = sections["systems"].tables[0]
    assert grid.columns == ["model", "b1", "b16", "b256"]
    # rows in the zoo's order, the cold latencies (0.4 ms per sample), one row per model
    assert [row[0] for row in grid.rows] == ["rmc1", "rmc2"]
    assert grid.rows[0][1].startswith("0.4") and grid.rows[1][3] == "n/a"
    assert any("use its cold point" in n for n in sections["systems"].notes)
    detail = sections["systems"].tables[-1]
    assert detail.collapsed and len(detail.rows) == 9
    summary = write_report(report, tmp_path / "r.html", tmp_path / "r.md")[1].read_text()
    assert "Every timing point: detail in the HTML report" in summary
    assert "| rmc1 | 0.4" in summary


def test_findings_link_figures_present_in_the_page(store: ResultStore, tmp_path: Path) -> None:
    report = build_report(store)
    page = render_html(report)
    ids = set(re.findall(r'id="(fig-[^"]+)"', page))
    links = re.findall(r'href="#([^"]+)"', page)
    assert "fig-latency_vs_batch" in links and "fig-cache_cold_vs_warm" in ids
    assert set(links) - {s.id for s in report.sections} <= ids
    findings = next(s for s in report.sections if s.id == "findings").tables[0]
    # the spread rests on the latency figure; the rest are not measured here (no GPU, no
    # profiles, no hardware level): they link nothing
    assert findings.links[0] == "fig-latency_vs_batch" and not any(findings.links[1:])
    assert '<a href="#fig-latency_vs_batch">latency vs batch</a>' in page
    write_report(report, None, tmp_path / "r.md")
    assert "[latency vs batch](r_figures/systems-1.png)" in (tmp_path / "r.md").read_text()
    # without written figures, the summary links nothing
    assert "](" not in render_markdown(report).split("## The paper's findings")[1]


def test_a_link_to_an_absent_figure_is_dropped() -> None:
    sections = [Section("a", "A", figures=[Figure("x", b"", name="topdown")]),
                Section("b", "B", tables=[Table("t", ["f", "figure"],
                                                [["1", "topdown"], ["2", "correlation"]],
                                                links=["topdown", "correlation-dominance"],
                                                link_column=1)])]
    link_figures(sections)
    table = sections[1].tables[0]
    assert sections[0].figures[0].id == "fig-topdown"
    assert table.links == ["fig-topdown", ""]
    assert table.rows[1][1] == "figure not in this report"


def test_null_cache_state_of_an_older_store_reads_as_warm(tmp_path: Path) -> None:
    from recstack.analysis.breakdown import load_operators
    from recstack.analysis.systems import load_timings
    from recstack.analysis.views import cache_comparison
    from tests.test_records import previous_release_store

    store = ResultStore(previous_release_store(tmp_path))
    assert store.query("SELECT count(*) AS n FROM points WHERE cache_state IS NULL").n[0] > 0
    timings = load_timings(store)
    assert set(timings.cache_state) == {"warm"} and cache_comparison(timings).empty
    assert set(load_operators(store)[1].cache_state) == {"warm"}
    report = build_report(store)
    cache = next(s for s in report.sections if s.id == "cache")
    assert not cache.measured
    systems = next(s for s in report.sections if s.id == "systems")
    assert any("Every timing point here is warm" in n for n in systems.notes)
