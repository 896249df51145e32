"""The deviation of a reduced-precision point from fp32, measured and stored with it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from recstack.collect.accuracy import compared_batches, output_deviation
from recstack.collect.timing import TimingSettings
from recstack.models import build_model
from recstack.points import Point
from recstack.precision import FP32, Precision
from recstack.store import ResultStore
from recstack.sweep import plan_sweep, run_sweep
from tests.conftest import one_batch, small_spec

QUICK = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.02,
                       min_iterations=5)


def test_a_sweep_of_precisions_stores_each_with_its_deviation(tmp_path: Path) -> None:
    precisions = [FP32, Precision("int8"), Precision("int4", "bf16")]
    plan = plan_sweep(["rmc1"], [4], [1], ["cpu"], backends=["fused"], row_scale=0.0005,
                      precisions=precisions)
    assert [p.precision for p in plan.points] == precisions
    fp32 = replace(plan.points[0], precision=FP32)
    assert plan.points[0].key() == fp32.key()  # an fp32 point's key is what it always was
    assert len({p.key() for p in plan.points}) == 3
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = store.create_run("test", QUICK.to_dict(), {"cpu_model": "t"}, "t-platform", "t")
    outcome = run_sweep(plan, store, run_id, QUICK)
    assert outcome.measured == 3 and not outcome.failed
    points = store.query("SELECT label, embedding_precision, dense_precision, "
                         "output_max_abs_deviation AS most, output_mean_abs_deviation AS mean, "
                         "deviation_samples FROM points ORDER BY label", [])
    by_precision = {(r.embedding_precision, r.dense_precision): r
                    for r in points.itertuples()}
    reference = by_precision[("fp32", "fp32")]
    assert reference.most != reference.most  # NaN: nothing to compare an fp32 point with
    for key in (("int8", "fp32"), ("int4", "bf16")):
        row = by_precision[key]
        assert 0 <= row.mean <= row.most <= 0.03
        assert row.deviation_samples >= 4
        assert key[0] in row.label
    assert by_precision[("int4", "bf16")].most > 0


def test_the_deviation_compares_the_same_queries_with_the_fp32_model() -> None:
    spec = small_spec("ncf")
    batches = [one_batch(spec, 8, seed) for seed in range(3)]
    point = Point(spec=spec, batch_size=8, precision=Precision("fp16"))
    model = build_model(spec, precision=point.precision)
    measured = output_deviation(point, model, batches)
    assert measured is not None and measured.samples == 24
    assert measured.max_abs <= 1e-3
    same = output_deviation(replace(point, precision=Precision("fp16")),
                            build_model(spec), batches)  # an fp32 model: no difference
    assert same is not None and same.max_abs == 0.0
    assert output_deviation(replace(point, precision=FP32), model, batches) is None


def test_at_most_the_stated_samples_are_compared_but_always_one_batch() -> None:
    spec = small_spec("ncf")
    batches = [one_batch(spec, 5000, 0), one_batch(spec, 5000, 1)]
    assert len(compared_batches(batches)) == 1
    assert len(compared_batches(batches, most_samples=10)) == 1
    assert len(compared_batches([one_batch(spec, 8, s) for s in range(4)])) == 4


def test_no_reference_is_built_where_fp32_would_not_fit(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from recstack import admission
    from recstack.errors import RecstackError

    def refuse(*args: object, **kwargs: object) -> None:
        raise RecstackError("does not fit")

    monkeypatch.setattr(admission, "require_memory", refuse)
    spec = small_spec("ncf")
    point = Point(spec=spec, batch_size=8, precision=Precision("int8"))
    model = build_model(spec, precision=point.precision, check_memory=False)
    assert output_deviation(point, model, [one_batch(spec, 8)]) is None
