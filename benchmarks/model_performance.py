"""How close each canonical model runs to the machine's roofline, per backend and batch size.

Measures every canonical model at full size (one model in memory at a time: every point runs
in its own worker, as in `recstack sweep`) over batch sizes 1 to 4096 with every backend in
``recstack.points.BACKENDS``, through recstack's own collectors (timing and operator profile
points in one run of a results store), then joins them with the machine's ceilings
(`recstack ceilings`, measured first if the store has none) and prints, per model, backend
and batch size: median latency, roofline bound, efficiency (bound / measured) and the
framework-overhead share (a low-high bracket, from the operator clock where it can run, else
from the profiler; see docs/performance.md and recstack.analysis.roofline); per model: build seconds per GB of embeddings and peak memory
growth over the model's bytes; and the issue-8 targets met or not.

Writes ``<out-dir>/<run_id>.csv`` and ``.json`` (every row of the roofline table) and
``<run_id>.md`` (the tables). The full benchmark takes hours here; check it on a subset:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/model_performance.py \\
        --models rmc1 --batch-sizes 16,1024 --threads 1 --min-time 0.5
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import pandas as pd

from recstack.analysis.roofline import roofline_table
from recstack.backends import AUTO, resolve_backend
from recstack.cli.options import int_list
from recstack.collect.ceilings import ensure_ceilings
from recstack.collect.timing import TimingSettings
from recstack.errors import RecstackError
from recstack.points import BACKENDS
from recstack.specs import ZOO_NAMES, zoo_spec
from recstack.store import ResultStore
from recstack.host import usable_cores
from recstack.sweep import DEFAULT_BATCH_SIZES, open_run, plan_sweep, run_sweep

EFFICIENCY_MODELS = ("rmc1", "rmc2", "rmc3", "wnd")
EFFICIENCY_TARGET = 0.85
OVERHEAD_MODELS = ("rmc1", "rmc2", "rmc3")
OVERHEAD_TARGET = 0.20
BUILD_S_PER_GB_TARGET = 5.0
PEAK_MEMORY_TARGET = 1.2


def _list(text: str, allowed: tuple[str, ...] | None, option: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    wrong = [v for v in values if allowed is not None and v not in allowed]
    if not values or wrong:
        raise RecstackError(f"{option}: {text!r} is not allowed; expected a comma-separated "
                            f"subset of {', '.join(allowed or ())}")
    return values


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ZOO_NAMES))
    parser.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads (default: all usable cores)")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="seconds of timed iterations per point")
    parser.add_argument("--distinct-batches", type=int, default=64,
                        help="distinct query batches each timing loop cycles through (fewer "
                             "where their inputs would pass 512 MiB): enough that at large "
                             "batch sizes their rows overflow the LLC, as a stream of fresh "
                             "queries does, so the DRAM gather bound applies")
    parser.add_argument("--compile-batch-sizes", default=None,
                        help="batch sizes of the compile backend (default: --batch-sizes); "
                             "compiling takes 10 to 60 s per point here")
    parser.add_argument("--row-scale", type=float, default=None,
                        help="table rows relative to full size (default: full size; only "
                             "for smoke tests, the targets are about full-size models)")
    parser.add_argument("--store", default="results/model_performance.duckdb")
    parser.add_argument("--out-dir", default="results/model_performance")
    parser.add_argument("--refresh-ceilings", action="store_true")
    parser.add_argument("--analyze", metavar="RUN_ID", default=None,
                        help="measure nothing: write the tables of a run already in the "
                             "store (against its ceilings, re-measured with "
                             "--refresh-ceilings)")
    return parser.parse_args(argv)


def summarize_builds(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: build seconds per GB of embeddings (median over its points), peak memory
    growth relative to the model's bytes (the largest over its points), the compile
    backend's compilation seconds and the static backend's graph preparation seconds
    (medians over their timing points; NaN without them)."""
    frame = table.assign(
        build_s_per_gb=table.build_seconds / (table.embedding_bytes / 1e9),
        peak_memory_ratio=table.peak_memory_growth_bytes / table.model_bytes,
        compile_s=table.compile_seconds.where(table.backend == "compile"),
        static_s=table.compile_seconds.where(table.backend == "static"))
    return (frame.groupby("model", sort=False)
            .agg(model_gb=("model_bytes", lambda b: b.iloc[0] / 1e9),
                 build_s_per_gb=("build_s_per_gb", "median"),
                 peak_memory_ratio=("peak_memory_ratio", "max"),
                 compile_s=("compile_s", "median"), static_s=("static_s", "median"))
            .reset_index())


def with_drift(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """The roofline table against the ceilings measured before the points, with the bound and
    efficiency against those measured after (``*_after``) and the range over both
    (``efficiency_low``, ``efficiency_high``)."""
    keys = ["model", "backend", "batch_size", "threads"]
    later = after[keys + ["bound_ms", "efficiency"]].rename(
        columns={"bound_ms": "bound_after_ms", "efficiency": "efficiency_after"})
    table = before.merge(later, on=keys, how="left", validate="one_to_one")
    both = table[["efficiency", "efficiency_after"]]
    return table.assign(efficiency_low=both.min(axis=1), efficiency_high=both.max(axis=1))


def check_targets(table: pd.DataFrame, builds: pd.DataFrame) -> list[str]:
    """One line per issue-8 target that the measured points cover: met or not, with the
    numbers (the best backend per model and batch size)."""
    lines = []
    best = table.groupby(["model", "batch_size"], as_index=False).agg(
        efficiency_low=("efficiency_low", "max"), efficiency_high=("efficiency_high", "max"),
        rows_resident=("rows_resident", "any"))
    # Overhead is judged on the backend a user would run: the default (auto), which
    # backend_choice.py measured fastest with the backends taking turns in one process, where
    # this run measured it; else the fastest here. Points measured in separate workers minutes
    # apart can rank backends by the host's drift rather than their speed (tens of percent on
    # a busy host; the fastest here is named beside it). A slower backend can show a smaller share of a
    # longer latency: judging it would flatter.
    fastest = table.loc[table.groupby(["model", "batch_size"]).measured_ms.idxmin()]
    judged = _judged_backends(table, fastest)
    large = best[best.model.isin(EFFICIENCY_MODELS) & (best.batch_size >= 1024)]
    for row in large.itertuples(index=False):
        if row.efficiency_low > 1.0:
            verdict = "cannot be judged (above 100%: the bound is not a lower bound here)"
        elif row.efficiency_low >= EFFICIENCY_TARGET:
            verdict = "met" + (" (at the ceiling, within the ceilings' drift)"
                               if row.efficiency_high > 1.0 else "")
        elif row.efficiency_high >= EFFICIENCY_TARGET:
            verdict = "undecided (met against one measurement of the ceilings only)"
        else:
            verdict = "NOT met"
        if row.rows_resident:
            verdict += "; the cycled batches' rows fit in the LLC (bound at cached gathers)"
        lines.append(f"{row.model} b{row.batch_size}: efficiency {row.efficiency_low:.0%} to "
                     f"{row.efficiency_high:.0%} (ceilings before and after; target >= "
                     f"{EFFICIENCY_TARGET:.0%}): {verdict}")
    small = judged[judged.model.isin(OVERHEAD_MODELS) & (judged.batch_size <= 16)]
    for row in small.itertuples(index=False):
        where = f"{row.model} b{row.batch_size} ({row.backend}, {row.why})"
        if math.isnan(row.overhead_share_high):
            lines.append(f"{where}: framework overhead not read (no operator profile "
                         "consistent with the timing point)")
            continue
        verdict = ("met" if row.overhead_share_high <= OVERHEAD_TARGET else
                   "NOT met" if row.overhead_share_low > OVERHEAD_TARGET else "undecided")
        lines.append(f"{where}: framework overhead {row.overhead_share_low:.0%}-"
                     f"{row.overhead_share_high:.0%} ({row.overhead_basis}; target <= "
                     f"{OVERHEAD_TARGET:.0%}): {verdict}")
    for row in builds.itertuples(index=False):
        lines.append(f"{row.model}: build {row.build_s_per_gb:.2f} s/GB (target < "
                     f"{BUILD_S_PER_GB_TARGET:g}): "
                     f"{'met' if row.build_s_per_gb < BUILD_S_PER_GB_TARGET else 'NOT met'}; "
                     f"peak memory {row.peak_memory_ratio:.2f}x (target <= "
                     f"{PEAK_MEMORY_TARGET:g}x): "
                     f"{'met' if row.peak_memory_ratio <= PEAK_MEMORY_TARGET else 'NOT met'}")
    return lines


def _judged_backends(table: pd.DataFrame, fastest: pd.DataFrame) -> pd.DataFrame:
    """Per model and batch size, the row of the backend auto resolves to (by the model's
    name: any scale), where the run measured it, else the fastest row; ``why`` says which,
    and names the fastest when it is another backend."""
    rows = []
    for quickest in fastest.itertuples(index=False):
        spec = zoo_spec(quickest.model)
        chosen = resolve_backend(AUTO, spec, "cpu", int(quickest.batch_size))
        match = table[(table.model == quickest.model) & (table.batch_size == quickest.batch_size)
                      & (table.threads == quickest.threads) & (table.backend == chosen)]
        if match.empty:
            rows.append({**quickest._asdict(), "why": "the fastest; auto's choice not measured"})
            continue
        why = "auto's choice" + ("" if chosen == quickest.backend
                                 else f"; fastest in this run: {quickest.backend} "
                                      f"{quickest.measured_ms:.3g} against "
                                      f"{match.measured_ms.iloc[0]:.3g} ms")
        rows.append({**match.iloc[0].to_dict(), "why": why})
    return pd.DataFrame(rows, columns=[*table.columns, "why"])


def _markdown(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            style = formats.get(column)
            missing = isinstance(value, float) and math.isnan(value)
            cells.append("-" if missing else (format(value, style) if style else str(value)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


POINT_VIEW = ["model", "backend", "batch_size", "measured_ms", "bound_ms", "bound_after_ms",
              "efficiency", "efficiency_after", "limiting_stage", "rows_resident",
              "overhead_share_low", "overhead_share_high", "overhead_basis"]
POINT_FORMATS = {"measured_ms": ".3g", "bound_ms": ".3g", "bound_after_ms": ".3g",
                 "efficiency": ".0%", "efficiency_after": ".0%",
                 "overhead_share_low": ".0%", "overhead_share_high": ".0%"}
BUILD_FORMATS = {"model_gb": ".2f", "build_s_per_gb": ".2f", "peak_memory_ratio": ".2f",
                 "compile_s": ".1f", "static_s": ".2f"}


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    models = _list(args.models, ZOO_NAMES, "--models")
    backends = _list(args.backends, BACKENDS, "--backends")
    batch_sizes = int_list("--batch-sizes", args.batch_sizes)
    compile_batch_sizes = (int_list("--compile-batch-sizes", args.compile_batch_sizes)
                           if args.compile_batch_sizes else batch_sizes)
    threads = args.threads or usable_cores()
    store = ResultStore(args.store)
    ceilings, measured = ensure_ceilings(store, threads, refresh=args.refresh_ceilings)
    print(f"ceilings at {threads} thread(s): {'measured now' if measured else 'from the store'}")
    settings = TimingSettings(min_seconds=args.min_time, distinct_batches=args.distinct_batches)
    command = "benchmarks/model_performance.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    if args.analyze:
        if store.run_info(args.analyze) is None:
            raise RecstackError(f"--analyze: {args.analyze!r} is not a run of {store.path}")
        run_id, models = args.analyze, []
    else:
        run_id = open_run(store, settings, command)
        print(f"run {run_id} into {store.path}")
    # One model's plan at a time (each point builds it in its worker); compile apart when it
    # runs at other batch sizes.
    groups = [(backends, batch_sizes)]
    if "compile" in backends and compile_batch_sizes != batch_sizes:
        groups = [([b for b in backends if b != "compile"], batch_sizes),
                  (["compile"], compile_batch_sizes)]
    plans = [(model, group_backends, sizes) for group_backends, sizes in groups
             if group_backends for model in models]
    for model, group_backends, sizes in plans:
        plan = plan_sweep([model], sizes, threads=[threads], devices=["cpu"],
                          backends=group_backends, row_scale=args.row_scale,
                          levels=("timing", "operators"))
        for note in plan.notes:
            print(f"note: {note}")

        def progress(event: object) -> None:
            if event.kind == "done":
                what = (f"median {event.median_ms:.3g} ms" if event.median_ms is not None
                        else "profiled")
                print(f"  {event.point.label}: {what}", flush=True)
            elif event.kind == "failed":
                print(f"  {event.point.label}: FAILED: {event.error}", flush=True)

        run_sweep(plan, store, run_id, settings, progress=progress)
    after = ceilings
    if not args.analyze:
        # Memory bandwidth on a shared host drifts by tens of percent over minutes: the
        # ceilings are measured again after the points, and efficiency is given against both.
        after, _ = ensure_ceilings(store, threads, refresh=True)
        print("ceilings measured again after the points")
    table = with_drift(roofline_table(store, run_id, ceilings),
                       roofline_table(store, run_id, after))
    builds = summarize_builds(table)
    targets = check_targets(table, builds)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{run_id}.csv", index=False)
    (out / f"{run_id}.json").write_text(json.dumps(
        {"run_id": run_id, "threads": threads, "command": command,
         "points": json.loads(table.to_json(orient="records")),
         "builds": json.loads(builds.to_json(orient="records")), "targets": targets},
        indent=2))
    view = table[POINT_VIEW].sort_values(["model", "backend", "batch_size"], kind="stable")
    markdown = "\n\n".join([
        f"Run {run_id}, {threads} thread(s), platform {table.platform_id.iloc[0]}.",
        _markdown(view, POINT_FORMATS), _markdown(builds, BUILD_FORMATS),
        "\n".join(f"- {line}" for line in targets)])
    (out / f"{run_id}.md").write_text(markdown + "\n")
    print(markdown)
    print(f"written: {out / run_id}.csv, .json, .md")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RecstackError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
