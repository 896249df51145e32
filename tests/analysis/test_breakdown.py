"""The software level on scaled models: who dominates, parts, consistency, unknown operators."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from recstack.analysis.breakdown import (OTHER, OVERHEAD, POINT_COLUMNS, breakdown,
                                         default_classes, dominant, load_operators,
                                         profiler_overhead, share_trend,
                                         unclassified_operators)
from recstack.collect.timing import TimingSettings
from recstack.points import Point
from recstack.records.profile import PLAIN_DRIFT_TOLERANCE
from recstack.report.plots import write_software_figures
from recstack.specs import zoo_spec
from recstack.store import ResultStore
from recstack.sweep import SweepPlan, run_sweep

SETTINGS = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.05,
                          min_iterations=5, profile_iterations=5)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Operator profiles at batch 256: an embedding-heavy DLRM (RMC2 with tables well beyond
    the caches: 32 x 25,000 rows x 64), an FC-heavy one (RMC3), DIN and DIEN; plus a timing
    point of RMC3 (which the profiler's overhead must not use as its reference)."""
    specs = [zoo_spec("rmc2").scaled(0.05), zoo_spec("rmc3").scaled(0.01),
             zoo_spec("din").scaled(0.001), zoo_spec("dien").scaled(0.001)]
    points = [Point(spec, 256, threads=2, level="operators") for spec in specs]
    points.append(Point(specs[1], 256, threads=2, level="timing"))
    store = ResultStore(tmp_path_factory.mktemp("breakdown") / "r.duckdb")
    run_id = store.create_run("test", SETTINGS.to_dict(), {}, "p", "test machine")
    outcome = run_sweep(SweepPlan(points=tuple(points)), store, run_id, SETTINGS)
    assert not outcome.failed
    return load_operators(store)


@pytest.fixture(scope="module")
def shares(profiled: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return breakdown(*profiled)


def share_of(shares: pd.DataFrame, model: str, view: str, category: str) -> float:
    rows = shares[(shares.model == model) & (shares.view == view)
                  & (shares.category == category)]
    return float(rows.share.sum())


def test_embedding_heavy_dlrm_is_dominated_by_embedding(shares: pd.DataFrame) -> None:
    top = dominant(shares).set_index("model")
    assert top.loc["rmc2", "category"] == "embedding"


def test_fc_heavy_dlrm_is_dominated_by_fc(shares: pd.DataFrame) -> None:
    top = dominant(shares).set_index("model")
    assert top.loc["rmc3", "category"] == "fc"
    assert top.loc["rmc3", "share"] > 0.5


def test_din_attention_and_dien_recurrence_in_the_part_view(shares: pd.DataFrame) -> None:
    assert share_of(shares, "din", "part", "attention") > 0.3
    assert dominant(shares, "part").set_index("model").loc["din", "category"] == "attention"
    assert share_of(shares, "dien", "part", "recurrent") > 0.2
    assert share_of(shares, "din", "part", "recurrent") == 0.0
    # The attention unit's GEMMs are "fc" in the operator view, "attention" in the part view.
    assert share_of(shares, "din", "operator", "fc") > share_of(shares, "din", "operator",
                                                                "attention")


def test_shares_sum_to_one_per_point_and_view(shares: pd.DataFrame) -> None:
    sums = shares.groupby(["point_key", "view"]).share.sum()
    assert len(sums) == 8
    assert ((sums - 1.0).abs() < 1e-9).all()


def test_operators_plus_overhead_account_for_the_wall_time(
        profiled: tuple[pd.DataFrame, pd.DataFrame], shares: pd.DataFrame) -> None:
    operators, profiles = profiled
    totals = operators.groupby("point_key").time_us.sum()
    for row in profiles.itertuples():
        assert row.operator_us == pytest.approx(totals[row.point_key])
        assert row.operator_us + row.uncovered_us == pytest.approx(row.wall_us)
        assert row.uncovered_us >= 0
    per_view = shares.groupby(["point_key", "view"]).time_us.sum().unstack()
    walls = profiles.set_index("point_key").wall_us
    for view in ("operator", "part"):
        assert per_view[view].to_numpy() == pytest.approx(walls[per_view.index].to_numpy())


def test_profiler_overhead_is_reported(profiled: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    profiles = profiled[1].set_index("model")
    overhead = profiler_overhead(profiled[1]).set_index("model")
    assert set(overhead.reference) == {"same worker"}  # RMC3's timing point is not used
    assert "timing_median_us" not in profiled[1].columns
    assert (overhead.reference_us == profiles.unprofiled_median_us[overhead.index]).all()
    assert (overhead.reference_us > 0).all()
    for model, row in overhead.iterrows():
        if row.plain_drift > PLAIN_DRIFT_TOLERANCE:  # the machine moved under this profile
            assert pd.isna(row.profiler_overhead) and "drifted" in row.overhead_note
        else:
            assert row.profiler_overhead == pytest.approx(
                row.profiled_median_us / row.reference_us - 1.0), model
            assert pd.isna(row.overhead_note)
            assert row.profiler_overhead == pytest.approx(profiles.profiler_overhead[model])
    assert ((overhead.coverage > 0.3) & (overhead.coverage <= 1.0)).all()


def _profile(key: str, **values: object) -> dict[str, object]:
    return dict.fromkeys(POINT_COLUMNS, 1) | {"point_key": key, "model": key, "wall_us": 100.0,
                                              "operator_us": 80.0, "uncovered_us": 20.0,
                                              "profiled_median_us": 150.0} | values


def test_profiler_overhead_is_the_same_workers_never_a_timing_points() -> None:
    """The profiled median over the same worker's plain median, whatever a timing point of
    the configuration measured (in another worker, minutes apart); NaN with its reason when
    the plain iterations before and after the profiler disagree."""
    profiles = pd.DataFrame([
        _profile("steady", unprofiled_median_us=100.0, plain_before_median_us=98.0,
                 plain_after_median_us=102.0, timing_median_us=40.0),
        _profile("drifted", unprofiled_median_us=115.0, plain_before_median_us=100.0,
                 plain_after_median_us=130.0, timing_median_us=100.0),
        _profile("older", unprofiled_median_us=120.0, plain_before_median_us=None,
                 plain_after_median_us=None)])
    overhead = profiler_overhead(profiles).set_index("point_key")
    assert list(overhead.reference) == ["same worker"] * 3
    assert overhead.reference_us.tolist() == [100.0, 115.0, 120.0]
    assert overhead.profiler_overhead["steady"] == pytest.approx(0.5)
    assert pd.isna(overhead.profiler_overhead["drifted"])
    assert overhead.plain_drift["drifted"] == pytest.approx(0.3)
    assert "drifted 30%" in overhead.overhead_note["drifted"]
    # Stored before the plain-after iterations: the worker's own reference, flagged unchecked.
    assert overhead.profiler_overhead["older"] == pytest.approx(0.25)
    assert "no drift check" in overhead.overhead_note["older"]
    assert pd.isna(overhead.overhead_note["steady"])
    # Profiles loaded without the new columns at all read as the older rows.
    bare = profiles.drop(columns=["plain_before_median_us", "plain_after_median_us"])
    assert profiler_overhead(bare).profiler_overhead.notna().all()


def test_unknown_operator_lands_in_other_and_is_reported() -> None:
    point = dict.fromkeys(POINT_COLUMNS, 1) | {"point_key": "k", "model": "m"}
    operators = pd.DataFrame([point | {"part": "over", "op": "aten::linear", "calls": 1,
                                       "time_us": 60.0},
                              point | {"part": "over", "op": "mylib::fused_magic",
                                       "calls": 2, "time_us": 30.0}])
    profiles = pd.DataFrame([point | {"uncovered_us": 10.0, "wall_us": 100.0}])
    table = breakdown(operators, profiles)
    by_class = table[table.view == "operator"].set_index("category").share
    assert by_class[OTHER] == pytest.approx(0.3)
    assert by_class["fc"] == pytest.approx(0.6) and by_class[OVERHEAD] == pytest.approx(0.1)
    unknown = unclassified_operators(operators)
    assert list(unknown.op) == ["mylib::fused_magic"] and unknown.time_us[0] == 30.0


def test_classification_table_is_data() -> None:
    classes = default_classes()
    assert classes.classify("aten::embedding_bag") == "embedding"
    assert classes.classify("aten::_embedding_bag_forward_only") == "embedding"
    assert classes.classify("aten::addmm") == "fc"
    assert classes.classify("aten::gru") == "recurrent"
    assert classes.classify("Memcpy HtoD (Pageable -> Device)") == "data_movement"
    assert classes.classify("aten::never_heard_of_it") == OTHER
    assert classes.names[-2:] == [OTHER, OVERHEAD]


def test_share_trend_with_batch() -> None:
    rows = []
    for batch, embedding in ((1, 0.2), (64, 0.5), (256, 0.7)):
        for category, share in (("embedding", embedding), ("fc", 1 - embedding)):
            rows.append({"model": "m", "device": "cpu", "threads": 1, "backend": "eager",
                         "batch_size": batch, "view": "operator", "category": category,
                         "share": share, "point_key": str(batch)})
    trend = share_trend(pd.DataFrame(rows)).set_index("category")
    assert trend.loc["embedding", "change"] == pytest.approx(0.5)
    assert trend.loc["fc", "share_at_smallest"] == pytest.approx(0.8)


def test_breakdown_figures_are_drawn(shares: pd.DataFrame, tmp_path: Path) -> None:
    written = write_software_figures(shares, tmp_path)
    assert [p.name for p in written] == ["operator_breakdown.png", "part_breakdown.png"]
    for path in written:
        pixels = matplotlib.image.imread(path)
        assert path.stat().st_size > 10_000 and pixels.std() > 0.05


@pytest.mark.parametrize(("op", "expected"), [
    ("quantized::embedding_bag_byte_rowwise_offsets", "embedding"),  # int8 tables
    ("quantized::embedding_bag_4bit_rowwise_offsets", "embedding"),  # int4 tables
    ("aten::embedding_bag", "embedding"),  # fp16 and bf16 tables, as fp32 ones
    ("quantized::linear_dynamic", "fc"),  # dense int8
    ("aten::to", "data_movement"),  # casts between bf16/fp16 and fp32
    ("aten::_to_copy", "data_movement"),
    ("aten::copy_", "data_movement"),
    ("aten::quantize_per_tensor_dynamic", "data_movement"),
    ("aten::dequantize", "data_movement"),
])
def test_reduced_precision_operators_are_classified(op: str, expected: str) -> None:
    assert default_classes().classify(op) == expected
