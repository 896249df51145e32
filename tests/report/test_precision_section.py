"""The report of a run timed in two precisions has a precision section, and its other
sections keep the precisions apart; the report of one precision has no precision section and
renders as it did before precisions existed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from recstack.footprint import footprint
from recstack.report.html import (DEFAULT_SECTIONS, Report, build_report, render_html,
                                  render_markdown, write_report)
from recstack.report.sections import Section
from recstack.store import ResultStore
from recstack.text import MISSING
from tests.analysis.test_precision import INT8, make_precision_store
from tests.conftest import small_spec

INT8_LABEL = "emb=int8,dense=fp32"


def sections(report: Report) -> dict[str, Section]:
    return {section.id: section for section in report.sections}


@pytest.fixture(scope="module")
def precision_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """tests/analysis/test_precision.py's store: rmc1 in fp32 and in int8 tables."""
    store, _ = make_precision_store(tmp_path_factory.mktemp("precision"))
    return build_report(store)


def test_two_precisions_get_a_precision_section(precision_report: Report,
                                                tmp_path: Path) -> None:
    found = sections(precision_report)
    assert list(found)[:4] == ["platform", "systems", "precision", "cache"]
    section = found["precision"]
    points, summary = section.tables
    assert points.title == "Latency, speedup and accuracy per precision, per model and batch size"
    assert points.columns == [
        "model", "batch", "device", "threads", "backend", "precision", "median ms", "p95 ms",
        "samples/s", "speedup vs fp32", "max |deviation|", "mean |deviation|",
        "embedding share", "tables MiB", "gathered B/sample"]
    spec = small_spec("rmc1")
    fp32_mib = f"{footprint(spec).embedding_bytes / 2**20:.3g}"
    int8_mib = f"{footprint(spec, INT8).embedding_bytes / 2**20:.3g}"
    # worked out in tests/analysis/test_precision.py; gathered: 8 tables x 80 rows x 128
    # bytes in fp32, x 40 in int8
    assert points.rows == [
        ["rmc1", "1", "cpu", "1", "eager", "fp32", "2", "2.4", "500", "1x", MISSING, MISSING,
         MISSING, fp32_mib, "81.9K"],
        ["rmc1", "1", "cpu", "1", "eager", INT8_LABEL, "1", "1.2", "1K", "2x", "0.002",
         "0.0005", MISSING, int8_mib, "25.6K"],
        ["rmc1", "16", "cpu", "1", "eager", "fp32", "4", "4.8", "4K", "1x", MISSING, MISSING,
         "60%", fp32_mib, "81.9K"],
        ["rmc1", "16", "cpu", "1", "eager", INT8_LABEL, "3.2", "3.84", "5K", "1.2x", "0.003",
         "0.001", "38%", int8_mib, "25.6K"],
        ["rmc1", "64", "cpu", "1", "eager", INT8_LABEL, "8", "9.6", "8K", MISSING, MISSING,
         MISSING, MISSING, int8_mib, "25.6K"]]
    assert summary.rows == [
        ["rmc1", "fp32", "2", "2", "1x", "1x", "1x", MISSING, "100%"],
        ["rmc1", INT8_LABEL, "3", "2", "1.2x", "1.6x", "2x", "0.003", "31%"]]
    assert section.headline == (
        f"Precision: rmc1 in {INT8_LABEL} runs at 1.6x the speed of fp32 (median over 2 "
        "configurations, up to 2x), its predictions within 0.003 of fp32's, its tables at "
        "31% of their fp32 bytes")
    assert [f.name for f in section.figures] == ["precision_speedup"]
    assert any(f"fp32, {INT8_LABEL}" in note for note in section.notes)
    # no ceilings stored: no memory-bound column, and the note says why
    assert any(note.startswith("memory-bound: not shown; no ceilings") for note in
               section.notes)
    page = render_html(precision_report)
    assert "Precision: latency, accuracy and footprint" in page
    assert 'id="fig-precision_speedup"' in page
    write_report(precision_report, None, tmp_path / "r.md")
    assert f"| rmc1 | {INT8_LABEL} | 3 | 2 |" in (tmp_path / "r.md").read_text()


def test_the_other_sections_keep_the_precisions_apart(precision_report: Report) -> None:
    found = sections(precision_report)
    systems = found["systems"]
    # a figure per precision: an int8 point never shares a line with an fp32 one
    assert [f.title for f in systems.figures] == [
        "latency vs batch (precision fp32)", "speedup heatmap (precision fp32)",
        f"latency vs batch (precision {INT8_LABEL})",
        f"speedup heatmap (precision {INT8_LABEL})"]
    grid, best, choice, every = systems.tables
    assert grid.columns == ["model", "embedding", "b1", "b16", "b64"]
    assert grid.rows == [["rmc1", "fp32", "2", "4", MISSING], ["rmc1", "int8", "1", "3.2", "8"]]
    assert best.columns[:2] == ["model", "precision"]
    assert [row[:2] for row in best.rows] == [["rmc1", "fp32"], ["rmc1", INT8_LABEL]]
    assert [row[:3] for row in choice.rows] == [["rmc1", "fp32", "2"], ["rmc1", INT8_LABEL, "3"]]
    assert "precision" in every.columns
    assert any("span 2 precisions" in note for note in systems.notes)
    software = found["software"]
    assert [f.title for f in software.figures] == [
        "operator breakdown (precision fp32)", "part breakdown (precision fp32)",
        f"operator breakdown (precision {INT8_LABEL})",
        f"part breakdown (precision {INT8_LABEL})"]
    dominant = software.tables[0]
    assert dominant.columns == ["model", "embedding", "b16"]
    assert "precision" in software.tables[1].columns
    # the quantized lookup is classified: no operator is left to "other"
    assert not any("not in the class table" in note for note in software.notes)


def test_one_precision_has_no_precision_section_and_renders_as_before(tmp_path: Path) -> None:
    from tests.analysis.test_fleet import put

    store = ResultStore(tmp_path / "r.duckdb")
    run_id = store.create_run("recstack run", {}, {}, "pa", "machine A")
    put(store, run_id, "a1", "rmc1", 1, 2.0, None)
    put(store, run_id, "a16", "rmc1", 16, 4.0, "pa")
    report = build_report(store)
    assert "precision" not in sections(report)
    before = build_report(store, sections=[spec for spec in DEFAULT_SECTIONS
                                           if spec.id != "precision"])
    before = replace(before, generated_at=report.generated_at)
    assert render_html(report) == render_html(before)
    assert render_markdown(report) == render_markdown(before)
    systems = sections(report)["systems"]
    assert all("precision" not in table.columns for table in systems.tables)
    assert systems.tables[0].columns == ["model", "b1", "b16"]
    assert not any("precision" in note for note in systems.notes)
    assert "Precision" not in render_html(report)
