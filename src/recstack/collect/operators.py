"""Operator collector: where one point's inference time goes, from the PyTorch profiler.

Runs in its own worker, never in a timing worker: profiling slows inference, and no latency
recstack reports comes from a profiled run. Method:

1. Build the model and the batches, warm up (as the timing collector does).
2. On the CPU (not for compiled models), run the operator clock's alternated rounds
   (:mod:`recstack.collect.opclock`): the time inside top-level operators at about a tenth
   of the profiler's cost per operator, which brackets the framework overhead far more
   tightly than the profiler can at small batch. Then measure what an empty part scope
   costs under the profiler (:func:`scope_cost_us`).
3. Three phases back to back, each of a few unrecorded iterations (``PHASE_WARMUP_SECONDS``:
   the iterations just after a profiler stops run slow) then ``n`` timed iterations over the
   same batches in the same order: *plain before* (no profiler), *profiled* (under
   ``torch.profiler.profile``, each iteration wrapped in a ``recstack::iteration`` scope; on
   CUDA the host-to-device copy of the query is inside the iteration, in a
   ``recstack::input`` scope, and the iteration ends with a synchronize), *plain after*
   (the profiler stopped). One profiler context, so its events summarize as one profile;
   the garbage collector is off during the three phases, as in the timing loop.
4. Walk each iteration's event tree: every *top-level* operator (the outermost aten call, not
   inside another operator) is attributed its inclusive time, to the model part whose scope
   encloses it. On CUDA the time is the device time of the kernels it launched.

The profiler's overhead is measured within this one worker, against the plain iterations
that bracket the profiled ones: median(profiled) / median(plain before and after, pooled),
minus 1. When the plain medians before and after disagree by more than
:data:`recstack.records.profile.PLAIN_DRIFT_TOLERANCE` (10%: larger over smaller, minus
1), the machine drifted while the profile ran and the profiled iterations' share of that
drift is unknown: no overhead is reported (NaN, stored NULL, with the reason in
``overhead_note``). The three phases' samples are stored with the profile
(``overhead_samples_us``).

What comes back is raw: operator names, parts, calls and times per iteration. Classifying
operators (GEMM, embedding, ...) is analysis, done from a data table in
:mod:`recstack.analysis.breakdown`, so it can change without measuring again.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch._C._profiler import RecordScope

from recstack.collect.timing import TimingSettings
from recstack.errors import RecstackError
from recstack.levels import LevelOptions
from recstack.models.layers import PART_SCOPE_PREFIX
from recstack.points import Point
from recstack.records import Profile, ProfileRecord
from recstack.records.profile import profiler_overhead_of

ITERATION_SCOPE = PART_SCOPE_PREFIX + "iteration"
INPUT_PART = "input"
UNSCOPED_PART = "unscoped"
PROFILE_TARGET_SECONDS = 1.0
# Each phase (plain, profiled, plain) starts with this long of unrecorded iterations (at
# least one, at most PHASE_WARMUP_ITERATIONS: the profiler records them too): the first few
# iterations after a profiler stops (the scope probe's, then the profile's) run up to half
# again slower than the rest, which would otherwise read as drift, or as overhead.
PROFILE_WARMUP_SECONDS = 0.5
"""The longest warm-up before profiling, once the settings' warm-up iterations are done."""
PHASE_WARMUP_SECONDS = 0.02
PHASE_WARMUP_ITERATIONS = 50


@dataclass(frozen=True)
class OperatorProfile:
    """Raw operator times of one point, per iteration (means over the profiled iterations)."""

    operators: list[dict[str, Any]]
    """Rows ``{part, op, calls, time_us}``: top-level operators by part, per iteration."""
    iteration_wall_us: list[float]
    """Wall time of each profiled iteration, as the profiler saw it."""
    profiled_us: list[float]
    """Each profiled iteration on the host clock (for the profiler's overhead)."""
    plain_before_us: list[float]
    """The same iterations without the profiler, just before it started."""
    plain_after_us: list[float]
    """The same iterations again, just after it stopped."""
    time_basis: str
    """``cpu``: operators' CPU time; ``cuda``: device time of the kernels they launched."""
    profiler_outside_us: float = math.nan
    """A lower bound on the profiler's added time per iteration that falls outside every
    operator: the scopes it records (the iteration's and each model part's, which enclose
    operators but are none), each at the added cost of an empty scope measured in this
    worker (see :func:`scope_cost_us`)."""
    trace_path: str | None = None
    clock: dict[str, Any] | None = None
    """The operator clock's reading (:class:`recstack.collect.opclock.ClockReading` as a
    dict), or None with the reason in ``clock_note``."""
    clock_note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def unprofiled_us(self) -> list[float]:
        """Every plain iteration, before and after the profiler."""
        return [*self.plain_before_us, *self.plain_after_us]

    def overhead(self) -> tuple[float, str | None]:
        """The profiler's overhead in this worker and why it is NaN (see the module
        docstring): :func:`recstack.records.profile.profiler_overhead_of` of the medians."""
        return profiler_overhead_of(statistics.median(self.profiled_us),
                                    statistics.median(self.unprofiled_us),
                                    statistics.median(self.plain_before_us),
                                    statistics.median(self.plain_after_us))


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Kineto prints a line on every profiler start and stop, straight to file descriptor 2;
    the sweep's output should not fill with them."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# Record scopes of a Static Runtime graph (as profiler events carry them): the whole graph's
# call (a container, not an operator) and each of its nodes.
STATIC_RUNTIME_OP_SCOPE = int(RecordScope.STATIC_RUNTIME_OP)
STATIC_RUNTIME_MODEL_SCOPE = int(RecordScope.STATIC_RUNTIME_MODEL)


def is_runtime_glue(name: str, scope: int) -> bool:
    """A Static Runtime node that only builds or unpacks lists and tuples (``prim::ListUnpack``,
    ``prim::TupleConstruct``, ...): what Python's own tuples and lists do in an eager forward,
    so framework time, not an operator. ``prim::Var*`` nodes (VarConcat, VarStack) are
    concatenations. The operator clock draws the same line (``opclock.cpp``)."""
    if scope != STATIC_RUNTIME_OP_SCOPE:
        return False
    if name.startswith("prim::"):
        return not name.startswith("prim::Var")
    return name.startswith(("static_runtime::VarTupleUnpack", "static_runtime::dict_unpack"))


def _top_level_operators(event: Any, part: str) -> Iterator[tuple[str, Any]]:
    """(part, operator event) for every outermost operator under ``event``: part scopes and
    a Static Runtime graph's own call are looked into, its glue nodes left out (their time
    is outside every operator)."""
    for child in event.cpu_children:
        scope = int(getattr(child, "scope", 0) or 0)
        if child.name.startswith(PART_SCOPE_PREFIX):
            yield from _top_level_operators(child, child.name[len(PART_SCOPE_PREFIX):])
        elif scope == STATIC_RUNTIME_MODEL_SCOPE:
            yield from _top_level_operators(child, part)
        elif not is_runtime_glue(child.name, scope):
            yield part, child


# An iteration this much slower than the median one was descheduled or interrupted.
DESCHEDULED_FACTOR = 1.5


def summarize_iterations(iterations: list[Any], on_cuda: bool) -> tuple[list[dict[str, Any]],
                                                                         list[float]]:
    """Operator rows (per-iteration means) and each iteration's wall time, from profiler
    ``FunctionEvent``s of ``recstack::iteration`` scopes.

    Iterations slower than ``DESCHEDULED_FACTOR`` times the median iteration are left out:
    on a shared machine one descheduled iteration among ten would otherwise hand its lost
    milliseconds to whichever operator was running, and a profile describes a typical
    iteration (the timing level keeps every sample and reports the spread)."""
    calls: dict[tuple[str, str], int] = defaultdict(int)
    times: dict[tuple[str, str], float] = defaultdict(float)
    all_walls = [float(iteration.cpu_time_total) for iteration in iterations]
    typical = sorted(all_walls)[len(all_walls) // 2] * DESCHEDULED_FACTOR if all_walls else 0.0
    iterations = [it for it, wall in zip(iterations, all_walls) if wall <= typical]
    walls = []
    for iteration in iterations:
        walls.append(float(iteration.cpu_time_total))
        for part, operator in _top_level_operators(iteration, UNSCOPED_PART):
            key = (part, operator.name)
            calls[key] += 1
            times[key] += float(operator.device_time_total if on_cuda
                                else operator.cpu_time_total)
    count = max(1, len(iterations))
    rows = [{"part": part, "op": op, "calls": calls[(part, op)] / count,
             "time_us": times[(part, op)] / count} for part, op in sorted(times)]
    return rows, walls


SCOPE_PROBE_PAIRS = 2000
SCOPE_PROBE_REPEATS = 5


def scope_cost_us(activities: list[Any]) -> float:
    """What the profiler adds to one part scope (enter and exit), in microseconds: the
    fastest of ``SCOPE_PROBE_REPEATS`` loops of empty :func:`part_scope` scopes under a
    profiler, minus the slowest of the same loops without one (where a scope is a shared null
    context). Tight loops run at their fastest, so in an iteration a scope costs at least
    this much: a lower bound."""
    import torch

    from recstack.models.layers import part_scope

    clock = time.perf_counter_ns

    def loop() -> float:
        start = clock()
        for _ in range(SCOPE_PROBE_PAIRS):
            with part_scope("probe"):
                pass
        return (clock() - start) / 1e3 / SCOPE_PROBE_PAIRS

    plain = [loop() for _ in range(SCOPE_PROBE_REPEATS)]
    with _quiet_native_stderr(), torch.profiler.profile(activities=activities):
        profiled = [loop() for _ in range(SCOPE_PROBE_REPEATS)]
    return max(0.0, min(profiled) - max(plain))


def _scopes_in(event: Any) -> int:
    """Part scopes opened from Python under ``event``, at any depth: those inside a Static
    Runtime graph's call are opened from C++, far more cheaply, and are not counted."""
    return sum(child.name.startswith(PART_SCOPE_PREFIX) + _scopes_in(child)
               for child in event.cpu_children
               if int(getattr(child, "scope", 0) or 0) != STATIC_RUNTIME_MODEL_SCOPE)


def _clock_point(point: Point, forward: Any, batch_at: Any, typical_s: float
                 ) -> tuple[dict[str, Any] | None, str | None]:
    """The operator clock's reading of ``point`` (before any profiler ran in this worker),
    or None and why not: the point cannot be clocked, or the clock cannot be built here."""
    from recstack.collect import opclock

    reason = opclock.unclockable_reason(point.device, point.backend)
    if reason is not None:
        return None, reason
    try:
        clock = opclock.OperatorClock(
            static_runtime=opclock.watches_static_runtime(point.backend))
    except RecstackError as error:
        return None, f"the operator clock is unavailable: {error}"
    return opclock.clock_rounds(forward, typical_s, clock, batch_at=batch_at).to_dict(), None


def profile_point(point: Point, settings: TimingSettings, trace_dir: str | None = None,
                  options: LevelOptions | None = None) -> OperatorProfile:
    """Profiles ``point``; meant to run in a fresh worker process."""
    import torch

    from recstack.collect.timing import prepare_point

    prepared = prepare_point(point, settings, profiled=True, options=options)
    model, batches, on_cuda = prepared.model, prepared.batches, prepared.on_cuda
    count = len(batches)

    def batch_at(index: int) -> Any:
        """The index-th batch of the cycle, made (views of the set) before any clock
        starts or profiler scope opens: its slicing is no operator of the model."""
        return batches[index % count]

    def forward(batch: Any) -> None:
        if on_cuda:
            with torch.profiler.record_function(PART_SCOPE_PREFIX + INPUT_PART):
                batch = batch.to(point.device, non_blocking=True)
            model(batch)
            torch.cuda.synchronize(point.device)
        else:
            model(batch)

    clock = time.perf_counter_ns
    with torch.inference_mode():
        warm = []
        # One pass over a warm set's few batches, so the profiled iterations meet the caches
        # as the timing loop's steady state does; a cold set's thousands of batches miss
        # the caches whether seen before or not, so its warm-up stops after a while.
        deadline = clock() + PROFILE_WARMUP_SECONDS * 1e9
        for index in range(max(2, settings.warmup_iterations, count)):
            if index >= max(2, settings.warmup_iterations) and clock() > deadline:
                break
            batch = batch_at(index)
            start = clock()
            forward(batch)
            warm.append(clock() - start)
        typical_s = statistics.median(warm[1:]) / 1e9
        iterations = int(min(settings.profile_iterations,
                             max(3, math.ceil(PROFILE_TARGET_SECONDS / max(typical_s, 1e-6)))))
        clock_reading, clock_note = _clock_point(point, forward, batch_at, typical_s)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if on_cuda:
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        scope_us = scope_cost_us(activities)

        def timed(scoped: bool) -> list[float]:
            """Unrecorded iterations for ``PHASE_WARMUP_SECONDS`` (at least one, at most
            ``PHASE_WARMUP_ITERATIONS``), then the phase's timed iterations."""
            deadline = clock() + PHASE_WARMUP_SECONDS * 1e9
            index = 0
            while index == 0 or (clock() < deadline and index < PHASE_WARMUP_ITERATIONS):
                forward(batch_at(index))
                index += 1
            samples = []
            for index in range(iterations):
                batch = batch_at(index)
                start = clock()
                if scoped:
                    with torch.profiler.record_function(ITERATION_SCOPE):
                        forward(batch)
                else:
                    forward(batch)
                samples.append((clock() - start) / 1e3)
            return samples

        # Plain, profiled, plain, back to back: the plain iterations on both sides are the
        # overhead's reference, and their agreement says the machine held still meanwhile.
        # The garbage collector is off throughout, as in the timing loop: the objects the
        # probe and the profiler leave behind would otherwise be collected inside the
        # iterations that follow them.
        gc.collect()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            plain_before = timed(scoped=False)
            with (_quiet_native_stderr(),
                  torch.profiler.profile(activities=activities) as profiler):
                profiled = timed(scoped=True)
            plain_after = timed(scoped=False)
        finally:
            if gc_was_enabled:
                gc.enable()
    recorded = [event for event in profiler.events() if event.name == ITERATION_SCOPE]
    if len(recorded) != iterations:
        raise RecstackError(f"{point.label}: the profiler recorded {len(recorded)} of "
                            f"{iterations} iterations")
    rows, walls = summarize_iterations(recorded, on_cuda)
    # The iteration's own scope (absent from the unprofiled loop) and the part scopes opened
    # from Python, each costing at least what an empty Python scope costs under the profiler.
    scopes = 1 + statistics.fmean(_scopes_in(event) for event in recorded)
    trace_path = None
    if trace_dir is not None:
        directory = Path(trace_dir)
        directory.mkdir(parents=True, exist_ok=True)
        trace_path = str(directory / f"{point.key()}.json")
        profiler.export_chrome_trace(trace_path)
    return OperatorProfile(operators=rows, iteration_wall_us=walls, profiled_us=profiled,
                           plain_before_us=plain_before, plain_after_us=plain_after,
                           time_basis="cuda" if on_cuda else "cpu",
                           profiler_outside_us=scopes * scope_us, trace_path=trace_path,
                           clock=clock_reading, clock_note=clock_note,
                           extra={"scope_cost_us": scope_us, "scopes_per_iteration": scopes})


def collect_profile(point: Point, settings: TimingSettings,
                    options: LevelOptions | None = None) -> ProfileRecord:
    """The operators level's collector: profiles ``point`` (in a fresh worker) and returns
    its record."""
    options = options or LevelOptions()
    return profile_record(profile_point(point, settings, options.trace_dir, options))


def profile_record(profile: OperatorProfile) -> ProfileRecord:
    """The stored form of a profile: operators per part, and the iteration's times (mean
    profiled wall time, the time no operator covers, the profiler's overhead against the same
    worker's plain iterations, or why there is none) with the operator clock's medians."""
    import pandas as pd

    operators = pd.DataFrame(profile.operators, columns=["part", "op", "calls", "time_us"])
    wall = statistics.fmean(profile.iteration_wall_us)
    covered = float(operators.time_us.sum())
    profiled = statistics.median(profile.profiled_us)
    unprofiled = statistics.median(profile.unprofiled_us)
    overhead, overhead_note = profile.overhead()
    clock: dict[str, Any] = {}
    if profile.clock is not None:
        from recstack.collect.opclock import ClockReading

        medians = ClockReading(**profile.clock).medians()
        clock = {"clock_plain_us": medians["plain_us"],
                 "clock_clocked_us": medians["clocked_us"],
                 "clock_inside_us": medians["inside_us"],
                 "clock_outside_us": medians["outside_us"],
                 "clock_operators": profile.clock["operators"],
                 "clock_observed": profile.clock["observed"],
                 "clock_callback_outside_us": profile.clock.get("callback_outside_us"),
                 "clock": profile.clock}
    return ProfileRecord(operators=operators, profile=Profile(
        iterations=len(profile.iteration_wall_us), time_basis=profile.time_basis,
        wall_us=wall, operator_us=covered, uncovered_us=wall - covered,
        profiled_median_us=profiled, unprofiled_median_us=unprofiled,
        profiler_overhead=overhead, overhead_note=overhead_note,
        plain_before_median_us=statistics.median(profile.plain_before_us),
        plain_after_median_us=statistics.median(profile.plain_after_us),
        overhead_samples_us={"plain_before": profile.plain_before_us,
                             "profiled": profile.profiled_us,
                             "plain_after": profile.plain_after_us},
        trace_path=profile.trace_path, profiler_outside_us=profile.profiler_outside_us,
        clock_note=profile.clock_note, **clock))
