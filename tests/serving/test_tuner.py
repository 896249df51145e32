"""The tuner on a stub deployment whose best sub-batch size is known."""

from __future__ import annotations

from recstack.serving.tuner import Deployment, sub_batch_ladder, thread_splits, tune


def _stub(best_sub_batch: int, baseline_qps: float = 100.0):
    measured = []

    def evaluate(deployment: Deployment):
        measured.append(deployment)
        if deployment.sub_batch >= 256:
            return baseline_qps
        # A single peak at the best size: throughput falls off on both sides.
        distance = abs(deployment.sub_batch.bit_length() - best_sub_batch.bit_length())
        return 300.0 / (1 + distance) * (1.0 if deployment.threads == 1 else 0.5)

    return evaluate, measured


def test_the_tuner_finds_the_known_best_sub_batch_and_measured_it():
    evaluate, measured = _stub(best_sub_batch=16)
    result = tune(evaluate, cores=2, max_items=256, start_sub_batch=64)
    assert result.best == Deployment(2, 1, 16)
    assert result.best in measured and result.baseline == Deployment(2, 1, 256)
    assert result.gain == 3.0
    assert [d for d, _ in result.trail] == list(dict.fromkeys(measured))


def test_the_tuner_never_picks_worse_than_the_baseline():
    def evaluate(deployment):
        return 500.0 if deployment.sub_batch >= 256 else 100.0

    result = tune(evaluate, cores=2, max_items=256)
    assert result.best == result.baseline and result.gain == 1.0


def test_failed_deployments_never_win():
    def evaluate(deployment):
        return None if deployment.sub_batch != 256 else 10.0

    result = tune(evaluate, cores=1, max_items=256)
    assert result.best == result.baseline and result.best_qps == 10.0


def test_offload_thresholds_are_climbed_after_the_sub_batch():
    def evaluate(deployment):
        bonus = {None: 0, 128: 50, 64: 80, 32: 20}[deployment.offload_threshold]
        return 100.0 + bonus + (10 if deployment.sub_batch == 32 else 0)

    result = tune(evaluate, cores=1, max_items=256, start_sub_batch=32,
                  offload_thresholds=(32, 64, 128))
    assert result.best.offload_threshold == 64


def test_ladders():
    assert sub_batch_ladder(100) == [4, 8, 16, 32, 64, 100]
    assert thread_splits(2) == [1, 2] and thread_splits(6) == [1, 2]
