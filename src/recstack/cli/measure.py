"""Commands that measure: ``run`` (the main job) and ``sweep`` (custom sweeps)."""

from __future__ import annotations

from typing import Annotated

import typer

from recstack import api
from recstack.cli import format as fmt
from recstack.cli import summaries
from recstack.cli.app import app, console, make_console
from recstack.cli.options import (DEFAULT_STORE, AddressOption, ExecutorOption, JsonOption,
                                  OversubscribeOption, PlatformsOption, PrecisionOption,
                                  QueriesOption, ResumeOption, RetriesOption, RowScaleOption,
                                  RunIdOption, StoreOption, TraceOrderOption,
                                  TraceSamplesOption, TraceTablesOption, executor_option,
                                  int_list, levels_list, precision_list, queries_option)
from recstack.cli.progress import (command_line, finish, measure_with_progress,
                                   progress_display, report_outcome)

ModelOption = Annotated[list[str] | None, typer.Option(
    "--model", "-m", help="Zoo name, DeepRecSys alias or spec file (repeatable).")]
BatchOption = Annotated[str | None, typer.Option(
    "--batch-sizes", help="Comma-separated batch sizes. Default: 1,4,16,...,4096.")]
ThreadsOption = Annotated[str | None, typer.Option(
    "--threads", help="Comma-separated intra-op thread counts. Default: all usable cores.")]
DeviceOption = Annotated[list[str] | None, typer.Option(
    "--device", help="cpu, cuda or cuda:N (repeatable). Default: every device present.")]
MinTimeOption = Annotated[float, typer.Option(
    "--min-time", help="Seconds of timed iterations per point (after warm-up).")]
DistributionOption = Annotated[str, typer.Option(
    "--distribution", help="Sparse id distribution: uniform, zipf or locality.")]
BackendOption = Annotated[list[str] | None, typer.Option(
    "--backend", help="Execution backend: eager, fused, compile, static (Static Runtime, "
                      "CPU), or auto (the fastest for each model and batch size as raced on "
                      "this machine by `recstack backends`, else the shipped choices). "
                      "Repeatable: several backends are compared in one sweep. Default: "
                      "auto.")]
CacheOption = Annotated[str, typer.Option(
    "--cache", help="Cache state of the queries: cold (the batches cycled touch at least 4x "
                    "the last-level cache in distinct embedding rows, as a server sees "
                    "them) or warm (4 batches cycled: their rows stay cached at small "
                    "batch).")]
TraceOption = Annotated[bool, typer.Option(
    "--trace", help="Keep a Chrome/Perfetto trace of every operator-profile point, next to "
                    "the store (traces/RUN_ID/).")]


def _sizes(batch_sizes: str | None, threads: str | None) -> dict[str, object]:
    """The sizes given (an empty value is refused, not taken as the default)."""
    return {"batch_sizes": None if batch_sizes is None else int_list("--batch-sizes",
                                                                     batch_sizes),
            "threads": None if threads is None else int_list("--threads", threads)}


@app.command()
def sweep(
    model: ModelOption = None,
    batch_sizes: BatchOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    row_scale: RowScaleOption = None,
    store: StoreOption = DEFAULT_STORE,
    sweep_file: Annotated[str | None, typer.Option(
        "--sweep-file", help="YAML/JSON file with models, batch_sizes, threads, devices, "
                             "backends, row_scale, query, seed.")] = None,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    min_time: MinTimeOption = 1.0,
    distribution: DistributionOption = "uniform",
    queries: QueriesOption = None,
    trace_tables: TraceTablesOption = None,
    trace_order: TraceOrderOption = "sequential",
    trace_samples: TraceSamplesOption = 0,
    seed: Annotated[int, typer.Option(help="Seed of weights and queries.")] = 0,
    levels: Annotated[str, typer.Option(
        "--levels", help="What to measure: timing, operators, or both (comma-separated).")]
    = "timing",
    trace: TraceOption = False,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    cache: CacheOption = "cold",
    oversubscribe: OversubscribeOption = False,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    platforms: PlatformsOption = None,
    retries: RetriesOption = 1,
    as_json: JsonOption = False,
) -> None:
    """Measure a custom sweep (models x batch sizes x threads x devices) into the store."""
    from recstack.errors import RecstackError
    from recstack.sweep import plan_sweep
    from recstack.sweepfile import sweep_file_options

    settings = api.timing_settings(min_time)
    cluster = executor_option(executor, address, platforms, retries)
    if sweep_file:
        planned = plan_sweep(**sweep_file_options(
            sweep_file, models=model, backends=backend, oversubscribe=oversubscribe,
            cache=cache, precisions=precision_list(precision)))
    else:
        if not model:
            raise RecstackError("--model: nothing given; name at least one model (e.g. "
                                "--model rmc1) or use --sweep-file")
        planned = api.plan(model, devices=device or None, backends=backend,
                           row_scale=row_scale, distribution=distribution, seed=seed,
                           query=queries_option(queries, seed, trace_tables, trace_order,
                                                trace_samples),
                           levels=levels_list(levels), oversubscribe=oversubscribe,
                           store=store, cache=cache, here=api.measures_here(cluster),
                           precisions=precision_list(precision),
                           **_sizes(batch_sizes, threads))
    # With --json, stdout is the JSON alone: progress and notes go to stderr.
    display = make_console(stderr=True) if as_json else console
    result = measure_with_progress(api.measure, planned, store, settings, resume, run_id,
                                   trace, display=display, executor=cluster)
    timings = result.timings()
    if as_json:
        fmt.print_json({"run_id": result.run_id, "store": str(result.store.path),
                        "failed": result.failed, "points": timings.to_dict("records")})
        report_outcome(result.outcome, display)
        if result.failed:
            raise typer.Exit(1)
        return
    if not timings.empty:
        console.print(summaries.points_table(timings))
    finish(result)


@app.command()
def run(
    model: ModelOption = None,
    batch_sizes: BatchOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    row_scale: RowScaleOption = None,
    store: StoreOption = DEFAULT_STORE,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    budget: Annotated[float | None, typer.Option(
        "--budget", help="Minutes the whole job may take (default 30; 5 with --quick; 20 "
                         "with the serving level): the richest plan whose estimate fits, "
                         "stages that would overrun skipped.")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A first look in about 5 minutes: batch 1 and 256, a tenth of the "
                        "table rows, short timing, no ceilings or race, a small hardware "
                        "subset and design.")] = False,
    min_time: Annotated[float | None, typer.Option(
        "--min-time", help="Seconds of timed iterations per point (default: the plan's).")]
    = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", help="p95 latency target MODEL=MS (repeatable); overrides the defaults "
                         "(DeepRecSys's targets).")] = None,
    targets_file: Annotated[str | None, typer.Option(
        "--targets", help="YAML file of latency targets (see analysis/latency_targets.yaml)."
    )] = None,
    levels: Annotated[str, typer.Option(
        "--levels", help="Levels to characterize: timing (systems), operators (software), "
                         "hardware (top-down: measured with counters, else simulated on a "
                         "subset), serving (beyond the paper: RMC1 and RMC2 tuned under "
                         "MLPerf LoadGen's load).")] = "timing,operators,hardware",
    trace: TraceOption = False,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    oversubscribe: OversubscribeOption = False,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    platforms: PlatformsOption = None,
    retries: RetriesOption = 1,
    queries: QueriesOption = None,
    trace_tables: TraceTablesOption = None,
    trace_order: TraceOrderOption = "sequential",
    trace_samples: TraceSamplesOption = 0,
) -> None:
    """The main job: the paper on this machine within a time budget. Ceilings and a backend
    race where none are stored, timing and operator profiles of the eight canonical models
    (full size where they fit, cold caches, warm too for the embedding-dominated ones at
    small batch), the hardware level, a small correlation design; then a summary, figures
    and the report next to the store."""
    from recstack.analysis.systems import default_targets, load_targets, with_overrides
    from recstack.main_job import run_main_job
    from recstack.specs import ZOO_NAMES

    targets = load_targets(targets_file) if targets_file else default_targets()
    # Targets name models of the job: checked before anything is measured.
    targets = with_overrides(targets, target or [], set(model or ZOO_NAMES))
    sizes = _sizes(batch_sizes, threads)
    cluster = executor_option(executor, address, platforms, retries)
    query = queries_option(queries, 0, trace_tables, trace_order, trace_samples)
    # One display for the job's stages, its runs and their points.
    with progress_display(console) as update:
        result = run_main_job(
            model or None, store, levels_list(levels), budget, quick, min_time,
            sizes["batch_sizes"], sizes["threads"], device or None, backend, row_scale,
            oversubscribe, trace, resume, run_id, progress=update, on_start=update,
            on_stage=update, executor=cluster, command=command_line(),
            precisions=precision_list(precision), query=query)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    timings = result.timings()
    if not timings.empty:
        summaries.print_summary(timings, targets)
    summaries.print_software_level(result.store, result.run_id)
    summaries.print_hardware_level(result.store, result.run_id)
    summaries.print_serving_level(result.store, result.run_id)
    finish(result)


@app.command()
def profile(
    model: ModelOption = None,
    batch_sizes: BatchOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    row_scale: RowScaleOption = None,
    store: StoreOption = DEFAULT_STORE,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    trace: TraceOption = False,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    cache: CacheOption = "cold",
    oversubscribe: OversubscribeOption = False,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    platforms: PlatformsOption = None,
    retries: RetriesOption = 1,
) -> None:
    """The software level alone: operator breakdown (PyTorch profiler) of every model, batch
    size and device, by operator class and by model part."""
    result = measure_with_progress(
        api.profile, model or None, store, resume=resume, run_id=run_id, trace=trace,
        devices=device or None, backends=backend, row_scale=row_scale,
        oversubscribe=oversubscribe, cache=cache, precisions=precision_list(precision),
        executor=executor_option(executor, address, platforms, retries),
        **_sizes(batch_sizes, threads))
    summaries.print_software_level(result.store, result.run_id)
    finish(result)


@app.command()
def hardware(
    model: ModelOption = None,
    batch_sizes: Annotated[str, typer.Option(
        "--batch-sizes", help="Comma-separated batch sizes (simulation is slow: keep few).")]
    = "1,16,64",
    threads: Annotated[str, typer.Option("--threads", help="Intra-op threads.")] = "1",
    row_scale: RowScaleOption = None,
    store: StoreOption = DEFAULT_STORE,
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
    cache: CacheOption = "cold",
    precision: PrecisionOption = None,
    oversubscribe: OversubscribeOption = False,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    platforms: PlatformsOption = None,
    retries: RetriesOption = 1,
) -> None:
    """The hardware level alone: top-down fractions, IPC and miss rates per model and batch
    size; measured with perf where the CPU exposes counters, simulated with valgrind (and
    labelled so) where it does not."""
    result = measure_with_progress(
        api.hardware, model or None, store, resume=resume, run_id=run_id,
        mode=mode, hierarchy=hierarchy, no_multiplex=no_multiplex, cache=cache,
        row_scale=row_scale, oversubscribe=oversubscribe, precisions=precision_list(precision),
        executor=executor_option(executor, address, platforms, retries),
        **_sizes(batch_sizes, threads))
    summaries.print_hardware_level(result.store, result.run_id)
    finish(result)
