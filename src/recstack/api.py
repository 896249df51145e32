"""The library API: every operation the command line offers, taking plain arguments and
returning data. The CLI is a thin layer over these functions (it parses options, shows
progress and renders what they return); a notebook or another program calls them directly::

    from recstack import api

    if __name__ == "__main__":  # each point runs in a fresh process importing this file
        result = api.sweep(["rmc1"], batch_sizes=[1, 64], row_scale=0.01, min_time=0.2,
                           store="results/example.duckdb")
        frame = result.timings()   # one row per measured point: median_ms, p95_ms, ...

Nothing here prints. Errors a user can fix are :class:`recstack.errors.RecstackError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from recstack.executors import Executor
from recstack.inputs import QuerySpec
from recstack.precision import FP32, Precision
from recstack.store import DEFAULT_STORE, ResultStore
from recstack.sweep import SweepEvent, SweepOutcome, SweepPlan

ZOO = "zoo"
"""Stands for the eight canonical models wherever models are named."""


@dataclass(frozen=True)
class RunStart:
    """What a front end shows when a run starts: its notes, its id, its size, its store (the
    event before a run's first :class:`SweepEvent`, hence its ``kind``)."""

    run_id: str
    store: ResultStore
    points: int
    notes: tuple[str, ...]
    kind: ClassVar[str] = "run"


@dataclass
class RunResult:
    """A measured run: where it is stored, what happened to its points, what was written."""

    run_id: str
    store: ResultStore
    outcome: SweepOutcome
    notes: tuple[str, ...] = ()
    figures: list[Path] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    traces: Path | None = None

    @property
    def failed(self) -> list[tuple[str, str]]:
        return self.outcome.failed

    def timings(self) -> pd.DataFrame:
        """The run's timing points with their statistics (``analysis.systems.load_timings``)."""
        from recstack.analysis.systems import load_timings

        return load_timings(self.store, [self.run_id]) if self.store.path.is_file() \
            else pd.DataFrame()


# ---- building blocks ----------------------------------------------------------------------


def timing_settings(min_time: float = 1.0) -> Any:
    """The timing settings of a run measuring ``min_time`` seconds per point."""
    from recstack.collect.timing import TimingSettings
    from recstack.errors import SpecError

    try:
        return TimingSettings(min_seconds=min_time)
    except SpecError as error:
        raise error.for_option("--min-time") from None


def plan(models: Sequence[str] | None = None, batch_sizes: Sequence[int] | None = None,
         threads: Sequence[int] | None = None, devices: Sequence[str] | None = None,
         backends: Sequence[str] | None = None, row_scale: float | None = None,
         distribution: str = "uniform", seed: int = 0, levels: Sequence[str] = ("timing",),
         hardware_mode: str | None = None, hierarchy: str = "host", no_multiplex: bool = False,
         oversubscribe: bool = False, store: str | Path | None = None,
         cache: str = "cold", here: bool = True,
         precisions: Sequence[Precision] | None = None,
         query: QuerySpec | None = None) -> SweepPlan:
    """The points to measure (every option checked, every point admitted to memory), each
    with queries of the ``cache`` state (:mod:`recstack.working_set`), in each of
    ``precisions`` (default fp32), drawn as ``query`` says (default: ``distribution`` with
    ``seed``; :func:`recstack.trace_queries.parse_queries` makes trace and profile ones).
    ``models`` default to the zoo; ``backends`` to ``auto``, which reads the races stored
    in ``store`` for this machine at each thread count (``recstack backends``), where the
    file exists and holds one, else the shipped choices; those alone when the points are
    not measured ``here`` (a cluster's nodes: this machine's races say nothing of theirs)."""
    from recstack.errors import SpecError
    from recstack.specs import ZOO_NAMES
    from recstack.sweep import plan_sweep

    try:
        query = query or QuerySpec(distribution=distribution, seed=seed)
    except SpecError as error:
        raise error.for_option() from None
    from recstack.backend_race import stored_choices_at
    from recstack.host import usable_cores
    from recstack.limits import is_integer

    # Only counts a race can exist for; planning refuses the others with their message.
    counts = [t for t in (threads or [usable_cores()]) if is_integer(t) and t >= 1]
    choices = (stored_choices_at(store, counts) or None) if here else None
    return plan_sweep(models=list(models or ZOO_NAMES), batch_sizes=batch_sizes,
                      threads=threads, devices=devices, backends=list(backends or ["auto"]),
                      row_scale=row_scale, query=query, seed=seed, levels=levels,
                      hardware_mode=hardware_mode, hierarchy=hierarchy,
                      no_multiplex=no_multiplex, oversubscribe=oversubscribe,
                      backend_choices=choices, cache=cache,
                      precisions=list(precisions or [FP32]))


def measures_here(executor: Executor | None) -> bool:
    """Whether ``executor`` measures on this machine (a cluster's does not)."""
    return not getattr(executor, "remote", False)


def plan_notes(planned: SweepPlan, executor: Executor | None = None) -> list[str]:
    """What a user should read before the plan runs: the plan's notes, where it runs when
    not here and, when other work occupies the cores its points need here, a warning."""
    from recstack.sweep import busy_machine_note

    where = getattr(executor, "notes", None)
    if where is not None:
        return [*planned.notes, *where()]
    return [note for note in (*planned.notes, busy_machine_note(planned)) if note]


def run_folder(store: ResultStore, kind: str, run_id: str) -> Path:
    """``figures/RUN`` or ``traces/RUN`` beside the store (the run id made a safe name)."""
    from recstack.paths import inside

    return inside(store.path.parent / kind, run_id)


def measure(planned: SweepPlan, store: str | Path = DEFAULT_STORE, settings: Any = None,
            resume: bool = False, run_id: str | None = None, trace: bool = False,
            progress: Callable[[SweepEvent], None] | None = None,
            executor: Executor | None = None, command: str = "recstack api",
            on_start: Callable[[RunStart], None] | None = None,
            before: Callable[[ResultStore, str], None] | None = None) -> RunResult:
    """Runs a plan into the store: a new run (or with ``resume`` the given or latest one),
    each point through ``executor`` (default: a fresh local worker per point).
    ``before(store, run_id)`` writes what belongs to the run before its first point;
    ``on_start`` is told when the run starts (its notes: what a user should read first);
    ``trace`` keeps a Chrome trace of every operator-profile point beside the store."""
    from recstack.sweep import open_run, run_sweep

    results = ResultStore(store)
    settings = settings if settings is not None else timing_settings()
    planned = planned.on_platforms(getattr(executor, "covered", ()))
    run = open_run(results, settings, command, resume, run_id)
    if before is not None:
        before(results, run)
    notes = tuple(plan_notes(planned, executor))  # once: the busy-machine note samples the CPU
    if on_start is not None:
        on_start(RunStart(run, results, len(planned.points), notes))
    traces = run_folder(results, "traces", run) if trace else None
    options = dataclasses.replace(planned.options,
                                  trace_dir=None if traces is None else str(traces))
    outcome = run_sweep(planned, results, run, settings, progress=progress,
                        executor=executor, options=options)
    return RunResult(run_id=run, store=results, outcome=outcome, notes=notes, traces=traces)


# ---- the commands -------------------------------------------------------------------------


def sweep(models: Sequence[str], store: str | Path = DEFAULT_STORE, min_time: float = 1.0,
          resume: bool = False, run_id: str | None = None, trace: bool = False,
          progress: Callable[[SweepEvent], None] | None = None,
          executor: Executor | None = None, command: str = "recstack api",
          on_start: Callable[[RunStart], None] | None = None,
          **plan_options: Any) -> RunResult:
    """A custom sweep (models x batch sizes x threads x devices x backends x levels);
    ``plan_options`` are :func:`plan`'s."""
    planned = plan(models, store=store, here=measures_here(executor), **plan_options)
    return measure(planned, store, timing_settings(min_time), resume, run_id, trace,
                   progress, executor, command, on_start)


def write_figures(result: RunResult) -> list[Path]:
    """The run's figures of every level it measured, in ``figures/RUN`` beside the store."""
    from recstack.report.figures import write_run_figures

    written = write_run_figures(result.store, result.run_id,
                                run_folder(result.store, "figures", result.run_id))
    result.figures.extend(written)
    return written


def characterize(models: Sequence[str] | None = None, store: str | Path = DEFAULT_STORE,
                 **options: Any) -> RunResult:
    """The main job: the paper on this machine within a time budget (ceilings and a backend
    race where none are stored, timing and operator profiles cold and warm, the hardware
    level, a small correlation design, figures and the report); ``options`` are
    :func:`recstack.main_job.run_main_job`'s (``budget_minutes``, ``quick``, ``levels``...)."""
    from recstack.main_job import run_main_job

    return run_main_job(models, store, **options)


def profile(models: Sequence[str] | None = None, store: str | Path = DEFAULT_STORE,
            **options: Any) -> RunResult:
    """The software level alone: operator breakdown of every model and batch size."""
    result = sweep(models or [], store, levels=("operators",), **options)
    write_figures(result)
    return result


def hardware(models: Sequence[str] | None = None, store: str | Path = DEFAULT_STORE,
             batch_sizes: Sequence[int] = (1, 16, 64), threads: Sequence[int] = (1,),
             mode: str | None = None, hierarchy: str = "host", **options: Any) -> RunResult:
    """The hardware level alone: top-down fractions and miss rates, measured with perf
    where the CPU exposes counters, simulated with valgrind (and labelled so) elsewhere."""
    from recstack.collect.cache_hierarchy import preset

    preset(hierarchy)  # refuses unknown names before anything runs
    result = sweep(models or [], store, levels=("hardware",), batch_sizes=batch_sizes,
                   threads=threads, devices=["cpu"], backends=["eager"],
                   hardware_mode=mode, hierarchy=hierarchy, **options)
    write_figures(result)
    return result


def ceilings(store: str | Path = DEFAULT_STORE, threads: int | None = None,
             refresh: bool = False, quick: bool = False,
             executor: Executor | None = None) -> tuple[pd.DataFrame, bool]:
    """This machine's ceilings at ``threads`` (default: every usable core), or with a
    cluster's ``executor`` those of each platform it measures on: the newest stored set,
    or measured now (and stored) when there is none or ``refresh``. Returns (the ceilings,
    whether any were measured now)."""
    from recstack.collect.ceiling_kernels import CeilingSettings
    from recstack.collect.ceilings import ensure_ceilings, ensure_fleet_ceilings
    from recstack.host import usable_cores

    results = ResultStore(store)
    results.check_writable()  # before minutes of measuring, not after
    settings = CeilingSettings.quick() if quick else CeilingSettings()
    if not measures_here(executor):
        return ensure_fleet_ceilings(results, executor, threads, refresh, settings)
    return ensure_ceilings(results, threads or usable_cores(), refresh=refresh,
                           settings=settings)


def report(store: str | Path = DEFAULT_STORE, runs: Sequence[str] | None = None,
           html: str | Path | None = None, markdown: str | Path | None = None) -> list[Path]:
    """One self-contained HTML page and a Markdown summary of stored runs (default: the
    latest run, plus the newest run of each level it did not measure)."""
    from recstack.report.html import build_report, default_report_paths, write_report

    results = ResultStore(store)
    built = build_report(results, list(runs) if runs else None)
    default_html, default_markdown = default_report_paths(results, built.run_ids[0])
    return write_report(built, Path(html) if html else default_html,
                        Path(markdown) if markdown else default_markdown)


@dataclass(frozen=True)
class Comparison:
    """Two runs point by point (``analysis.compare.COMPARISON_COLUMNS``), their platforms,
    and what the reader must know before trusting a difference."""

    points: pd.DataFrame
    platforms: pd.DataFrame
    warnings: list[str]


def compare(run_a: str, run_b: str, store: str | Path = DEFAULT_STORE, alpha: float = 0.05,
            platform_a: str | None = None, platform_b: str | None = None) -> Comparison:
    """Run B against run A: median ratio and a Mann-Whitney U test per matched point,
    Holm-corrected; warnings when settings, method versions, precisions or completeness
    differ, or a side spans platforms. ``platform_a`` / ``platform_b``: only the points that
    platform measured of the side (two platforms of one run: ``run_b`` = ``run_a``)."""
    from recstack.analysis import compare as comparison
    from recstack.analysis.runs import runs_with_status

    results, sides = ResultStore(store), (platform_a, platform_b)
    table = comparison.compare_runs(results, run_a, run_b, alpha, *sides)
    warnings = comparison.platform_warnings(results, run_a, run_b, *sides)
    warnings += comparison.precision_warnings(results, run_a, run_b, *sides)
    changed = comparison.settings_differences(results, run_a, run_b)
    if changed:
        warnings.append("the runs were measured with different timing settings: "
                        + ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in changed.items())
                        + "; differences may come from the settings")
    methods = comparison.method_differences(results, run_a, run_b)
    if methods:
        warnings.append("the runs measured with different method versions ("
                        + ", ".join(f"{level} {a} vs {b}" for level, (a, b) in methods.items())
                        + "): their numbers may differ by method, not by machine")
    warnings += [f"run {run.run_id} did not finish ({run.status}): points it did not "
                 "measure are listed as in one run only"
                 for run in runs_with_status(results.runs()).itertuples()
                 if run.run_id in (run_a, run_b) and not run.complete]
    return Comparison(table, comparison.run_platforms(results, run_a, run_b, *sides), warnings)


@dataclass
class CorrelationRun:
    """A design-space run and the correlation of its variants' features with their
    bottlenecks (``analysis.correlation.CorrelationResult``)."""

    run: RunResult
    analysis: Any


def correlate(space: Any, seed: int = 0, batch_sizes: Sequence[int] = (1, 64),
              levels: Sequence[str] = ("timing", "operators"), threads: Sequence[int] = (1,),
              store: str | Path = DEFAULT_STORE, min_time: float = 0.5, resume: bool = False,
              run_id: str | None = None,
              progress: Callable[[SweepEvent], None] | None = None,
              executor: Executor | None = None, command: str = "recstack api",
              on_start: Callable[[RunStart], None] | None = None,
              precisions: Sequence[Precision] = (FP32,)) -> CorrelationRun:
    """Measures the variants of a design space (``designspace.DesignSpace``) at each batch
    size and relates their features to their bottlenecks; the design is stored with the
    run and the figures written beside the store."""
    from recstack.analysis.bottlenecks import load_bottlenecks
    from recstack.analysis.correlation import DOMINANCE_THRESHOLD
    from recstack.analysis.correlation import correlate as analyse
    from recstack.designspace import generate_variants, variants_frame
    from recstack.report.correlation import write_correlation_figures
    from recstack.sweep import check_options, plan_specs

    generated = generate_variants(space, seed)
    check_options([v.name for v in generated], batch_sizes, threads, ["cpu"], ["eager"],
                  levels)
    planned = plan_specs([v.spec for v in generated], batch_sizes, threads, ["cpu"],
                         ["eager"], seed=seed, levels=levels, precisions=precisions,
                         notes=[f"design space: {len(generated)} variants of "
                                f"{', '.join(space.models)} ({space.sampler}, seed {seed}, "
                                f"from {space.source})"])
    design = variants_frame(generated, space, seed)

    def record_design(results: ResultStore, run: str) -> None:
        results.record_design_space(run, design)

    result = measure(planned, store, timing_settings(min_time), resume, run_id, False,
                     progress, executor, command, on_start, before=record_design)
    analysis = analyse(load_bottlenecks(result.store, [result.run_id]))
    result.figures.extend(write_correlation_figures(
        analysis, run_folder(result.store, "figures", result.run_id), DOMINANCE_THRESHOLD))
    return CorrelationRun(result, analysis)


def serve(models: Sequence[str] | None = None, store: str | Path = DEFAULT_STORE,
          **options: Any) -> RunResult:
    """The serving level: each model deployed as a pool of engines under MLPerf LoadGen's
    load, its latency-bounded throughput searched (or the rates given measured), or with
    ``tune`` its deployment tuned against the baseline; ``options`` are
    :func:`recstack.serving.command.serve_models`'s."""
    from recstack.serving.command import serve_models

    return serve_models(models or [], store, **options)


# ---- backend races ------------------------------------------------------------------------


def backends(store: str | Path = DEFAULT_STORE, threads: int | None = None,
             refresh: bool = False, models: Sequence[str] | None = None,
             batch_sizes: Sequence[int] = (1, 16, 256),
             row_scale: float = 0.01) -> tuple[pd.DataFrame, bool]:
    """The backends ``auto`` runs on this machine at ``threads`` (default: every usable
    core): the newest race stored for it when it covers ``models`` (default: the zoo) at
    ``batch_sizes`` and ``row_scale``, else raced now (about a minute for the zoo) and
    stored. Returns (rows of ``backend_choices``: one per model and batch size with the
    chosen backend and every candidate's median, whether it was raced now)."""
    from recstack.analysis.systems import order_models
    from recstack.backend_race import ensure_backend_choices
    from recstack.errors import RecstackError
    from recstack.host import usable_cores
    from recstack.limits import check_scale, is_integer
    from recstack.specs import ZOO_NAMES
    from recstack.text import shown

    cores = usable_cores()
    count = cores if threads is None else threads
    if not is_integer(count) or not 1 <= count <= cores:
        raise RecstackError(f"--threads: {shown(count)} is not allowed; expected one integer "
                            f"from 1 to {cores} (the cores this process may use)")
    sizes = list(batch_sizes)
    if not sizes or any(not is_integer(size) or size < 1 for size in sizes):
        raise RecstackError(f"--batch-sizes: {shown(batch_sizes)} is not allowed; expected "
                            "positive integers")
    check_scale(row_scale, "--row-scale")
    if row_scale is None:
        raise RecstackError("--row-scale: None is not allowed; expected a finite number "
                            "greater than 0 (1 is full size)")
    names = [name for name in (models or [ZOO]) if name]
    names = list(dict.fromkeys(n for name in names
                               for n in (ZOO_NAMES if name == ZOO else [name])))
    results = ResultStore(store)
    results.check_writable()  # before a minute of racing, not after
    frame, raced = ensure_backend_choices(results, int(count), names, sizes, refresh=refresh,
                                          row_scale=float(row_scale))
    return order_models(frame), raced
