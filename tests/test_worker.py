"""Fresh worker processes: results, exceptions, deaths and time limits."""

from __future__ import annotations

import os
import signal
import time

import pytest

from recstack.worker import WorkerCrashed, WorkerTimedOut, run_isolated


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
