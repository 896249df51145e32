"""Operator clock: the time a forward spends inside top-level operators, at a tenth of the
profiler's cost.

The PyTorch profiler adds about a microsecond to every operator it records (and about 65 us to
a 41 us batch-1 RMC1 iteration), mostly inside the operators it times, so at small batch
its operator times cannot say how much of the *unprofiled* latency lies outside operators. The
operator clock is a thread-local RecordFunction callback (``opclock.cpp``, compiled once with
the installed torch's headers and loaded with ctypes) that only counts operators and reads the
steady clock around the outermost ones: 0.1 to 0.3 us per operator.

Method (:func:`clock_rounds`): alternate rounds of plain iterations and clocked iterations of
the same forward on the same batches, and keep each round's median. With P the plain
iteration, C the clocked one and I its time inside top-level operators, the callbacks add
``C - P`` in total, split between inside and outside the top-level operators in a way the
clock cannot see. So the time outside operators in a plain iteration lies in
``[P - I, C - I]``: the share is bracketed by ``(P - I) / P`` and ``(C - I) / P`` (see
:func:`recstack.analysis.roofline.clocked_overhead_shares`). The upper end is then narrowed
by what the clock is measured to cost outside each top-level operator at least
(:meth:`OperatorClock.calibrate`: empty scopes of the same kind, timed around the callbacks'
own clock reads; about 0.07 us for dispatcher operators and 0.09 us for Static Runtime nodes,
against about 0.3 us per node that the callbacks cost in all).

A model run by PyTorch's Static Runtime (the ``static`` backend) has its operators called
from C++, not through Python: the clock then watches the runtime's nodes instead of dispatcher
calls (each node is one operator of the graph; the kernels it calls are inside it, and its
list and tuple nodes are glue, not operators: see ``opclock.cpp``).

What it does not see: operators that do not pass through the dispatcher (a compiled model's
inductor kernels), and device time (on CUDA the profiler's device-time basis applies).
"""

from __future__ import annotations

import ctypes
import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recstack.collect.native import build_shared_library, find_compiler
from recstack.errors import RecstackError

SOURCE = "opclock.cpp"
ROUNDS = 7
"""Rounds of each kind (plain, clocked), alternated so that drift affects both alike."""
MIN_ROUNDS = 3
ROUND_SECONDS = 0.1
MAX_ROUND_ITERATIONS = 5000
BUDGET_SECONDS = 2.0
"""Slow iterations (large batches) get fewer rounds, down to MIN_ROUNDS of one iteration:
there the share outside operators is small and the profiler's bracket is already narrow."""
CALIBRATION_SAMPLES = 2000
"""Empty scopes timed to find the clock's own cost outside an operator (a few ms)."""
_FLAGS_BASE = ("-shared", "-fPIC", "-O2", "-std=c++17", "-w")

_loaded: ctypes.CDLL | None = None


def _torch_flags() -> tuple[list[str], str]:
    """Compiler flags for torch's headers and libraries, and what identifies the torch build."""
    import torch
    from torch.utils import cpp_extension

    library_dirs = cpp_extension.library_paths()
    flags = [*_FLAGS_BASE, f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
    flags += [f"-I{path}" for path in cpp_extension.include_paths()]
    for directory in library_dirs:
        flags += [f"-L{directory}", f"-Wl,-rpath,{directory}"]
    return flags, f"torch {torch.__version__} at {library_dirs[0]}"


def build_clock(cache_dir: Path | str | None = None) -> Path:
    """The compiled operator clock for the installed torch, built once into ``cache_dir``
    (default: the user's recstack cache). RecstackError naming what is missing (a C++
    compiler) when it cannot be built."""
    compiler = find_compiler("CXX", ("c++", "g++", "clang++"), "C++",
                             "the operator clock compiles a small PyTorch callback")
    flags, torch_build = _torch_flags()
    return build_shared_library(SOURCE, compiler, flags, cache_dir, key_extra=torch_build,
                                libraries=("-lc10", "-ltorch_cpu"))


def load_clock(cache_dir: Path | str | None = None) -> ctypes.CDLL:
    """The operator clock, built if needed and loaded once per process."""
    global _loaded
    if _loaded is None:
        import importlib

        importlib.import_module("torch")  # its libraries must be loaded before the clock's
        library = ctypes.CDLL(str(build_clock(cache_dir)))
        library.recstack_opclock_start.argtypes = [ctypes.c_int]
        library.recstack_opclock_start.restype = ctypes.c_int
        library.recstack_opclock_take.argtypes = [ctypes.POINTER(ctypes.c_int64)]
        library.recstack_opclock_take.restype = None
        library.recstack_opclock_stop.restype = None
        library.recstack_opclock_calibrate.argtypes = [ctypes.c_int,
                                                       ctypes.POINTER(ctypes.c_int64)]
        library.recstack_opclock_calibrate.restype = ctypes.c_int
        _loaded = library
    return _loaded


class OperatorClock:
    """``with OperatorClock() as clock:`` ... ``clock.take()`` after each iteration.
    Counts on the thread that entered it: dispatcher operators, or with ``static_runtime``
    the nodes of Static Runtime graphs (see :func:`watches_static_runtime`)."""

    def __init__(self, library: ctypes.CDLL | None = None, static_runtime: bool = False):
        self._library = library if library is not None else load_clock()
        self._buffer = (ctypes.c_int64 * 4)()
        self.static_runtime = static_runtime

    def __enter__(self) -> OperatorClock:
        if not self._library.recstack_opclock_start(int(self.static_runtime)):
            raise RecstackError("the operator clock is already running on this thread")
        return self

    def __exit__(self, *exc: object) -> None:
        self._library.recstack_opclock_stop()

    def calibrate(self, samples: int = 2000) -> tuple[float, float]:
        """(ns, ns): a lower bound on what the clock costs outside each top-level operator it
        watches, and the median cost of one clock read (see ``opclock.cpp``). Call it while
        the clock runs; its scopes land in the accumulators (take() after)."""
        out = (ctypes.c_int64 * 2)()
        if not self._library.recstack_opclock_calibrate(samples, out):
            raise RecstackError("the operator clock is not running on this thread")
        return float(out[0]), float(out[1])

    def take(self) -> tuple[int, int, int]:
        """(ns inside top-level operators, top-level operators, operators observed at any
        depth) since the last take or the start."""
        self._library.recstack_opclock_take(self._buffer)
        return self._buffer[0], self._buffer[1], self._buffer[2]


@dataclass(frozen=True)
class ClockReading:
    """Per-round medians of alternated plain and clocked rounds of one forward, in us."""

    plain_us: list[float]
    """Median plain iteration of each plain round."""
    clocked_us: list[float]
    """Median clocked iteration of each clocked round."""
    inside_us: list[float]
    """Median time inside top-level operators of each clocked round."""
    outside_us: list[float]
    """Median (clocked iteration - its time inside top-level operators) of each round."""
    operators: float
    """Top-level operators per iteration."""
    observed: float
    """Operators observed at any depth per iteration (each cost the callback once)."""
    iterations_per_round: int
    callback_outside_us: float = 0.0
    """A lower bound on what the clock costs outside each top-level operator
    (:meth:`OperatorClock.calibrate`): ``outside_us`` less ``operators`` times this is still
    an upper bound on the plain iteration's time outside operators. 0 when not measured."""

    def medians(self) -> dict[str, float]:
        return {"plain_us": statistics.median(self.plain_us),
                "clocked_us": statistics.median(self.clocked_us),
                "inside_us": statistics.median(self.inside_us),
                "outside_us": statistics.median(self.outside_us)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clock_rounds(forward: Callable[[Any], object], typical_s: float,
                 clock: OperatorClock | None = None, rounds: int = ROUNDS,
                 batch_at: Callable[[int], Any] | None = None) -> ClockReading:
    """Alternated plain and clocked rounds of ``forward(i)`` (i counts iterations; the
    caller cycles its batches with it), or with ``batch_at`` of ``forward(batch_at(i))``,
    the batch made before the clock starts; each round about ``ROUND_SECONDS`` long at
    ``typical_s`` per iteration, ``rounds`` of each kind within ``BUDGET_SECONDS`` (at least
    ``MIN_ROUNDS``). The garbage collector is off during the rounds, as in the timing loop."""
    fetch = batch_at if batch_at is not None else (lambda i: i)
    clock = clock if clock is not None else OperatorClock()
    typical_s = max(typical_s, 1e-7)
    per_round = int(min(MAX_ROUND_ITERATIONS, max(1, math.ceil(ROUND_SECONDS / typical_s))))
    affordable = math.floor(BUDGET_SECONDS / (2 * per_round * typical_s))
    rounds = max(MIN_ROUNDS, min(rounds, affordable))
    now = time.perf_counter_ns
    plain_rounds, clocked_rounds, inside_rounds, outside_rounds = [], [], [], []
    operators = observed = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            plain = [0] * per_round
            for i in range(per_round):
                item = fetch(i)
                start = now()
                forward(item)
                plain[i] = now() - start
            clocked, inside = [0] * per_round, [0] * per_round
            with clock:
                clock.take()
                for i in range(per_round):
                    item = fetch(i)
                    clock.take()  # what making the batch cost is no operator's
                    start = now()
                    forward(item)
                    clocked[i] = now() - start
                    inside[i], top, seen = clock.take()
                    operators += top
                    observed += seen
            plain_rounds.append(statistics.median(plain) / 1e3)
            clocked_rounds.append(statistics.median(clocked) / 1e3)
            inside_rounds.append(statistics.median(inside) / 1e3)
            outside_rounds.append(statistics.median(c - s for c, s in zip(clocked, inside))
                                  / 1e3)
        with clock:  # the clock's own cost outside each operator, measured once
            callback_ns, _ = clock.calibrate(CALIBRATION_SAMPLES)
    finally:
        if gc_was_enabled:
            gc.enable()
    total = rounds * per_round
    return ClockReading(plain_us=plain_rounds, clocked_us=clocked_rounds,
                        inside_us=inside_rounds, outside_us=outside_rounds,
                        operators=operators / total, observed=observed / total,
                        iterations_per_round=per_round, callback_outside_us=callback_ns / 1e3)


def watches_static_runtime(backend: str) -> bool:
    """Whether the clock of a ``backend`` point watches Static Runtime nodes (the ``static``
    backend) rather than dispatcher operators."""
    return backend == "static"


def unclockable_reason(device: str, backend: str) -> str | None:
    """Why the operator clock cannot measure a point, or None when it can."""
    if device.startswith("cuda"):
        return ("on CUDA operators run on the device; the clock reads host time only (the "
                "profiler's device-time basis applies)")
    if backend == "compile":
        return ("a compiled model runs inductor's kernels, which do not pass through the "
                "dispatcher: the clock cannot see them")
    return None
