"""Fresh worker processes: results, exceptions, deaths and time limits; and the protocol of a
child exec'd under a tool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recstack.errors import RecstackError
from recstack.worker import (TOOL_CHILD_ENTRIES, WorkerCrashed, WorkerTimedOut, run_isolated,
                             run_under_tool, tool_child_command, tool_child_env,
                             tool_child_main, tool_child_outcome)


def _square(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _fail() -> None:
    raise ValueError("inside the worker")


def _sleep() -> None:
    time.sleep(60)


def test_result_comes_back_from_another_process() -> None:
    value, pid = run_isolated(_square, 7)
    assert value == 49 and pid != os.getpid()


def test_a_dead_worker_says_how_it_died() -> None:
    with pytest.raises(WorkerCrashed, match="was killed by SIGKILL"):
        run_isolated(_die)


def test_worker_exceptions_come_back() -> None:
    with pytest.raises(ValueError, match="inside the worker"):
        run_isolated(_fail)


def test_time_limit_kills_the_worker() -> None:
    start = time.monotonic()
    with pytest.raises(WorkerTimedOut, match="longer than 0.5 s"):
        run_isolated(_sleep, timeout_s=0.5)
    assert time.monotonic() - start < 30


def _started_state() -> dict[str, object]:
    """What a worker finds when it starts."""
    return {"pid": os.getpid(), "threads": len(os.listdir("/proc/self/task")),
            "sigint_ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
            "marker": os.environ.get("RECSTACK_TEST_MARKER")}


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/task (Linux)")
def test_each_worker_is_fresh_single_threaded_deaf_to_ctrl_c_and_sees_the_environment_now(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_isolated(_started_state)  # the forkserver (if any) has started by now
    monkeypatch.setenv("RECSTACK_TEST_MARKER", "set after the first worker")
    second = run_isolated(_started_state)
    assert first["pid"] != second["pid"] != os.getpid()
    for state in (first, second):
        assert state["threads"] == 1 and state["sigint_ignored"] is True
    assert first["marker"] is None and second["marker"] == "set after the first worker"


def test_what_the_forkserver_imports_leaves_cuda_untouched() -> None:
    # A forked child cannot use CUDA once its parent initialized it: the forkserver's imports
    # must not ask torch anything about CUDA (on a GPU machine this would initialize it).
    script = """
import torch, importlib
def refuse(*args, **kwargs):
    raise SystemExit("CUDA was asked at import")
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device"):
    setattr(torch.cuda, name, refuse)
from recstack.worker import _PRELOADED
for module in _PRELOADED:
    importlib.import_module(module)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=tool_child_env(), timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


# ---- a child exec'd under a tool ---------------------------------------------------------------


def test_tool_child_command_names_an_entry_of_the_table(tmp_path: Path) -> None:
    argv = tool_child_command("counted-loop", {"a": 1}, tmp_path / "status.json")
    assert argv[1:4] == ["-m", "recstack.worker", "counted-loop"]
    assert json.loads(argv[4]) == {"a": 1} and argv[5] == str(tmp_path / "status.json")
    assert set(TOOL_CHILD_ENTRIES) == {"simulated-forwards", "counted-loop"}
    with pytest.raises(RecstackError, match="'os.system' is unknown; expected one of"):
        tool_child_command("os.system", {}, tmp_path / "status.json")


def test_tool_child_refuses_other_command_lines(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    assert tool_child_main(["os:system", "{}", str(status)]) == 2
    assert tool_child_main(["counted-loop", "{}"]) == 2
    assert not status.exists()


def test_tool_child_error_comes_back_through_the_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    assert tool_child_outcome(status) == (False, None)  # nothing written yet
    # A real exec'd child with a request its entry cannot use: the error is an answer.
    done = run_under_tool(tool_child_command("simulated-forwards", {}, status), timeout_s=120,
                          env=tool_child_env(), what="the child")
    assert done.returncode == 1 and done.stdout == ""
    with pytest.raises(RecstackError, match="the simulated run failed: KeyError: 'helper'"):
        tool_child_outcome(status)
    status.write_text(json.dumps({"ok": 7}))
    assert tool_child_outcome(status) == (True, 7)


def test_tool_child_env_puts_this_recstack_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = tool_child_env(OMP_NUM_THREADS="1")
    first, rest = env["PYTHONPATH"].split(os.pathsep, 1)
    assert (Path(first) / "recstack" / "worker.py").is_file() and rest == "/elsewhere"
    assert env["OMP_NUM_THREADS"] == "1"


def test_a_tool_past_its_time_limit_is_killed() -> None:
    with pytest.raises(WorkerTimedOut, match="the tool took longer than 0.5 s"):
        run_under_tool([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=0.5,
                       env=tool_child_env())
