"""Commands that measure: ``run`` (the main job) and ``sweep`` (custom sweeps)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from recstack.cli import format as fmt
from recstack.cli import summaries
from recstack.cli.app import app, console, make_console
from recstack.cli.options import (DEFAULT_STORE, JsonOption, OversubscribeOption,
                                  ScaleOption, int_list)
from recstack.errors import RecstackError
from recstack.text import printable

ModelOption = Annotated[list[str] | None, typer.Option(
    "--model", "-m", help="Zoo name, DeepRecSys alias or spec file (repeatable).")]
BatchOption = Annotated[str | None, typer.Option(
    "--batch-sizes", help="Comma-separated batch sizes. Default: 1,4,16,...,4096.")]
ThreadsOption = Annotated[str | None, typer.Option(
    "--threads", help="Comma-separated intra-op thread counts. Default: all usable cores.")]
DeviceOption = Annotated[list[str] | None, typer.Option(
    "--device", help="cpu, cuda or cuda:N (repeatable). Default: every device present.")]
OutOption = Annotated[str, typer.Option("--out", help="The results database file.")]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Continue the latest run in the store (or --run-id): points it already "
                     "measured are skipped, failed ones are measured again.")]
RunIdOption = Annotated[str | None, typer.Option(
    "--run-id", help="Name of the run to create, or with --resume the run to continue.")]
MinTimeOption = Annotated[float, typer.Option(
    "--min-time", help="Seconds of timed iterations per point (after warm-up).")]
DistributionOption = Annotated[str, typer.Option(
    "--distribution", help="Sparse id distribution: uniform, zipf or locality.")]
BackendOption = Annotated[list[str] | None, typer.Option(
    "--backend", help="Execution backend: eager, fused, compile, static (Static Runtime, "
                      "CPU), or auto (the fastest measured for each model and batch size: "
                      "src/recstack/backend_choice.yaml). Repeatable: several backends are "
                      "compared in one sweep. Default: auto.")]
TraceOption = Annotated[bool, typer.Option(
    "--trace", help="Keep a Chrome/Perfetto trace of every operator-profile point, next to "
                    "the store (traces/RUN_ID/).")]


def _settings(min_time: float) -> Any:
    from recstack.collect.timing import TimingSettings
    from recstack.errors import SpecError

    try:
        return TimingSettings(min_seconds=min_time)
    except SpecError as error:
        raise error.for_option("--min-time") from None


def _measure(plan: Any, out: str, settings: Any, resume: bool, run_id: str | None,
             trace: bool = False, display: Console = console,
             before: Any = None) -> tuple[Any, Any]:
    """Runs the plan into the store with progress on ``display``; returns (store,
    outcome). ``before(store, run_id)`` runs once the run exists, before its first point."""
    from recstack.store import ResultStore
    from recstack.sweep import busy_machine_note, open_run, run_sweep

    store = ResultStore(out)
    command = "recstack " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run_id = open_run(store, settings, command, resume, run_id)
    if before is not None:
        before(store, run_id)
    trace_dir = str(_run_folder(store, "traces", run_id)) if trace else None
    for note in [*plan.notes, busy_machine_note(plan)]:
        if note:
            display.print(f"note: {note}", highlight=False)
    display.print(f"run {run_id}: {len(plan.points)} points into {store.path}", highlight=False)
    if display.is_terminal:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                   TimeRemainingColumn())
        with Progress(*columns, console=display) as progress:
            task = progress.add_task("starting", total=len(plan.points))

            def update(event: Any) -> None:
                if event.kind == "start":
                    progress.update(task, description=escape(printable(event.point.label)))
                else:
                    progress.advance(task)
                    if event.kind == "failed":
                        progress.console.print(f"failed: {event.point.label}: {event.error}",
                                               highlight=False, markup=False)

            outcome = run_sweep(plan, store, run_id, settings, progress=update,
                                trace_dir=trace_dir)
    else:
        def log(event: Any) -> None:
            where = f"[{event.index + 1}/{event.total}] {event.point.label}"
            if event.kind == "done" and event.median_ms is None:
                display.print(f"{where}: {event.point.collector} collected", highlight=False,
                              markup=False)
            elif event.kind == "done":
                display.print(f"{where}: median {fmt.ms(event.median_ms)} ms", highlight=False,
                              markup=False)
            elif event.kind == "failed":
                display.print(f"{where}: failed: {event.error}", highlight=False, markup=False)
            elif event.kind == "skipped":
                display.print(f"{where}: already measured", highlight=False, markup=False)

        outcome = run_sweep(plan, store, run_id, settings, progress=log, trace_dir=trace_dir)
    return store, outcome


def _report_outcome(outcome: Any, display: Console = console) -> None:
    if outcome.skipped:
        display.print(f"{outcome.skipped} points were already measured in this run (skipped)")
    if outcome.warnings:
        display.print(Text.assemble(
            (f"{len(outcome.warnings)} points had a high spread", "yellow"),
            " (p5-p95 range over half the median); they are flagged `unstable` in the store. "
            "The machine may be busy or changing frequency: close other work, measure longer "
            "(--min-time) or fix the thread count (--threads)."))
    for label, error in outcome.failed:
        display.print(f"failed: {label}: {error}", highlight=False, markup=False)


def _run_folder(store: Any, kind: str, run_id: str) -> Path:
    """``figures/RUN`` or ``traces/RUN`` beside the store (the run id made a safe name)."""
    from recstack.paths import inside

    return inside(store.path.parent / kind, run_id)


def _figures_dir(store: Any, outcome: Any) -> Path:
    return _run_folder(store, "figures", outcome.run_id)


def _finish(store: Any, outcome: Any, figures: list[Path], trace: bool = False) -> None:
    """What every measuring command ends with: where things went, what went wrong, and a
    non-zero exit status when a point failed."""
    for path in figures:
        console.print(f"figure: {path}", highlight=False)
    if trace:
        console.print(f"traces: {_run_folder(store, 'traces', outcome.run_id)}",
                      highlight=False)
    console.print(f"store: {store.path} (run {outcome.run_id}; `recstack results` lists runs)",
                  highlight=False)
    _report_outcome(outcome)
    if outcome.failed:
        raise typer.Exit(1)


def _levels(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _plan(models: list[str], batch_sizes: str | None, threads: str | None,
          devices: list[str] | None, scale: float | None, distribution: str, seed: int,
          levels: list[str], hardware_mode: str | None = None, hierarchy: str = "host",
          no_multiplex: bool = False, backends: list[str] | None = None,
          oversubscribe: bool = False) -> Any:
    from recstack.errors import SpecError
    from recstack.inputs import QuerySpec
    from recstack.sweep import plan_sweep

    try:
        query = QuerySpec(distribution=distribution, seed=seed)
    except SpecError as error:
        raise error.for_option() from None
    return plan_sweep(
        models=models,
        batch_sizes=int_list("--batch-sizes", batch_sizes) if batch_sizes is not None else None,
        threads=int_list("--threads", threads) if threads is not None else None,
        devices=devices or None,
        backends=backends or ["auto"],
        scale=scale, query=query, seed=seed, levels=levels, hardware_mode=hardware_mode,
        hierarchy=hierarchy, no_multiplex=no_multiplex, oversubscribe=oversubscribe,
    )


@app.command()
def sweep(
    model: ModelOption = None,
    batch_sizes: BatchOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    scale: ScaleOption = None,
    out: OutOption = DEFAULT_STORE,
    sweep_file: Annotated[str | None, typer.Option(
        "--sweep-file", help="YAML/JSON file with models, batch_sizes, threads, devices, "
                             "backends, scale, query, seed.")] = None,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    min_time: MinTimeOption = 1.0,
    distribution: DistributionOption = "uniform",
    seed: Annotated[int, typer.Option(help="Seed of weights and queries.")] = 0,
    levels: Annotated[str, typer.Option(
        "--levels", help="What to measure: timing, operators, or both (comma-separated).")]
    = "timing",
    trace: TraceOption = False,
    backend: BackendOption = None,
    oversubscribe: OversubscribeOption = False,
    as_json: JsonOption = False,
) -> None:
    """Measure a custom sweep (models x batch sizes x threads x devices) into the store."""
    from recstack.analysis.systems import load_timings
    from recstack.sweep import plan_sweep
    from recstack.sweepfile import load_sweep_file

    settings = _settings(min_time)
    if sweep_file:
        options = load_sweep_file(sweep_file)
        if model:
            options["models"] = model
        if backend:
            options["backends"] = backend
        if oversubscribe:
            options["oversubscribe"] = True
        options.setdefault("backends", ["auto"])
        if "models" not in options:
            raise RecstackError("--model: nothing given; name models with --model or in the "
                                "sweep file")
        plan = plan_sweep(**options)
    else:
        if not model:
            raise RecstackError("--model: nothing given; name at least one model (e.g. "
                                "--model rmc1) or use --sweep-file")
        plan = _plan(model, batch_sizes, threads, device, scale, distribution, seed,
                     _levels(levels), backends=backend, oversubscribe=oversubscribe)
    # With --json, stdout is the JSON alone: progress and notes go to stderr.
    display = make_console(stderr=True) if as_json else console
    store, outcome = _measure(plan, out, settings, resume, run_id, trace, display)
    timings = load_timings(store, [outcome.run_id]) if store.path.is_file() else None
    if as_json:
        fmt.print_json({"run_id": outcome.run_id, "store": str(store.path),
                        "failed": outcome.failed,
                        "points": [] if timings is None else timings.to_dict("records")})
        _report_outcome(outcome, display)
        if outcome.failed:
            raise typer.Exit(1)
        return
    if timings is not None and not timings.empty:
        console.print(summaries.points_table(timings))
    _finish(store, outcome, [])


@app.command()
def run(
    model: ModelOption = None,
    batch_sizes: BatchOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    scale: ScaleOption = None,
    out: OutOption = DEFAULT_STORE,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    min_time: MinTimeOption = 1.0,
    target: Annotated[list[str] | None, typer.Option(
        "--target", help="p95 latency target MODEL=MS (repeatable); overrides the defaults "
                         "(DeepRecSys's targets).")] = None,
    targets_file: Annotated[str | None, typer.Option(
        "--targets", help="YAML file of latency targets (see analysis/latency_targets.yaml)."
    )] = None,
    levels: Annotated[str, typer.Option(
        "--levels", help="Levels to characterize: timing (systems), operators (software), "
                         "hardware (top-down; simulated without counters: slow, opt-in).")]
    = "timing,operators",
    trace: TraceOption = False,
    backend: BackendOption = None,
    oversubscribe: OversubscribeOption = False,
) -> None:
    """The main job: characterize the eight canonical models (full size where they fit) on
    every device present over batch sizes 1 to 4096, store everything, print a summary and
    write figures next to the store."""
    from recstack.analysis.systems import (default_targets, load_targets, load_timings,
                                           with_overrides)
    from recstack.report.html import report_run
    from recstack.report.plots import write_systems_figures
    from recstack.specs import ZOO_NAMES

    targets = load_targets(targets_file) if targets_file else default_targets()
    settings = _settings(min_time)
    plan = _plan(model or list(ZOO_NAMES), batch_sizes, threads, device, scale, "uniform", 0,
                 _levels(levels), backends=backend, oversubscribe=oversubscribe)
    targets = with_overrides(targets, target or [], {point.spec.name for point in plan.points})
    store, outcome = _measure(plan, out, settings, resume, run_id, trace)
    figures_dir = _figures_dir(store, outcome)
    figures = []
    timings = load_timings(store, [outcome.run_id])
    if not timings.empty:
        summaries.print_summary(timings, targets)
        figures += write_systems_figures(timings, figures_dir)
    figures += summaries.software_level(store, outcome.run_id, figures_dir)
    figures += summaries.hardware_level(store, outcome.run_id, figures_dir)
    for path in report_run(store, outcome.run_id):
        console.print(f"report: {path}", highlight=False, markup=False)
    _finish(store, outcome, figures, trace)


@app.command()
def profile(
    model: ModelOption = None,
    batch_sizes: BatchOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    scale: ScaleOption = None,
    out: OutOption = DEFAULT_STORE,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    trace: TraceOption = False,
    backend: BackendOption = None,
    oversubscribe: OversubscribeOption = False,
) -> None:
    """The software level alone: operator breakdown (PyTorch profiler) of every model, batch
    size and device, by operator class and by model part."""
    from recstack.specs import ZOO_NAMES

    settings = _settings(1.0)
    plan = _plan(model or list(ZOO_NAMES), batch_sizes, threads, device, scale, "uniform", 0,
                 ["operators"], backends=backend, oversubscribe=oversubscribe)
    store, outcome = _measure(plan, out, settings, resume, run_id, trace)
    _finish(store, outcome, summaries.software_level(store, outcome.run_id,
                                                     _figures_dir(store, outcome)), trace)


@app.command()
def hardware(
    model: ModelOption = None,
    batch_sizes: Annotated[str, typer.Option(
        "--batch-sizes", help="Comma-separated batch sizes (simulation is slow: keep few).")]
    = "1,16,64",
    threads: Annotated[str, typer.Option("--threads", help="Intra-op threads.")] = "1",
    scale: ScaleOption = None,
    out: OutOption = DEFAULT_STORE,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="measured or simulated; default: what `recstack doctor` finds.")]
    = None,
    hierarchy: Annotated[str, typer.Option(
        "--hierarchy", help="Simulated caches: host, broadwell or cascadelake.")] = "host",
    no_multiplex: Annotated[bool, typer.Option(
        "--no-multiplex", help="Measured counters: run the loop once per small event group "
                               "so no event is multiplexed.")] = False,
    oversubscribe: OversubscribeOption = False,
) -> None:
    """The hardware level alone: top-down fractions, IPC and miss rates per model and batch
    size; measured with perf where the CPU exposes counters, simulated with valgrind (and
    labelled so) where it does not."""
    from recstack.collect.cachesim import preset
    from recstack.specs import ZOO_NAMES

    preset(hierarchy)  # refuses unknown names before anything runs
    settings = _settings(1.0)
    plan = _plan(model or list(ZOO_NAMES), batch_sizes, threads, ["cpu"], scale, "uniform", 0,
                 ["hardware"], hardware_mode=mode, hierarchy=hierarchy,
                 no_multiplex=no_multiplex, oversubscribe=oversubscribe,
                 backends=["eager"])  # the hardware collectors build the eager model
    store, outcome = _measure(plan, out, settings, resume, run_id)
    _finish(store, outcome, summaries.hardware_level(store, outcome.run_id,
                                                     _figures_dir(store, outcome)))
