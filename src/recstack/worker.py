"""Runs a function in a fresh Python process.

A fresh process per measurement isolates it: a clean peak-memory reading, no state left by the
previous model, and a crash (or the OOM killer) ends only that process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from recstack.errors import RecstackError

Result = TypeVar("Result")


class WorkerCrashed(RecstackError):
    """The worker process died (a crash, a signal, the out-of-memory killer)."""


def run_isolated(function: Callable[..., Result], *args: object,
                 timeout_s: float | None = None) -> Result:
    """``function(*args)`` in a fresh process (spawned, so nothing is inherited but the
    arguments). Exceptions raised by ``function`` are re-raised here; a dead worker raises
    :class:`WorkerCrashed`."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(function, *args)
        try:
            return future.result(timeout=timeout_s)
        except BrokenProcessPool:
            raise WorkerCrashed(
                f"the worker running {getattr(function, '__name__', function)} died "
                "(crash, signal or out of memory)") from None
