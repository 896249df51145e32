"""perf stat / toplev parsing, derived rates, command lines and the control fifos.

The fixtures under tests/data/perf are perf's documented formats: ``stat_x.csv`` and
``stat_j.json`` are the same run (generic events plus ``-M TopdownL1,TopdownL2`` on an Intel
server) as ``-x,`` and ``-j``; ``stat_topdown_legacy.csv`` is perf 5.x ``--topdown``;
``toplev_l2.csv`` is toplev ``-l2 -x,``; ``stat_cycles_host.txt`` is ``perf stat -e cycles
true`` on a machine with a PMU. ``stat_cycles_vm.txt``, ``stat_interval_vm.csv`` and
``stat_control_vm.json`` were recorded on this VM (perf 6.1, no PMU).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recstack.collect.perfstat import (
    GENERIC_EVENTS,
    MAX_EVENTS_PER_RUN,
    TOPDOWN_EVENTS,
    TOPDOWN_LEVEL1,
    TOPDOWN_METRIC_GROUPS,
    CounterReading,
    PerfControl,
    TopdownNode,
    derived_rates,
    multiplexing_share,
    normalize_event,
    parse_perf_csv,
    parse_perf_json,
    parse_toplev_csv,
    perf_command,
    pmu_available,
    topdown_from_readings,
    topdown_from_toplev,
)
from recstack.errors import RecstackError

DATA = Path(__file__).resolve().parents[1] / "data" / "perf"


def fixture(name: str) -> str:
    return (DATA / name).read_text()


def by_event(readings: list[CounterReading]) -> dict[str, CounterReading]:
    return {r.event: r for r in readings if r.event}


# ---------------------------------------------------------------------------- perf -x,


def test_parse_csv_values_statuses_and_multiplexing() -> None:
    readings = parse_perf_csv(fixture("stat_x.csv"))
    assert len(readings) == 30  # comment and blank lines skipped
    ev = by_event(readings)

    instructions = ev["instructions"]
    assert instructions.value == 4812345678.0
    assert instructions.status == "counted"
    assert instructions.run_time_ns == 2004567123
    assert instructions.percent_running == 100.0 and not instructions.multiplexed
    assert instructions.metric_value == pytest.approx(1.52)
    assert instructions.metric_unit == "insn per cycle"
    assert ev["cycles"].metric_value is None and ev["cycles"].metric_unit is None

    llc = ev["LLC-load-misses"]
    assert llc.multiplexed and llc.percent_running == pytest.approx(49.88)
    assert llc.value == 1234567.0
    assert ev["dTLB-loads"].multiplexed and ev["branches"].multiplexed

    not_counted = ev["iTLB-load-misses"]
    assert not_counted.status == "not_counted"
    assert not_counted.value is None  # never 0
    assert not not_counted.multiplexed and not_counted.metric_value is None

    unsupported = ev["L1-icache-loads"]
    assert unsupported.status == "not_supported" and unsupported.value is None
    assert not unsupported.multiplexed

    metric_only = [r for r in readings if r.is_metric_only]
    assert len(metric_only) == 11
    assert all(r.status == "counted" and r.percent_running is None for r in metric_only)
    assert metric_only[0].metric_unit == "%  tma_bad_speculation"
    assert metric_only[0].metric_value == pytest.approx(10.2)
    assert all(r.interval is None for r in readings)


def test_parse_json_is_the_same_run_as_csv() -> None:
    from_csv = parse_perf_csv(fixture("stat_x.csv"))
    from_json = parse_perf_json(fixture("stat_j.json"))
    assert from_json == from_csv
    # JSON prints metric-value 0.000000 with an empty unit where perf computed nothing
    assert by_event(from_json)["cycles"].metric_value is None


def test_parse_json_tolerates_perf_messages_and_string_metrics() -> None:
    text = (
        "Events disabled\n"
        "Events enabled\n"
        '{"counter-value" : "1000.000000", "unit" : "", "event" : "instructions", '
        '"event-runtime" : 500, "pcnt-running" : 50.00, "metric-value" : "2.000000", '
        '"metric-unit" : "insn per cycle"}Events disabled\n'
        '{"counter-value" : "<not counted>", "unit" : "", "event" : "cycles", '
        '"event-runtime" : 0, "pcnt-running" : 0.00, "metric-value" : "0.000000", '
        '"metric-unit" : ""}\n'
        '{"metric-value" : "31.500000", "metric-unit" : "%  tma_retiring"}\n'
        "[1, 2]\n"
        "{not json\n"
    )
    readings = parse_perf_json(text)
    assert len(readings) == 3
    instructions, cycles, metric = readings
    assert instructions.value == 1000.0 and instructions.multiplexed
    assert instructions.metric_value == 2.0
    assert cycles.status == "not_counted" and cycles.value is None
    assert metric.is_metric_only and metric.metric_value == 31.5
    assert derived_rates(readings)["ipc"] is None  # cycles not counted: not 0, not inf


def test_parse_csv_with_interval_column_recorded_on_this_vm() -> None:
    readings = parse_perf_csv(fixture("stat_interval_vm.csv"))
    assert len(readings) == 6
    assert [r.interval for r in readings[:2]] == [pytest.approx(0.100166184)] * 2
    first, cycles, idle = readings[0], readings[1], readings[2]
    assert first.event == "task-clock" and first.value == pytest.approx(0.76)
    assert first.unit == "msec" and first.run_time_ns == 755453
    assert first.metric_unit == "CPUs utilized"
    assert cycles.status == "not_supported" and cycles.value is None
    assert idle.event == "task-clock" and idle.status == "not_counted" and idle.value is None


def test_parse_csv_edge_rows() -> None:
    text = (
        "# started on x\n"
        "\n"
        "1200,,instructions,100,100.00,,,\n"  # trailing empty field
        "     1.001141351,,,,,,11.5,%  tma_retiring\n"  # interval metric-only line
        "Events enabled\n"
        "304.81,msec,task-clock,304809838,100.00,0.277,CPUs utilized\n"
    )
    readings = parse_perf_csv(text)
    assert [r.event for r in readings] == ["instructions", "", "task-clock"]
    assert readings[0].value == 1200.0 and readings[0].metric_value is None
    assert readings[1].interval == pytest.approx(1.001141351)
    assert readings[1].metric_value == 11.5
    assert readings[2].interval is None and readings[2].value == pytest.approx(304.81)
    with pytest.raises(RecstackError, match="not a number"):
        parse_perf_csv("abc,,instructions,1,100.00,,\n")


# ---------------------------------------------------------------------------- derived


def test_derived_rates_from_the_fixture() -> None:
    rates = derived_rates(parse_perf_csv(fixture("stat_x.csv")))
    ins = 4812345678.0
    assert rates["ipc"] == pytest.approx(ins / 3165977420.0)
    assert rates["branch_mpki"] == pytest.approx(9123456 / ins * 1000)
    assert rates["branch_miss_rate"] == pytest.approx(9123456 / 912345678)
    assert rates["l1d_mpki"] == pytest.approx(72839450 / ins * 1000)
    assert rates["l1i_mpki"] == pytest.approx(34567890 / ins * 1000)
    assert rates["llc_mpki"] == pytest.approx(1234567 / ins * 1000)
    assert rates["dtlb_mpki"] == pytest.approx(2345678 / ins * 1000)
    assert rates["llc_miss_rate"] == pytest.approx(1234567 / 4567890)
    assert rates["l1d_miss_rate"] == pytest.approx(72839450 / 1456789012)
    # iTLB-load-misses was <not counted>; L2 was not requested: None, never 0
    assert rates["itlb_mpki"] is None
    assert rates["l2_mpki"] is None


def test_derived_rates_missing_inputs_are_none() -> None:
    rates = derived_rates(parse_perf_json(fixture("stat_control_vm.json")))
    assert set(rates.values()) == {None}
    assert set(derived_rates([]).values()) == {None}
    zero_cycles = parse_perf_csv("10,,instructions,1,100.00,,\n0,,cycles,1,100.00,,\n")
    assert derived_rates(zero_cycles)["ipc"] is None


def test_derived_rates_sum_hybrid_pmus_and_modifiers() -> None:
    text = (
        "600,,cpu_core/instructions/u,1,100.00,,\n"
        "400,,cpu_atom/instructions/u,1,100.00,,\n"
        "<not counted>,,cpu_atom/cycles/u,0,0.00,,\n"
        "500,,cpu_core/cycles/u,1,100.00,,\n"
        "5,,branch-misses:u,1,100.00,,\n"
    )
    rates = derived_rates(parse_perf_csv(text))
    assert rates["ipc"] == pytest.approx(1000 / 500)
    assert rates["branch_mpki"] == pytest.approx(5.0)
    assert normalize_event("cpu-cycles") == "cycles"
    assert normalize_event("L1-dcache-load-misses:k") == "l1-dcache-load-misses"


def test_multiplexing_share() -> None:
    assert multiplexing_share(parse_perf_csv(fixture("stat_x.csv"))) == pytest.approx(0.3333)
    assert multiplexing_share(parse_perf_json(fixture("stat_control_vm.json"))) == 1.0
    only_unsupported = parse_perf_csv("<not supported>,,cycles,0,100.00,,\n")
    assert multiplexing_share(only_unsupported) is None


# ---------------------------------------------------------------------------- top-down


def test_topdown_from_perf_metric_rows() -> None:
    csv_run = parse_perf_csv(fixture("stat_x.csv"))
    for readings in (csv_run, parse_perf_json(fixture("stat_j.json"))):
        td = topdown_from_readings(readings)
        assert td is not None
        assert td["retiring"] == pytest.approx(0.401)
        assert td["bad_speculation"] == pytest.approx(0.102)
        assert td["frontend_bound"] == pytest.approx(0.243)
        assert td["backend_bound"] == pytest.approx(0.254)
        assert sum(td[k] for k in TOPDOWN_LEVEL1) == pytest.approx(1.0, abs=1e-6)
        assert td["memory_bound"] == pytest.approx(0.177)
        assert td["fetch_latency"] + td["fetch_bandwidth"] == pytest.approx(td["frontend_bound"])
        bad_speculation = td["branch_mispredicts"] + td["machine_clears"]
        assert bad_speculation == pytest.approx(td["bad_speculation"])
        assert td["light_operations"] + td["heavy_operations"] == pytest.approx(td["retiring"])
        assert "l1_bound" not in td  # level 3 is not reported


def test_topdown_from_legacy_topdown_flag_rows() -> None:
    readings = parse_perf_csv(fixture("stat_topdown_legacy.csv"))
    td = topdown_from_readings(readings)
    assert td == pytest.approx({"retiring": 0.238, "bad_speculation": 0.116,
                                "frontend_bound": 0.283, "backend_bound": 0.363})
    # perf 5.x Ice Lake level-2 naming
    ice = parse_perf_csv("1,,slots,1,100.00,12.0%,branch mispredict\n"
                         "1,,topdown-fetch-lat,1,100.00,20.0%,fetch latency\n")
    assert topdown_from_readings(ice) == pytest.approx({"fetch_latency": 0.2,
                                                        "branch_mispredicts": 0.12})


def test_topdown_absent_is_none() -> None:
    assert topdown_from_readings(parse_perf_json(fixture("stat_control_vm.json"))) is None
    assert topdown_from_readings([]) is None


def test_parse_toplev_csv() -> None:
    nodes = parse_toplev_csv(fixture("toplev_l2.csv"))
    assert len(nodes) == 12  # the Info metric is not a node
    names = {n.area: n for n in nodes}
    fe = names["Frontend_Bound"]
    assert isinstance(fe, TopdownNode)
    assert fe.level == 1 and fe.value == pytest.approx(0.2431) and fe.unit == "% Slots"
    assert fe.multiplex == 100.0 and not fe.bottleneck
    mem = names["Backend_Bound.Memory_Bound"]
    assert mem.level == 2 and mem.value == pytest.approx(0.177)
    assert mem.multiplex == pytest.approx(49.92)
    assert names["Backend_Bound"].bottleneck
    assert [n.area for n in nodes if n.bottleneck] == ["Backend_Bound"]
    level1 = [n for n in nodes if n.level == 1]
    assert {n.area for n in level1} == {"Frontend_Bound", "Bad_Speculation", "Backend_Bound",
                                        "Retiring"}
    assert sum(n.value for n in level1) == pytest.approx(1.0, abs=1e-3)
    for parent in level1:
        children = [n for n in nodes if n.area.startswith(parent.area + ".")]
        assert len(children) == 2
        assert sum(c.value for c in children) == pytest.approx(parent.value, abs=1e-3)

    td = topdown_from_toplev(nodes)
    assert td is not None and td["backend_bound"] == pytest.approx(0.254)
    assert td["core_bound"] == pytest.approx(0.077)
    assert topdown_from_toplev([]) is None


def test_parse_toplev_csv_with_timestamp_and_without_header() -> None:
    text = (
        "1.000,S0-C0,Frontend_Bound,20.0,% Slots,,,0.0,80.0,,\n"
        "1.000,S0-C0,Frontend_Bound.Fetch_Latency,12.5,% Slots ?,,,0.0,80.0,,\n"
        "2.000,S0-C0,Backend_Bound,50.0,% Slots,,,0.0,,<==,\n"
    )
    nodes = parse_toplev_csv(text)
    assert [n.area for n in nodes] == ["Frontend_Bound", "Frontend_Bound.Fetch_Latency",
                                       "Backend_Bound"]
    assert nodes[0].timestamp == "1.000" and nodes[0].cpus == "S0-C0"
    assert nodes[1].unit == "% Slots" and nodes[1].level == 2
    assert nodes[2].multiplex is None and nodes[2].bottleneck


# ---------------------------------------------------------------------------- PMU check


def test_pmu_available_on_a_vm() -> None:
    ok, reason = pmu_available(fixture("stat_cycles_vm.txt"))
    assert ok is False
    assert "not supported" in reason and reason.startswith("cycles")
    assert "\n" not in reason
    ok, reason = pmu_available("<not supported>,,cycles,0,100.00,,\n")
    assert not ok and "not supported" in reason
    ok, _ = pmu_available(fixture("stat_control_vm.json"))
    assert not ok


def test_pmu_available_with_real_counts() -> None:
    ok, reason = pmu_available(fixture("stat_cycles_host.txt"))
    assert ok is True and reason == "cycles: counted 1,024,389"
    ok, _ = pmu_available(fixture("stat_x.csv"))
    assert ok


def test_pmu_available_failures_have_reasons() -> None:
    assert pmu_available("") == (False, "perf printed nothing (is perf installed?)")
    denied = ("Error:\nAccess to performance monitoring and observability operations is "
              "limited.\nConsider adjusting /proc/sys/kernel/perf_event_paranoid setting\n")
    ok, reason = pmu_available(denied)
    assert not ok and "perf_event_paranoid" in reason
    ok, reason = pmu_available(" Performance counter stats for 'true':\n\n"
                               "     <not counted>      cycles\n")
    assert not ok and "not counted" in reason


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


# ---------------------------------------------------------------------------- control fifos


def make_fifos(tmp_path: Path) -> tuple[Path, Path]:
    ctl, ack = tmp_path / "ctl.fifo", tmp_path / "ack.fifo"
    os.mkfifo(ctl)
    os.mkfifo(ack)
    return ctl, ack


def fake_perf(ctl: Path, ack: Path, received: list[str], answer: bool = True) -> threading.Thread:
    """Plays perf's side: reads commands, answers each with 'ack\\n'."""

    def run() -> None:
        with open(ctl, "rb", buffering=0) as commands, open(ack, "wb", buffering=0) as acks:
            buffer = b""
            while True:
                chunk = commands.read(64)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    received.append(line.decode())
                    if answer:
                        acks.write(b"ack\n\0")  # as perf 6.1 writes it: with the C string's NUL
                    if line == b"disable":
                        return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_perf_control_enable_disable(tmp_path: Path) -> None:
    ctl, ack = make_fifos(tmp_path)
    received: list[str] = []
    peer = fake_perf(ctl, ack, received)
    with PerfControl(ctl, ack, timeout=5.0) as control:
        control.ping()
        control.enable()
        control.disable()
    peer.join(timeout=5)
    assert not peer.is_alive()
    assert received == ["ping", "enable", "disable"]


def test_perf_control_times_out_without_ack(tmp_path: Path) -> None:
    ctl, ack = make_fifos(tmp_path)
    received: list[str] = []
    fake_perf(ctl, ack, received, answer=False)
    with PerfControl(ctl, ack, timeout=0.2) as control:
        start = time.monotonic()
        with pytest.raises(RecstackError, match="did not acknowledge 'enable' within 0.2 s"):
            control.enable()
        assert time.monotonic() - start < 3
    # nobody at all on the other side: still a timeout, never a hang
    ctl2, ack2 = tmp_path / "c2", tmp_path / "a2"
    os.mkfifo(ctl2)
    os.mkfifo(ack2)
    with PerfControl(ctl2, ack2, timeout=0.1) as control:
        with pytest.raises(RecstackError, match="did not acknowledge"):
            control.disable()


def test_perf_control_errors(tmp_path: Path) -> None:
    regular = tmp_path / "plain"
    regular.write_text("")
    with pytest.raises(RecstackError, match="is not a fifo"):
        PerfControl(regular, regular).open()
    with pytest.raises(RecstackError, match="perf control fifo"):
        PerfControl(tmp_path / "missing", tmp_path / "missing").open()
    with pytest.raises(RecstackError, match="not open"):
        PerfControl(regular, regular).enable()
    with pytest.raises(RecstackError, match="timeout"):
        PerfControl(regular, regular, timeout=0)


# ---------------------------------------------------------------------------- real perf

BUSY_ONE_SECOND = "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass\n"


def _perf_counts(event: str, *extra: str) -> bool:
    if shutil.which("perf") is None:
        return False
    try:
        done = subprocess.run(["perf", "stat", *extra, "-x,", "-e", event, "true"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode != 0:
        return False
    try:
        readings = parse_perf_csv(done.stderr)
    except RecstackError:
        return False
    return any(r.status == "counted" and normalize_event(r.event) == event for r in readings)


def _perf_has_control() -> bool:
    if shutil.which("perf") is None:
        return False
    out = subprocess.run(["perf", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (5, 10)


@pytest.mark.slow
@pytest.mark.skipif(not (_perf_counts("task-clock") and _perf_has_control()),
                    reason="needs perf 5.10+ (--control) allowed to count task-clock")
def test_real_perf_control_window_with_a_software_event(tmp_path: Path) -> None:
    """The full path (argv, fifos, parsing) against real perf, with a software event that
    counts even without a PMU: only the enabled window (~0.3 s of a 1 s loop) is counted."""
    ctl, ack = make_fifos(tmp_path)
    out = tmp_path / "out.csv"
    argv = perf_command([sys.executable, "-c", BUSY_ONE_SECOND], events=["task-clock", "cycles"],
                        control_fifo=ctl, ack_fifo=ack, output_path=out, json=False)
    with PerfControl(ctl, ack, timeout=20.0) as control:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            control.enable()
            time.sleep(0.3)
            control.disable()
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr
    task = by_event(parse_perf_csv(out.read_text()))["task-clock"]
    assert task.status == "counted" and task.unit == "msec"
    assert 0 < task.value < 900  # the window, not the whole second


@pytest.mark.slow
@pytest.mark.skipif(not _perf_counts("instructions"),
                    reason="hardware counters unavailable: `perf stat -e instructions true` "
                           "does not count here (no PMU, e.g. a VM, or perf missing/forbidden)")
def test_real_perf_hardware_counters(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    argv = perf_command([sys.executable, "-c", "sum(range(100000))"],
                        events=["instructions", "cycles", "branches", "branch-misses"],
                        output_path=out, json=False)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    readings = parse_perf_csv(out.read_text())
    assert by_event(readings)["instructions"].value > 100_000
    assert derived_rates(readings)["ipc"] is not None
    assert pmu_available(out.read_text())[0]
