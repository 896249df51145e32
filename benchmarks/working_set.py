"""Small-batch latency against the working set: warm, then cold at growing multiples of the LLC.

The cold definition (:mod:`recstack.working_set`) sizes a point's distinct batches so the
embedding rows they touch reach a multiple of the last-level cache (4 by default). This
measures how latency moves with that multiple, for the embedding-dominated models at small
batch, to show what the default captures and what lies beyond it (TLB reach, page walks over
a working set far larger than the cache). Each point is a full-size model in its own worker,
through the library API, into a store of its own. Run:

    .venv/bin/python benchmarks/working_set.py [--models rmc1:16,rmc2:1] [--multiples 1,4,16,64]
        [--threads 1] [--min-time 1] [--store results/working_set.duckdb]

Prints one line per point (median, p5-p95, distinct batches, working set in LLCs) and the
ratio of each cold median to the warm one, measured in one run; the host is named.
"""

from __future__ import annotations

import argparse
import dataclasses

from recstack import api
from recstack.analysis.systems import load_timings
from recstack.platform_info import collect_platform, describe_platform
from recstack.sweep import SweepPlan


def plan_of(model: str, batch: int, threads: int, multiple: float | None) -> SweepPlan:
    """One timing point, warm (``multiple`` None) or cold."""
    return api.plan([model], batch_sizes=[batch], threads=[threads], devices=["cpu"],
                    backends=["static"], cache="warm" if multiple is None else "cold")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="rmc1:16,rmc2:1",
                        help="MODEL:BATCH pairs, comma-separated")
    parser.add_argument("--multiples", default="1,4,16,64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--store", default="results/working_set.duckdb")
    args = parser.parse_args()
    multiples = [float(value) for value in args.multiples.split(",")]
    print(f"host: {describe_platform(collect_platform())}")
    for pair in args.models.split(","):
        model, batch = pair.split(":")
        warm_ms = None
        for multiple in [None, *multiples]:
            settings = api.timing_settings(args.min_time)
            if multiple is not None:
                settings = dataclasses.replace(settings, cold_llc_multiple=multiple,
                                               remeasure_attempts=0)
            result = api.measure(plan_of(model, int(batch), args.threads, multiple),
                                 args.store, settings, command="benchmarks/working_set.py")
            row = load_timings(result.store, [result.run_id]).iloc[0]
            batches = int(result.store.query(
                "SELECT distinct_batches FROM points WHERE run_id = ?",
                [result.run_id]).distinct_batches.iloc[0])
            what = "warm" if multiple is None else f"cold {multiple:g}x LLC"
            median = float(row.median_ms)
            warm_ms = median if multiple is None else warm_ms
            ratio = "" if multiple is None else f"  cold/warm {median / warm_ms:.2f}"
            llcs = row.working_set_bytes / row.llc_bytes
            print(f"{model} b{batch} t{args.threads} {what:>16}: median {median:.4f} ms "
                  f"(p5 {row.p5_ms:.4f}, p95 {row.p95_ms:.4f}), {batches} "
                  f"batches, working set {llcs:.2f} LLC{ratio}")


if __name__ == "__main__":
    main()
