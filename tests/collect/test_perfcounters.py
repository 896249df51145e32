"""The measured-counters path, end to end, against a stand-in for perf.

This machine has no PMU, so a small program plays perf's part exactly where recstack talks to
it: it runs the worker, answers ``enable``/``disable`` on the control fifos with ``ack``, and
writes recorded ``perf stat -j`` output (tests/data/perf/stat_j.json, perf's documented
format) to the ``-o`` file. What is tested is recstack's plumbing and parsing, not perf.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from recstack.collect.perfcounters import measured_result
from recstack.collect.timing import TimingSettings
from recstack.errors import RecstackError
from recstack.points import Point
from tests.conftest import small_spec

RECORDED = Path(__file__).parent.parent / "data" / "perf" / "stat_j.json"
QUICK = TimingSettings(warmup_iterations=1, warmup_seconds=0.0, min_seconds=0.05,
                       min_iterations=5)

FAKE_PERF = '''#!{python}
import os, select, subprocess, sys, threading
argv = sys.argv[1:]
log = open(os.environ["FAKE_PERF_LOG"], "a")
out = argv[argv.index("-o") + 1]
if "-M" in argv and os.environ.get("FAKE_PERF_NO_METRICS"):
    print("Cannot find metric or group `TopdownL1'", file=sys.stderr)
    sys.exit(1)
control, ack = argv[argv.index("--control") + 1].removeprefix("fifo:").split(",")
command = argv[argv.index("--") + 1:]
ctl_fd = os.open(control, os.O_RDWR | os.O_NONBLOCK)
ack_fd = os.open(ack, os.O_RDWR | os.O_NONBLOCK)
worker = subprocess.Popen(command)
def serve():
    buffer = b""
    while worker.poll() is None:
        ready, _, _ = select.select([ctl_fd], [], [], 0.05)
        if not ready:
            continue
        buffer += os.read(ctl_fd, 4096)
        while b"\\n" in buffer:
            line, buffer = buffer.split(b"\\n", 1)
            log.write(line.decode() + "\\n"); log.flush()
            os.write(ack_fd, b"ack\\n")
thread = threading.Thread(target=serve, daemon=True)
thread.start()
code = worker.wait()
thread.join(timeout=2)
with open(out, "a" if "--append" in argv else "w") as handle:
    handle.write(open({recorded!r}).read())
sys.exit(code)
'''


@pytest.fixture
def fake_perf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    script = tmp_path / "perf"
    script.write_text(FAKE_PERF.format(python=sys.executable, recorded=str(RECORDED)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "perf.log"
    monkeypatch.setenv("FAKE_PERF_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    return str(script), log


def test_counts_only_the_measured_loop_and_parses_perf(fake_perf: tuple[str, Path]) -> None:
    perf, log = fake_perf
    result = measured_result(Point(small_spec("rmc1"), batch_size=4, threads=1), QUICK,
                             perf=perf)
    assert log.read_text().split() == ["enable", "disable"]  # around the timed loop only
    assert result.source == "measured (perf stat)"
    assert result.rates["ipc"] == pytest.approx(4812345678 / 3165977420)
    assert result.rates["itlb_mpki"] is None  # <not counted>: never a zero
    assert result.topdown is not None
    assert result.topdown["retiring"] == pytest.approx(0.401)
    assert result.multiplexing == pytest.approx(0.3333, abs=1e-3)
    assert any("multiplexed" in caveat for caveat in result.caveats)
    iterations = result.raw["iterations"]
    assert iterations >= 3
    assert result.instructions_per_iteration == pytest.approx(4812345678 / iterations)


def test_without_topdown_metric_groups_it_retries_and_says_so(
        fake_perf: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    perf, _ = fake_perf
    monkeypatch.setenv("FAKE_PERF_NO_METRICS", "1")
    result = measured_result(Point(small_spec("ncf"), batch_size=2, threads=1), QUICK,
                             perf=perf)
    assert any("no TopdownL1/TopdownL2 metric groups" in c for c in result.caveats)
    assert result.rates["ipc"] is not None


def test_no_multiplex_runs_the_loop_once_per_group(fake_perf: tuple[str, Path]) -> None:
    perf, log = fake_perf
    measured_result(Point(small_spec("ncf"), batch_size=2, threads=1), QUICK,
                    no_multiplex=True, perf=perf)
    words = log.read_text().split()
    assert words.count("enable") >= 4 and words.count("enable") == words.count("disable")


def test_gpu_points_are_refused() -> None:
    with pytest.raises(RecstackError, match="hardware counters are a CPU level"):
        measured_result(Point(small_spec("ncf"), batch_size=2, device="cuda"), QUICK)
