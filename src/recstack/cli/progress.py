"""What every measuring command shows: notes before it starts, progress while it runs, and
where things went and what failed when it ends (presentation only: the API measures)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from recstack.cli import format as fmt
from recstack.cli.app import console
from recstack.text import printable


def command_line() -> str:
    """The command as typed, stored with the run."""
    return "recstack " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _announce(start: Any, display: Console) -> None:
    for note in start.notes:
        display.print(f"note: {note}", highlight=False)
    display.print(f"run {start.run_id}: {start.points} points into {start.store.path}",
                  highlight=False)


def _minutes(seconds: float) -> str:
    return f"{max(seconds, 0.0) / 60:.1f} min"


def _stage(event: Any, display: Console) -> None:
    """The main job's plan before its first point, then a line per stage with the budget
    left."""
    plan = event.plan
    if event.what == "plan":
        display.print(f"plan ({plan.tier.name}): estimated {_minutes(plan.estimate_s)} of a "
                      f"{_minutes(plan.budget_s)} budget", highlight=False)
        for stage in plan.stages:
            what = (f"skipped: {stage.skipped}" if stage.skipped is not None else
                    f"~{_minutes(stage.estimate_s)}"
                    + (f", {stage.points} points" if stage.points else ""))
            display.print(f"  {stage.name}: {stage.purpose} ({what})", highlight=False,
                          markup=False)
        for note in plan.notes:
            display.print(f"note: {note}", highlight=False, markup=False)
        return
    name = event.stage.name
    if event.what == "start":
        line = (f"stage {name}: ~{_minutes(event.stage.estimate_s)} "
                f"({_minutes(event.left_s)} of the budget left)")
    elif event.what == "skipped":
        line = f"stage {name}: skipped ({event.detail})"
    else:
        line = f"stage {name}: done, {_minutes(event.left_s)} of the budget left" + (
            f"; {event.detail}" if event.detail else "")
    display.print(line, highlight=False, markup=False)


@contextmanager
def progress_display(display: Console = console) -> Iterator[Callable[[Any], None]]:
    """A callback for the API's ``on_start`` and progress events: the run's notes and first
    line, then a bar on a terminal (sized when the run starts), one line per point otherwise
    (logs, CI)."""
    if display.is_terminal:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                   TimeRemainingColumn())
        with Progress(*columns, console=display) as progress:
            task = progress.add_task("starting", total=None)

            def update(event: Any) -> None:
                if event.kind == "stage":
                    _stage(event, progress.console)
                elif event.kind == "run":
                    _announce(event, progress.console)
                    progress.reset(task, total=event.points, completed=0)
                elif event.kind == "start":
                    progress.update(task, description=escape(printable(event.point.label)))
                elif event.kind == "retry":  # the point is not done: it is measured again
                    progress.console.print(f"lost: {event.point.label}: {event.error}",
                                           highlight=False, markup=False)
                else:
                    progress.advance(task)
                    if event.kind == "done" and getattr(event, "detail", None):
                        progress.console.print(f"{event.point.label}: {event.detail}",
                                               highlight=False, markup=False)
                    if event.kind == "failed":
                        progress.console.print(f"failed: {event.point.label}: {event.error}",
                                               highlight=False, markup=False)

            yield update
        return

    def log(event: Any) -> None:
        if event.kind == "stage":
            _stage(event, display)
            return
        if event.kind == "run":
            _announce(event, display)
            return
        where = f"[{event.index + 1}/{event.total}] {event.point.label}"
        if event.kind == "done" and getattr(event, "detail", None):
            line = f"{where}: {event.detail}"
        elif event.kind == "done" and event.median_ms is None:
            line = f"{where}: {event.point.level} collected"
        elif event.kind == "done":
            line = f"{where}: median {fmt.ms(event.median_ms)} ms"
        elif event.kind == "failed":
            line = f"{where}: failed: {event.error}"
        elif event.kind == "retry":
            line = f"{where}: lost: {event.error}"
        elif event.kind == "skipped":
            line = f"{where}: already measured"
        else:
            return
        display.print(line, highlight=False, markup=False)

    yield log


def measure_with_progress(measure: Callable[..., Any], *arguments: Any,
                          display: Console = console, **options: Any) -> Any:
    """Calls an API function that measures, with this display's notes and progress."""
    with progress_display(display) as update:
        return measure(*arguments, progress=update, on_start=update,
                       command=command_line(), **options)


def report_outcome(outcome: Any, display: Console = console) -> None:
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


def finish(result: Any, display: Console = console) -> None:
    """What every measuring command ends with: where things went, what went wrong, and a
    non-zero exit status when a point failed."""
    for path in result.figures:
        display.print(f"figure: {path}", highlight=False)
    for path in result.reports:
        display.print(f"report: {path}", highlight=False, markup=False)
    if result.traces is not None:
        display.print(f"traces: {result.traces}", highlight=False)
    display.print(f"store: {result.store.path} (run {result.run_id}; `recstack results` lists "
                  "runs)", highlight=False)
    report_outcome(result.outcome, display)
    if result.failed:
        raise typer.Exit(1)
