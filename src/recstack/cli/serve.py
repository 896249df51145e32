"""``recstack serve``: the serving level (a deployment under MLPerf LoadGen's load)."""

from __future__ import annotations

from typing import Annotated

import typer

from recstack import api
from recstack.cli import summaries
from recstack.cli.app import app
from recstack.cli.measure import ModelOption
from recstack.cli.options import (
    DEFAULT_STORE,
    AddressOption,
    ExecutorOption,
    PlatformsOption,
    QueriesOption,
    RetriesOption,
    TraceOrderOption,
    TraceSamplesOption,
    TraceTablesOption,
    executor_option,
    OversubscribeOption,
    ResumeOption,
    RowScaleOption,
    RunIdOption,
    StoreOption,
    precision_list,
    queries_option,
)
from recstack.cli.progress import finish, measure_with_progress
from recstack.errors import RecstackError
from recstack.text import shown


def _rates(text: str | None) -> list[float]:
    """``"50,100"`` -> ``[50.0, 100.0]`` (each checked by the configuration)."""
    if text is None:
        return []
    rates = []
    for part in (p.strip() for p in text.split(",")):
        try:
            rates.append(float(part))
        except ValueError:
            raise RecstackError(f"--qps: {shown(text)} is not allowed; expected rates in "
                                "queries per second separated by commas (e.g. 50,100)") from None
    return rates


@app.command()
def serve(
    model: ModelOption = None,
    scenario: Annotated[str, typer.Option(
        "--scenario", help="LoadGen scenario: server (Poisson arrivals under a tail-latency "
                           "bound), offline (maximum throughput) or singlestream.")] = "server",
    qps: Annotated[str | None, typer.Option(
        "--qps", help="Server: comma-separated arrival rates to offer, one LoadGen test "
                      "each. Default: search the highest rate LoadGen judges valid.")] = None,
    target_ms: Annotated[float | None, typer.Option(
        "--target-ms", help="Tail-latency bound in ms for every model. Default: each "
                            "model's from analysis/latency_targets.yaml (DeepRecSys).")] = None,
    percentile: Annotated[float, typer.Option(
        "--percentile", help="The percentile the bound applies to (0-100).")] = 95.0,
    query_sizes: Annotated[str, typer.Option(
        "--query-sizes", help="Items per request: fixed:N, normal:MEAN,SCALE,MAX, "
                              "lognormal:MU,SIGMA,MAX or file:PATH (one size per line).")]
    = "normal:165,16,1024",
    engines: Annotated[int | None, typer.Option(
        "--engines", help="CPU inference engines (processes). Default: one per usable "
                          "core.")] = None,
    threads: Annotated[int, typer.Option(
        "--threads", help="Intra-op threads per engine.")] = 1,
    sub_batch: Annotated[int | None, typer.Option(
        "--sub-batch", help="Items per sub-batch a request is split into (DeepRecSys's "
                            "per-core batch). Default: requests are not split.")] = None,
    offload_threshold: Annotated[int | None, typer.Option(
        "--offload-threshold", help="Requests of at least this many items run whole on a "
                                    "GPU engine (needs CUDA).")] = None,
    tune: Annotated[bool, typer.Option(
        "--tune", help="Tune the deployment (engines x threads, sub-batch, offload) against "
                       "the baseline: one engine per core, no splitting.")] = False,
    backend: Annotated[str, typer.Option(
        "--backend", help="eager, fused, static or auto (raced on this machine at the "
                          "sub-batch size).")] = "auto",
    min_duration: Annotated[float, typer.Option(
        "--min-duration", help="LoadGen's minimum test duration in seconds.")] = 5.0,
    library_requests: Annotated[int, typer.Option(
        "--library-requests", help="Distinct requests generated before the run.")] = 256,
    row_scale: RowScaleOption = None,
    precision: Annotated[str | None, typer.Option(
        "--precision", help="Numeric precision of the deployment: emb=E,dense=D (E: fp32, "
                            "fp16, bf16, int8, int4; D: fp32, bf16, int8). Default: fp32.")]
    = None,
    queries: QueriesOption = None,
    trace_tables: TraceTablesOption = None,
    trace_order: TraceOrderOption = "sequential",
    trace_samples: TraceSamplesOption = 0,
    store: StoreOption = DEFAULT_STORE,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    oversubscribe: OversubscribeOption = False,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    platforms: PlatformsOption = None,
    retries: RetriesOption = 1,
) -> None:
    """The serving level: each model deployed as a pool of inference engines, loaded by MLPerf
    LoadGen with requests of varying size, its latency-bounded throughput found (or the given
    rates measured), and with --tune the best deployment against the baseline. With
    --queries trace:FILE the requests read the trace's samples in turn."""
    query = queries_option(queries, 0, trace_tables, trace_order, trace_samples)
    result = measure_with_progress(
        api.serve, model or None, store, scenario=scenario, qps=_rates(qps),
        target_ms=target_ms, percentile=percentile, query_sizes=query_sizes,
        engines=engines, threads=threads, sub_batch=sub_batch,
        offload_threshold=offload_threshold, tune=tune, backend=backend,
        min_duration=min_duration, library_requests=library_requests, row_scale=row_scale,
        precision=None if precision is None else precision_list([precision])[0],
        query=query, resume=resume, run_id=run_id, oversubscribe=oversubscribe,
        executor=executor_option(executor, address, platforms, retries))
    summaries.print_serving_level(result.store, result.run_id)
    finish(result)
