"""The bottleneck table from real stored runs, and the correlation's acceptance test: over a
small measured design space, each operator share follows its own kind of work."""

from __future__ import annotations

from pathlib import Path

import pytest

from recstack.analysis.bottlenecks import bottleneck_columns, load_bottlenecks
from recstack.analysis.correlation import correlation_matrix
from recstack.collect.timing import TimingSettings
from recstack.designspace import generate_variants, load_design_space, variants_frame
from recstack.store import ResultStore
from recstack.sweep import SweepPlan, open_run, plan_specs, run_sweep

DATA = Path(__file__).resolve().parents[1] / "data"
QUICK = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.05,
                       min_iterations=5, profile_iterations=10)


@pytest.fixture(scope="module")
def measured_design(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResultStore, str]:
    """14 DLRM variants (lookups and MLP widths drawn independently), each profiled at batch
    256 (enough work per operator for shares to follow the work) on one thread in its own
    worker; three of them timed too."""
    space = load_design_space(DATA / "design_embedding_vs_mlp.yaml")
    variants = generate_variants(space, seed=0)
    store = ResultStore(tmp_path_factory.mktemp("design") / "store.duckdb")
    run_id = open_run(store, QUICK, "test")
    store.record_design_space(run_id, variants_frame(variants, space, 0))
    profiles = plan_specs([v.spec for v in variants], [256], [1], ["cpu"], ["eager"],
                          levels=["operators"])
    timings = plan_specs([v.spec for v in variants[:3]], [256], [1], ["cpu"], ["eager"],
                         levels=["timing"])
    plan = SweepPlan(points=profiles.points + timings.points)
    outcome = run_sweep(plan, store, run_id, QUICK)
    assert not outcome.failed
    return store, run_id


@pytest.mark.slow
def test_bottleneck_table_joins_every_level_with_the_features(measured_design) -> None:
    store, run_id = measured_design
    table = load_bottlenecks(store, [run_id])
    assert len(table) == 14
    assert set(table.model) == set(store.design_space(run_id).variant)
    columns = bottleneck_columns(table)
    assert {"latency_ms", "throughput_per_s", "share_embedding", "share_fc",
            "share_overhead"} <= set(columns)
    # Shares of a point sum to one; features come from the stored specs.
    shares = table[[c for c in table.columns if c.startswith("share_")]].sum(axis=1)
    assert shares.round(6).eq(1.0).all()
    assert (table.num_tables == 8).all() and (table.embedding_dim == 32).all()
    # Levels measured for some variants only: the others have no value, never a zero.
    assert table.latency_ms.notna().sum() == 3 and table.latency_ms.dropna().gt(0).all()


@pytest.mark.slow
def test_embedding_share_follows_gathered_bytes_and_fc_share_follows_mlp_flops(
        measured_design) -> None:
    """The issue's acceptance test. "Strongly positive": r of at least 0.5 (a large effect by
    Cohen's convention) and significant at 5%. Lookups and widths vary independently, so
    each share also moves with the other kind of work: about 0.7 is the most either
    correlation can reach here; it measured 0.57 to 0.97 on a 2-core VM
    busy with other work."""
    store, run_id = measured_design
    table = load_bottlenecks(store, [run_id])
    for method in ("spearman", "pearson"):
        correlations = correlation_matrix(table, ["share_embedding", "share_fc"], method)
        by_pair = correlations.set_index(["feature", "bottleneck"])
        embedding = by_pair.loc[("gathered_bytes", "share_embedding")]
        fc = by_pair.loc[("flops_mlp", "share_fc")]
        assert embedding.r >= 0.5 and embedding.p_value < 0.05, embedding
        assert fc.r >= 0.5 and fc.p_value < 0.05, fc


def test_no_measured_points_gives_an_empty_table(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store.duckdb")
    open_run(store, QUICK, "test")
    table = load_bottlenecks(store)
    assert table.empty and bottleneck_columns(table) == []


def test_features_come_from_the_hardware_points_spec_only_where_no_other_level_ran(
        tmp_path: Path) -> None:
    from tests import fill
    from recstack.footprint import footprint
    from tests.conftest import small_spec

    store = ResultStore(tmp_path / "store.duckdb")
    run_id = open_run(store, QUICK, "test")
    timed, simulated_only = small_spec("rmc1"), small_spec("ncf")
    rows = [(timed, "timing", fill.timing(median_ms=1.0)),
            (timed.scaled(0.5), "hardware", fill.hardware(retiring=0.3)),
            (simulated_only.scaled(0.5), "hardware", fill.hardware(retiring=0.4))]
    for index, (spec, level, record) in enumerate(rows):
        store.record_point(run_id, f"p{index}", fill.point(
            model=spec.name, spec=spec.to_config(), level=level, batch_size=1, device="cpu",
            threads=1, backend="eager", row_scale=spec.row_scale), record)
    table = load_bottlenecks(store, [run_id]).set_index("model")
    # The timed model's features are those of the tables it was timed on, not the scaled ones.
    assert table.loc["rmc1", "embedding_bytes"] == footprint(timed).embedding_bytes
    assert table.loc["ncf", "embedding_bytes"] == \
        footprint(simulated_only.scaled(0.5)).embedding_bytes


def test_a_design_in_several_precisions_has_a_feature_row_per_model_and_precision(
        tmp_path: Path) -> None:
    """rmc1 timed and profiled in fp32 and in int8 tables, ncf timed in fp32 only: one row
    per model and precision, each with the features of its own precision and its own
    bottlenecks (never an average of the two precisions' shares)."""
    import pandas as pd

    from recstack.footprint import footprint
    from recstack.precision import Precision
    from tests import fill
    from tests.conftest import small_spec

    store = ResultStore(tmp_path / "store.duckdb")
    run_id = open_run(store, QUICK, "test")
    rmc1, ncf = small_spec("rmc1"), small_spec("ncf")
    int8 = Precision("int8", "fp32")

    def put(key: str, spec, precision: Precision | None, level: str, record) -> None:
        store.record_point(run_id, key, fill.point(
            model=spec.name, model_type=spec.model_type, spec=spec.to_config(), level=level,
            batch_size=4, device="cpu", threads=1, backend="eager", row_scale=spec.row_scale,
            embedding_precision=None if precision is None else precision.embedding,
            dense_precision=None if precision is None else precision.dense), record)

    def profile(embedding_us: float) -> object:
        operators = pd.DataFrame([
            {"part": "sparse", "op": "quantized::embedding_bag_byte_rowwise_offsets"
             if embedding_us < 50 else "aten::embedding_bag", "calls": 1.0,
             "time_us": embedding_us},
            {"part": "over", "op": "aten::linear", "calls": 1.0, "time_us": 100 - embedding_us}])
        return fill.profile(operators, iterations=10, time_basis="wall", wall_us=100.0,
                            operator_us=100.0, uncovered_us=0.0, profiled_median_us=100.0,
                            unprofiled_median_us=100.0, profiler_overhead=0.0,
                            trace_path=None)

    put("t1", rmc1, None, "timing", fill.timing(median_ms=2.0))  # stored before precision
    put("t2", rmc1, int8, "timing", fill.timing(median_ms=1.0))
    put("t3", ncf, None, "timing", fill.timing(median_ms=0.5))
    put("o1", rmc1, None, "operators", profile(60.0))
    put("o2", rmc1, int8, "operators", profile(30.0))
    table = load_bottlenecks(store, [run_id])
    rows = table.set_index(["model", "embedding_precision", "dense_precision"])
    assert sorted(rows.index) == [("ncf", "fp32", "fp32"), ("rmc1", "fp32", "fp32"),
                                  ("rmc1", "int8", "fp32")]
    assert rows.latency_ms.to_dict() == {("ncf", "fp32", "fp32"): 0.5,
                                         ("rmc1", "fp32", "fp32"): 2.0,
                                         ("rmc1", "int8", "fp32"): 1.0}
    assert rows.share_embedding[("rmc1", "fp32", "fp32")] == pytest.approx(0.6)
    assert rows.share_embedding[("rmc1", "int8", "fp32")] == pytest.approx(0.3)
    assert rows.embedding_bytes[("rmc1", "int8", "fp32")] == \
        footprint(rmc1, int8).embedding_bytes
    assert rows.embedding_bytes[("rmc1", "fp32", "fp32")] == footprint(rmc1).embedding_bytes
    assert rows.embedding_bytes_per_element.to_dict() == {
        ("ncf", "fp32", "fp32"): 4.0, ("rmc1", "fp32", "fp32"): 4.0,
        ("rmc1", "int8", "fp32"): 1.25}
    # in fp32 the per-element features are constant: the correlation drops them, so a store
    # of one precision correlates exactly what it did before they existed
    from recstack.analysis.correlation import transformed_features

    fp32 = table[table.embedding_precision == "fp32"]
    assert {"embedding_bytes_per_element", "dense_bytes_per_parameter"}.isdisjoint(
        transformed_features(fp32).columns)
