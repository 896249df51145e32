"""Tuning a deployment for latency-bounded throughput, in the spirit of DeepRecSched: for each
way of dividing the cores into engines, hill-climb the sub-batch size (per-core batch), then,
with a GPU, the offload threshold (the request size from which requests run whole on it).

The baseline is the naive deployment: one single-threaded engine per core and no splitting
(each request runs as one batch). It is measured first, and the tuned deployment is the best
one measured, the baseline included: the tuner never reports a deployment it did not measure
and never one that did worse than the baseline. Pure logic over an ``evaluate`` callable
(the latency-bounded QPS of a deployment, or None where nothing was valid or it failed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Deployment:
    engines: int
    threads: int
    sub_batch: int
    offload_threshold: int | None = None

    def describe(self, max_items: int | None = None) -> str:
        split = "no split" if max_items is not None and self.sub_batch >= max_items \
            else f"sub-batch {self.sub_batch}"
        offload = "" if self.offload_threshold is None else \
            f", offload >= {self.offload_threshold}"
        return f"{self.engines} engine(s) x {self.threads} thread(s), {split}{offload}"


@dataclass
class TuneResult:
    baseline: Deployment
    baseline_qps: float | None
    best: Deployment
    best_qps: float | None
    trail: list[tuple[Deployment, float | None]] = field(default_factory=list)

    @property
    def gain(self) -> float | None:
        """Tuned over baseline latency-bounded QPS (None when the baseline met nothing)."""
        if not self.baseline_qps or self.best_qps is None:
            return None
        return self.best_qps / self.baseline_qps


def sub_batch_ladder(max_items: int, smallest: int = 4) -> list[int]:
    """Powers of two from ``smallest`` below ``max_items``, then ``max_items`` (no split)."""
    ladder = []
    size = smallest
    while size < max_items:
        ladder.append(size)
        size *= 2
    return [*ladder, max_items]


def thread_splits(cores: int, most: int = 3) -> list[int]:
    """Threads per engine that divide the cores evenly: 1, 2, 4... (at most ``most``)."""
    return [t for t in (1 << k for k in range(12)) if t <= cores and cores % t == 0][:most]


def tune(evaluate: Callable[[Deployment], float | None], cores: int, max_items: int,
         start_sub_batch: int = 32, offload_thresholds: Sequence[int] = (),
         threads: Sequence[int] | None = None) -> TuneResult:
    """The best deployment measured (see the module docstring)."""
    scores: dict[Deployment, float | None] = {}
    trail: list[tuple[Deployment, float | None]] = []

    def score(deployment: Deployment) -> float:
        if deployment not in scores:
            scores[deployment] = evaluate(deployment)
            trail.append((deployment, scores[deployment]))
        value = scores[deployment]
        return -1.0 if value is None else value

    baseline = Deployment(cores, 1, max_items)
    score(baseline)
    ladder = sub_batch_ladder(max_items)
    start = min(range(len(ladder)), key=lambda i: abs(ladder[i] - start_sub_batch))
    for per_engine in threads or thread_splits(cores):
        engines = max(1, cores // per_engine)
        ladder_of = [Deployment(engines, per_engine, size) for size in ladder]
        index = _climb(lambda i, options=ladder_of: score(options[i]), start, len(ladder))
        if offload_thresholds:
            chosen = ladder_of[index]
            offloads = [Deployment(chosen.engines, chosen.threads, chosen.sub_batch, threshold)
                        for threshold in (None, *sorted(set(offload_thresholds),
                                                        reverse=True))]
            _climb(lambda i, options=offloads: score(options[i]), 0, len(offloads))
    # The best measured; on a tie the baseline (the simpler deployment) stays.
    best = max(scores, key=lambda d: (score(d), d == baseline))
    return TuneResult(baseline, scores[baseline], best, scores[best], trail)


def _climb(value: Callable[[int], float], start: int, count: int) -> int:
    """Hill-climbs an index in ``[0, count)`` from ``start``: up while it improves, else
    down while it improves; returns where it stopped."""
    here, best = start, value(start)
    for step in (1, -1):
        moved = False
        while 0 <= here + step < count:
            candidate = value(here + step)
            if candidate <= best:
                break
            here, best, moved = here + step, candidate, True
        if moved:
            break
    return here
