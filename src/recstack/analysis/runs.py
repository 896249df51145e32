"""The runs of a store: whether each finished (the state its last pass recorded, read for
people), what each holds, and which runs a report shows.

A run records its planned points and how its last pass ended (``store.start_run_pass`` /
``end_run``). A pass that never recorded its end while the process that ran it is gone was
killed (SIGKILL, the OOM killer, a power cut) or could not write its end (a full disk); on
another host that cannot be told, and the status says so.
"""

from __future__ import annotations

import json
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


# ---- which runs, and what they hold --------------------------------------------------------

REPORTED_LEVELS = ("timing", "operators", "hardware")
"""The levels whose newest run a default report adds when its anchor run lacks them."""
RUN_COLUMNS = ["run_id", "started_at", "command", "recstack_version", "git_revision",
               "platform_id", "settings", "platform", "platform_info", "status", "complete",
               "levels"]
RUN_POINT_COLUMNS = ["label", "level", "status", "error", "median_ms", "p95_ms", "p99_ms",
                     "throughput_per_s", "cv", "unstable", "wall_us", "profiled_iterations"]


def _placeholders(values: list[str]) -> str:
    return ", ".join("?" * len(values))


def run_details(store: Any, run_ids: list[str]) -> pd.DataFrame:
    """The runs ``run_ids`` in the order they started, columns RUN_COLUMNS: the run's own
    columns, its platform (``platform``: the description; ``platform_info``: JSON text),
    ``status`` and ``complete`` (:func:`runs_with_status`), and ``levels`` (the levels it
    measured a point of, comma-separated; None when none)."""
    if not run_ids:
        return pd.DataFrame(columns=RUN_COLUMNS)
    runs = store.query(f"""
        SELECT r.run_id, r.started_at, r.command, r.recstack_version, r.git_revision,
               r.platform_id, r.settings, p.description AS platform, p.info AS platform_info
        FROM runs r LEFT JOIN platforms p USING (platform_id)
        WHERE r.run_id IN ({_placeholders(run_ids)}) ORDER BY r.started_at
    """, list(run_ids))
    states = runs_with_status(store.runs())[["run_id", "status", "complete"]]
    levels = store.query(f"""
        SELECT run_id, string_agg(DISTINCT level, ', ' ORDER BY level) AS levels
        FROM points WHERE status = 'ok' AND run_id IN ({_placeholders(run_ids)})
        GROUP BY run_id
    """, list(run_ids))
    runs = runs.merge(states, on="run_id", how="left").merge(levels, on="run_id", how="left")
    runs["levels"] = runs.levels.astype(object).where(runs.levels.notna(), None)
    return runs[RUN_COLUMNS]


def platforms(runs: pd.DataFrame) -> pd.DataFrame:
    """The platforms of :func:`run_details`' runs, one row each: platform_id, description,
    hostname, os, python, torch (None where the platform did not record it)."""
    rows = []
    for row in runs.drop_duplicates("platform_id").itertuples():
        info = json.loads(row.platform_info or "{}")
        rows.append({"platform_id": row.platform_id, "description": row.platform,
                     **{key: info.get(key) for key in ("hostname", "os", "python", "torch")}})
    return pd.DataFrame(rows, columns=["platform_id", "description", "hostname", "os",
                                       "python", "torch"])


def settings_by_run(runs: pd.DataFrame) -> pd.DataFrame:
    """The timing settings of :func:`run_details`' runs side by side: a ``setting`` column,
    then one column per run id (None where a run did not record the setting)."""
    settings = {row.run_id: json.loads(row.settings or "{}") for row in runs.itertuples()}
    names = sorted({name for values in settings.values() for name in values})
    return pd.DataFrame([[name, *(values.get(name) for values in settings.values())]
                         for name in names], columns=["setting", *settings], dtype=object)


def latest_characterization(store: Any) -> str | None:
    """The newest run that is not a design-space run (whose variants are not the zoo), else
    the newest run."""
    rows = store.query("""
        SELECT run_id FROM runs WHERE run_id NOT IN (SELECT run_id FROM design_space)
        ORDER BY started_at DESC LIMIT 1
    """)
    return rows.run_id.iloc[0] if not rows.empty else store.latest_run_id()


def default_run_ids(store: Any, anchor: str | None = None) -> list[str]:
    """The anchor run (default: :func:`latest_characterization`), then for every level of
    REPORTED_LEVELS it did not measure, the newest such run of the store that did: a report
    of a timing run still shows a hardware run made separately."""
    from recstack.errors import RecstackError
    from recstack.text import shown

    anchor = anchor or latest_characterization(store)
    if anchor is None:
        raise RecstackError(f"store: {store.path} holds no run; run `recstack run` first")
    if store.run_info(anchor) is None:
        raise RecstackError(f"--run: {shown(anchor)} is not in {store.path}; `recstack results` "
                            "lists the runs")
    # Runs of the anchor's platform first: a level measured on this machine is never
    # replaced by a newer run of another (which the page would then have to say).
    newest = store.query("""
        SELECT pt.level, pt.run_id, max(r.started_at) AS started,
               r.platform_id = (SELECT platform_id FROM runs WHERE run_id = ?) AS same_platform
        FROM points pt JOIN runs r USING (run_id) WHERE pt.status = 'ok'
          AND pt.run_id NOT IN (SELECT run_id FROM design_space)
        GROUP BY pt.level, pt.run_id, r.platform_id ORDER BY same_platform DESC, started DESC
    """, [anchor])
    chosen = [anchor]
    has = set(newest[newest.run_id == anchor].level)
    for level in REPORTED_LEVELS:
        if level in has:
            continue
        runs = newest[newest.level == level].run_id
        if not runs.empty and runs.iloc[0] not in chosen:
            chosen.append(runs.iloc[0])
    return chosen


def method_versions(store: Any, run_ids: list[str]) -> pd.DataFrame:
    """The method version of each level each run measured with. Columns: run_id, level,
    method_version (text; ``unversioned`` for points stored before methods had versions)."""
    if not run_ids:
        return pd.DataFrame(columns=["run_id", "level", "method_version"])
    return store.query(f"""
        SELECT DISTINCT run_id, level,
               coalesce(CAST(method_version AS VARCHAR), 'unversioned') AS method_version
        FROM points WHERE status = 'ok' AND run_id IN ({_placeholders(run_ids)})
        ORDER BY level, run_id
    """, list(run_ids))


def mixed_methods(versions: pd.DataFrame) -> list[str]:
    """One line per level measured with more than one method version among the runs of
    :func:`method_versions`."""
    lines = []
    for level, rows in versions.groupby("level", sort=True):
        if rows.method_version.nunique() > 1:
            lines.append(f"{level}: " + ", ".join(f"version {row.method_version} in run "
                                                  f"{row.run_id}" for row in rows.itertuples()))
    return lines


def design_runs(store: Any, run_ids: list[str]) -> list[str]:
    """The design-space runs among ``run_ids``, else the store's newest one (or none)."""
    runs = store.query("""
        SELECT d.run_id, max(r.started_at) AS started
        FROM design_space d JOIN runs r USING (run_id)
        GROUP BY d.run_id ORDER BY started DESC
    """)
    among = [run for run in run_ids if run in set(runs.run_id)]
    return among if among else list(runs.run_id.iloc[:1])


def run_points(store: Any, run_id: str) -> pd.DataFrame:
    """Every point of one run, failed ones included, with its timing statistics or its
    operator profile's wall time: columns RUN_POINT_COLUMNS (NaN where the level did not
    measure the value), ordered by model, device, threads and batch size."""
    return store.query("""
        SELECT pt.label, pt.level, pt.status, pt.error, t.median_ms, t.p95_ms, t.p99_ms,
               t.throughput_per_s, t.cv, coalesce(t.unstable, false) AS unstable,
               pr.wall_us, pr.iterations AS profiled_iterations
        FROM points pt LEFT JOIN timing t USING (run_id, point_key)
        LEFT JOIN profiles pr USING (run_id, point_key)
        WHERE pt.run_id = ? ORDER BY pt.model, pt.device, pt.threads, pt.batch_size
    """, [run_id])[RUN_POINT_COLUMNS]


QUERY_COLUMNS = ["run_id", "queries", "distribution", "models", "points", "folded_fraction"]


def queries_by_run(store: Any, run_ids: list[str]) -> pd.DataFrame:
    """How each run's points drew their query ids, one row per (run, query): ``queries``
    (:func:`recstack.inputs.describe`: a trace or profile named with its digest),
    ``distribution``, ``models`` (comma-separated), ``points``, and ``folded_fraction``
    (the largest share of a trace's ids folded into a model's tables; NaN when none were
    read from a trace)."""
    from recstack.inputs import QuerySpec, describe

    if not run_ids:
        return pd.DataFrame(columns=QUERY_COLUMNS)
    rows = store.query(f"""
        SELECT run_id, CAST(query AS VARCHAR) AS query,
               string_agg(DISTINCT model, ', ' ORDER BY model) AS models,
               count(*) AS points, max(folded_fraction) AS folded_fraction
        FROM points WHERE run_id IN ({_placeholders(run_ids)}) GROUP BY run_id, query
        ORDER BY run_id, query
    """, list(run_ids))
    queries = [QuerySpec(**json.loads(text)) if text else QuerySpec() for text in rows["query"]]
    rows["queries"] = [describe(query) for query in queries]
    rows["distribution"] = [query.distribution for query in queries]
    rows["folded_fraction"] = rows.folded_fraction.astype(float)
    return rows[QUERY_COLUMNS]
