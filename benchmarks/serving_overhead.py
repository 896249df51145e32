"""The serving stack's own cost: one sub-batch's round trip from the scheduler to an engine
and back, with engines that run no model (so nothing but the stack is measured).

A request of one sub-batch is issued, and the next only once it completed: one in flight, no
queueing. Each round trip is timed from ``Scheduler.issue`` to the completion callback
(``time.perf_counter_ns``): the wake-up of the scheduler's thread, the dispatch over the
engine's pipe, the engine's receive and answer, the scheduler's receive and completion.
Engines are pinned as in a serving point (the scheduler's thread shares the machine). Run:

    .venv/bin/python benchmarks/serving_overhead.py [--engines 1] [--requests 5000]

Prints the p50, p90, p99 and mean round trip, measured in one run, with the host named.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from recstack.collect.serving import engine_cores
from recstack.inputs import QuerySpec
from recstack.platform_info import collect_platform, describe_platform
from recstack.serving.engine import EngineSpec
from recstack.serving.library import build_library
from recstack.serving.pool import EnginePool
from recstack.serving.query_sizes import parse_query_sizes
from recstack.serving.scheduler import Scheduler
from recstack.specs import zoo_spec

WARM_UP = 500


def round_trips(engines: int, requests: int) -> np.ndarray:
    """``(requests,)`` round trips in ns, after WARM_UP untimed ones."""
    library = build_library(zoo_spec("rmc1").scaled(1e-4), QuerySpec(),
                            parse_query_sizes("fixed:1"), 16, 1).share_memory()
    specs = [EngineSpec(e, cores, 1, "cpu", "eager")
             for e, cores in enumerate(engine_cores(engines, 1))]
    pool = EnginePool.start(specs, None, library, ready_timeout_s=120)
    done = threading.Event()
    scheduler = Scheduler(pool, library, lambda ids: done.set())
    scheduler.start()
    samples = np.empty(requests, dtype=np.int64)
    try:
        for index in range(WARM_UP + requests):
            done.clear()
            start = time.perf_counter_ns()
            scheduler.issue(index, index % library.requests)
            if not done.wait(10):
                raise RuntimeError(f"no answer: {scheduler.failure}")
            if index >= WARM_UP:
                samples[index - WARM_UP] = time.perf_counter_ns() - start
    finally:
        scheduler.stop()
        pool.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=int, default=1)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    print(f"host: {describe_platform(collect_platform())}")
    samples = round_trips(args.engines, args.requests) / 1e3
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    print(f"sub-batch round trip through the scheduler and {args.engines} engine(s), "
          f"{args.requests} requests one at a time: p50 {p50:.1f} us, p90 {p90:.1f} us, "
          f"p99 {p99:.1f} us, mean {samples.mean():.1f} us")


if __name__ == "__main__":
    main()
