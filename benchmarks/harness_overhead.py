"""The timing harness's own cost per iteration: a bare loop against recstack's timed loop.

Both loops call the same do-nothing model on the same pre-built batches, so the difference is
what timing each iteration adds (two clock reads and storing the sample). Run:

    .venv/bin/python benchmarks/harness_overhead.py [--iterations 200000] [--repeats 7]

Prints the median over repeats of the mean cost per iteration, in nanoseconds, with the spread
(min-max over repeats), and a tiny torch op for scale.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time

import torch

from recstack.collect.timing import TimingSettings, time_cpu_iterations


def bare_loop(model, batches, iterations: int) -> float:
    """Mean ns per iteration of the loop without per-iteration timing."""
    count = len(batches)
    gc.disable()
    start = time.perf_counter_ns()
    for i in range(iterations):
        model(batches[i % count])
    elapsed = time.perf_counter_ns() - start
    gc.enable()
    return elapsed / iterations


def timed_loop(model, batches, iterations: int) -> float:
    """Mean ns per iteration of recstack's timed loop (warm-up excluded)."""
    settings = TimingSettings(warmup_iterations=1, warmup_seconds=0.0, min_seconds=0.0,
                              min_iterations=iterations, max_iterations=iterations)
    start = time.perf_counter_ns()
    latency, warmup = time_cpu_iterations(model, batches, settings)
    elapsed = time.perf_counter_ns() - start
    # Warm-up iterations go through the same timed step, so they count as iterations.
    return elapsed / (len(latency) + warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)

    def nothing(batch: object) -> None:
        return None

    one = torch.ones(1)

    def tiny_op(batch: object) -> torch.Tensor:
        return one + 1

    batches = [object() for _ in range(4)]
    print(f"machine: {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}, torch {torch.__version__}; "
          f"{args.iterations} iterations x {args.repeats} repeats")
    print(f"{'model':<10} {'loop':<7} {'median ns/iter':>15} {'min':>8} {'max':>8}")
    results = {}
    for name, model in (("nothing", nothing), ("tiny op", tiny_op)):
        with torch.inference_mode():
            for loop_name, loop in (("bare", bare_loop), ("timed", timed_loop)):
                samples = [loop(model, batches, args.iterations) for _ in range(args.repeats)]
                results[(name, loop_name)] = statistics.median(samples)
                print(f"{name:<10} {loop_name:<7} {statistics.median(samples):>15.0f} "
                      f"{min(samples):>8.0f} {max(samples):>8.0f}")
    for name in ("nothing", "tiny op"):
        extra = results[(name, "timed")] - results[(name, "bare")]
        print(f"harness overhead with '{name}': {extra:.0f} ns per iteration")


if __name__ == "__main__":
    main()
