"""Measured counters: ``perf stat`` around a worker's measured loop only.

The worker is started under ``perf stat --control fifo:CTL,ACK -D -1``: counting starts
disabled, so interpreter start-up, imports, model building and warm-up are not counted. The
worker enables counting right before its timed loop and disables it right after, through the
control fifo (:class:`recstack.collect.perf_control.PerfControl`). perf writes JSON (``-j``)
to a file that is parsed with :func:`recstack.collect.perf_parse.parse_perf_json`.

Events: perf's generic events for IPC and misses per kilo-instruction, and the ``TopdownL1``
and ``TopdownL2`` metric groups. Where perf has no such metric group for the CPU, the run is
repeated without them (and a caveat says so). With ``no_multiplex`` the loop is run once per
group of events small enough to need no multiplexing.

Only the parent side and the worker side live here; the worker is a child of perf, started
as :func:`recstack.worker.tool_child_command` says, and :func:`counted_loop` is its entry.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recstack.collect.hardware import MEASURED, HardwareResult
from recstack.collect.perf_control import PerfControl
from recstack.collect.perf_events import GENERIC_EVENTS, TOPDOWN_METRIC_GROUPS, perf_command
from recstack.collect.perf_parse import derived_rates, multiplexing_share, parse_perf_json
from recstack.collect.perf_topdown import topdown_from_readings
from recstack.collect.timing import TimingSettings, point_cycled_set
from recstack.errors import RecstackError
from recstack.points import Point
from recstack.records.hardware import RATES
from recstack.worker import run_under_tool, tool_child_command, tool_child_env, tool_child_outcome

SOURCE = "measured (perf stat)"
PERF_TIMEOUT_S = 900


def _request(point: Point, settings: TimingSettings) -> dict[str, Any]:
    return {"spec": point.spec.to_config(), "batch_size": point.batch_size,
            "threads": point.threads, "seed": point.seed, "query": point.query.to_dict(),
            "precision": point.precision.to_dict(), "min_seconds": settings.min_seconds, "warmup": settings.warmup_iterations,
            "distinct_batches": point_cycled_set(point, settings).batches}


def measured_result(point: Point, settings: TimingSettings, no_multiplex: bool = False,
                    perf: str = "perf") -> HardwareResult:
    """The hardware level of ``point`` from hardware counters."""
    if point.device != "cpu":
        raise RecstackError(f"{point.label}: hardware counters are a CPU level; use a cpu "
                            "point")
    caveats: list[str] = []
    with tempfile.TemporaryDirectory(prefix="recstack-perf-") as scratch:
        directory = Path(scratch)
        control, ack = directory / "control", directory / "ack"
        os.mkfifo(control)
        os.mkfifo(ack)
        output, status = directory / "perf.json", directory / "status.json"
        request = dict(_request(point, settings), control=str(control), ack=str(ack))
        worker = tool_child_command("counted-loop", request, status)
        env = tool_child_env(OMP_NUM_THREADS=str(point.threads), OPENBLAS_NUM_THREADS="1")
        groups = list(TOPDOWN_METRIC_GROUPS.values())
        for attempt in ("with top-down groups", "without"):
            argvs = perf_command(worker, events=GENERIC_EVENTS, metric_groups=groups,
                                 control_fifo=control, ack_fifo=ack, output_path=output,
                                 json=True, no_multiplex=no_multiplex, perf=perf)
            runs = argvs if no_multiplex else [argvs]
            output.unlink(missing_ok=True)
            failed = None
            for argv in runs:
                done = run_under_tool(list(argv), timeout_s=PERF_TIMEOUT_S, env=env,
                                      what=f"{point.label}: perf stat")
                tool_child_outcome(status)  # the worker's error, if it failed
                if done.returncode != 0:
                    failed = done.stderr.strip().splitlines()[-1:] or ["no output"]
                    break
            if failed is None:
                break
            if attempt == "with top-down groups" and groups:
                caveats.append(f"perf has no TopdownL1/TopdownL2 metric groups here "
                               f"({failed[0]}); no top-down fractions")
                groups = []
                continue
            raise RecstackError(f"{point.label}: perf stat failed: {failed[0]}")
        readings = parse_perf_json(output.read_text() if output.is_file() else "")
        _, iterations = tool_child_outcome(status)
    if not readings:
        raise RecstackError(f"{point.label}: perf stat wrote no counts")
    rates = derived_rates(readings)
    instructions = next((r.value for r in readings
                         if r.event.split(":")[0] == "instructions" and r.value is not None),
                        None)
    multiplexed = multiplexing_share(readings)
    if multiplexed is not None and multiplexed < 1.0:
        caveats.append(f"events were multiplexed (counted {multiplexed:.0%} of the time at "
                       "least); rerun with no_multiplex for exact counts")
    return HardwareResult(
        source=SOURCE,
        instructions_per_iteration=(instructions / iterations
                                    if instructions is not None and iterations else None),
        rates={name: rates.get(name) for name in RATES},
        topdown=topdown_from_readings(readings),
        multiplexing=multiplexed,
        caveats=caveats,
        raw={"readings": [asdict(r) for r in readings], "iterations": iterations,
             "mode": MEASURED},
    )


# ---- the worker, under perf ------------------------------------------------------------------


def counted_loop(request: dict[str, Any]) -> int:
    """The worker's entry (a child of perf): builds the model, warms up, then counts only the
    timed loop, enabling perf through the ``control`` and ``ack`` fifos of the request.
    Returns the iterations counted."""
    import torch

    from recstack.batch_set import generate_batch_set
    from recstack.inputs import QuerySpec
    from recstack.models import build_model
    from recstack.precision import Precision
    from recstack.specs import spec_from_config

    torch.set_num_threads(int(request["threads"]))
    spec = spec_from_config(request["spec"])
    model = build_model(spec, seed=int(request["seed"]),
                        precision=Precision.from_dict(request.get("precision")))
    batches = generate_batch_set(spec, QuerySpec(**request["query"]),
                                 int(request["batch_size"]), int(request["distinct_batches"]))
    count = len(batches)
    with torch.inference_mode():
        for index in range(max(1, int(request["warmup"]))):
            model(batches[index % count])
        iterations = 0
        deadline_ns = int(float(request["min_seconds"]) * 1e9)
        with PerfControl(request["control"], request["ack"]) as perf:
            perf.enable()
            start = time.perf_counter_ns()
            while iterations < 3 or time.perf_counter_ns() - start < deadline_ns:
                model(batches[iterations % count])
                iterations += 1
            perf.disable()
    return iterations
