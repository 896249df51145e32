"""Systems-level analyses on constructed tables whose answers are known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recstack.analysis.systems import (TIMING_COLUMNS, LatencyTargets, batching_gain,
                                       best_deployment, default_targets, deployment_spread,
                                       latency_throughput, load_targets, speedup_over_cpu,
                                       with_overrides)
from recstack.errors import RecstackError


def timing(model: str, device: str, threads: int, batch: int, median_ms: float,
           p95_ms: float | None = None, cache_state: str = "cold") -> dict[str, object]:
    row = dict.fromkeys(TIMING_COLUMNS)
    row.update(run_id="r", platform_id="p", model=model, model_type="dlrm", row_scale=1.0,
               batch_size=batch, device=device, threads=threads, backend="eager",
               cache_state=cache_state, iterations=100, median_ms=median_ms, p5_ms=median_ms * 0.9,
               p95_ms=p95_ms or median_ms * 1.1, p99_ms=median_ms * 1.2, mean_ms=median_ms,
               cv=0.01, throughput_per_s=batch / (median_ms / 1e3), copy_median_ms=None,
               unstable=False)
    return row


def two_models() -> pd.DataFrame:
    """Model a: the CPU wins at batch 1, the GPU at batch 256; model b: CPU only."""
    return pd.DataFrame([
        timing("a", "cpu", 1, 1, 1.0), timing("a", "cpu", 2, 1, 0.8),
        timing("a", "cpu", 1, 256, 40.0), timing("a", "cpu", 2, 256, 25.6),
        timing("a", "cuda", 1, 1, 2.0), timing("a", "cuda", 1, 256, 3.2),
        timing("b", "cpu", 2, 1, 5.0), timing("b", "cpu", 2, 256, 500.0, p95_ms=600.0),
    ])


@pytest.fixture
def timings() -> pd.DataFrame:
    return two_models()


def test_speedup_over_cpu(timings: pd.DataFrame) -> None:
    table = speedup_over_cpu(timings)
    gpu = table[table.device == "cuda"].set_index("batch_size").speedup
    # best CPU at batch 1: 0.8 ms (1250/s); GPU 2 ms (500/s)
    assert gpu[1] == pytest.approx(0.4)
    # best CPU at 256: 25.6 ms (10,000/s); GPU 3.2 ms (80,000/s)
    assert gpu[256] == pytest.approx(8.0)
    assert (table[table.device == "cpu"].speedup == 1.0).all()


def test_best_deployment_under_target(timings: pd.DataFrame) -> None:
    targets = LatencyTargets({"a": 5.0, "b": 1.0}, default_ms=25.0, source="test")
    best = best_deployment(timings, targets).set_index("model")
    # a: within 5 ms p95, the GPU at batch 256 (3.52 ms p95, 80,000/s) wins
    assert (best.loc["a", "device"], best.loc["a", "batch_size"]) == ("cuda", 256)
    assert bool(best.loc["a", "meets_target"])
    # b: nothing meets 1 ms: the lowest p95 is reported, marked as missing the target
    assert best.loc["b", "batch_size"] == 1 and not best.loc["b", "meets_target"]


def test_deployment_spread(timings: pd.DataFrame) -> None:
    spread = deployment_spread(timings).set_index("model")
    # a: best 80,000/s (cuda b256), worst 500/s (cuda b1)
    assert spread.loc["a", "ratio"] == pytest.approx(160.0)
    assert spread.loc["a", "best"] == "cuda t1 eager b256"
    assert spread.loc["a", "worst"] == "cuda t1 eager b1"
    targets = LatencyTargets({"a": 5.0}, default_ms=1000.0, source="test")
    within = deployment_spread(timings, targets).set_index("model")
    # a within 5 ms p95: 80,000/s over the worst meeting it, cuda b1 (2.2 ms, 500/s)
    assert within.loc["a", "ratio"] == pytest.approx(160.0)
    # b within 1000 ms: 512/s (b256, 600 ms p95) over 200/s (b1)
    assert within.loc["b", "ratio"] == pytest.approx(2.56)


def test_batching_gain(timings: pd.DataFrame) -> None:
    gains = batching_gain(timings)
    cpu_a = gains[(gains.model == "a") & (gains.device == "cpu")].set_index("batch_size").gain
    assert cpu_a[1] == 1.0 and cpu_a[256] == pytest.approx(8.0)


def test_latency_throughput_columns(timings: pd.DataFrame) -> None:
    table = latency_throughput(timings)
    assert list(table.columns) == ["model", "embedding_precision", "dense_precision",
                                   "device", "threads", "backend", "batch_size", "median_ms",
                                   "p95_ms", "p99_ms", "throughput_per_s", "cv", "unstable"]
    assert len(table) == len(timings)
    # a frame built without the precision columns reads as fp32, as an older store does
    assert set(table.embedding_precision) == set(table.dense_precision) == {"fp32"}


def test_targets_defaults_file_and_overrides(tmp_path: Path) -> None:
    targets = default_targets()
    assert targets.for_model("rmc1") == 100 and targets.for_model("ncf") == 5
    assert targets.for_model("my_model") == 25
    assert "DeepRecSys" in targets.source
    assert with_overrides(targets, ["rmc1=50"]).for_model("rmc1") == 50
    with pytest.raises(RecstackError, match="--target: 'rmc1' is not allowed"):
        with_overrides(targets, ["rmc1"])
    path = tmp_path / "t.yaml"
    path.write_text("targets_ms: {rmc1: -1}\n")
    with pytest.raises(RecstackError, match="t.yaml: rmc1: -1 is not allowed"):
        load_targets(path)


def test_prefer_cold_keeps_one_point_per_configuration() -> None:
    from recstack.analysis.systems import prefer_cold, sort_points

    frame = pd.DataFrame([timing("rmc1", "cpu", 1, 1, 0.2, cache_state="cold"),
                          timing("rmc1", "cpu", 1, 1, 0.1, cache_state="warm"),
                          timing("rmc1", "cpu", 1, 4, 0.3, cache_state="warm"),
                          timing("din", "cpu", 1, 1, 0.5, cache_state="cold")])
    kept = prefer_cold(frame)
    # the warm rmc1 b1 has a cold twin: dropped; the warm-only b4 stays (an older store)
    assert sorted(zip(kept.model, kept.batch_size, kept.cache_state)) == [
        ("din", 1, "cold"), ("rmc1", 1, "cold"), ("rmc1", 4, "warm")]
    assert prefer_cold(frame.drop(columns="cache_state")).equals(
        frame.drop(columns="cache_state"))
    ordered = sort_points(frame)
    assert list(zip(ordered.model, ordered.batch_size, ordered.cache_state)) == [
        ("rmc1", 1, "cold"), ("rmc1", 1, "warm"), ("rmc1", 4, "warm"), ("din", 1, "cold")]


def in_precision(row: dict[str, object], embedding: str, dense: str = "fp32"
                 ) -> dict[str, object]:
    return row | {"embedding_precision": embedding, "dense_precision": dense}


def test_per_model_views_keep_precisions_apart() -> None:
    """Model a in fp32 (1 ms at b1, 8 ms at b64 on the CPU; 2 ms at b64 on the GPU) and in
    int8 tables on the CPU (0.5 ms at b1, 2 ms at b64): an int8 point is never a deployment
    of the fp32 model, nor its CPU baseline."""
    from recstack.analysis.systems import prefer_cold

    frame = pd.DataFrame([
        in_precision(timing("a", "cpu", 1, 1, 1.0), "fp32"),
        in_precision(timing("a", "cpu", 1, 64, 8.0), "fp32"),
        in_precision(timing("a", "cuda", 1, 64, 2.0), "fp32"),
        in_precision(timing("a", "cpu", 1, 1, 0.5), "int8"),
        in_precision(timing("a", "cpu", 1, 64, 2.0), "int8"),
        in_precision(timing("a", "cpu", 1, 64, 1.0, cache_state="warm"), "int8")])
    # the warm int8 b64 point has an int8 cold twin; the fp32 b64 is no twin of it
    assert len(prefer_cold(frame)) == 5
    spread = deployment_spread(frame).set_index(["model", "embedding_precision"])
    # fp32: 32,000/s (cuda b64) over 1,000/s (b1); int8: 32,000/s over 2,000/s
    assert spread.ratio[("a", "fp32")] == pytest.approx(32.0)
    assert spread.ratio[("a", "int8")] == pytest.approx(16.0)
    best = best_deployment(frame, LatencyTargets({}, 100.0, "test"))
    assert best[["embedding_precision", "device", "batch_size"]].values.tolist() == [
        ["fp32", "cuda", 64], ["int8", "cpu", 64]]
    speedup = speedup_over_cpu(frame).set_index(["embedding_precision", "device",
                                                 "batch_size"]).speedup
    # the GPU against the fp32 CPU (8 ms), not the faster int8 CPU point (2 ms)
    assert speedup[("fp32", "cuda", 64)] == pytest.approx(4.0)
    assert ("int8", "cuda", 64) not in speedup.index
    gains = batching_gain(frame).set_index(["embedding_precision", "device",
                                            "batch_size"]).gain
    assert gains[("int8", "cpu", 64)] == pytest.approx(16.0)  # over int8's own b1
    assert gains[("fp32", "cpu", 64)] == pytest.approx(8.0)
    table = latency_throughput(frame)
    assert list(zip(table.batch_size, table.device, table.embedding_precision)) == [
        (1, "cpu", "fp32"), (1, "cpu", "int8"), (64, "cpu", "fp32"), (64, "cpu", "int8"),
        (64, "cuda", "fp32")]


def test_precision_labels_and_order() -> None:
    from recstack.analysis.systems import precision_labels, precisions_of, sort_points

    frame = pd.DataFrame([in_precision(timing("a", "cpu", 1, 1, 1.0), "int4", "bf16"),
                          in_precision(timing("a", "cpu", 1, 1, 1.0), "bf16"),
                          in_precision(timing("a", "cpu", 1, 1, 1.0), "fp32")])
    assert precisions_of(frame) == ["fp32", "emb=bf16,dense=fp32", "emb=int4,dense=bf16"]
    assert list(precision_labels(sort_points(frame))) == precisions_of(frame)
    # NULL (a point stored before precision) and a frame without the columns read as fp32
    assert precisions_of(frame.assign(embedding_precision=None, dense_precision=None)) == [
        "fp32"]
    assert precisions_of(frame.drop(columns=["embedding_precision"]).iloc[:1]) == [
        "emb=fp32,dense=bf16"]
    assert precisions_of(two_models()) == ["fp32"] and precisions_of(two_models().iloc[:0]) == []
