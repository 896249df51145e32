"""``recstack backends``: the backend ``auto`` runs per model and batch size on this machine
(a race of eager, fused and static, stored per platform and thread count)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console
from recstack.cli.options import DEFAULT_STORE, JsonOption, StoreOption, int_list, thread_count
from recstack.errors import RecstackError
from recstack.text import shown

CANDIDATE_ORDER = ("eager", "fused", "static")


def _row_scale(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise RecstackError(f"--row-scale: {shown(text)} is not allowed; expected a finite "
                            "number greater than 0 (1 is full size; default 0.01)")
    return value


def _median(value: object) -> str:
    """A candidate's median in microseconds, or why it was not raced."""
    if isinstance(value, (int, float)):
        return f"{value:,.1f}"
    return "disqualified" if "differ" in str(value) else "n/a"


@app.command()
def backends(
    store: StoreOption = DEFAULT_STORE,
    threads: Annotated[str | None, typer.Option(
        "--threads", help="Intra-op threads. Default: all usable cores.")] = None,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Race again even when the store has this machine's race.")] = False,
    row_scale: Annotated[str, typer.Option(
        "--row-scale", help="Table rows relative to full size in the race (the backends "
                            "differ in overhead, not in rows).")] = "0.01",
    batch_sizes: Annotated[str, typer.Option(
        "--batch-sizes", help="Batch sizes to race; auto takes the nearest on a log "
                              "scale.")] = "1,16,256",
    as_json: JsonOption = False,
) -> None:
    """Race eager, fused and static on every canonical model here (about a minute), or show
    the race stored for this machine: what `--backend auto` runs."""
    from recstack import api
    from recstack.host import busy_cores, usable_cores

    cores = usable_cores()
    count = cores if threads is None else thread_count(threads, cores)
    sizes, scale = int_list("--batch-sizes", batch_sizes), _row_scale(row_scale)
    busy = busy_cores()  # before: the race itself keeps the cores busy
    frame, raced = api.backends(store, count, refresh=refresh, batch_sizes=sizes,
                                row_scale=scale)
    if raced and busy is not None and busy + count > cores + 0.5:
        # Threads waiting for a busy core at every operator time the wait, not the backend.
        console.print(f"warning: other work kept {busy:.1f} of {cores} cores busy when the "
                      "race started: its medians may be the wait for a core; race again "
                      "with --refresh on a quiet machine", highlight=False, style="yellow")
    if as_json:
        records = frame.assign(measured_at=frame.measured_at.astype(str)).to_dict(
            orient="records")
        fmt.print_json({"raced": raced, "threads": count, "choices": records})
        return
    first = frame.iloc[0]
    console.print(f"{'raced' if raced else 'reused'}: race {first.set_id} at {count} "
                  f"thread(s), platform {first.platform_id}, row_scale {first.row_scale:g}, "
                  f"{first.measured_at:%Y-%m-%d %H:%M} UTC, stored in {store}",
                  highlight=False)
    table = Table(header_style="bold")
    for column in ("model", "batch", "auto runs", *(f"{c} us" for c in CANDIDATE_ORDER)):
        table.add_column(column, justify="left" if column in ("model", "auto runs")
                         else "right")
    reasons: dict[str, str] = {}
    for row in frame.itertuples(index=False):
        candidates = row.candidates or {}
        for name, value in candidates.items():
            if not isinstance(value, (int, float)):
                reasons.setdefault(f"{name}: {value}", row.model)
        table.add_row(row.model, str(row.batch_size), row.backend,
                      *(_median(candidates.get(c)) for c in CANDIDATE_ORDER))
    console.print(table)
    for reason, model in reasons.items():
        console.print(f"not raced on {model}: {reason}", highlight=False)
    console.print("--backend auto runs these on this machine at this thread count; "
                  "--refresh races again", highlight=False)
