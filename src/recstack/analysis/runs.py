"""Whether runs finished: the state each run's last pass recorded, read for people.

A run records its planned points and how its last pass ended (``store.start_run_pass`` /
``end_run``). A pass that never recorded its end while the process that ran it is gone was
killed (SIGKILL, the OOM killer, a power cut) or could not write its end (a full disk); on
another host that cannot be told, and the status says so.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import pandas as pd


def _process_alive(runner: str) -> bool | None:
    """Whether the ``host:pid`` runner still runs; None when it ran on another host."""
    host, _, pid = str(runner).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds that pid
    return True


def run_status(run: Any) -> str:
    """One line on how far a run got: ``complete: 10 of 10 points``, ``interrupted after 3
    of 10 points``, ``stopped after 3 of 10 points`` ... from a row of
    ``ResultStore.runs()``."""
    done = int(run.points_ok) + int(run.points_failed)
    failed = f", {int(run.points_failed)} failed" if run.points_failed else ""
    if pd.isna(run.state):
        return f"{done} points{failed} (end state not recorded)"
    planned = "?" if pd.isna(run.planned_points) else int(run.planned_points)
    progress = f"{done} of {planned} points{failed}"
    in_flight = "" if pd.isna(run.in_flight) else f"; in flight: {run.in_flight}"
    if run.state == "complete":
        return f"complete: {progress}"
    if run.state == "interrupted":
        return f"interrupted after {progress}{in_flight}; --resume continues it"
    if run.state == "failed":
        reason = "" if pd.isna(run.state_reason) else f" ({run.state_reason})"
        return f"stopped after {progress}{reason}{in_flight}; --resume continues it"
    alive = _process_alive(run.runner)
    if alive:
        return f"running: {progress}{in_flight}"
    if alive is None:
        return f"running on {run.runner}, or stopped there: {progress}{in_flight}"
    return (f"stopped after {progress} (its process ended without recording why: killed, "
            f"or the store could not be written){in_flight}; --resume continues it")


def is_complete(run: Any) -> bool:
    """Whether the run's last pass measured every planned point (a run from before run
    states were recorded counts as complete: nothing says otherwise)."""
    return pd.isna(run.state) or run.state == "complete"


def runs_with_status(runs: pd.DataFrame) -> pd.DataFrame:
    """``ResultStore.runs()`` with ``status`` (text) and ``complete`` (bool) columns."""
    rows = list(runs.itertuples(index=False))
    return runs.assign(status=[run_status(run) for run in rows],
                       complete=[is_complete(run) for run in rows])
