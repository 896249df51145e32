"""How well reuse profiles reproduce a trace: recstack's fit against DeepRecSys's, per table.

Each table's id stream is split: the profile is fitted on the first half (or
``--train-fraction``), and as many ids as the rest holds are generated from it; the LRU
hit rates of the synthetic and the held-out ids (each from an empty cache) are compared at
every cache size from 1 MiB to 1 GiB (:mod:`recstack.analysis.trace_fit`). Run:

    .venv/bin/python benchmarks/trace_fit.py [TRACE] [--row-bytes 256] [--accesses 8000000]
        [--seed 0] [--out docs/results/traces/fit.json]

TRACE is an embedding-lookup trace file (:mod:`recstack.trace_files`); without one, a
synthetic trace with heavy-tailed reuse is built here (three tables, ``--accesses`` ids
each): a stationary Zipf popularity over 2**24 rows, a Zipf popularity whose ranking drifts
as the trace goes on (trending rows fade), and a Zipf over a small table of 2**17 rows that
the trace touches whole. Prints the per-size errors and a summary per table and method,
the generator's speed, and writes everything as JSON to ``--out``; the host is named.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from recstack.analysis.stack_distance import as_numpy
from recstack.analysis.trace_fit import TARGET, evaluate_fit, fit_summary
from recstack.platform_info import collect_platform, describe_platform, platform_id
from recstack.reuse_profile import fit_table, generate_ids

SPEED_ACCESSES = 10_000_000


def bounded_zipf(rng: np.random.Generator, accesses: int, rows: int,
                 exponent: float) -> np.ndarray:
    """Popularity ranks ``(accesses,)`` in ``[0, rows)``, rank ``k`` drawn with probability
    proportional to ``(k + 1) ** -exponent``."""
    cdf = np.cumsum(np.arange(1, rows + 1, dtype=np.float64) ** -exponent)
    return np.searchsorted(cdf, rng.random(accesses) * cdf[-1], side="right")


def synthetic_tables(accesses: int, seed: int) -> dict[str, np.ndarray]:
    """The built-in trace: three tables of ``accesses`` ids each (see the module doc)."""
    rng = np.random.default_rng(seed)
    big, small = 1 << 24, 1 << 17
    stationary = rng.permutation(big)[bounded_zipf(rng, accesses, big, 0.9)]
    # Every 100k accesses the ranking slides by 2000: yesterday's top rows fade.
    shift = (np.arange(accesses) // 100_000) * 2000
    drifting = rng.permutation(big)[(bounded_zipf(rng, accesses, big, 1.0) + shift) % big]
    whole = rng.permutation(small)[bounded_zipf(rng, accesses, small, 0.8)]
    return {"zipf-0.9": stationary, "zipf-1.0-drifting": drifting,
            "zipf-0.8-small-table": whole}


def trace_tables(path: str) -> dict[str, np.ndarray]:
    from recstack.trace_files import read_trace

    trace = read_trace(path)
    return {f"table-{t}": as_numpy(trace.table_ids(t)) for t in range(trace.tables)}


def generator_speed(stream: np.ndarray) -> float:
    """Accesses per second of :func:`generate_ids` from ``stream``'s recstack profile, over
    :data:`SPEED_ACCESSES` ids into a table the size of the stream's id space (after one
    small run, so the helper's compilation is not timed)."""
    profile = fit_table(stream)
    generate_ids(profile, 1000, profile.rows, np.random.default_rng(0))
    start = time.perf_counter()
    generate_ids(profile, SPEED_ACCESSES, profile.rows, np.random.default_rng(0))
    return SPEED_ACCESSES / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", nargs="?", help="a trace file; default: the built-in trace")
    parser.add_argument("--row-bytes", type=int, default=256,
                        help="bytes per embedding row (256: 64 float32 values)")
    parser.add_argument("--accesses", type=int, default=8_000_000,
                        help="ids per table of the built-in trace")
    parser.add_argument("--train-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/results/traces/fit.json")
    args = parser.parse_args()
    info = collect_platform()
    print(f"host: {describe_platform(info)}")
    tables = (trace_tables(args.trace) if args.trace
              else synthetic_tables(args.accesses, args.seed))
    results = []
    for name, stream in tables.items():
        start = time.perf_counter()
        frame = evaluate_fit(stream, args.row_bytes, args.train_fraction, args.seed)
        seconds = time.perf_counter() - start
        summary = fit_summary(frame)
        print(f"\n{name}: {stream.size} ids, {np.unique(stream).size} distinct, "
              f"{seconds:.1f} s")
        wide = frame.pivot(index="cache_bytes", columns="method",
                           values=["real_hit_rate", "synthetic_hit_rate", "error"])
        print(wide.round(4).to_string())
        print(summary.round(4).to_string(index=False))
        results.append({"table": name, "accesses": int(stream.size),
                        "distinct_rows": int(np.unique(stream).size), "seconds": seconds,
                        "summary": json.loads(summary.to_json(orient="records")),
                        "errors": json.loads(frame.to_json(orient="records"))})
    speed = generator_speed(next(iter(tables.values())))
    print(f"\ngenerator: {speed / 1e6:.2f} M accesses/s ({SPEED_ACCESSES} ids)")
    document = {"host": describe_platform(info), "platform_id": platform_id(info),
                "trace": args.trace or "built-in synthetic (benchmarks/trace_fit.py)",
                "row_bytes": args.row_bytes, "train_fraction": args.train_fraction,
                "seed": args.seed, "accesses_per_table": None if args.trace else args.accesses,
                "target_max_abs_error": TARGET, "generator_accesses_per_s": speed,
                "tables": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
