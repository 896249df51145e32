"""Plans sweeps (lists of points) and runs them, one fresh worker per point, into the store.

Runs are resumable: points a run already holds as measured are skipped; failed points are
measured again. A point that fails or whose worker dies is stored as failed with its error, and
the sweep goes on.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from recstack.collect.hardware import HardwareResult, hardware_point, scaled_for_simulation
from recstack.collect.operators import OperatorProfile, profile_point
from recstack.collect.timing import (TimingResult, TimingSettings, TimingStats, measure_point,
                                     timing_stats)
from recstack.doctor import hardware_mode
from recstack.admission import (describe_usable, point_memory, require_point_memory,
                                usable_memory)
from recstack.errors import Interrupted, RecstackError, SpecError, StoreError
from recstack.footprint import available_memory_bytes, scale_that_fits
from recstack.inputs import QuerySpec
from recstack.limits import (INT32_MAX, SEED_MAX, THREADS_MAX, check_int, check_scale,
                             is_integer)
from recstack.points import BACKEND_CHOICES, COLLECTORS, Point
from recstack.specs import ModelSpec, resolve_spec
from recstack.store import ResultStore
from recstack.text import one_line, shown
from recstack.worker import run_isolated

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096)


def usable_cores() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def available_devices() -> list[str]:
    """``cpu``, plus ``cuda`` when torch sees a CUDA GPU."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def check_devices(devices: Sequence[str]) -> None:
    """Refuses a GPU device on a machine without one, before anything runs."""
    if any(device.startswith("cuda") for device in devices):
        import torch

        if not torch.cuda.is_available():
            wanted = next(d for d in devices if d.startswith("cuda"))
            raise RecstackError(f"--device: {wanted!r} is not allowed; this machine has no "
                                "CUDA GPU that torch can use (available: cpu)")


# ---- planning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    """The points to measure, and what people should know about how they were chosen."""

    points: tuple[Point, ...]
    notes: tuple[str, ...] = ()
    hardware_mode: str | None = None
    """``measured`` or ``simulated`` when the plan has hardware points."""
    hierarchy: str = "host"
    """The simulated cache hierarchy (preset name) for simulated hardware points."""
    no_multiplex: bool = False
    """Measured hardware points: one loop per small event group instead of multiplexing."""


def fit_spec(spec: ModelSpec, scale: float | None, available_bytes: int,
             batch_sizes: Sequence[int] = (1,)) -> tuple[ModelSpec, str]:
    """The spec at ``scale`` if given, else at full size if it fits, else with its tables
    scaled to fit in the available memory less admission's margin (left to the rest of the
    machine), beside what the largest batch that can fit needs besides the model (query
    batches, activations, the worker): one scale for every batch size of the sweep."""
    if scale is not None:
        try:
            return spec.scaled(scale), ""
        except SpecError as error:
            raise error.for_option("--scale") from None
    usable = usable_memory(available_bytes)
    margin = describe_usable(available_bytes)
    for batch in sorted(set(batch_sizes), reverse=True):
        need = point_memory(spec, batch)
        fits = scale_that_fits(spec, usable - (need.total - need.model))
        if fits is not None:
            break
    else:
        raise RecstackError(f"{spec.name}: does not fit in {margin} with tables of any size "
                            f"(at batch {batch}, its dense layers, query batches and "
                            f"activations alone need {(need.total - need.model) / 1e9:.2f} GB)")
    if fits < 1.0:
        return spec.scaled(fits), (f"{spec.name}: scaled to row_scale {fits:g} to fit "
                                   f"{margin} up to batch {batch}; full size does not")
    return spec, ""


def plan_sweep(models: Sequence[str], batch_sizes: Sequence[int] | None = None,
               threads: Sequence[int] | None = None, devices: Sequence[str] | None = None,
               backends: Sequence[str] = ("eager",), scale: float | None = None,
               query: QuerySpec | None = None, seed: int = 0,
               available_bytes: int | None = None,
               levels: Sequence[str] = ("timing",), hardware_mode: str | None = None,
               hierarchy: str = "host", no_multiplex: bool = False,
               oversubscribe: bool = False) -> SweepPlan:
    """Every combination of the options, ordered model, device, threads, backend, batch,
    then level (``timing``, ``operators``: each level of a configuration is its own point).
    Every option is checked, and every point admitted to memory
    (:mod:`recstack.admission`), before the plan exists.

    Defaults: batch sizes 1 to 4096 in powers of 4, all usable cores, every device present.
    """
    defaulted = batch_sizes is None
    batch_sizes = list(DEFAULT_BATCH_SIZES) if defaulted else batch_sizes
    threads = [usable_cores()] if threads is None else threads
    devices = available_devices() if devices is None else devices
    check_options(models, batch_sizes, threads, devices, backends, levels, scale,
                  oversubscribe)
    available = available_memory_bytes() if available_bytes is None else available_bytes
    specs, notes = [], []
    for name in models:
        spec, note = fit_spec(resolve_spec(name), scale, available, batch_sizes)
        specs.append(spec)
        if note:
            notes.append(note)
    # Default batch sizes that do not fit this machine are left out with a note; sizes the
    # user asked for are measured or refused.
    return plan_specs(specs, batch_sizes, threads, devices, backends, query, seed, levels,
                      hardware_mode, hierarchy, no_multiplex, notes, available,
                      drop_unfit=defaulted)


def check_options(models: Sequence[object], batch_sizes: Sequence[int], threads: Sequence[int],
                  devices: Sequence[str], backends: Sequence[str], levels: Sequence[str],
                  scale: float | None = None, oversubscribe: bool = False) -> None:
    """Refuses, with a one-line error naming the option, what no sweep can run: values the
    store cannot hold, and more intra-op threads than this process may use (unless
    ``oversubscribe``: a thread waiting for a core at every operator measures the wait)."""
    for name, values in (("--model", models), ("--batch-sizes", batch_sizes),
                         ("--threads", threads), ("--device", devices),
                         ("--backend", backends)):
        if not values:
            raise RecstackError(f"{name}: nothing given; expected at least one value")
    cores = usable_cores()
    most_threads = THREADS_MAX if oversubscribe else cores
    for name, values, high, rule in (
            ("--batch-sizes", batch_sizes, INT32_MAX, "integers from 1"),
            ("--threads", threads, most_threads, "integers from 1")):
        for value in values:
            if not is_integer(value) or not 1 <= value <= high:
                why = "" if oversubscribe or name != "--threads" else \
                    (f" (the cores this process may use; --oversubscribe allows up to "
                     f"{THREADS_MAX})")
                raise RecstackError(f"{name}: {shown(value)} is not allowed; expected {rule} "
                                    f"to {high}{why}")
    for level in levels:
        if level not in COLLECTORS:
            raise RecstackError(f"--levels: {shown(level)} is not allowed; expected one of "
                                f"{', '.join(COLLECTORS)}")
    if not levels:
        raise RecstackError("--levels: nothing given; expected at least one level")
    for backend in backends:
        if backend not in BACKEND_CHOICES:
            raise RecstackError(f"--backend: {shown(backend)} is not allowed; expected one of "
                                f"{', '.join(BACKEND_CHOICES)}")
    check_scale(scale)
    check_devices(devices)


def plan_specs(specs: Sequence[ModelSpec], batch_sizes: Sequence[int], threads: Sequence[int],
               devices: Sequence[str], backends: Sequence[str], query: QuerySpec | None = None,
               seed: int = 0, levels: Sequence[str] = ("timing",),
               hardware_mode: str | None = None, hierarchy: str = "host",
               no_multiplex: bool = False, notes: Sequence[str] = (),
               available_bytes: int | None = None, drop_unfit: bool = False) -> SweepPlan:
    """The points of already resolved specs (options checked by :func:`plan_sweep`), in the
    same order: spec, device, threads, backend, batch, level; each admitted to memory (a
    point that does not fit is refused, or with ``drop_unfit`` left out with a note)."""
    query = query or QuerySpec()
    seed = check_int("--seed", seed, 0, SEED_MAX)
    notes = list(notes)
    if "hardware" in levels:
        hardware_mode, why = _hardware_mode(hardware_mode)
        notes.append(f"hardware level: {hardware_mode} ({why})")
    points = []
    for spec, device, count, backend, batch, level in itertools.product(
            specs, devices, threads, backends, batch_sizes, levels):
        if level == "hardware":
            if device != "cpu":
                continue  # top-down and cache misses are a CPU level
            # The counter and simulation workers build the eager model: say so in the point.
            backend = "eager"
            if hardware_mode == "simulated":
                spec, note = scaled_for_simulation(spec)
                if note and note not in notes:
                    notes.append(note)
        points.append(Point(spec=spec, batch_size=batch, device=device, threads=count,
                            backend=backend, query=query, seed=seed, collector=level))
    # With several backends the (eager) hardware points of a configuration repeat: once each.
    unique: dict[str, Point] = {}
    for point in points:
        unique.setdefault(point.key(), point)
    points = _admitted(list(unique.values()), notes, drop_unfit, available_bytes)
    return SweepPlan(points=tuple(points), notes=tuple(notes), hardware_mode=hardware_mode,
                     hierarchy=hierarchy, no_multiplex=no_multiplex)


def _admitted(points: list[Point], notes: list[str], drop_unfit: bool,
              available_bytes: int | None) -> list[Point]:
    """The points whose whole footprint fits in memory (:mod:`recstack.admission`)."""
    available = available_memory_bytes() if available_bytes is None else available_bytes
    unfit: set[tuple[ModelSpec, int]] = set()
    first: RecstackError | None = None
    for spec, batch in dict.fromkeys((point.spec, point.batch_size) for point in points):
        try:
            require_point_memory(spec, batch, f"{spec.name} at batch {batch}",
                                 available_bytes=available)
        except RecstackError as error:
            if not drop_unfit:
                raise
            unfit.add((spec, batch))
            notes.append(f"left out: {error}")
            first = first or error
    kept = [point for point in points if (point.spec, point.batch_size) not in unfit]
    if points and not kept:
        raise RecstackError(f"no point fits in memory: {first}")
    return kept


def _hardware_mode(requested: str | None) -> tuple[str, str]:
    """The hardware level's mode: the requested one where this machine can give it, or
    what it supports. Measuring without working counters is refused: it would store
    points whose every value is n/a."""
    from recstack.doctor import probe_pmu, probe_valgrind

    if requested == "simulated":
        return requested, "as requested"
    if requested == "measured":
        pmu = probe_pmu()
        if not pmu.available:
            raise RecstackError(f"--mode: 'measured' is not allowed here; this machine has no "
                                f"working hardware counters ({pmu.detail}); use --mode "
                                "simulated, or leave --mode out")
        return requested, "as requested"
    if requested is not None:
        raise RecstackError(f"--mode: {shown(requested)} is not allowed; expected measured "
                            "or simulated (default: what `recstack doctor` finds)")
    mode, reason = hardware_mode([probe_pmu(), probe_valgrind()])
    if mode == "unavailable":
        raise RecstackError(f"hardware level: {reason}; `recstack doctor` says how to get "
                            "either")
    return mode, reason


def busy_machine_note(plan: SweepPlan) -> str | None:
    """A warning when other work already occupies the cores the plan's multi-threaded points
    need: a point whose intra-op threads wait for a busy core at every operator's barrier can
    run 10 to 100 times slower (measured on a 2-core VM: 1.9 ms with one thread, 199 ms with
    two while another process ran)."""
    import os

    threads = max((point.threads for point in plan.points), default=1)
    if threads < 2 or not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    cores = usable_cores()
    if load + threads <= cores + 1.0:  # a load average under 1 is residue, not a rival
        return None
    return (f"the machine is busy (load average {load:.1f} on {cores} usable cores) and points "
            f"use up to {threads} threads: multi-threaded points may be slowed many times over "
            "by waiting for busy cores. Close other work, or measure with --threads 1.")


# ---- running -------------------------------------------------------------------------------


def open_run(store: ResultStore, settings: TimingSettings, command: str, resume: bool = False,
             run_id: str | None = None) -> str:
    """The run to measure into: a new one (with this machine's platform), or with ``resume``
    the given or latest run of the store, which must have used the same settings."""
    from recstack.paths import check_run_id
    from recstack.platform_info import collect_platform, describe_platform, platform_id

    if run_id is not None:
        check_run_id(run_id)
    if resume:
        run_id = run_id or store.latest_run_id()
        info = store.run_info(run_id) if run_id else None
        if info is None:
            which = f"run {shown(run_id)}" if run_id else "run"
            raise RecstackError(f"--resume: no {which} to resume in {store.path}")
        stored, wanted = json.loads(info["settings"]), settings.to_dict()
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted)
                             if stored.get(k) != wanted.get(k))
            raise RecstackError(f"--resume: run {run_id} was measured with other settings "
                                f"({', '.join(changed)}); resume with the same options or "
                                "start a new run")
        return run_id
    if run_id and store.run_info(run_id) is not None:
        raise RecstackError(f"--run-id: {run_id!r} already exists in {store.path}; add "
                            "--resume to continue it")
    platform = collect_platform()
    return store.create_run(command, settings.to_dict(), platform, platform_id(platform),
                            describe_platform(platform), run_id=run_id)


@dataclass(frozen=True)
class SweepEvent:
    """What happened to a point, for progress displays."""

    kind: str  # "skipped" | "start" | "done" | "failed"
    point: Point
    index: int
    total: int
    median_ms: float | None = None
    error: str | None = None
    warning: str | None = None


@dataclass
class SweepOutcome:
    run_id: str
    measured: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


Collector = Callable[..., TimingResult | OperatorProfile | HardwareResult]
COLLECTOR_FUNCTIONS: dict[str, Collector] = {"timing": measure_point,
                                             "operators": profile_point,
                                             "hardware": hardware_point}


def _point_row(point: Point, status: str, error: str | None, started: datetime,
               result: TimingResult | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "point_key": point.key(), "config_key": point.config_key(),
        "collector": point.collector, "label": point.label, "model": point.spec.name,
        "model_type": point.spec.model_type, "spec_digest": point.spec.digest(),
        "spec": json.dumps(point.spec.to_config()), "row_scale": point.spec.row_scale,
        "batch_size": point.batch_size, "device": point.device, "threads": point.threads,
        "backend": point.backend, "query": json.dumps(point.query.to_dict()),
        "seed": point.seed, "status": status, "error": error, "started_at": started,
        "finished_at": datetime.now(timezone.utc),
    }
    if isinstance(result, TimingResult):
        row.update(build_seconds=result.build_seconds,
                   peak_memory_growth_bytes=result.peak_memory_growth_bytes,
                   input_bytes_per_batch=result.input_bytes_per_batch,
                   distinct_batches=result.distinct_batches, threads_used=result.threads_used,
                   device_name=result.device_name,
                   warmup_iterations=result.warmup_iterations,
                   compile_seconds=result.extra.get("compile_seconds"))
    return row


def _samples_frame(result: TimingResult) -> pd.DataFrame:
    count = len(result.latency_ns)
    return pd.DataFrame({
        "iteration": range(count),
        "latency_ns": result.latency_ns,
        "copy_ns": pd.array(result.copy_ns if result.copy_ns is not None else [None] * count,
                            dtype="Int64"),
    })


def _record(store: ResultStore, run_id: str, point: Point, started: datetime,
            result: TimingResult | OperatorProfile, settings: TimingSettings
            ) -> TimingStats | None:
    """Stores a measured point; returns its timing statistics (None for a profile)."""
    row = _point_row(point, "ok", None, started, result)
    if isinstance(result, HardwareResult):
        topdown = result.topdown or {}
        store.record_point(run_id, row, hardware={
            "source": result.source, "hierarchy": result.hierarchy,
            "instructions": result.instructions_per_iteration,
            **{name: result.rates.get(name) for name in
               ("ipc", "l1i_mpki", "l1d_mpki", "llc_mpki", "branch_mpki", "dtlb_mpki",
                "itlb_mpki")},
            **{name: topdown.get(name) for name in
               ("retiring", "bad_speculation", "frontend_bound", "backend_bound")},
            "topdown": json.dumps(topdown), "multiplexing": result.multiplexing,
            "caveats": json.dumps(result.caveats), "raw": json.dumps(result.raw, default=str)})
        return None
    if isinstance(result, OperatorProfile):
        operators = pd.DataFrame(result.operators, columns=["part", "op", "calls", "time_us"])
        wall = float(pd.Series(result.iteration_wall_us).mean())
        covered = float(operators.time_us.sum())
        profiled = float(pd.Series(result.profiled_us).median())
        unprofiled = float(pd.Series(result.unprofiled_us).median())
        store.record_point(run_id, row, operators=operators, profile={
            "iterations": len(result.iteration_wall_us), "time_basis": result.time_basis,
            "wall_us": wall, "operator_us": covered, "uncovered_us": wall - covered,
            "profiled_median_us": profiled, "unprofiled_median_us": unprofiled,
            "profiler_overhead": profiled / unprofiled - 1.0, "trace_path": result.trace_path,
            "profiler_outside_us": result.profiler_outside_us, **_clock_columns(result)})
        return None
    stats = timing_stats(result.latency_ns, point.batch_size, result.copy_ns,
                         settings.spread_threshold, point.label)
    store.record_point(run_id, row, _samples_frame(result), stats.to_dict())
    return stats


def _clock_columns(profile: OperatorProfile) -> dict[str, Any]:
    """The operator clock's columns of a profile row: medians, counts, raw rounds, note."""
    reading = profile.clock
    if reading is None:
        return {"clock_note": profile.clock_note}
    from recstack.collect.opclock import ClockReading

    medians = ClockReading(**reading).medians()
    return {"clock_plain_us": medians["plain_us"], "clock_clocked_us": medians["clocked_us"],
            "clock_inside_us": medians["inside_us"],
            "clock_outside_us": medians["outside_us"],
            "clock_operators": reading["operators"], "clock_observed": reading["observed"],
            "clock_callback_outside_us": reading.get("callback_outside_us"),
            "clock": json.dumps(reading), "clock_note": profile.clock_note}


def run_sweep(plan: SweepPlan, store: ResultStore, run_id: str, settings: TimingSettings,
              progress: Callable[[SweepEvent], None] | None = None,
              collector: Collector | None = None,
              point_timeout_s: float | None = None,
              trace_dir: str | None = None) -> SweepOutcome:
    """Measures every point of ``plan`` the run does not hold yet, each in a fresh worker.

    ``collector`` replaces the point's own collector (tests use it to inject failures);
    ``trace_dir`` keeps a Chrome trace of every operator-profile point there.
    """
    notify = progress or (lambda event: None)
    outcome = SweepOutcome(run_id=run_id)
    finished = store.finished_point_keys(run_id)
    total = len(plan.points)
    store.start_run_pass(run_id, total)
    index = 0
    try:
        for index, point in enumerate(plan.points):
            if point.key() in finished:
                outcome.skipped += 1
                notify(SweepEvent("skipped", point, index, total))
                continue
            store.mark_in_flight(run_id, point.label)
            notify(SweepEvent("start", point, index, total))
            notify(_measure_point(plan, store, run_id, settings, point, collector,
                                  point_timeout_s, trace_dir, outcome, index, total))
    except StoreError as error:
        _end_early(store, run_id, error, index, total)
        raise StoreError(f"{error}; run {run_id} stopped at point {index + 1} of {total}: once "
                         "the store can be written, --resume continues it") from None
    except BaseException as error:
        _end_early(store, run_id, error, index, total)
        raise
    store.end_run(run_id, "complete")
    return outcome


def _end_early(store: ResultStore, run_id: str, error: BaseException, index: int,
               total: int) -> None:
    """Records why a pass stopped before its last point, where the store can still take
    it; an interruption learns where the run stopped, for the line the CLI prints."""
    interrupted = isinstance(error, (Interrupted, KeyboardInterrupt))
    try:
        store.end_run(run_id, "interrupted" if interrupted else "failed",
                      None if interrupted else one_line(error, 200))
    except RecstackError:
        pass  # the store is what failed (a full disk): the run reads as killed
    if isinstance(error, Interrupted):
        error.run_id, error.progress = run_id, f"point {index + 1} of {total}"


def _measure_point(plan: SweepPlan, store: ResultStore, run_id: str, settings: TimingSettings,
                   point: Point, collector: Collector | None, point_timeout_s: float | None,
                   trace_dir: str | None, outcome: SweepOutcome, index: int,
                   total: int) -> SweepEvent:
    """Measures the ``index``-th point of ``total`` in a fresh worker and stores it (or its
    failure); returns what happened."""
    started = datetime.now(timezone.utc)
    function = collector or COLLECTOR_FUNCTIONS[point.collector]
    # Each level's own arguments beyond (point, settings).
    extra: tuple[Any, ...] = ()
    if collector is None and point.collector == "operators":
        extra = (trace_dir,)
    elif collector is None and point.collector == "hardware":
        extra = (plan.hardware_mode, plan.hierarchy, plan.no_multiplex)
    try:
        result = run_isolated(function, point, settings, *extra, timeout_s=point_timeout_s)
    except Exception as error:  # noqa: BLE001 - any failure of a point is its result
        message = one_line(error) if isinstance(error, RecstackError) \
            else one_line(f"{type(error).__name__}: {error}")
        store.record_point(run_id, _point_row(point, "failed", message, started, None))
        outcome.failed.append((point.label, message))
        return SweepEvent("failed", point, index, total, error=message)
    stats = _record(store, run_id, point, started, result, settings)
    outcome.measured += 1
    if stats is not None and stats.warning:
        outcome.warnings.append(stats.warning)
    return SweepEvent("done", point, index, total,
                      median_ms=None if stats is None else stats.median_ms,
                      warning=None if stats is None else stats.warning)
