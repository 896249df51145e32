"""Tuned vs baseline latency-bounded throughput, per canonical model at full size, at its
default latency target (analysis/latency_targets.yaml, DeepRecSys's medium p95 targets).

For each model, ``api.serve(tune=True)`` measures the baseline deployment (one
single-threaded engine per core, requests never split) and the tuner's deployments
(DeepRecSched's hill climb over the sub-batch size, for each split of the cores into
engines), each a serving point whose LoadGen search finds the highest valid Poisson rate.
Requests carry DeepRecSys's default candidate counts (normal, mean 165, scale 16, max 1024).
Every point goes into one store; the report of that store has the serving section. Run:

    .venv/bin/python benchmarks/serving_tuning.py [--models rmc1,rmc2,...]
        [--min-duration 2] [--target-ms rmc1=20,...] [--store results/serving_tuning.duckdb]

Prints, per model, the baseline's and the tuned deployment's latency-bounded QPS and their
ratio, measured in one run, with the host named.
"""

from __future__ import annotations

import argparse
import time

from recstack import api
from recstack.analysis.serving import load_serving, tuned_vs_baseline
from recstack.platform_info import collect_platform, describe_platform
from recstack.specs import ZOO_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ZOO_NAMES))
    parser.add_argument("--min-duration", type=float, default=2.0)
    parser.add_argument("--max-tests", type=int, default=6)
    parser.add_argument("--tolerance", type=float, default=0.15)
    parser.add_argument("--target-ms", default=None,
                        help="MODEL=MS pairs, comma-separated, in place of the defaults")
    parser.add_argument("--store", default="results/serving_tuning.duckdb")
    args = parser.parse_args()
    print(f"host: {describe_platform(collect_platform())}", flush=True)
    targets = dict(pair.split("=") for pair in args.target_ms.split(",")) \
        if args.target_ms else {}
    for model in args.models.split(","):
        start = time.monotonic()
        target = float(targets[model]) if model in targets else None
        result = api.serve([model], args.store, tune=True, min_duration=args.min_duration,
                           target_ms=target,
                           max_tests=args.max_tests, tolerance=args.tolerance,
                           library_requests=128, command="benchmarks/serving_tuning.py")
        took = (time.monotonic() - start) / 60
        serving = load_serving(result.store, [result.run_id])
        for row in serving.itertuples():
            qps = "none" if row.latency_bounded_qps != row.latency_bounded_qps \
                or row.latency_bounded_qps is None else f"{row.latency_bounded_qps:.1f}"
            print(f"  {row.label}: {qps} QPS ({row.tests} tests, {row.search_note})",
                  flush=True)
        for row in tuned_vs_baseline(serving).itertuples():
            gain = "n/a" if row.gain is None or row.gain != row.gain else f"{row.gain:.2f}x"
            print(f"{model}: p{row.percentile:g} <= {row.target_ms:g} ms: baseline "
                  f"({row.baseline}) {row.baseline_qps} QPS, tuned ({row.tuned}) "
                  f"{row.tuned_qps} QPS: {gain}; {row.deployments} deployments, "
                  f"{took:.1f} min (run {result.run_id})", flush=True)
        for label, error in result.failed:
            print(f"  failed: {label}: {error}", flush=True)


if __name__ == "__main__":
    main()
