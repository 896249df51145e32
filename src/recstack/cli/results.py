"""``recstack results``: list the runs of a store, show one, export it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console
from recstack.cli.options import DEFAULT_STORE, JsonOption, StoreOption
from recstack.text import MISSING, shown

results_app = typer.Typer(help="List, show and export stored runs.", no_args_is_help=False,
                          invoke_without_command=True)
app.add_typer(results_app, name="results")


@results_app.callback()
def results(ctx: typer.Context, store: StoreOption = DEFAULT_STORE,
            as_json: JsonOption = False) -> None:
    """List the runs in the store (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    from recstack.analysis.runs import runs_with_status
    from recstack.store import ResultStore

    runs = runs_with_status(ResultStore(store).runs())
    if as_json:
        fmt.print_json(runs.to_dict("records"))
        return
    table = Table(title=f"runs in {store}", header_style="bold")
    for column in ("run", "started (UTC)", "status", "platform", "command"):
        table.add_column(column)
    for row in runs.itertuples():
        table.add_row(row.run_id, str(row.started_at)[:19], row.status, str(row.platform),
                      str(row.command))
    console.print(table)


@results_app.command("show")
def show(run_id: Annotated[str, typer.Argument(help="The run to show.")],
         store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False) -> None:
    """The points of one run, with their statistics or errors."""
    from recstack.analysis.runs import run_points, runs_with_status
    from recstack.errors import RecstackError
    from recstack.store import ResultStore

    results_store = ResultStore(store)
    runs = runs_with_status(results_store.runs())
    runs = runs[runs.run_id == run_id]
    if runs.empty:
        raise RecstackError(f"run: {shown(run_id)} is not in {store}; `recstack results` "
                            "lists the runs")
    frame = run_points(results_store, run_id)
    if as_json:
        fmt.print_json(frame.to_dict("records"))
        return
    table = Table(title=f"run {run_id}: {runs.status.iloc[0]}", header_style="bold")
    for column in ("point", "status", "median ms", "p95 ms", "p99 ms", "samples/s", "CV",
                   "note"):
        table.add_column(column)
    for row in frame.itertuples():
        if row.status == "failed":
            note = row.error
        elif row.level == "operators":
            note = (f"operator profile: {row.profiled_iterations} iterations, mean wall "
                    f"{fmt.ms(row.wall_us / 1e3)} ms")
        else:
            note = "unstable" if row.unstable else ""
        table.add_row(row.label, row.status, fmt.ms(row.median_ms), fmt.ms(row.p95_ms),
                      fmt.ms(row.p99_ms), fmt.rate(row.throughput_per_s),
                      MISSING if row.cv != row.cv else f"{row.cv:.0%}", str(note or ""))
    console.print(table)


@results_app.command("export")
def export(run_id: Annotated[str, typer.Argument(help="The run to export.")],
           to: Annotated[str, typer.Option("--to", help="Directory to write into.")] = ".",
           file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")]
           = "parquet",
           store: StoreOption = DEFAULT_STORE) -> None:
    """Write a run's platform, run, points, samples and timing tables as Parquet or CSV."""
    from recstack.store import ResultStore

    for path in ResultStore(store).export(run_id, to, file_format):
        console.print(f"wrote {path}", highlight=False)
