"""Runs a function in a fresh Python process.

A fresh process per measurement isolates it: a clean peak-memory reading, no state left by the
previous model, and a crash (or the OOM killer) ends only that process. The worker dies with
its parent on Linux, so killing a sweep leaves no orphan measuring in the background. It
ignores Ctrl-C (which the terminal sends to the whole process group): the parent alone
decides, kills the worker on its way out, and no worker prints a traceback.

Two ways, one for each kind of child:

- :func:`run_isolated`: a fresh ``multiprocessing`` process that answers through a pipe. On
  Linux it is forked from a forkserver: a clean interpreter started once per recstack
  process that has imported torch and the collectors and never runs anything, so each
  worker starts in milliseconds, not the second and a half a spawned interpreter spends
  importing torch, while still starting from the same clean state (no model built, no
  thread pool started). The worker takes the parent's current environment. Elsewhere (macOS,
  where forking after system frameworks load is unsafe; Windows) it is spawned;
- a child exec'd under a tool (``perf stat ... -- CHILD``, ``valgrind ... CHILD``), which must
  be a command line, not a forked interpreter, since the tool starts it:
  :func:`tool_child_command` builds it (``python -m recstack.worker ENTRY REQUEST STATUS``),
  :func:`run_under_tool` runs the tool, and the child's entry function (one of
  :data:`TOOL_CHILD_ENTRIES`) gets the JSON request; what it returns, or its error, comes back
  in a small JSON status file (:func:`tool_child_outcome`), because the tool owns the
  child's output.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

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


_PRELOADED = ("recstack", "torch", "recstack.collect.timing", "recstack.collect.operators",
              "recstack.collect.hardware", "recstack.collect.serving")
"""What the forkserver imports before it forks workers: what every collector needs (recstack
first, which keeps numpy's BLAS to one thread before torch loads it)."""


def _worker_context() -> Any:
    """The multiprocessing context of :func:`run_isolated`: forkserver on Linux, else spawn."""
    if sys.platform != "linux" or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # "__main__" too, as multiprocessing does by default: a script run by path is then
    # imported once in the server rather than once in every worker.
    context.set_forkserver_preload(["__main__", *_PRELOADED])
    return context


def _worker_main(sender: Connection, function: Callable[..., Any], args: tuple,
                 environment: dict[str, str]) -> None:
    # A forked worker inherits the forkserver's signal dispositions and environment, which
    # were the parent's when the server started: it takes the parent's as they are now.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    if os.environ != environment:
        os.environ.clear()
        os.environ.update(environment)
    try:
        outcome: tuple[str, Any] = ("ok", function(*args))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        outcome = ("error", error)
    try:
        sender.send(outcome)
    except (pickle.PicklingError, TypeError, AttributeError):
        status, payload = outcome
        sender.send(("error", RuntimeError(f"{type(payload).__name__}: {payload}")))


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {exitcode}"


def run_isolated(function: Callable[..., Result], *args: object,
                 timeout_s: float | None = None) -> Result:
    """``function(*args)`` in a fresh process (forked from the forkserver, or spawned);
    returns its result.

    An exception raised by ``function`` is raised here. A worker that dies raises
    :class:`WorkerCrashed` naming how it died; one that runs past ``timeout_s`` is killed and
    raises :class:`WorkerTimedOut`.
    """
    context = _worker_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_worker_main,
                              args=(sender, function, args, dict(os.environ)), daemon=True)
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
                                f"{describe_exit(process.exitcode)}") from None
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


# ---- a child exec'd under a tool ---------------------------------------------------------------


class ToolChildEntry(NamedTuple):
    module: str
    function: str
    what: str
    """Completes "... failed" in the error of an unexpected exception."""


TOOL_CHILD_ENTRIES: dict[str, ToolChildEntry] = {
    "simulated-forwards": ToolChildEntry("recstack.collect.cachesim", "simulated_forwards",
                                         "the simulated run"),
    "counted-loop": ToolChildEntry("recstack.collect.perfcounters", "counted_loop",
                                   "the counted run"),
}
"""What a tool's child may run, by name. A fixed table, so that a command line can only start
code recstack means to run this way; each function takes the request (a JSON object) and
returns a JSON value."""

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


def tool_child_command(entry: str, request: dict[str, Any], status_path: Path | str
                       ) -> list[str]:
    """The argv of a child that runs ``entry`` with ``request`` and writes the outcome to
    ``status_path``; it goes at the end of a tool's own argv."""
    if entry not in TOOL_CHILD_ENTRIES:
        raise RecstackError(f"tool child {entry!r} is unknown; expected one of "
                            f"{', '.join(TOOL_CHILD_ENTRIES)}")
    return [sys.executable, "-m", "recstack.worker", entry,
            json.dumps(request, separators=(",", ":")), os.fspath(status_path)]


def tool_child_env(**settings: str) -> dict[str, str]:
    """This process's environment with ``settings``, and this recstack first on the
    ``PYTHONPATH``, so that the child imports the same recstack, installed or not."""
    env = dict(os.environ, **settings)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + existing if existing else "")
    return env


def run_under_tool(argv: list[str], *, timeout_s: float, env: dict[str, str],
                   cwd: Path | str | None = None, what: str = "the tool"
                   ) -> subprocess.CompletedProcess[str]:
    """Runs a tool's argv (ending in a :func:`tool_child_command`) to its end, output
    captured; the tool dies with this process. :class:`WorkerTimedOut` naming ``what`` when
    it runs past ``timeout_s`` (it is then killed)."""
    try:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False, preexec_fn=die_with_parent_hook())
    except subprocess.TimeoutExpired:
        raise WorkerTimedOut(f"{what} took longer than {timeout_s:g} s and was killed") from None


def tool_child_outcome(status_path: Path | str) -> tuple[bool, Any]:
    """``(True, what the entry returned)``, or ``(False, None)`` when the child wrote no
    outcome (it died first, or never started). The child's error is raised here, as a
    :class:`~recstack.errors.RecstackError`."""
    try:
        outcome = json.loads(Path(status_path).read_text())
    except (OSError, ValueError):
        return False, None
    if "error" in outcome:
        raise RecstackError(outcome["error"])
    return True, outcome.get("ok")


def tool_child_main(argv: list[str]) -> int:
    """``python -m recstack.worker ENTRY REQUEST STATUS``: runs the entry on the request and
    writes ``{"ok": result}`` or ``{"error": message}`` to STATUS. Prints nothing; exits 0 when
    the entry returned, 1 when it failed, 2 when the command line is not one of
    :func:`tool_child_command`'s."""
    if len(argv) != 3 or argv[0] not in TOOL_CHILD_ENTRIES:
        return 2
    name, request, status = argv
    die_with_parent()  # under perf the tool is the parent: when it is killed, nothing measures on
    entry = TOOL_CHILD_ENTRIES[name]
    try:
        function = getattr(importlib.import_module(entry.module), entry.function)
        outcome: dict[str, Any] = {"ok": function(json.loads(request))}
        code = 0
    except RecstackError as error:
        outcome, code = {"error": str(error)}, 1
    except Exception as error:  # noqa: BLE001 - every failure goes back to the parent
        outcome, code = {"error": f"{entry.what} failed: {type(error).__name__}: {error}"}, 1
    Path(status).write_text(json.dumps(outcome))
    return code


if __name__ == "__main__":
    sys.exit(tool_child_main(sys.argv[1:]))
