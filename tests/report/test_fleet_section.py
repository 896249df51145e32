"""The report of a run measured on two platforms has a fleet section and systems tables per
platform; the report of one platform has neither (nor any platform column)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recstack.report.html import Report, build_report, render_html, write_report
from recstack.report.sections import Section
from recstack.store import ResultStore
from tests.analysis.test_fleet import make_fleet_store, put


def sections(report: Report) -> dict[str, Section]:
    return {section.id: section for section in report.sections}


@pytest.fixture(scope="module")
def fleet_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """tests/analysis/test_fleet.py's store: one run, started on pa, measured on pa and pb."""
    store, _ = make_fleet_store(tmp_path_factory.mktemp("fleet"))
    return build_report(store)


def test_two_platforms_get_a_fleet_section(fleet_report: Report, tmp_path: Path) -> None:
    found = sections(fleet_report)
    assert list(found)[:4] == ["platform", "systems", "fleet", "cache"]
    fleet = found["fleet"]
    machines, ranked = fleet.tables[0], fleet.tables[1]
    assert machines.columns == ["platform", "description", "runs", "points measured",
                                "timing points", "failed"]
    assert machines.rows == [["pa", "machine A", "1", "3", "3", "0"],
                             ["pb", "machine B", "1", "4", "4", "1"]]
    # worked out in tests/analysis/test_fleet.py: pb wins b1 (1 ms against 2), pa b16 (4
    # ms against pb's fastest, 6 ms at 4 threads); din, on pb alone, is not ranked
    assert ranked.rows == [
        ["rmc1", "1", "cold", "2", "pb", "cpu t1 eager", "1", "pa", "cpu t1 eager", "2", "2x"],
        ["rmc1", "16", "cold", "2", "pa", "cpu t1 eager", "4", "pb", "cpu t4 eager", "6",
         "1.5x"]]
    assert fleet.headline == ("Of 2 model and batch sizes measured on two or more platforms, "
                              "pa is fastest at 1, pb at 1; the widest gap: rmc1 at batch 1, "
                              "where pb is 2x as fast as pa")
    assert [f.name for f in fleet.figures] == ["fleet_latency"]
    every = next(t for t in fleet.tables if t.title == "Every configuration, per platform")
    assert every.collapsed and len(every.rows) == 7
    findings = fleet.tables[-1]
    assert findings.columns == ["finding", "pa", "pb"]
    assert findings.rows[0][1:] == ["holds (8.0x)", "does not hold (2.7x)"]
    assert len(findings.rows) == 11  # no serving findings: no run measured serving
    page = render_html(fleet_report)
    assert "Fleet: the platforms side by side" in page and 'id="fig-fleet_latency"' in page
    write_report(fleet_report, None, tmp_path / "r.md")
    assert "| pa | machine A | 1 | 3 | 3 | 0 |" in (tmp_path / "r.md").read_text()


def test_two_platforms_get_systems_tables_per_platform(fleet_report: Report) -> None:
    found = sections(fleet_report)
    systems = found["systems"]
    titles = [table.title for table in systems.tables]
    assert titles == [
        "Median latency (ms) per model and batch size (platform pa)",
        "Best deployment per model (highest throughput meeting the p95 target) (platform pa)",
        "Deployment choice: best over worst throughput (platform pa)",
        "Median latency (ms) per model and batch size (platform pb)",
        "Best deployment per model (highest throughput meeting the p95 target) (platform pb)",
        "Deployment choice: best over worst throughput (platform pb)",
        "Every timing point"]
    # pa's grid holds pa's points alone: its cold 2 ms at batch 1, never pb's 1 ms
    assert systems.tables[0].rows == [["rmc1", "2", "4"]]
    assert systems.tables[3].rows == [["rmc1", "1", "1", "8"], ["rmc1", "4", "n/a", "6"],
                                      ["din", "1", "3", "n/a"]]
    choice_pb = systems.tables[5]
    assert choice_pb.rows[0][:5] == ["rmc1", "3", "cpu t4 eager b16", "cpu t1 eager b1", "2.7x"]
    assert systems.headline.startswith("Deployment choice: the best configuration beats the "
                                       "worst by up to 8.0x in throughput (rmc1 on platform "
                                       "pa: cpu t1 eager b16 over cpu t1 eager b1)")
    assert any("measured on 2 platforms (pa, pb): the figures and the latency, deployment "
               "and spread tables are per platform" in note for note in systems.notes)
    assert systems.tables[-1].columns[:2] == ["run", "platform"]
    assert [f.title for f in systems.figures] == [
        "latency vs batch (platform pa)", "speedup heatmap (platform pa)",
        "latency vs batch (platform pb)", "speedup heatmap (platform pb)"]
    assert any("no run was started on (a run on a cluster): pb" in note
               for note in found["platform"].notes)
    assert any("the findings above pool them" in note for note in found["findings"].notes)


def test_one_platform_has_no_fleet_section_and_no_platform_columns(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = store.create_run("recstack run", {}, {}, "pa", "machine A")
    put(store, run_id, "a1", "rmc1", 1, 2.0, None)
    put(store, run_id, "a16", "rmc1", 16, 4.0, "pa")  # its own platform named: still one
    report = build_report(store)
    found = sections(report)
    assert "fleet" not in found
    systems = found["systems"]
    assert [table.title for table in systems.tables] == [
        "Median latency (ms) per model and batch size",
        "Best deployment per model (highest throughput meeting the p95 target)",
        "Deployment choice: best over worst throughput", "Every timing point"]
    assert "platform" not in systems.tables[-1].columns
    assert [f.title for f in systems.figures] == ["latency vs batch", "speedup heatmap"]
    # b16: 16 samples in 4 ms (4000/s) over b1: 1 in 2 ms (500/s)
    assert systems.headline == ("Deployment choice: the best configuration beats the worst by "
                                "up to 8.0x in throughput (rmc1: cpu t1 eager b16 over cpu t1 "
                                "eager b1); within the latency targets by up to 8.0x (rmc1). "
                                "The paper reports up to 15x.")
    notes = [note for section in report.sections for note in section.notes]
    assert not any("platforms" in note and ("pool" in note or "per platform" in note
                                            or "no run was started on" in note)
                   for note in notes)
    assert "Fleet" not in render_html(report)
