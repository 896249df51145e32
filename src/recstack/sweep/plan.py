"""Planning a sweep: every option checked, every point resolved (its backend chosen) and
admitted to memory, before anything runs. ``plan_sweep`` and ``plan_specs`` are the only
places a list of points is made."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from recstack.admission import (available_memory_bytes, describe_usable, point_memory,
                                require_point_memory, scale_that_fits, usable_memory)
from recstack.backends import AUTO, BackendChoices, backend_choices, resolve_with_basis
from recstack.collect.hardware import scaled_for_simulation
from recstack.doctor import hardware_mode
from recstack.errors import RecstackError, SpecError
from recstack.host import usable_cores
from recstack.inputs import FILE_DISTRIBUTIONS, QuerySpec
from recstack.levels import LEVEL_NAMES, LevelOptions
from recstack.limits import (INT32_MAX, SEED_MAX, THREADS_MAX, check_int, check_scale,
                             is_integer)
from recstack.points import BACKEND_CHOICES, Point
from recstack.precision import FP32, Precision, unsupported_reason
from recstack.specs import ModelSpec, resolve_spec
from recstack.text import shown
from recstack.trace_queries import held_bytes
from recstack.working_set import DEFAULT_CACHE, check_cache_state, cycled_set, machine_llc_bytes

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096)


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
    options: LevelOptions = LevelOptions()
    """What the levels' collectors need beyond the point (hardware mode, hierarchy...)."""
    backend_basis: dict[str, str] = field(default_factory=dict)
    """Point key -> what chose its backend: ``"as given"``, ``"race <set_id>"`` (a race
    stored for this machine and the point's thread count) or ``"shipped file"``
    (:func:`recstack.backends.resolve_with_basis`)."""

    def on_platforms(self, platforms: Sequence[str]) -> SweepPlan:
        """Each point once per platform, pinned to it (a fleet measured platform by
        platform), in the order of the points; unchanged without ``platforms``."""
        if not platforms:
            return self
        points, basis = [], {}
        for point in self.points:
            for platform in platforms:
                pinned = replace(point, platform=platform)
                points.append(pinned)
                if point.key() in self.backend_basis:
                    basis[pinned.key()] = self.backend_basis[point.key()]
        return SweepPlan(tuple(points), self.notes, self.options, basis)


def fit_spec(spec: ModelSpec, row_scale: float | None, available_bytes: int,
             batch_sizes: Sequence[int] = (1,),
             precisions: Sequence[Precision] = (FP32,)) -> tuple[ModelSpec, str]:
    """The spec at ``row_scale`` if given, else at full size if it fits, else with its tables
    scaled to fit in the available memory less admission's margin (left to the rest of the
    machine), beside what the largest batch that can fit needs besides the model (query
    batches, activations, the worker): one scale for every batch size of the sweep, and for
    every precision (the scale the largest of them fits, so that precisions compare the
    same tables)."""
    if row_scale is not None:
        try:
            return spec.scaled(row_scale), ""
        except SpecError as error:
            raise error.for_option("--row-scale") from None
    usable = usable_memory(available_bytes)
    margin = describe_usable(available_bytes)
    for batch in sorted(set(batch_sizes), reverse=True):
        need = point_memory(spec, batch)
        scales = [scale_that_fits(spec, usable - (need.total - need.model), precision)
                  for precision in precisions]
        fits = None if None in scales else min(scales)
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
               backends: Sequence[str] = ("eager",), row_scale: float | None = None,
               query: QuerySpec | None = None, seed: int = 0,
               available_bytes: int | None = None,
               levels: Sequence[str] = ("timing",), hardware_mode: str | None = None,
               hierarchy: str = "host", no_multiplex: bool = False,
               oversubscribe: bool = False,
               backend_choices: Mapping[int, BackendChoices] | None = None,
               cache: str = DEFAULT_CACHE,
               precisions: Sequence[Precision] = (FP32,)) -> SweepPlan:
    """Every combination of the options, ordered model, device, threads, backend, precision,
    batch, then level (``timing``, ``operators``, ``hardware``: each level of a configuration is
    its own point); ``auto`` backends resolved per point, from ``backend_choices`` (per
    thread count: the race stored for this machine) where given, else the shipped file.
    Every option is checked, and every point admitted to memory
    (:mod:`recstack.admission`), before the plan exists.

    Defaults: batch sizes 1 to 4096 in powers of 4, all usable cores, every device present.
    """
    defaulted = batch_sizes is None
    batch_sizes = list(DEFAULT_BATCH_SIZES) if defaulted else batch_sizes
    threads = [usable_cores()] if threads is None else threads
    devices = available_devices() if devices is None else devices
    check_options(models, batch_sizes, threads, devices, backends, levels, row_scale,
                  oversubscribe)
    check_precisions(precisions, backends, devices)
    check_cache_state(cache, "--cache")
    available = available_memory_bytes() if available_bytes is None else available_bytes
    specs, notes = [], []
    for name in models:
        spec, note = fit_spec(resolve_spec(name), row_scale, available, batch_sizes,
                              precisions)
        specs.append(spec)
        if note:
            notes.append(note)
    # Default batch sizes that do not fit this machine are left out with a note; sizes the
    # user asked for are measured or refused.
    return plan_specs(specs, batch_sizes, threads, devices, backends, query, seed, levels,
                      hardware_mode, hierarchy, no_multiplex, notes, available,
                      drop_unfit=defaulted, backend_choices=backend_choices, cache=cache,
                      precisions=precisions)


def check_precisions(precisions: Sequence[Precision], backends: Sequence[str],
                     devices: Sequence[str]) -> None:
    """Refuses, naming ``--precision``, a precision that an explicit backend or a device of
    the sweep cannot run (``auto`` picks a backend that can)."""
    if not precisions:
        raise RecstackError("--precision: nothing given; expected at least one value")
    for precision in precisions:
        for backend, device in itertools.product(backends, devices):
            reason = unsupported_reason(precision, "fused" if backend == AUTO else backend,
                                        device)
            if reason is not None:
                raise RecstackError(f"--precision: {precision.label!r} is not allowed with "
                                    f"--backend {backend} on {device}; {reason}")


def check_options(models: Sequence[object], batch_sizes: Sequence[int], threads: Sequence[int],
                  devices: Sequence[str], backends: Sequence[str], levels: Sequence[str],
                  row_scale: float | None = None, oversubscribe: bool = False) -> None:
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
        if level not in LEVEL_NAMES:
            raise RecstackError(f"--levels: {shown(level)} is not allowed; expected one of "
                                f"{', '.join(LEVEL_NAMES)}")
    if not levels:
        raise RecstackError("--levels: nothing given; expected at least one level")
    for backend in backends:
        if backend not in BACKEND_CHOICES:
            raise RecstackError(f"--backend: {shown(backend)} is not allowed; expected one of "
                                f"{', '.join(BACKEND_CHOICES)}")
    check_scale(row_scale, "--row-scale")
    check_devices(devices)


def plan_specs(specs: Sequence[ModelSpec], batch_sizes: Sequence[int], threads: Sequence[int],
               devices: Sequence[str], backends: Sequence[str], query: QuerySpec | None = None,
               seed: int = 0, levels: Sequence[str] = ("timing",),
               hardware_mode: str | None = None, hierarchy: str = "host",
               no_multiplex: bool = False, notes: Sequence[str] = (),
               available_bytes: int | None = None, drop_unfit: bool = False,
               backend_choices: Mapping[int, BackendChoices] | None = None,
               cache: str = DEFAULT_CACHE,
               precisions: Sequence[Precision] = (FP32,)) -> SweepPlan:
    """The points of already resolved specs (options checked by :func:`plan_sweep`), in the
    same order: spec, device, threads, backend, precision, batch, level; each admitted to memory (a
    point that does not fit is refused, or with ``drop_unfit`` left out with a note).
    ``auto`` reads ``backend_choices[threads]`` (a race of this machine at that thread
    count) where it has one, else the shipped file; ``backend_basis`` says which."""
    if "serving" in levels:
        raise RecstackError("--levels: 'serving' is not allowed in a sweep; a serving point is "
                            "a deployment under load: `recstack serve` measures it (or "
                            "`recstack run --levels ...,serving`)")
    query = query or QuerySpec()
    seed = check_int("--seed", seed, 0, SEED_MAX)
    notes = list(notes)
    if "hardware" in levels:
        hardware_mode, why = _hardware_mode(hardware_mode)
        notes.append(f"hardware level: {hardware_mode} ({why})")
    choices_at = _choices_by_threads(backend_choices)
    points, bases = [], []
    check_precisions(precisions, backends, devices)
    if query.distribution in FILE_DISTRIBUTIONS:
        from recstack.trace_queries import query_note

        notes.extend(query_note(spec, query) for spec in specs)  # refuses a bad mapping
    for spec, device, count, backend, precision, batch, level in itertools.product(
            specs, devices, threads, backends, precisions, batch_sizes, levels):
        if level == "hardware":
            if device != "cpu":
                continue  # top-down and cache misses are a CPU level
            # The counter and simulation workers build the eager model: say so in the point.
            backend = "eager"
            if hardware_mode == "simulated":
                spec, note = scaled_for_simulation(spec)
                if note and note not in notes:
                    notes.append(note)
        backend, basis = resolve_with_basis(backend, spec, device, batch,
                                            choices_at.get(count), precision)
        points.append(Point(spec=spec, batch_size=batch, device=device, threads=count,
                            backend=backend, query=query, seed=seed, level=level,
                            cache=cache, precision=precision))
        bases.append(basis)
    # With several backends the (eager) hardware points of a configuration repeat: once each.
    unique: dict[str, Point] = {}
    basis_of: dict[str, str] = {}
    for point, basis in zip(points, bases, strict=True):
        unique.setdefault(point.key(), point)
        basis_of.setdefault(point.key(), basis)
    if AUTO in backends:
        bases_at: dict[int, set[str]] = {}
        for point, basis in zip(points, bases, strict=True):
            bases_at.setdefault(point.threads, set()).add(basis)
        notes += _auto_notes(threads, choices_at, bases_at)
    # Cold working sets are sized against the LLC read once here, where the workers run.
    llc = machine_llc_bytes()
    points = _admitted(list(unique.values()), notes, drop_unfit, available_bytes, llc)
    return SweepPlan(points=tuple(points), notes=tuple(notes),
                     options=LevelOptions(hardware_mode=hardware_mode, hierarchy=hierarchy,
                                          no_multiplex=no_multiplex, llc_bytes=llc),
                     backend_basis={point.key(): basis_of[point.key()] for point in points})


def _choices_by_threads(choices: Mapping[int, BackendChoices] | None
                        ) -> dict[int, BackendChoices]:
    """The races given per thread count, less any raced at another thread count than its
    key says: a race at one thread count never chooses for another."""
    return {int(count): race for count, race in (choices or {}).items()
            if race is not None and race.threads == int(count)}


def _auto_notes(threads: Sequence[int], choices_at: Mapping[int, BackendChoices],
                bases_at: Mapping[int, set[str]]) -> list[str]:
    """One note per thread count saying what ``auto`` read."""
    notes = []
    for count in dict.fromkeys(threads):
        race, bases = choices_at.get(count), bases_at.get(count, set())
        if race is not None and race.basis in bases:
            also = " (points it does not cover: the shipped choices)" \
                if "shipped file" in bases else ""
            notes.append(f"auto: backends raced on this machine (race {race.set_id}, "
                         f"t{count}){also}")
        elif "shipped file" in bases:
            measured_on = backend_choices().get("measured_on", "another machine")
            notes.append(f"auto: no race stored for this machine and {count} thread"
                         f"{'s' if count != 1 else ''}: the shipped choices (measured on "
                         f"{measured_on}); `recstack backends` races them here")
    return notes


def _admitted(points: list[Point], notes: list[str], drop_unfit: bool,
              available_bytes: int | None, llc_bytes: int) -> list[Point]:
    """The points whose whole footprint, with the batches of their working set, fits in
    memory (:mod:`recstack.admission`)."""
    available = available_memory_bytes() if available_bytes is None else available_bytes
    unfit: set[tuple[ModelSpec, int, Precision]] = set()
    first: RecstackError | None = None
    # The most batches any point of a (spec, batch) keeps: its cold set when it has one.
    kept: dict[tuple[ModelSpec, int, Precision], int] = {}
    for point in points:
        count = cycled_set(point.spec, point.query, point.batch_size, point.cache,
                           llc_bytes, precision=point.precision).batches
        key = (point.spec, point.batch_size, point.precision)
        kept[key] = max(kept.get(key, 1), count)
    for (spec, batch, precision), count in kept.items():
        try:
            what = "" if precision.is_reference else f" in {precision.label}"
            require_point_memory(spec, batch, f"{spec.name} at batch {batch}{what}", count,
                                 available_bytes=available, precision=precision,
                                 source_bytes=held_bytes(points[0].query),
                                 query=points[0].query)
        except RecstackError as error:
            if not drop_unfit:
                raise
            unfit.add((spec, batch, precision))
            notes.append(f"left out: {error}")
            first = first or error
    kept = [point for point in points
            if (point.spec, point.batch_size, point.precision) not in unfit]
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


def busy_machine_note(plan: SweepPlan, busy: float | None = None) -> str | None:
    """A warning when other work occupies, right now, the cores the plan's multi-threaded
    points need (``busy``: cores kept busy, default :func:`recstack.host.busy_cores`): a point
    whose intra-op threads wait for a busy core at every operator's barrier can run 10 to 100
    times slower (1.9 ms with one thread against 199 ms with two while another process took
    one of two cores)."""
    from recstack.host import busy_cores

    threads = max((point.threads for point in plan.points), default=1)
    if threads < 2:
        return None
    busy = busy_cores() if busy is None else busy
    cores = usable_cores()
    if busy is None or busy + threads <= cores + 0.5:  # half a core of residue is no rival
        return None
    return (f"the machine is busy (other work keeps {busy:.1f} of {cores} usable cores busy "
            f"right now) and points use up to {threads} threads: multi-threaded points may be "
            "slowed many times over by waiting for busy cores. Close other work, or measure "
            "with --threads 1.")
