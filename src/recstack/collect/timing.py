"""Timing collector: latency and throughput of one point, measured in a worker process.

Method (see also the README's "How recstack measures"):
1. Set the thread count, build the model (its build time and peak memory are recorded),
   generate the query batches ahead: nothing of that is timed.
2. Check one forward pass (finite output of the right shape).
3. Warm up for at least ``warmup_iterations`` and ``warmup_seconds``.
4. Calibrate: iterations = ``min_seconds`` / (median warm-up iteration time), clamped to
   [``min_iterations``, ``max_iterations``]; the loop then goes on until it has lasted
   ``min_seconds`` (up to ``max_iterations``), because the few warm-up iterations may be
   slower than the steady state and would otherwise cut the loop short.
5. Time every iteration separately with ``time.perf_counter_ns`` and keep every sample; the
   garbage collector is off during the loop. On CUDA the query's host-to-device copy and the
   forward are timed separately, each closed by ``torch.cuda.synchronize()`` before the clock
   is read; end-to-end latency includes the copy (as the paper counts it).
"""

from __future__ import annotations

import gc
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from recstack.collect.accuracy import OutputDeviation, output_deviation
from recstack.errors import RecstackError, SpecError
from recstack.levels import LevelOptions
from recstack.limits import INT32_MAX, SECONDS_MAX, SEED_MAX, check_int, check_number
from recstack.points import Point
from recstack.records import Build, TimingRecord, TimingStats
from recstack.working_set import COLD_LLC_MULTIPLE, CycledSet, cycled_set, machine_llc_bytes


@dataclass(frozen=True)
class TimingSettings:
    """How long and how often to measure. Stored with the run: a run is never resumed with
    different settings."""

    warmup_iterations: int = 3
    warmup_seconds: float = 0.2
    min_seconds: float = 1.0
    min_iterations: int = 20
    max_iterations: int = 100_000
    distinct_batches: int = 4
    """Distinct query batches a warm point cycles through (:mod:`recstack.working_set`)."""
    cold_llc_multiple: float = COLD_LLC_MULTIPLE
    """A cold point cycles batches whose distinct embedding bytes reach this many LLCs."""
    max_input_bytes: int = 1 << 29
    """Fewer distinct batches are kept when they would exceed this much memory."""
    profile_iterations: int = 10
    """At most this many profiled iterations per operator-profile point (fewer when
    iterations are slow: about one second of them)."""
    spread_threshold: float = 0.5
    """A point is flagged unstable when its p5-p95 range exceeds this fraction of its median.
    (The coefficient of variation is stored too, but one descheduled iteration among
    thousands can multiply it, while the median and p95 that recstack reports stay put.)"""

    remeasure_attempts: int = 2
    """An unstable timing point is measured again in up to this many fresh workers."""

    def __post_init__(self) -> None:
        check_int("remeasure_attempts", self.remeasure_attempts, 0, 100)
        for name in ("warmup_iterations", "min_iterations", "max_iterations",
                     "distinct_batches", "profile_iterations"):
            check_int(name, getattr(self, name), 1, INT32_MAX)
        check_int("max_input_bytes", self.max_input_bytes, 1, SEED_MAX)
        for name in ("warmup_seconds", "min_seconds"):
            check_number(name, getattr(self, name), 0.0, SECONDS_MAX, what="seconds")
        check_number("spread_threshold", self.spread_threshold, 0.0, 1e6)
        check_number("cold_llc_multiple", self.cold_llc_multiple, 0.0, 1e6)
        if self.max_iterations < self.min_iterations:
            raise SpecError("max_iterations", self.max_iterations,
                            f"expected at least min_iterations ({self.min_iterations})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TimingResult:
    """Raw outcome of a point's timing, as the worker measured it."""

    latency_ns: list[int]
    """End-to-end latency of every timed iteration."""
    copy_ns: list[int] | None
    """Host-to-device copy of every timed iteration (CUDA only), included in latency_ns."""
    warmup_iterations: int
    build_seconds: float
    peak_memory_growth_bytes: int
    input_bytes_per_batch: int
    distinct_batches: int
    threads_used: int
    device_name: str
    extra: dict[str, Any] = field(default_factory=dict)


def _peak_rss_bytes() -> int:
    """This process's peak resident memory. On Linux from ``VmHWM``: ``ru_maxrss`` carries
    the forking parent's peak across exec, so in a worker it hides any growth below
    the parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def check_device(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RecstackError(f"device: {device!r} is not available on this machine "
                                "(torch sees no CUDA GPU); use cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise RecstackError(f"device: {device!r} does not exist; this machine has "
                                f"{torch.cuda.device_count()} CUDA device(s)")


@dataclass
class PreparedPoint:
    """A point ready to run in its worker: the model on its device and the query batches
    generated ahead (pinned in host memory for a GPU), with what preparing them cost."""

    model: Any
    batches: list[Any]
    on_cuda: bool
    build_seconds: float
    peak_memory_growth_bytes: int
    input_bytes_per_batch: int
    compile_seconds: float | None = None
    """What the backend did before running (:func:`recstack.backends.prepare_backend`):
    ``compile``, the first calls on every batch, where compilation happens; ``static``,
    tracing the Static Runtime graphs. None for the others."""
    cycled: CycledSet | None = None
    """The working set the batches form."""
    deviation: OutputDeviation | None = None
    """A reduced-precision timing point's predictions against fp32's."""


def point_cycled_set(point: Point, settings: TimingSettings,
                     options: LevelOptions | None = None) -> CycledSet:
    """The distinct batches ``point`` cycles, from its cache state, against the LLC of
    ``options`` (default: this machine's)."""
    llc = (options.llc_bytes if options is not None and options.llc_bytes
           else machine_llc_bytes())
    return cycled_set(point.spec, point.query, point.batch_size, point.cache, llc,
                      settings.distinct_batches, settings.cold_llc_multiple,
                      settings.max_input_bytes, point.precision)


def prepare_point(point: Point, settings: TimingSettings, profiled: bool = False,
                  options: LevelOptions | None = None) -> PreparedPoint:
    """Sets the thread count, builds the model for the point's backend (timed, with its
    peak-memory growth), generates the batches of the point's working set
    (:func:`point_cycled_set`) and prepares the backend for them (``compile``: compiles by
    calling the model once on every batch; ``static``: makes its graphs, with their
    part-scoped variants when the point is ``profiled``), timed apart: never inside a timed
    loop."""
    import torch

    from recstack.admission import require_point_memory
    from recstack.backends import build_for_backend, prepare_backend
    from recstack.batch_set import generate_batch_set
    from recstack.trace_queries import held_bytes

    torch.set_num_threads(point.threads)
    check_device(point.device)
    cycled = point_cycled_set(point, settings, options)
    # Planning admitted the point; memory may have gone to something else since.
    require_point_memory(point.spec, point.batch_size, point.label, cycled.batches,
                         settings.max_input_bytes, precision=point.precision,
                         source_bytes=held_bytes(point.query), query=point.query)
    on_cuda = point.device.startswith("cuda")

    baseline = _peak_rss_bytes()
    start = time.perf_counter()
    model = build_for_backend(point.spec, point.backend, seed=point.seed, device=point.device,
                              precision=point.precision)
    if on_cuda:
        torch.cuda.synchronize(point.device)
    build_seconds = time.perf_counter() - start
    growth = _peak_rss_bytes() - baseline

    batches = generate_batch_set(point.spec, point.query, point.batch_size, cycled.batches)
    per_batch = max(1, batches[0].nbytes)
    if on_cuda:
        # Page-locked host memory, as a serving system stages queries for the GPU.
        batches = batches.map_tensors(lambda tensor: tensor.pin_memory())
    # compile and static specialize on shapes, not ids: with fixed pooling every batch has
    # the same shapes and a few suffice; with variable pooling each batch is its own shape.
    shown = list(_sample(batches)) if point.query.fixed_pooling(point.spec) else list(batches)
    compile_seconds = prepare_backend(model, point.backend, shown, point.device,
                                      part_scopes=profiled)
    deviation = None if profiled else output_deviation(point, model, batches)
    return PreparedPoint(model=model, batches=batches, on_cuda=on_cuda,
                         build_seconds=build_seconds, peak_memory_growth_bytes=growth,
                         input_bytes_per_batch=per_batch, compile_seconds=compile_seconds,
                         cycled=cycled, deviation=deviation)


def _sample(batches: Any, most: int = 4) -> Any:
    """Up to ``most`` batches spread over the set."""
    step = max(1, len(batches) // most)
    return (batches[index] for index in range(0, len(batches), step)[:most])


def measure_point(point: Point, settings: TimingSettings,
                  options: LevelOptions | None = None) -> TimingResult:
    """Measures ``point``; meant to run in a fresh worker process (see recstack.worker)."""
    import torch

    prepared = prepare_point(point, settings, options=options)
    model, batches = prepared.model, prepared.batches
    with torch.inference_mode():
        _check_output(model, batches[0].to(point.device), point)
        if prepared.on_cuda:
            latency, copy, warmup = _time_cuda(model, batches, point.device, settings)
        else:
            latency, warmup = time_cpu_iterations(model, batches, settings)
            copy = None
    return TimingResult(
        latency_ns=latency, copy_ns=copy, warmup_iterations=warmup,
        build_seconds=prepared.build_seconds,
        peak_memory_growth_bytes=prepared.peak_memory_growth_bytes,
        input_bytes_per_batch=prepared.input_bytes_per_batch, distinct_batches=len(batches),
        threads_used=torch.get_num_threads(),
        device_name=(torch.cuda.get_device_name(point.device) if prepared.on_cuda else "cpu"),
        extra={"backend": point.backend, "compile_seconds": prepared.compile_seconds,
               "deviation": None if prepared.deviation is None else asdict(prepared.deviation)},
    )


def collect_timing(point: Point, settings: TimingSettings,
                   options: LevelOptions | None = None) -> TimingRecord:
    """The timing level's collector: measures ``point`` (in a fresh worker) and returns its
    record, the samples' statistics derived once the timed loop is over."""
    return timing_record(measure_point(point, settings, options), point, settings)


def timing_record(result: TimingResult, point: Point, settings: TimingSettings
                  ) -> TimingRecord:
    count = len(result.latency_ns)
    copy = result.copy_ns if result.copy_ns is not None else [None] * count
    import pandas as pd

    samples = pd.DataFrame({"iteration": range(count), "latency_ns": result.latency_ns,
                            "copy_ns": pd.array(copy, dtype="Int64")})
    build = Build(build_seconds=result.build_seconds,
                  peak_memory_growth_bytes=result.peak_memory_growth_bytes,
                  input_bytes_per_batch=result.input_bytes_per_batch,
                  distinct_batches=result.distinct_batches, threads_used=result.threads_used,
                  device_name=result.device_name, warmup_iterations=result.warmup_iterations,
                  compile_seconds=result.extra.get("compile_seconds"),
                  **deviation_columns(result.extra.get("deviation")))
    stats = timing_stats(result.latency_ns, point.batch_size, result.copy_ns,
                         settings.spread_threshold, point.label)
    return TimingRecord(build=build, samples=samples, stats=stats)


def deviation_columns(deviation: dict[str, Any] | None) -> dict[str, Any]:
    """The Build columns of a point's output deviation (an ``OutputDeviation`` as a dict;
    None: not a reduced precision, or not measured)."""
    if deviation is None:
        return {}
    return {"output_max_abs_deviation": deviation["max_abs"],
            "output_mean_abs_deviation": deviation["mean_abs"],
            "deviation_samples": deviation["samples"]}


def _check_output(model: Any, batch: Any, point: Point) -> None:
    import torch

    output = model(batch)
    if output.shape[0] != point.batch_size or not torch.isfinite(output).all():
        raise RecstackError(f"{point.label}: the forward pass gave a wrong or non-finite "
                            f"output of shape {tuple(output.shape)}")


def _iterations_for(warmup_ns: list[int], settings: TimingSettings) -> int:
    typical = float(np.median(warmup_ns[1:] if len(warmup_ns) > 1 else warmup_ns))
    wanted = math.ceil(settings.min_seconds * 1e9 / max(typical, 1.0))
    return int(min(settings.max_iterations, max(settings.min_iterations, wanted)))


def time_cpu_iterations(model: Any, batches: list[Any], settings: TimingSettings
                        ) -> tuple[list[int], int]:
    """Warm-up, calibration and the timed loop on the CPU: (latencies in ns, warm-up count)."""
    clock = time.perf_counter_ns
    count = len(batches)
    warmup: list[int] = []
    warmup_end = clock() + int(settings.warmup_seconds * 1e9)
    while len(warmup) < settings.warmup_iterations or clock() < warmup_end:
        start = clock()
        model(batches[len(warmup) % count])
        warmup.append(clock() - start)
    iterations = _iterations_for(warmup, settings)
    most = settings.max_iterations
    latency: list[int] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        loop_end = clock() + int(settings.min_seconds * 1e9)
        i = 0
        while i < iterations or (i < most and clock() < loop_end):
            batch = batches[i % count]
            start = clock()
            model(batch)
            latency.append(clock() - start)
            i += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return latency, len(warmup)


def _time_cuda(model: Any, batches: list[Any], device: str, settings: TimingSettings
               ) -> tuple[list[int], list[int], int]:
    import torch

    clock = time.perf_counter_ns
    synchronize = torch.cuda.synchronize
    count = len(batches)

    def once(batch: Any) -> tuple[int, int]:
        start = clock()
        on_device = batch.to(device, non_blocking=True)
        synchronize(device)
        copied = clock()
        model(on_device)
        synchronize(device)
        return clock() - start, copied - start

    warmup: list[int] = []
    warmup_end = clock() + int(settings.warmup_seconds * 1e9)
    while len(warmup) < settings.warmup_iterations or clock() < warmup_end:
        warmup.append(once(batches[len(warmup) % count])[0])
    iterations = _iterations_for(warmup, settings)
    most = settings.max_iterations
    latency: list[int] = []
    copy: list[int] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        loop_end = clock() + int(settings.min_seconds * 1e9)
        while len(latency) < iterations or (len(latency) < most and clock() < loop_end):
            total, copied = once(batches[len(latency) % count])
            latency.append(total)
            copy.append(copied)
    finally:
        if gc_was_enabled:
            gc.enable()
    return latency, copy, len(warmup)


# ---- statistics (pure; used by the sweep before storing) -----------------------------------


def timing_stats(latency_ns: list[int], batch_size: int, copy_ns: list[int] | None = None,
                 spread_threshold: float = 0.5, label: str = "point") -> TimingStats:
    """Median, percentiles, mean, spread and throughput of raw latencies."""
    if not latency_ns:
        raise ValueError("no samples")
    ms = np.asarray(latency_ns, dtype=np.float64) / 1e6
    median = float(np.median(ms))
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    cv = std / mean if mean > 0 else 0.0
    p5, p95, p99 = (float(v) for v in np.percentile(ms, [5, 95, 99]))
    spread = (p95 - p5) / median if median > 0 else 0.0
    unstable = spread > spread_threshold
    warning = None
    if unstable:
        warning = (f"{label}: latency spread is high (p5-p95 range {spread:.0%} of the median, "
                   f"over {spread_threshold:.0%}; CV {cv:.0%}); the machine may be busy or "
                   "changing frequency: close other work, measure longer (--min-time), or fix "
                   "the thread count (--threads)")
    return TimingStats(
        iterations=int(ms.size), median_ms=median, p5_ms=p5, p95_ms=p95, p99_ms=p99,
        mean_ms=mean, std_ms=std, cv=cv, relative_spread=spread,
        throughput_per_s=batch_size / (median / 1e3),
        copy_median_ms=(float(np.median(copy_ns)) / 1e6 if copy_ns else None),
        unstable=unstable, warning=warning,
    )
