"""How workers start, and whether it changes what they measure: spawned against forked from
the forkserver (``recstack.worker``), on the same plan, in alternating rounds, one run.

The plan: timing points of RMC1, RMC2, DIN and NCF at a hundredth of their rows, batch 1
and 64, two intra-op threads, cold working sets, 0.5 s timed each. Each round measures the
whole plan once with workers spawned and once forked from the forkserver (which of the two
goes first alternates by round). Reported: wall time per point of each run (planning
excluded; the forkserver starts once, about one spawn's time, inside this process's first
forked run, and later forked runs reuse it as one recstack command does across its
points), and each point's median latency under both, as the ratio forked / spawned.

    .venv/bin/python benchmarks/worker_start.py [--rounds 3]

Raw numbers go to docs/results/worker_start.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from recstack import worker
from recstack.analysis.systems import load_timings
from recstack.collect.timing import TimingSettings
from recstack.platform_info import collect_platform, describe_platform
from recstack.store import ResultStore
from recstack.sweep import plan_sweep, run_sweep

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "worker_start.json"
FORKSERVER = worker._worker_context


def spawned() -> Any:
    return multiprocessing.get_context("spawn")


def measured(plan: Any, settings: TimingSettings, method: str) -> tuple[float, dict[str, float]]:
    """(seconds per point, each point's median ms) of the plan with workers started by
    ``method``."""
    worker._worker_context = spawned if method == "spawn" else FORKSERVER
    try:
        with tempfile.TemporaryDirectory() as folder:
            store = ResultStore(Path(folder) / "r.duckdb")
            run_id = store.create_run("benchmark", settings.to_dict(), {}, "bench", "bench")
            began = time.perf_counter()
            outcome = run_sweep(plan, store, run_id, settings)
            took = time.perf_counter() - began
            if outcome.failed:
                raise RuntimeError(f"points failed: {outcome.failed}")
            frame = load_timings(store, [run_id])
            labels = frame.model + " b" + frame.batch_size.astype(str)
            medians = dict(zip(labels, frame.median_ms, strict=True))
    finally:
        worker._worker_context = FORKSERVER
    return took / len(plan.points), medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    host = describe_platform(collect_platform())
    print(f"host: {host}")
    settings = TimingSettings(min_seconds=0.5)
    plan = plan_sweep(["rmc1", "rmc2", "din", "ncf"], [1, 64], [2], ["cpu"], row_scale=0.01)
    per_point: dict[str, list[float]] = {"spawn": [], "forkserver": []}
    medians: dict[str, dict[str, list[float]]] = {"spawn": {}, "forkserver": {}}
    for round_ in range(args.rounds):
        order = ("spawn", "forkserver") if round_ % 2 == 0 else ("forkserver", "spawn")
        for method in order:
            seconds, found = measured(plan, settings, method)
            per_point[method].append(seconds)
            for label, median in found.items():
                medians[method].setdefault(label, []).append(median)
            print(f"round {round_ + 1} {method}: {seconds:.3f} s per point")
    # A point's median moves between runs by more than any start method could (two threads
    # on two cores land in one of two modes), so the best run of each method is compared too.
    ratios = {label: statistics.median(medians["forkserver"][label])
              / statistics.median(medians["spawn"][label]) for label in medians["spawn"]}
    best = {label: min(medians["forkserver"][label]) / min(medians["spawn"][label])
            for label in medians["spawn"]}
    for label in sorted(ratios):
        print(f"{label}: spawned {[round(m, 4) for m in medians['spawn'][label]]} ms, forked "
              f"{[round(m, 4) for m in medians['forkserver'][label]]} ms; forked/spawned "
              f"{ratios[label]:.3f} (medians of runs), {best[label]:.3f} (best runs)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "host": host, "points": len(plan.points), "min_seconds": settings.min_seconds,
        "s_per_point": per_point, "median_ms": medians, "forked_over_spawned": ratios,
        "forked_over_spawned_best": best, "median_ratio": statistics.median(ratios.values()),
        "median_best_ratio": statistics.median(best.values())}, indent=1))
    print(f"forked / spawned over the points: median {statistics.median(ratios.values()):.3f} "
          f"(medians of runs), {statistics.median(best.values()):.3f} (best runs)")


if __name__ == "__main__":
    main()
