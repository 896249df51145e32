"""The main job, run: the stages of :mod:`recstack.paper_job` in order, within the budget,
into one store; then the figures and the report. Prints nothing: a front end follows it
through ``on_stage`` (:class:`StageEvent`) and the measuring callbacks."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from recstack import api
from recstack.errors import RecstackError
from recstack.precision import FP32
from recstack.paper_job import (
    PaperPlan,
    Stage,
    budget_seconds,
    characterization_points,
    design_levels,
    design_variants_per_model,
    hardware_pairs,
    plan_paper,
    serving_specs,
    tier_specs,
)
from recstack.sweep import SweepPlan


@dataclass(frozen=True)
class StageEvent:
    """A stage of the main job starting, ending or skipped (``what``: ``plan``, ``start``,
    ``done`` or ``skipped``), with the budget left when it happened."""

    what: str
    plan: PaperPlan
    stage: Stage | None
    left_s: float
    detail: str = ""
    kind: ClassVar[str] = "stage"


@dataclass
class Clock:
    """The budget's clock: seconds left, and whether a stage still fits."""

    budget_s: float
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def fits(self, stage: Stage) -> bool:
        return stage.estimate_s <= self.left_s


def joined(plans: Sequence[SweepPlan]) -> SweepPlan:
    """One plan of the points of ``plans`` in order (each once), their notes once each, the
    level options of the last that has hardware points (else the first's)."""
    points, notes, basis = {}, {}, {}
    for plan in plans:
        for point in plan.points:
            points.setdefault(point.key(), point)
        notes.update(dict.fromkeys(plan.notes))
        basis.update(plan.backend_basis)
    options = next((plan.options for plan in reversed(plans) if plan.options.hardware_mode),
                   plans[0].options)
    return SweepPlan(points=tuple(points.values()), notes=tuple(notes), options=options,
                     backend_basis=basis)


def warm_copies(plan: SweepPlan, wanted: set[tuple[str, int]]) -> SweepPlan:
    """The timing points of ``plan`` whose (model, batch size) is ``wanted``, warm."""
    points, basis = [], {}
    for point in plan.points:
        if point.level == "timing" and (point.spec.name, point.batch_size) in wanted:
            warm = dataclasses.replace(point, cache="warm")
            points.append(warm)
            basis[warm.key()] = plan.backend_basis.get(point.key(), "")
    return SweepPlan(points=tuple(points), notes=(), options=plan.options, backend_basis=basis)


def _stored(store: api.ResultStore, threads: int, executor: Any) -> tuple[bool, bool]:
    """Whether the ceilings and backend race at ``threads`` of the machines that measure
    are stored: this one's, or on a cluster each platform's ceilings (its nodes run no
    race: ``auto`` takes the shipped choices there)."""
    from recstack.backend_race import stored_choices
    from recstack.platform_info import collect_platform, platform_id

    if not api.measures_here(executor):
        return all(not store.load_ceilings(machine.platform_id, threads).empty
                   for machine in executor.machines()), True
    identity = platform_id(collect_platform())
    ceilings = store.load_ceilings(identity, threads)
    return not ceilings.empty, stored_choices(store, identity, threads) is not None


def _serve(result: api.RunResult, specs: Sequence[Any], tier: Any, row_scale: float | None,
           settings: Any, progress: Callable[[Any], None] | None, executor: Any,
           query: Any = None) -> str:
    """The serving stage: each model's deployment tuned against the baseline, into the
    characterization run (so its report has the serving section), its requests drawn as
    ``query`` says (default uniform); what it found."""
    from recstack.serving.command import plan_models
    from recstack.sweep.serving import run_serving

    plan = plan_models([spec.name for spec in specs], result.store.path, tune=True,
                       here=api.measures_here(executor),
                       row_scale=row_scale,
                       min_duration=tier.serving_min_duration, max_tests=6, tolerance=0.15,
                       library_requests=128, query=query)
    outcome = run_serving(plan, result.store, result.run_id, settings, progress=progress,
                          executor=executor)
    result.outcome.measured += outcome.measured
    result.outcome.failed.extend(outcome.failed)
    gains = [f"{model} {tuned.gain:.2f}x" if tuned.gain else f"{model} n/a"
             for model, tuned in outcome.tuned.items()]
    return "tuned over baseline: " + ", ".join(gains)


def run_main_job(models: Sequence[str] | None = None, store: str | Path = api.DEFAULT_STORE,
                 levels: Sequence[str] = ("timing", "operators", "hardware"),
                 budget_minutes: float | None = None, quick: bool = False,
                 min_time: float | None = None, batch_sizes: Sequence[int] | None = None,
                 threads: Sequence[int] | None = None, devices: Sequence[str] | None = None,
                 backends: Sequence[str] | None = None, row_scale: float | None = None,
                 oversubscribe: bool = False, trace: bool = False, resume: bool = False,
                 run_id: str | None = None, progress: Callable[[Any], None] | None = None,
                 on_start: Callable[[Any], None] | None = None,
                 on_stage: Callable[[StageEvent], None] | None = None,
                 executor: Any = None, command: str = "recstack api",
                 precisions: Sequence[Any] | None = None,
                 query: Any = None) -> api.RunResult:
    """The whole paper on this machine within ``budget_minutes`` (default 30; 5 with
    ``quick``; 20 with the serving level): see :mod:`recstack.paper_job`. Returns the
    characterization run, its notes saying which stages were skipped and why, with the
    figures and report written. ``query`` (a :class:`~recstack.inputs.QuerySpec`, e.g. a
    trace's) feeds the characterization, hardware and serving stages; the correlation
    design's variants change their tables, so they keep synthetic queries.
    ``resume`` continues the characterization run ``run_id`` (default: the latest)."""
    from recstack.admission import available_memory_bytes
    from recstack.analysis.runs import latest_characterization
    from recstack.doctor import hardware_mode, probe_pmu, probe_valgrind
    from recstack.host import usable_cores
    from recstack.specs import ZOO_NAMES, resolve_spec
    from recstack.sweep import check_options, check_precisions, fit_spec

    budget = budget_seconds(budget_minutes, quick, "serving" in levels)
    clock = Clock(budget)
    notify = on_stage or (lambda event: None)
    names = list(models or ZOO_NAMES)
    thread_counts = list(threads or [usable_cores()])
    check_options(names, batch_sizes or [1], thread_counts, devices or ["cpu"],
                  backends or ["auto"], levels, row_scale, oversubscribe)
    check_precisions(precisions or [FP32], backends or ["auto"], devices or ["cpu"])
    if query is not None:
        from recstack.trace_queries import check_models

        check_models(names, query)  # before any stage
    results = api.ResultStore(store)
    results.check_writable()  # before minutes of measuring, not after
    if min_time is not None:
        api.timing_settings(min_time)  # refused before anything runs
    if resume and run_id is None and results.path.is_file():
        # The latest characterization: a design run made after it is not what resumes.
        run_id = latest_characterization(results)
    available = available_memory_bytes()
    specs = [fit_spec(resolve_spec(name), row_scale, available)[0] for name in names]
    mode, _ = hardware_mode([probe_pmu(), probe_valgrind()])
    mode = None if mode == "unavailable" else mode
    most_threads = max(thread_counts)
    has_ceilings, has_race = _stored(results, most_threads, executor)
    paper = plan_paper(specs, budget, levels, mode, not has_ceilings, not has_race,
                       "quick" if quick else None, batch_sizes, row_scale is not None,
                       precisions or (FP32,))
    if not api.measures_here(executor):
        paper = dataclasses.replace(paper, stages=tuple(
            dataclasses.replace(stage, skipped="the points run on a cluster, where auto "
                                               "takes the shipped choices")
            if stage.name == "backend race" else stage for stage in paper.stages))
    tier = paper.tier
    specs = tier_specs(specs, tier, row_scale is not None)
    scale = row_scale if row_scale is not None else tier.row_scale
    seconds = min_time if min_time is not None else tier.min_time
    notify(StageEvent("plan", paper, None, clock.left_s))
    notes: list[str] = list(paper.notes)
    began = {"at": time.monotonic()}  # when the current stage started

    def stage(name: str) -> Stage | None:
        """The stage when it runs now (told to the front end), else None (told why)."""
        current = paper.stage(name)
        if current.skipped is None and not clock.fits(current):
            current = dataclasses.replace(
                current, skipped=f"estimated {current.estimate_s / 60:.1f} min, "
                                 f"{max(clock.left_s, 0) / 60:.1f} min of the budget left")
        if current.skipped is not None:
            if current.estimate_s or name in ("hardware", "correlation"):
                notes.append(f"{name}: skipped ({current.skipped})")
            notify(StageEvent("skipped", paper, current, clock.left_s, current.skipped))
            return None
        began["at"] = time.monotonic()
        notify(StageEvent("start", paper, current, clock.left_s))
        return current

    def done(current: Stage, detail: str = "") -> None:
        took = f"took {(time.monotonic() - began['at']) / 60:.1f} min"
        notify(StageEvent("done", paper, current, clock.left_s,
                          f"{took}; {detail}" if detail else took))

    if (current := stage("ceilings")) is not None:
        for count in sorted(set(thread_counts)):
            api.ceilings(results.path, count, executor=executor)
        done(current)
    if (current := stage("backend race")) is not None:
        for count in sorted(set(thread_counts)):
            api.backends(results.path, threads=count, models=names)
        done(current)

    sizes = list(batch_sizes or tier.batch_sizes)
    measured_levels = [level for level in levels if level not in ("hardware", "serving")]
    plan_options: dict[str, Any] = {
        "devices": devices, "backends": backends, "row_scale": scale, "threads": thread_counts,
        "oversubscribe": oversubscribe, "store": results.path,
        "here": api.measures_here(executor), "precisions": precisions, "query": query}
    characterized = api.plan(names, batch_sizes=sizes, levels=measured_levels,
                             **plan_options)
    wanted = {(spec.name, batch) for spec, batch, _, cache
              in characterization_points(specs, tier, sizes, levels) if cache == "warm"}
    planned = joined([characterized, warm_copies(characterized, wanted)])
    settings = api.timing_settings(seconds)
    # The core of the paper: measured whatever the budget says (the tiers size it).
    current = paper.stage("characterization")
    began["at"] = time.monotonic()
    notify(StageEvent("start", paper, current, clock.left_s))
    result = api.measure(planned, results.path, settings, resume, run_id, trace, progress,
                         executor, command, on_start)
    done(current)

    if (current := stage("hardware")) is not None:
        pairs = hardware_pairs(specs, tier, mode == "measured", sizes)
        hardware = joined([api.plan([spec.name], batch_sizes=[batch], levels=["hardware"],
                                    hardware_mode=mode, **{**plan_options,
                                                           "devices": ["cpu"]})
                           for spec, batch in pairs])
        api.measure(hardware, results.path, settings, True, result.run_id, False, progress,
                    executor, command, on_start)
        done(current)

    if (current := stage("correlation")) is not None:
        from recstack.designspace import default_design_space

        if query is not None and query.distribution != "uniform":
            notes.append(f"correlation: the design's variants change their tables, so they "
                         f"read uniform queries, not {query.distribution}")

        # Variants of the job's models (the eight by default).
        space = dataclasses.replace(
            default_design_space(), models=tuple(names),
            variants_per_model=design_variants_per_model(tier, len(names)))
        try:
            design = api.correlate(space, batch_sizes=tier.design_batch_sizes,
                                   levels=design_levels(tier, levels, mode),
                                   store=results.path, min_time=seconds, progress=progress,
                                   executor=executor, command=command, on_start=on_start)
        except RecstackError as error:
            # The design's points are stored; only its analysis could not be made.
            notes.append(f"correlation: not analysed ({error})")
            done(current, f"not analysed: {error}")
        else:
            result.figures.extend(design.run.figures)
            done(current, f"design run {design.run.run_id}")

    if (current := stage("serving")) is not None:
        done(current, _serve(result, serving_specs(specs, tier), tier, scale, settings,
                             progress, executor, query))

    api.write_figures(result)
    from recstack.report.html import report_run

    result.reports.extend(report_run(result.store, result.run_id))
    result.notes = (*result.notes, *notes)
    return result
