"""``recstack ceilings``: this machine's measured ceilings (bandwidths, GEMM, dispatch)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console
from recstack.cli.options import (DEFAULT_STORE, AddressOption, ExecutorOption, JsonOption,
                                  PlatformsOption, RetriesOption, StoreOption,
                                  executor_option, thread_count)


@app.command()
def ceilings(
    store: StoreOption = DEFAULT_STORE,
    threads: Annotated[str | None, typer.Option(
        "--threads", help="Intra-op threads. Default: all usable cores.")] = None,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Measure again even when the store has this machine's ceilings.")
    ] = False,
    quick: Annotated[bool, typer.Option(
        "--quick", help="Tiny sizes, a few seconds (for tests; not DRAM bandwidths).")] = False,
    all_gemms: Annotated[bool, typer.Option(
        "--all-gemms", help="List every GEMM shape (default: the large one and a summary).")
    ] = False,
    all_tables: Annotated[bool, typer.Option(
        "--all-tables", help="List the gather at every table size (default: a summary per "
                             "row size).")] = False,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    platforms: PlatformsOption = None,
    retries: RetriesOption = 1,
    as_json: JsonOption = False,
) -> None:
    """Measure (or reuse from the store) the machine's ceilings for the roofline: triad and
    random-gather bandwidth, GEMM throughput at the models' layer shapes, dispatch cost."""
    from recstack import api
    from recstack.host import usable_cores
    from recstack.limits import THREADS_MAX

    cluster = executor_option(executor, address, platforms, retries)
    # On a cluster each platform's cores are its own: the default is each node's every core.
    cores = usable_cores() if cluster is None else THREADS_MAX
    count = thread_count(threads, cores) if threads is not None else \
        (usable_cores() if cluster is None else None)
    frame, measured = api.ceilings(store, count, refresh=refresh, quick=quick,
                                   executor=cluster)
    if as_json:
        records = frame.drop(columns=["samples"]).assign(
            measured_at=frame.measured_at.astype(str)).to_dict(orient="records")
        fmt.print_json({"measured": measured, "threads": count, "ceilings": records})
        return
    for platform, rows in frame.groupby("platform_id", sort=False):
        _print_ceilings(rows, platform, measured, store, all_gemms, all_tables)


def _print_ceilings(frame: Any, platform: str, measured: bool, store: str, all_gemms: bool,
                    all_tables: bool) -> None:
    """One platform's ceilings: the table and the summaries of what it hides."""
    when = frame.measured_at.iloc[0]
    count = int(frame.threads.iloc[0])
    console.print(f"{'measured' if measured else 'reused'}: ceilings at {count} thread(s), "
                  f"platform {platform}, measured {when:%Y-%m-%d %H:%M} UTC, "
                  f"stored in {store}", highlight=False)
    table = Table(header_style="bold")
    for column in ("kind", "shape", "median", "p5", "p95", "unit", "repeats"):
        table.add_column(column, justify="right" if column in ("median", "p5", "p95",
                                                                "repeats") else "left")
    from recstack.ceiling_shapes import split_precision_kind

    # Per-precision kinds (gemm_bf16, gather_table_int8) are listed and summed up as their
    # fp32 kind is.
    base, precision = zip(*frame.kind.map(split_precision_kind)) if len(frame) else ((), ())
    frame = frame.assign(base=list(base), precision=list(precision))
    hidden = ([] if all_gemms else ["gemm"]) + ([] if all_tables else ["gather_table"])
    shown = frame[~frame.base.isin(hidden)]
    for row in shown.itertuples(index=False):
        table.add_row(row.kind, row.shape, f"{row.value:.4g}", f"{row.p5:.4g}",
                      f"{row.p95:.4g}", row.unit, str(row.repeats))
    console.print(table)
    for name, rows in frame.groupby("precision", sort=False):
        label = "" if name == "fp32" else f"{name} "
        gemms, tables = rows[rows.base == "gemm"], rows[rows.base == "gather_table"]
        if not all_gemms and not gemms.empty:
            console.print(f"{label}gemm at {len(gemms)} layer shapes: median "
                          f"{gemms.value.median():.3g} GFLOP/s (from {gemms.value.min():.3g} "
                          f"to {gemms.value.max():.3g}); --all-gemms lists them",
                          highlight=False)
        if not all_tables and not tables.empty:
            console.print(label + _table_summary(tables), highlight=False)


def _table_summary(tables: object) -> str:
    """One line per row size: the gather from the smallest and from the largest table
    measured (each at its longest measured run)."""
    from recstack.ceiling_shapes import parse_table_gather_shape

    sizes = tables.assign(parsed=tables["shape"].map(parse_table_gather_shape)).dropna(
        subset=["parsed"])
    parts = []
    for row_bytes, group in sizes.groupby(sizes.parsed.map(lambda p: p[0])):
        ordered = group.assign(table=group.parsed.map(lambda p: p[1]),
                               run=group.parsed.map(lambda p: p[2] or 0)).sort_values(
                                   ["table", "run"])
        smallest = ordered[ordered.table == ordered.table.iloc[0]].iloc[-1]
        last = ordered.iloc[-1]
        parts.append(f"{row_bytes} B rows {smallest.value:.3g} GB/s "
                     f"({fmt.nbytes(smallest.table)} tables) to {last.value:.3g} "
                     f"({fmt.nbytes(last.table)})")
    return (f"gather by table size and run length ({len(sizes)} measured): " + "; ".join(parts)
            + "; --all-tables lists them")
