"""What ``perf stat`` is asked to count, and its command lines.

The hardware level of recstack (Intel's top-down method) reads CPU counters with
``perf stat`` where the CPU exposes them. This module holds the event lists and metric groups
(data) and builds perf's argv (pure: it runs nothing and checks nothing on disk); the output
is read by :mod:`recstack.collect.perf_parse` and :mod:`recstack.collect.perf_topdown`, and a
running perf is switched on and off by :mod:`recstack.collect.perf_control`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from recstack.errors import RecstackError

GENERIC_EVENTS: tuple[str, ...] = (
    # perf's generic (architecture-independent) hardware and cache events; the kernel maps
    # them to model-specific events. Ordered so that each miss event sits next to its base
    # event: chunking this tuple by 4 (see ``perf_command(no_multiplex=True)``) keeps every
    # pair in one run. Not every CPU has every one (e.g. many AMD parts lack ``LLC-loads``);
    # those print ``<not supported>``.
    "instructions",
    "cycles",
    "branches",
    "branch-misses",
    "L1-dcache-loads",
    "L1-dcache-load-misses",
    "LLC-loads",
    "LLC-load-misses",
    "dTLB-loads",
    "dTLB-load-misses",
    "iTLB-load-misses",
    "L1-icache-load-misses",
)
"""Generic perf events behind :func:`recstack.collect.perf_parse.derived_rates`."""

OPTIONAL_L2_EVENTS: tuple[str, ...] = ("l2_rqsts.references", "l2_rqsts.miss")
"""L2 events. perf has no generic L2 event; these are Intel core event names (Skylake and
later, from perf's pmu-events JSON). Other CPUs name L2 differently and perf rejects an
unknown name with "event syntax error", so they are never requested by default."""

TOPDOWN_METRIC_GROUPS: dict[int, str] = {1: "TopdownL1", 2: "TopdownL2"}
"""Top-down as perf metric groups (``-M TopdownL1``, ``-M TopdownL2``). They come from Intel's
TMA metrics in perf's pmu-events JSON: metric names ``tma_retiring``, ``tma_frontend_bound``,
... (the ``tma_`` names arrived with the TMA 4.x update of perf's Intel metrics, around
perf 6.0; perf 5.x shipped the same groups with names like ``Frontend_Bound``). Available for
Intel Core/Xeon models that perf has metrics for; ``perf list metricgroups`` shows them. AMD
Zen 4 uses other groups (``PipelineL1``/``PipelineL2``), not handled here. In a VM without a
PMU the events behind them print ``<not supported>`` and no metric is printed."""

TOPDOWN_FLAG: str = "--topdown"
"""The older way: ``perf stat --topdown`` (perf 4.8+). Before Ice Lake it computes level 1
from the ``topdown-*`` events in perf itself and requires system-wide mode (``-a``); on Ice
Lake and later it uses the PERF_METRICS fixed counter and ``--td-level 2`` adds level 2
(perf 5.12+); since perf 6.3 it is built on the ``TopdownL1`` metric group. ``--topdown``
implies ``--metric-only`` unless told otherwise, so :func:`perf_command` adds
``--no-metric-only`` to keep the row format the parsers read."""

TOPDOWN_EVENTS: dict[str, tuple[str, ...]] = {
    # Kernel topdown events (the raw material of the metrics above). Listed for reference
    # and for callers that want the raw slot counts; the metric groups are the normal way.
    # Sandy Bridge .. Skylake/Cascade Lake (Linux 4.8+): level 1 from 5 events, needs -a.
    "pre_icelake": (
        "topdown-total-slots",
        "topdown-slots-issued",
        "topdown-slots-retired",
        "topdown-fetch-bubbles",
        "topdown-recovery-bubbles",
    ),
    # Ice Lake and later: the "slots" fixed counter plus PERF_METRICS (Linux 5.9+ roughly);
    # these must be scheduled as one group led by "slots".
    "icelake": (
        "slots",
        "topdown-retiring",
        "topdown-bad-spec",
        "topdown-fe-bound",
        "topdown-be-bound",
    ),
    # Sapphire Rapids and later add level 2 in PERF_METRICS.
    "sapphire_rapids_level2": (
        "topdown-heavy-ops",
        "topdown-br-mispredict",
        "topdown-fetch-lat",
        "topdown-mem-bound",
    ),
}

MAX_EVENTS_PER_RUN: int = 4
"""Assumption behind ``no_multiplex``: 4 programmable counters per logical CPU (Intel cores
since Sandy Bridge with Hyper-Threading on; 8 with it off; AMD Zen has 6). Fixed counters
(instructions, cycles) would allow a little more, and the NMI watchdog can take one away; 4
generic events per run is the conservative choice that schedules without multiplexing on
those CPUs."""

_EVENT_ALIASES = {
    "cpu-cycles": "cycles",
    "branch-instructions": "branches",
    "l2_rqsts.miss": "l2-misses",
    "l2_rqsts.references": "l2-references",
}


def normalize_event(name: str) -> str:
    """Event name without PMU and modifiers, lower case: ``cpu_core/cycles/u`` and
    ``cycles:u`` -> ``cycles``; aliases mapped (``cpu-cycles`` -> ``cycles``)."""
    s = name.strip()
    m = re.match(r"^[\w.-]+/([^/]+)/[a-zA-Z]*$", s)
    if m:
        s = m.group(1).split(",")[0]
    s = s.split(":")[0].lower()
    return _EVENT_ALIASES.get(s, s)


def _bracketed(event: str) -> bool:
    """Commas are part of one event only inside ``pmu/.../`` or an ``{a,b}`` group."""
    if event.startswith("{") and event.endswith("}"):
        return True
    return bool(re.match(r"^[\w.-]+/.*/[a-zA-Z]*$", event))


def perf_command(
    command: Sequence[str] | None = None,
    *,
    pid: int | None = None,
    events: Sequence[str] = GENERIC_EVENTS,
    metric_groups: Sequence[str] = (),
    topdown_flag: bool = False,
    control_fifo: str | os.PathLike[str] | None = None,
    ack_fifo: str | os.PathLike[str] | None = None,
    output_path: str | os.PathLike[str] | None = None,
    json: bool = True,
    no_multiplex: bool = False,
    max_events_per_run: int = MAX_EVENTS_PER_RUN,
    perf: str = "perf",
) -> list[str] | list[list[str]]:
    """The argv of ``perf stat`` around a worker command (or attached to ``pid``).

    ``perf stat -j -o OUT --control fifo:CTL,ACK -D -1 -e a,b -M TopdownL1 -- command...``.
    With control fifos, counting starts disabled (``-D -1``) and the caller enables it around
    the measured loop (see :class:`recstack.collect.perf_control.PerfControl`; ``--control``
    and ``-D -1`` arrived around perf 5.9/5.10).
    ``json=True`` needs perf 6.0+ for ``-j``; ``json=False`` gives ``-x,`` CSV.

    With ``no_multiplex=True`` the result is a list of argvs instead: events in chunks of at
    most ``max_events_per_run`` (see :data:`MAX_EVENTS_PER_RUN`), then one run per metric
    group and one for ``--topdown``, so the caller runs the measured loop once per argv. The
    runs after the first append to ``output_path`` (``--append``), so one file holds them all.

    Pure: runs nothing, checks nothing on disk.
    """
    if (command is None) == (pid is None):
        raise RecstackError("perf_command: give either a command or a pid, not both or neither")
    if command is not None:
        command = [str(c) for c in command]
        if not command:
            raise RecstackError("perf_command: the command to measure is empty")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise RecstackError(f"perf_command: pid {pid!r} is not a positive integer")
    events = [str(e) for e in events]
    metric_groups = [str(g) for g in metric_groups]
    for e in events:
        if not e or any(c.isspace() for c in e) or ("," in e and not _bracketed(e)):
            raise RecstackError(f"perf_command: event {e!r} is not one perf event name")
    for g in metric_groups:
        if not g or any(c.isspace() for c in g):
            raise RecstackError(f"perf_command: metric group {g!r} is not one name")
    if not events and not metric_groups and not topdown_flag:
        raise RecstackError(
            "perf_command: nothing to measure (no events, metric groups or --topdown)")
    if (control_fifo is None) != (ack_fifo is None):
        raise RecstackError("perf_command: control_fifo and ack_fifo go together")
    per_run = max_events_per_run
    if isinstance(per_run, bool) or not isinstance(per_run, int) or per_run < 1:
        raise RecstackError(
            f"perf_command: max_events_per_run {per_run!r} must be an integer >= 1")

    def build(ev: Sequence[str], groups: Sequence[str], topdown: bool, append: bool) -> list[str]:
        argv = [perf, "stat"]
        argv += ["-j"] if json else ["-x,"]
        if output_path is not None:
            argv += ["-o", os.fspath(output_path)]
            if append:
                argv.append("--append")
        if control_fifo is not None:
            fifos = f"fifo:{os.fspath(control_fifo)},{os.fspath(ack_fifo)}"
            argv += ["--control", fifos, "-D", "-1"]
        if ev:
            argv += ["-e", ",".join(ev)]
        for g in groups:
            argv += ["-M", g]
        if topdown:
            argv += [TOPDOWN_FLAG, "--no-metric-only"]
        if pid is not None:
            argv += ["-p", str(pid)]
        else:
            argv += ["--", *command]
        return argv

    if not no_multiplex:
        return build(events, metric_groups, topdown_flag, append=False)

    runs: list[tuple[list[str], list[str], bool]] = []
    for i in range(0, len(events), per_run):
        runs.append((events[i:i + per_run], [], False))
    for g in metric_groups:
        runs.append(([], [g], False))
    if topdown_flag:
        runs.append(([], [], True))
    return [build(ev, groups, td, append=i > 0) for i, (ev, groups, td) in enumerate(runs)]
