"""The control fifos of a running perf stat, against a stand-in and (slow) against real perf."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recstack.collect.perf_control import PerfControl
from recstack.collect.perf_events import (
    normalize_event,
    perf_command,
)
from recstack.collect.perf_parse import (
    derived_rates,
    parse_perf_csv,
    pmu_available,
)
from recstack.errors import RecstackError

from tests.collect.perf_data import DATA, by_event, fixture  # noqa: E402,F401


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
