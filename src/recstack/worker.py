"""Runs a function in a fresh Python process.

A fresh process per measurement isolates it: a clean peak-memory reading, no state left by the
previous model, and a crash (or the OOM killer) ends only that process. The worker dies with
its parent on Linux, so killing a sweep leaves no orphan measuring in the background.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from recstack.errors import RecstackError

Result = TypeVar("Result")


class WorkerCrashed(RecstackError):
    """The worker process died without an answer (a crash, a signal, the OOM killer)."""


class WorkerTimedOut(RecstackError):
    """The worker did not answer within its time limit and was killed."""


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        pass  # no prctl: the worker may outlive a killed parent, nothing worse


def _worker_main(sender: Connection, function: Callable[..., Any], args: tuple) -> None:
    _die_with_parent()
    try:
        outcome: tuple[str, Any] = ("ok", function(*args))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        outcome = ("error", error)
    try:
        sender.send(outcome)
    except (pickle.PicklingError, TypeError, AttributeError):
        status, payload = outcome
        sender.send(("error", RuntimeError(f"{type(payload).__name__}: {payload}")))


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {exitcode}"


def run_isolated(function: Callable[..., Result], *args: object,
                 timeout_s: float | None = None) -> Result:
    """``function(*args)`` in a fresh spawned process; returns its result.

    An exception raised by ``function`` is raised here. A worker that dies raises
    :class:`WorkerCrashed` naming how it died; one that runs past ``timeout_s`` is killed and
    raises :class:`WorkerTimedOut`.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_worker_main, args=(sender, function, args), daemon=True)
    process.start()
    sender.close()  # so that the receiver sees EOF when the worker dies
    name = getattr(function, "__name__", "the function")
    try:
        if timeout_s is not None and not receiver.poll(timeout_s):
            process.kill()
            raise WorkerTimedOut(f"the worker running {name} took longer than {timeout_s:g} s "
                                 "and was killed")
        try:
            status, payload = receiver.recv()
        except EOFError:
            process.join(timeout=10)
            raise WorkerCrashed(f"the worker running {name} "
                                f"{_describe_exit(process.exitcode)}") from None
    finally:
        receiver.close()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
    if status == "ok":
        return payload
    raise payload
