"""Stand-ins the serving tests hand to engines (importable by spawned engine processes)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import psutil


class SleepModel:
    """An engine model that takes ``seconds`` per sub-batch (a known service time)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, batch: Any) -> None:
        time.sleep(self.seconds)

    def parameters(self) -> list[Any]:
        return []


def kill_an_engine_after(seconds: float, signum: int = signal.SIGKILL) -> threading.Thread:
    """Kills one engine process (a spawned child of this process) ``seconds`` after a
    LoadGen test started (its log folder appears: the engines are ready by then); returns
    the (started) thread."""
    import glob
    import tempfile

    pattern = f"{tempfile.gettempdir()}/recstack-loadgen-*"
    existing = set(glob.glob(pattern))

    def kill() -> None:
        deadline = time.monotonic() + 120
        while not set(glob.glob(pattern)) - existing and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(seconds)
        for child in psutil.Process(os.getpid()).children(recursive=True):
            try:
                if "spawn_main" in " ".join(child.cmdline()) and child.pid != os.getpid():
                    os.kill(child.pid, signum)
                    return
            except (psutil.Error, ProcessLookupError):
                continue

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


class DyingModel(SleepModel):
    """Sleeps like :class:`SleepModel`, and its engine kills itself (SIGKILL) at its
    ``calls``-th sub-batch: an engine dying mid-run."""

    def __init__(self, seconds: float, calls: int):
        super().__init__(seconds)
        self.calls = calls
        self.seen = 0

    def __call__(self, batch: Any) -> None:
        self.seen += 1
        if self.seen == self.calls:
            os.kill(os.getpid(), signal.SIGKILL)
        super().__call__(batch)


def sleepy_collector(point: Any, settings: Any, options: Any) -> Any:
    """A serving collector whose engines sleep 2 ms per sub-batch (no model runs, so the
    backend is moot: eager); for DLRM models each engine dies at its 40th sub-batch, after
    its warm-up."""
    import dataclasses

    from recstack.collect.serving import collect_serving

    point = dataclasses.replace(point, backend="eager")
    model = DyingModel(0.002, 40) if point.spec.model_type == "dlrm" else SleepModel(0.002)
    return collect_serving(point, settings, options, model_override=model)


def synthetic_serving_record(point: Any, best_sub_batch: int = 32) -> Any:
    """A serving record made up, not measured (for wiring tests that must not spend a
    minute on LoadGen): the latency-bounded QPS peaks at ``best_sub_batch``, one valid
    server test at it."""
    import pandas as pd

    from recstack.records.serving import ServingRecord, ServingSummary, ServingTest

    config = point.serving
    distance = abs(point.batch_size.bit_length() - best_sub_batch.bit_length())
    qps = 100.0 / (1 + distance)
    test = ServingTest(test=0, role="search", scenario="server", offered_qps=qps,
                       achieved_qps=qps, valid=True, verdict="VALID", p95_ms=1.0,
                       duration_s=1.0, loadgen_summary="(synthetic)",
                       loadgen_detail="(synthetic)")
    summary = ServingSummary(
        scenario=config.scenario, engines=config.engines, cores="0", gpu_engine=False,
        splits=point.batch_size < config.query_sizes.maximum,
        query_sizes=config.query_sizes.describe(), mean_items=10.0,
        max_items=config.query_sizes.maximum, library_requests=config.library_requests,
        library_bytes=1, target_ms=config.target_ms, percentile=config.percentile,
        latency_bounded_qps=qps, capacity_qps=qps * 1.2, tests=1, model_bytes=1)
    import dataclasses

    return ServingRecord(summary, pd.DataFrame([dataclasses.asdict(test)]), pd.DataFrame())


class SyntheticServing:
    """An executor that measures timing points in a worker as usual and makes serving
    records up (:func:`synthetic_serving_record`)."""

    def measure(self, point: Any, settings: Any, options: Any) -> Any:
        if point.level == "serving":
            return synthetic_serving_record(point)
        from recstack.executors import LocalExecutor

        return LocalExecutor().measure(point, settings, options)
