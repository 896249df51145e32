"""``recstack report`` (one HTML page and a Markdown summary from the store) and ``recstack
compare`` (two runs side by side, with a significance test per point)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console, make_console
from recstack.cli.options import DEFAULT_STORE, JsonOption, StoreOption


@app.command()
def report(
    store: StoreOption = DEFAULT_STORE,
    run: Annotated[list[str] | None, typer.Option(
        "--run", help="A run to include (repeatable). Default: the latest run, plus the "
                      "newest run of each level it did not measure.")] = None,
    html: Annotated[str | None, typer.Option(
        "--html", help="The HTML page to write. Default: reports/RUN_ID.html next to the "
                       "store.")] = None,
    markdown: Annotated[str | None, typer.Option(
        "--markdown", help="The Markdown summary to write. Default: reports/RUN_ID.md next "
                           "to the store.")] = None,
) -> None:
    """One self-contained HTML page (figures embedded, nothing loaded from the network) and a
    Markdown summary of stored runs: platforms, the three levels, methodology, and the
    paper's findings checked on this data."""
    from recstack import api

    for path in api.report(store, run or None, html, markdown):
        console.print(f"report: {path}", highlight=False, markup=False)


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="The reference run (A).")],
    run_b: Annotated[str, typer.Argument(help="The run compared with it (B).")],
    store: StoreOption = DEFAULT_STORE,
    alpha: Annotated[float, typer.Option(
        "--alpha", help="Significance level after Holm's correction.")] = 0.05,
    platform_a: Annotated[str | None, typer.Option(
        "--platform-a", help="Only A's points measured on this platform (a run on a cluster "
                             "spans several).")] = None,
    platform_b: Annotated[str | None, typer.Option(
        "--platform-b", help="Only B's points measured on this platform; with --platform-a, "
                             "RUN_B may be RUN_A (two platforms of one run).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Two runs (or platforms) point by point: median latency ratio B/A and a Mann-Whitney U
    test on the raw samples, Holm-corrected; only significant differences are highlighted."""
    from recstack import api

    comparison = api.compare(run_a, run_b, store, alpha, platform_a, platform_b)
    table, platforms, warnings = comparison.points, comparison.platforms, comparison.warnings
    if as_json:
        fmt.print_json({"run_a": run_a, "run_b": run_b, "alpha": alpha,
                        "platform_a": platform_a, "platform_b": platform_b,
                        "platforms": platforms.to_dict("records"), "warnings": warnings,
                        "points": table.to_dict("records")})
        for warning in warnings:  # stdout stays the JSON alone
            make_console(stderr=True).print(f"warning: {warning}", highlight=False, markup=False)
        return
    for row in platforms.itertuples():
        console.print(f"{row.run}: {row.run_id} on {row.description} ({row.platform_id})",
                      highlight=False, markup=False)
    side_a = run_a + (f" on {platform_a}" if platform_a else "")
    side_b = run_b + (f" on {platform_b}" if platform_b else "")
    view = Table(title=f"B ({side_b}) against A ({side_a}): median latency ratio, "
                       f"Mann-Whitney U, Holm-corrected, alpha {alpha:g}", header_style="bold")
    # A side spanning several platforms: each row says which machine measured it.
    by_platform = table.platform_a.nunique() > 1 or table.platform_b.nunique() > 1
    # Points of several precisions (matched precision by precision): each row says which.
    from recstack.analysis.systems import precision_labels, precisions_of

    by_precision = len(precisions_of(table)) > 1
    table = table.assign(precision=precision_labels(table))
    matched = table[table.present == "both"]
    columns = ["model", "batch", "device", "threads", *(["platform"] if by_platform else []),
               *(["precision"] if by_precision else []),
               "A median ms", "B median ms", "B/A", "p (Holm)", "change"]
    for column in columns:
        view.add_column(column, justify="left" if column in ("model", "device", "platform",
                                                             "change") else "right")
    for row in matched.itertuples():
        style = ("bold red" if row.change == "slower" else "bold green"
                 if row.change == "faster" else None)
        machine = ([row.platform_a if row.platform_a == row.platform_b
                    else f"{row.platform_a} / {row.platform_b}"] if by_platform else [])
        view.add_row(str(row.model), str(row.batch_size), row.device, str(row.threads),
                     *machine, *([row.precision] if by_precision else []),
                     fmt.ms(row.median_a_ms), fmt.ms(row.median_b_ms),
                     f"{row.ratio:.3f}", f"{row.p_adjusted:.2g}", row.change, style=style)
    console.print(view)
    significant = matched[matched.significant]
    console.print(f"{len(significant)} of {len(matched)} matched points differ significantly "
                  f"({(significant.change == 'slower').sum()} slower, "
                  f"{(significant.change == 'faster').sum()} faster in B)", highlight=False)
    for side in ("only A", "only B"):
        alone = table[table.present == side]
        if not alone.empty:
            labels = ", ".join(f"{r.model} b{r.batch_size} {r.device} t{r.threads}"
                               + (f" {r.precision}" if by_precision else "")
                               + (f" on {r.platform_a if side == 'only A' else r.platform_b}"
                                  if by_platform else "") for r in alone.itertuples())
            console.print(f"{len(alone)} point(s) in {side.replace('only ', '')} only: "
                          f"{labels}", highlight=False, markup=False)
    for warning in warnings:
        console.print(f"warning: {warning}", style="yellow", highlight=False)
