"""The Ray executor's cost and gain on this machine, in one run, with the host named.

``dispatch``: the same plan of small timing points (NCF at a thousandth of its rows, batch
1 to N, 0.05 s timed each) measured with the local executor and on a one-node Ray cluster of
this machine (one measuring slot, so one point at a time, as locally), in alternating
rounds. Each point is a fresh process either way; what differs is Ray's dispatch (task
submission, scheduling, the Ray worker, results travelling back). Reported: wall time per
point of each round, and the median extra per point on Ray. Connecting and probing the
nodes' platforms happen once per run and are reported apart.

``simulation``: a design space measured at the hardware level, simulated with valgrind (the
slowest level, and deterministic, so a node runs one per CPU), on a one-node cluster whose
node offers 1 CPU, then 2 CPUs: the end-to-end time of each, and the ratio.

    .venv/bin/python benchmarks/fleet.py [--part dispatch|simulation|both] [--rounds 3]

Raw samples go to docs/results/fleet/<part>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from recstack import api
from recstack.collect.timing import TimingSettings
from recstack.fleet import SLOT, RayExecutor
from recstack.platform_info import collect_platform, describe_platform
from recstack.store import ResultStore
from recstack.sweep import plan_sweep, run_sweep

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "fleet"
DESIGN = """
sampler: lhs
variants_per_model: 8
models: [rmc1]
embedding_budget_mib: 1
factors:
  pooling_factor: {kind: ratio, low: 0.05, high: 1.0, applies_to: [dlrm]}
  mlp_width: {kind: ratio, low: 0.25, high: 2.0, applies_to: [dlrm]}
"""


def start_cluster(cpus: int) -> float:
    """A one-node Ray cluster of this machine with ``cpus`` CPUs and one measuring slot;
    seconds it took."""
    import ray

    began = time.perf_counter()
    ray.init(num_cpus=cpus, resources={SLOT: 1.0}, include_dashboard=False,
             log_to_driver=False, logging_level=logging.ERROR)
    return time.perf_counter() - began


def timed_sweep(plan: Any, settings: TimingSettings, executor: Any) -> float:
    """Seconds ``run_sweep`` took over the plan, into a new store."""
    with tempfile.TemporaryDirectory() as folder:
        store = ResultStore(Path(folder) / "r.duckdb")
        run_id = store.create_run("benchmark", settings.to_dict(), {}, "bench", "bench")
        began = time.perf_counter()
        outcome = run_sweep(plan, store, run_id, settings, executor=executor)
        took = time.perf_counter() - began
    if outcome.failed:
        raise RuntimeError(f"points failed: {outcome.failed}")
    return took


def dispatch(rounds: int, points: int) -> dict[str, Any]:
    import ray

    settings = TimingSettings(min_seconds=0.05, warmup_seconds=0.0, warmup_iterations=5)
    plan = plan_sweep(["ncf"], list(range(1, points + 1)), [1], ["cpu"], row_scale=0.001)
    started = start_cluster(1)
    began = time.perf_counter()
    executor = RayExecutor()
    connected = time.perf_counter() - began
    local, remote = [], []
    try:
        for _ in range(rounds):
            local.append(timed_sweep(plan, settings, None) / points)
            remote.append(timed_sweep(plan, settings, executor) / points)
    finally:
        ray.shutdown()
    extra = [r - q for q, r in zip(local, remote, strict=True)]
    return {"points_per_round": points, "cluster_start_s": started,
            "connect_and_probe_s": connected, "local_s_per_point": local,
            "ray_s_per_point": remote, "extra_s_per_point": extra,
            "median_extra_s_per_point": statistics.median(extra)}


def simulation(rounds: int) -> dict[str, Any]:
    import ray

    from recstack.designspace import load_design_space

    with tempfile.TemporaryDirectory() as folder:
        design = Path(folder) / "design.yaml"
        design.write_text(DESIGN)
        space = load_design_space(design)
        seconds: dict[int, list[float]] = {1: [], 2: []}
        for round_ in range(rounds):
            for cpus in (1, 2):
                start_cluster(cpus)
                try:
                    executor = RayExecutor()
                    began = time.perf_counter()
                    result = api.correlate(space, batch_sizes=[1], levels=("hardware",),
                                           store=Path(folder) / f"r{round_}-{cpus}.duckdb",
                                           executor=executor)
                    seconds[cpus].append(time.perf_counter() - began)
                finally:
                    ray.shutdown()
                if result.run.failed:
                    raise RuntimeError(f"points failed: {result.run.failed}")
    ratios = [one / two for one, two in zip(seconds[1], seconds[2], strict=True)]
    return {"variants": 8, "level": "hardware (simulated)", "one_slot_s": seconds[1],
            "two_slots_s": seconds[2], "speedups": ratios,
            "median_speedup": statistics.median(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("dispatch", "simulation", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--points", type=int, default=10)
    args = parser.parse_args()
    host = describe_platform(collect_platform())
    print(f"host: {host}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.part in ("dispatch", "both"):
        found = dispatch(args.rounds, args.points)
        (RESULTS / "dispatch.json").write_text(json.dumps({"host": host, **found}, indent=1))
        print(f"dispatch: local {[round(s, 3) for s in found['local_s_per_point']]} s/point, "
              f"ray {[round(s, 3) for s in found['ray_s_per_point']]} s/point; median extra "
              f"{found['median_extra_s_per_point']:.3f} s/point (connect and probe once: "
              f"{found['connect_and_probe_s']:.2f} s)")
    if args.part in ("simulation", "both"):
        found = simulation(max(1, args.rounds // 3))
        (RESULTS / "simulation.json").write_text(json.dumps({"host": host, **found}, indent=1))
        print(f"simulation: 1 slot {[round(s, 1) for s in found['one_slot_s']]} s, 2 slots "
              f"{[round(s, 1) for s in found['two_slots_s']]} s; median speed-up "
              f"{found['median_speedup']:.2f}x")


if __name__ == "__main__":
    main()
