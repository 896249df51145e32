"""fp32 against int8 and int4 embedding tables, full-size models, batch 1 to 4096, one run.

Measured through recstack's own sweep: each point in a fresh worker, its model built
directly in its precision (the fused layout: one gather-and-pool for all tables), its
query batches drawn ahead and cycled cold (they touch at least 4x the last-level cache in
distinct rows), warmed up, then timed for ``--min-time`` seconds; every reduced point also
measures its predictions against the fp32 model on the same queries. Dense layers stay
fp32: the comparison isolates the tables.

Reported per model and batch size: the median latency of each precision, the speedup of
int8 and int4 over fp32 (medians of the same run), the deviation of the predictions, and
the embedding bytes the batch gathers per second of latency (what a gather-bound model
moves: the roofline's memory side).

``--part kernels``: the three gather kernels alone (torch's ``embedding_bag`` on float32
rows, FBGEMM's int8 and int4 row-wise kernels) on one 512 MB-in-fp32 table, 640 random ids
per sample (RMC1's lookups), at 1 thread and at every usable core: whether each kernel uses
more threads, and its rows per second. Ids drawn ahead, eight id sets cycled, 1 s per case
after two calls of warm-up; the median of five rounds.

    .venv/bin/python benchmarks/precision.py [--part models|kernels]
        [--models rmc1,rmc2,rmc3,wnd] [--batch-sizes 1,16,256,4096] [--threads N]
        [--min-time 1.0] [--store PATH]

Raw samples and the table go to docs/results/precision/benchmark.json (kernels:
kernels.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from recstack.collect.timing import TimingSettings
from recstack.footprint import footprint
from recstack.host import usable_cores
from recstack.platform_info import collect_platform, describe_platform, platform_id
from recstack.precision import FP32, Precision
from recstack.store import ResultStore
from recstack.sweep import plan_sweep, run_sweep

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "precision"
PRECISIONS = (FP32, Precision("int8"), Precision("int4"))


def measure(models: list[str], batch_sizes: list[int], threads: int, min_time: float,
            store_path: Path) -> tuple[ResultStore, str]:
    settings = TimingSettings(min_seconds=min_time)
    plan = plan_sweep(models, batch_sizes, [threads], ["cpu"], backends=["fused"],
                      row_scale=1.0, precisions=list(PRECISIONS))
    info = collect_platform()
    store = ResultStore(store_path)
    run_id = store.create_run("benchmarks/precision.py", settings.to_dict(), info,
                              platform_id(info), describe_platform(info))

    def show(event: Any) -> None:
        if event.kind in ("done", "failed"):
            print(f"  {event.kind}: {event.point.label}", flush=True)

    outcome = run_sweep(plan, store, run_id, settings, progress=show)
    if outcome.failed:
        raise SystemExit(f"points failed: {outcome.failed}")
    return store, run_id


def summarize(store: ResultStore, run_id: str) -> dict[str, Any]:
    rows = store.query(
        "SELECT p.point_key, p.model, p.batch_size, p.embedding_precision, p.spec, "
        "p.output_max_abs_deviation AS max_dev, p.output_mean_abs_deviation AS mean_dev, "
        "t.median_ms, t.p5_ms, t.p95_ms, t.iterations FROM points p JOIN timing t "
        "USING (run_id, point_key) WHERE p.run_id = ? ORDER BY p.model, p.batch_size",
        [run_id])
    samples = store.query("SELECT point_key, latency_ns FROM samples WHERE run_id = ? "
                          "ORDER BY point_key, iteration", [run_id])
    raw = samples.groupby("point_key").latency_ns.apply(list).to_dict()
    from recstack.specs import spec_from_config

    table = []
    for (model, batch), group in rows.groupby(["model", "batch_size"], sort=False):
        by = {row.embedding_precision: row for row in group.itertuples()}
        fp32 = by["fp32"]
        entry: dict[str, Any] = {"model": model, "batch_size": int(batch)}
        for name, row in by.items():
            spec = spec_from_config(json.loads(row.spec) if isinstance(row.spec, str)
                                    else row.spec)
            gathered = footprint(spec, Precision(name)).gathered_bytes_per_sample
            entry[name] = {
                "median_ms": row.median_ms, "p5_ms": row.p5_ms, "p95_ms": row.p95_ms,
                "iterations": int(row.iterations),
                "speedup": fp32.median_ms / row.median_ms,
                "max_abs_deviation": None if row.max_dev != row.max_dev else row.max_dev,
                "mean_abs_deviation": None if row.mean_dev != row.mean_dev else row.mean_dev,
                "gathered_bytes_per_sample": gathered,
                "gathered_gb_per_s": gathered * batch / (row.median_ms / 1e3) / 1e9,
                "latency_ns": raw[row.point_key]}
        table.append(entry)
    return {"table": table}


def print_table(table: list[dict[str, Any]]) -> None:
    print("| model | batch | fp32 ms | int8 ms (x) | int4 ms (x) | int8 / int4 max dev "
          "| fp32 / int8 / int4 GB/s gathered |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for entry in table:
        fp32, int8, int4 = entry["fp32"], entry["int8"], entry["int4"]
        print(f"| {entry['model']} | {entry['batch_size']} | {fp32['median_ms']:.3f} "
              f"| {int8['median_ms']:.3f} ({int8['speedup']:.2f}x) "
              f"| {int4['median_ms']:.3f} ({int4['speedup']:.2f}x) "
              f"| {int8['max_abs_deviation']:.1e} / {int4['max_abs_deviation']:.1e} "
              f"| {fp32['gathered_gb_per_s']:.2f} / {int8['gathered_gb_per_s']:.2f} / "
              f"{int4['gathered_gb_per_s']:.2f} |")


def kernels(threads: int) -> dict[str, Any]:
    import statistics
    import time

    import torch

    from recstack.models.embeddings import random_table
    from recstack.models.table_formats import pooled_lookup

    rows, dim, lookups = 4_000_000, 32, 640
    tables = {name: random_table(rows, dim, 0, 0, name) for name in ("fp32", "int8", "int4")}
    found: dict[str, Any] = {}
    for batch in (64, 1024):
        generator = torch.Generator().manual_seed(batch)
        id_sets = [torch.randint(0, rows, (batch * lookups,), generator=generator)
                   for _ in range(8)]
        offsets = torch.arange(0, batch * lookups, lookups // 8)  # bags of 80, as RMC1
        for count in sorted({1, threads}):
            torch.set_num_threads(count)
            for name, table in tables.items():
                lookup = pooled_lookup(name)
                rounds = []
                for _ in range(5):
                    for ids in id_sets[:2]:
                        lookup(table, ids, offsets)
                    calls, began = 0, time.perf_counter()
                    while time.perf_counter() - began < 1.0:
                        lookup(table, id_sets[calls % 8], offsets)
                        calls += 1
                    rounds.append((time.perf_counter() - began) / calls * 1e3)
                median = statistics.median(rounds)
                found[f"{name} b{batch} t{count}"] = {
                    "ms": rounds, "median_ms": median,
                    "mrows_per_s": batch * lookups / (median / 1e3) / 1e6}
                print(f"{name} batch {batch} threads {count}: {median:.3f} ms "
                      f"({found[f'{name} b{batch} t{count}']['mrows_per_s']:.0f} M rows/s)",
                      flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("models", "kernels"), default="models")
    parser.add_argument("--models", default="rmc1,rmc2,rmc3,wnd")
    parser.add_argument("--batch-sizes", default="1,16,256,4096")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--store", default=None, help="keep the store here (default: a "
                                                      "temporary one)")
    args = parser.parse_args()
    models = args.models.split(",")
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    host = describe_platform(collect_platform())
    print(f"host: {host}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.part == "kernels":
        (RESULTS / "kernels.json").write_text(json.dumps(
            {"host": host, "threads": args.threads, **kernels(args.threads)}, indent=1))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(args.store) if args.store else Path(folder) / "precision.duckdb"
        store, run_id = measure(models, sizes, args.threads, args.min_time, path)
        found = summarize(store, run_id)
    print_table(found["table"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "benchmark.json").write_text(json.dumps(
        {"host": host, "threads": args.threads, "min_time_s": args.min_time,
         "backend": "fused", "cache": "cold", "run_id": run_id, **found}, indent=1))


if __name__ == "__main__":
    main()
