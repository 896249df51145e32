"""perf stat command lines and the event tables."""

from __future__ import annotations

import math

import pytest

from recstack.collect.perf_events import (
    GENERIC_EVENTS,
    MAX_EVENTS_PER_RUN,
    TOPDOWN_EVENTS,
    TOPDOWN_METRIC_GROUPS,
    perf_command,
)
from recstack.errors import RecstackError

# ---------------------------------------------------------------------------- argv


def test_perf_command_shape() -> None:
    argv = perf_command(["python", "-m", "recstack.worker"], control_fifo="/tmp/ctl",
                        ack_fifo="/tmp/ack", output_path="/tmp/out.json",
                        metric_groups=[TOPDOWN_METRIC_GROUPS[1], TOPDOWN_METRIC_GROUPS[2]])
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv[:3] == ["perf", "stat", "-j"]
    joined = " ".join(argv)
    assert "-o /tmp/out.json" in joined
    assert "--control fifo:/tmp/ctl,/tmp/ack -D -1" in joined
    assert argv[argv.index("-e") + 1] == ",".join(GENERIC_EVENTS)
    assert joined.count("-M ") == 2 and "-M TopdownL1" in joined and "-M TopdownL2" in joined
    dashdash = argv.index("--")
    assert argv[dashdash + 1:] == ["python", "-m", "recstack.worker"]

    csv_argv = perf_command(["true"], events=["cycles"], json=False, topdown_flag=True)
    assert csv_argv[:3] == ["perf", "stat", "-x,"]
    assert "--control" not in csv_argv and "-D" not in csv_argv
    assert "--topdown" in csv_argv and "--no-metric-only" in csv_argv

    attached = perf_command(pid=1234, events=["instructions"])
    assert attached[-2:] == ["-p", "1234"] and "--" not in attached


def test_perf_command_rejects_bad_requests() -> None:
    with pytest.raises(RecstackError, match="either a command or a pid"):
        perf_command(["true"], pid=1)
    with pytest.raises(RecstackError, match="either a command or a pid"):
        perf_command()
    with pytest.raises(RecstackError, match="go together"):
        perf_command(["true"], control_fifo="/tmp/ctl")
    with pytest.raises(RecstackError, match="nothing to measure"):
        perf_command(["true"], events=[])
    with pytest.raises(RecstackError, match="not one perf event"):
        perf_command(["true"], events=["cycles,instructions"])
    assert perf_command(["true"], events=["cpu/event=0x3c,umask=0x0/", "{cycles,instructions}"])


def test_perf_command_no_multiplex_groups() -> None:
    runs = perf_command(["true"], control_fifo="c", ack_fifo="a", output_path="out.json",
                        metric_groups=["TopdownL1"], no_multiplex=True)
    assert isinstance(runs, list) and all(isinstance(r, list) for r in runs)
    event_runs = [r for r in runs if "-e" in r]
    groups = [r[r.index("-e") + 1].split(",") for r in event_runs]
    assert all(len(g) <= MAX_EVENTS_PER_RUN for g in groups)
    assert [e for g in groups for e in g] == list(GENERIC_EVENTS)  # each event exactly once
    assert ["instructions", "cycles"] == groups[0][:2]  # IPC from one run
    pairs = (("branches", "branch-misses"), ("L1-dcache-loads", "L1-dcache-load-misses"),
             ("LLC-loads", "LLC-load-misses"), ("dTLB-loads", "dTLB-load-misses"))
    for base, misses in pairs:
        assert any(base in g and misses in g for g in groups)  # each miss ratio from one run
    metric_runs = [r for r in runs if "-M" in r]
    assert len(metric_runs) == 1 and "-e" not in metric_runs[0]
    assert len(runs) == math.ceil(len(GENERIC_EVENTS) / MAX_EVENTS_PER_RUN) + 1
    for i, argv in enumerate(runs):
        assert "--control" in argv and argv[argv.index("-D") + 1] == "-1"
        assert ("--append" in argv) == (i > 0)
        assert argv[-2:] == ["--", "true"]
    two = perf_command(["true"], events=["a", "b", "c"], no_multiplex=True, max_events_per_run=2)
    assert [r[r.index("-e") + 1] for r in two] == ["a,b", "c"]


def test_event_tables_are_data() -> None:
    assert "instructions" in GENERIC_EVENTS and len(set(GENERIC_EVENTS)) == len(GENERIC_EVENTS)
    assert TOPDOWN_METRIC_GROUPS == {1: "TopdownL1", 2: "TopdownL2"}
    assert all(isinstance(v, tuple) for v in TOPDOWN_EVENTS.values())
