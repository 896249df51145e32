"""Runs a function in a fresh Python process.

A fresh process per measurement isolates it: a clean peak-memory reading, no state left by the
previous model, and a crash (or the OOM killer) ends only that process. The worker dies with
its parent on Linux, so killing a sweep leaves no orphan measuring in the background. It
ignores Ctrl-C (which the terminal sends to the whole process group): the parent alone
decides, kills the worker on its way out, and no worker prints a traceback.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from recstack.errors import RecstackError

Result = TypeVar("Result")


class WorkerCrashed(RecstackError):
    """The worker process died without an answer (a crash, a signal, the OOM killer)."""


class WorkerTimedOut(RecstackError):
    """The worker did not answer within its time limit and was killed."""


def _prctl() -> Any:
    """libc's ``prctl`` (Linux), or None."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Makes this process die (SIGKILL) when its parent does; nothing where that is not
    possible (the process may then outlive a killed parent, nothing worse)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def die_with_parent_hook() -> Callable[[], None] | None:
    """:func:`die_with_parent` as a ``preexec_fn`` for ``subprocess``, resolved before the
    fork (the child then only calls into libc), or None."""
    prctl = _prctl()
    if prctl is None:
        return None
    kill = int(signal.SIGKILL)

    def hook() -> None:  # pragma: no cover - runs in the child, between fork and exec
        prctl(_PR_SET_PDEATHSIG, kill)

    return hook


def _start_deaf_to_interrupts(process: Any) -> None:
    """Starts ``process`` with SIGINT ignored (a disposition a spawned interpreter keeps).
    A Ctrl-C pressed in the few milliseconds of the start is lost: pressing again works."""
    if threading.current_thread() is not threading.main_thread():
        process.start()  # only the main thread may change signal handlers
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_main(sender: Connection, function: Callable[..., Any], args: tuple) -> None:
    die_with_parent()
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
    _start_deaf_to_interrupts(process)
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
    except BaseException:
        process.kill()  # interrupted, or no answer: the worker must not go on measuring
        raise
    finally:
        receiver.close()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
    if status == "ok":
        return payload
    raise payload
