"""The report's correlation section, from a constructed store of a design-space run, and the
findings check it feeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recstack.collect.timing import timing_stats
from recstack.designspace import generate_variants, quick_design_space, variants_frame
from recstack.features import spec_features
from recstack.records import TimingRecord
from recstack.report.html import build_report, default_run_ids
from recstack.specs import zoo_spec
from recstack.store import ResultStore
from tests import fill


def _record(store: ResultStore, run_id: str, spec, level: str, record) -> None:
    store.record_point(run_id, f"{spec.name}-{level}", fill.point(
        config_key=spec.name, level=level, model=spec.name, model_type=spec.model_type,
        spec=spec.to_config(), row_scale=spec.row_scale, batch_size=16, device="cpu",
        threads=1, backend="eager"), record)


def _timing() -> TimingRecord:
    latencies = [1_000_000 + 1000 * i for i in range(20)]
    samples = pd.DataFrame({"iteration": range(20), "latency_ns": latencies})
    return TimingRecord(samples, timing_stats(latencies, 16))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResultStore, str, str]:
    """A zoo run (one timing point), then a design-space run whose operator times follow
    each variant's work: embedding time from gathered bytes, FC time from MLP FLOPs."""
    store = ResultStore(tmp_path_factory.mktemp("report") / "store.duckdb")
    zoo_run = store.create_run("zoo", {}, {}, "p", "machine")
    _record(store, zoo_run, zoo_spec("rmc1").scaled(1e-4), "timing", _timing())
    design_run = store.create_run("design", {}, {}, "p", "machine")
    space = quick_design_space()
    variants = generate_variants(space, seed=0)
    store.record_design_space(design_run, variants_frame(variants, space, 0))
    for variant in variants:
        features = spec_features(variant.spec)
        embedding = features["gathered_bytes"] / 100
        fc = features["flops_mlp"] / 1000
        operators = pd.DataFrame([
            {"part": "sparse", "op": "aten::embedding_bag", "calls": 8.0, "time_us": embedding},
            {"part": "over", "op": "aten::linear", "calls": 3.0, "time_us": fc}])
        total = embedding + fc
        _record(store, design_run, variant.spec, "operators", fill.profile(
            operators, iterations=10, time_basis="wall", wall_us=total * 1.05,
            operator_us=total, uncovered_us=total * 0.05, profiled_median_us=total * 1.2,
            unprofiled_median_us=total * 1.05, profiler_overhead=0.14, trace_path=None))
    return store, zoo_run, design_run


def test_default_report_anchors_on_the_zoo_run_and_finds_the_design_run(store) -> None:
    results, zoo_run, design_run = store
    assert default_run_ids(results) == [zoo_run]
    report = build_report(results)
    section = next(s for s in report.sections if s.id == "correlation")
    assert section.measured
    assert len(section.figures) == 3  # heatmap, importance, dominance
    titles = [table.title for table in section.tables]
    assert any("strongest single feature" in t for t in titles)
    assert any("Regression" in t for t in titles)
    assert design_run in " ".join(section.notes)
    findings = next(s for s in report.sections if s.id == "findings")
    rows = {row[0]: row for table in findings.tables for row in table.rows}
    status = next(row for text, row in rows.items() if "No single" in text)
    assert "not measured" not in status


def test_without_a_design_run_the_section_says_how_to_measure_it(tmp_path: Path) -> None:
    results = ResultStore(tmp_path / "store.duckdb")
    run = results.create_run("zoo", {}, {}, "p", "machine")
    _record(results, run, zoo_spec("rmc1").scaled(1e-4), "timing", _timing())
    section = next(s for s in build_report(results).sections if s.id == "correlation")
    assert not section.measured
    assert "recstack correlate" in " ".join(section.notes)
    roofline = next(s for s in build_report(results).sections if s.id == "roofline")
    assert not roofline.measured and "recstack ceilings" in " ".join(roofline.notes)
