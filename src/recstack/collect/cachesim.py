"""Simulated counters: cache and branch behaviour of a point's forward passes under valgrind.

Where the CPU exposes no performance counters (virtual machines, CI), the hardware level falls
back to simulation. :func:`simulate_point` runs a child Python process under valgrind's
callgrind tool with its cache and branch simulators on, but with instrumentation off at start
(``--instr-atstart=no``): importing torch and building the model run unsimulated (seconds,
not minutes). Around the forward loop the child issues callgrind client requests through a
tiny C helper (``callgrind_control.c``, compiled at run time into the user's cache directory
and loaded with ctypes):

1. start instrumentation (the simulated caches start empty), run ``warmup`` forwards with
   event collection off, so that the measured forwards see warm simulated caches and
   branch predictors;
2. turn collection on, run ``iterations`` forwards, turn it off;
3. dump the collected events (one callgrind output file), stop instrumentation.

The child runs one thread (OMP/MKL/OpenBLAS threads = 1, ``torch.set_num_threads(1)``) with
``PYTHONHASHSEED=0``: the counts are then bit-identical from run to run. The caches it
simulates are a :class:`~recstack.collect.cache_hierarchy.CacheHierarchy`; what its events
mean, and the caveats every result carries, are in :mod:`recstack.collect.penalty_model`.

The library never prints. The child (:func:`simulated_forwards`, started through
:func:`recstack.worker.tool_child_command`) prints nothing either: its events go to the
callgrind output file and its outcome (or error) to a small JSON status file that the parent
reads.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from recstack.collect.cache_hierarchy import CacheHierarchy, preset, valgrind_cache_args
from recstack.collect.native import build_shared_library, find_compiler
from recstack.collect.penalty_model import CAVEATS, SimulationResult, parse_callgrind_totals
from recstack.collect.valgrind_probe import (callgrind_include_flags, explain_missing_header,
                                             valgrind_available)
from recstack.errors import RecstackError, SpecError
from recstack.points import Point
from recstack.worker import (WorkerCrashed, run_under_tool, tool_child_command, tool_child_env,
                             tool_child_outcome)

MAX_SIMULATED_EMBEDDING_BYTES = 64 * 2**20
"""Specs with more embedding bytes than this are refused: simulation is for scaled models."""

_HELPER_SOURCE = "callgrind_control.c"
_HELPER_FUNCTIONS = ("recstack_running_on_valgrind", "recstack_start_instrumentation",
                     "recstack_stop_instrumentation", "recstack_toggle_collect",
                     "recstack_zero_stats", "recstack_dump_stats_at")
_COMPILE_FLAGS: tuple[str, ...] = ("-shared", "-fPIC", "-O2")
_DUMP_REASON = "recstack forwards"
_MAX_BATCHES = 4  # the batches a warm point cycles, as the timing collector's warm set


def build_helper(cache_dir: Path | str | None = None) -> Path:
    """The compiled callgrind helper, built once per source version into ``cache_dir``
    (default :func:`recstack.collect.native.helper_cache_dir`), named by a hash of its source.
    RecstackError naming what is missing (a C compiler, valgrind's callgrind.h) when it
    cannot be built."""
    compiler = find_compiler("CC", ("cc", "gcc", "clang"), "C",
                             "simulated counters compile a small valgrind helper")
    return build_shared_library(_HELPER_SOURCE, compiler,
                                [*_COMPILE_FLAGS, *callgrind_include_flags()], cache_dir,
                                explain=explain_missing_header)


# ---- the simulation ----------------------------------------------------------------------


def check_simulation_size(spec: Any) -> None:
    """Refuses specs whose embeddings exceed :data:`MAX_SIMULATED_EMBEDDING_BYTES`."""
    from recstack.footprint import footprint, row_scale_for_budget

    size = footprint(spec).embedding_bytes
    if size <= MAX_SIMULATED_EMBEDDING_BYTES:
        return
    fits = row_scale_for_budget(spec, MAX_SIMULATED_EMBEDDING_BYTES)
    hint = "" if fits is None else f", e.g. row_scale {fits:g} or smaller"
    raise RecstackError(
        f"{spec.name} at row_scale {spec.row_scale:g} has {size / 2**20:.0f} MiB of embeddings; "
        f"simulation under valgrind is for scaled models (at most "
        f"{MAX_SIMULATED_EMBEDDING_BYTES / 2**20:.0f} MiB): pass a scaled spec{hint}")


def _check_count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SpecError(name, value, f"expected an integer >= {least}")


def _tail(text: str, lines: int = 1) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def simulate_point(point: Point, hierarchy: CacheHierarchy | str = "host", iterations: int = 3,
                   warmup: int = 1, timeout_s: float = 900) -> SimulationResult:
    """Simulated cache and branch events of ``point``'s forward passes (see the module
    docstring). ``hierarchy`` is a :class:`CacheHierarchy` or a preset name. Simulation runs
    one thread on the CPU whatever the point's thread count (a caveat says so when it
    differs); CUDA points and specs with over 64 MiB of embeddings are refused."""
    if isinstance(hierarchy, str):
        hierarchy = preset(hierarchy)
    _check_count("iterations", iterations, 1)
    _check_count("warmup", warmup, 0)
    if point.device != "cpu":
        raise RecstackError(f"{point.label}: simulated counters model the CPU; the point runs "
                            f"on {point.device}")
    cache_args = valgrind_cache_args(hierarchy)
    check_simulation_size(point.spec)
    ok, version = valgrind_available()
    if not ok:
        raise RecstackError(f"simulated counters need valgrind: {version}")
    helper = build_helper()

    with tempfile.TemporaryDirectory(prefix="recstack-cachesim-") as work:
        out, log = Path(work) / "callgrind.out", Path(work) / "valgrind.log"
        status_path = Path(work) / "status.json"
        request = {
            "spec": point.spec.to_config(), "batch_size": point.batch_size, "seed": point.seed,
            "query": point.query.to_dict(), "iterations": iterations, "warmup": warmup,
            "helper": str(helper), "cache": point.cache,
            "precision": point.precision.to_dict(),
        }
        command = ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--branch-sim=yes",
                   "--instr-atstart=no", "--collect-atstart=no", *cache_args,
                   f"--callgrind-out-file={out}", f"--log-file={log}",
                   *tool_child_command("simulated-forwards", request, status_path)]
        env = tool_child_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                             OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
        start = time.perf_counter()
        child = run_under_tool(command, timeout_s=timeout_s, env=env, cwd=work,
                               what=f"{point.label}: the simulation")
        wall = time.perf_counter() - start
        answered, _ = tool_child_outcome(status_path)
        if not answered:
            detail = _tail(child.stderr) or (_tail(log.read_text()) if log.is_file() else "")
            how = (f"was killed by {signal.Signals(-child.returncode).name}"
                   if child.returncode < 0 else f"exited with status {child.returncode}")
            raise WorkerCrashed(f"{point.label}: the simulation under valgrind {how} without "
                                f"an answer" + (f": {detail}" if detail else ""))
        dumps = [p for p in Path(work).glob("callgrind.out*")
                 if f"Trigger: Client Request: {_DUMP_REASON}" in p.read_text()]
        if len(dumps) != 1:
            raise RecstackError(f"{point.label}: callgrind wrote {len(dumps)} dumps of the "
                                "forward passes, expected 1")
        raw = parse_callgrind_totals(dumps[0].read_text())

    caveats = list(CAVEATS)
    if point.threads != 1:
        caveats.append(f"simulated with 1 thread; the point asks for {point.threads}")
    return SimulationResult(
        hierarchy=hierarchy.name, iterations=iterations, warmup=warmup,
        totals={event: count / iterations for event, count in raw.items()},
        geometry={level: getattr(hierarchy, level).valgrind_value()
                  for level in ("l1i", "l1d", "ll")},
        caveats=caveats, threads=1, valgrind_version=version, wall_seconds=wall,
    )


# ---- the child, under valgrind -----------------------------------------------------------


def simulated_forwards(request: dict[str, Any]) -> dict[str, Any]:
    """The child's entry (under valgrind): builds the point's model and batches, then runs
    the forwards between client requests. Returns what the parent may want to know besides
    the events."""
    import ctypes
    import gc

    helper = ctypes.CDLL(request["helper"])
    for name in _HELPER_FUNCTIONS:
        getattr(helper, name).restype = ctypes.c_int if name.endswith("valgrind") else None
    if not helper.recstack_running_on_valgrind():
        raise RecstackError("the simulation child must run under valgrind (simulate_point "
                            "starts it)")
    start_instrumentation = helper.recstack_start_instrumentation
    stop_instrumentation = helper.recstack_stop_instrumentation
    toggle_collect = helper.recstack_toggle_collect
    dump_stats_at = helper.recstack_dump_stats_at
    dump_stats_at.argtypes = [ctypes.c_char_p]
    reason = _DUMP_REASON.encode()

    import torch

    from recstack.inputs import QuerySpec, generate_batches
    from recstack.models import build_model
    from recstack.precision import Precision
    from recstack.specs import spec_from_config

    torch.set_num_threads(1)
    spec = spec_from_config(request["spec"])
    check_simulation_size(spec)
    query = QuerySpec(**request["query"])
    batch_size, warmup, iterations = (request["batch_size"], request["warmup"],
                                      request["iterations"])
    model = build_model(spec, seed=request["seed"], device="cpu",
                        precision=Precision.from_dict(request.get("precision")))
    # The simulated caches start empty and see a handful of forwards. Cold: every forward a
    # batch never seen (the streamed form of a working set beyond the LLC). Warm: the warm
    # set's batches cycled, each seen once before collection starts.
    if request.get("cache", "cold") == "warm":
        count = _MAX_BATCHES
        warmup = max(warmup, count)
    else:
        count = warmup + iterations
    batches = generate_batches(spec, query, batch_size, max(1, count))

    gc.collect()
    gc.disable()
    with torch.inference_mode():
        start_instrumentation()  # the simulated caches start empty: warm them uncollected
        for i in range(warmup):
            model(batches[i % count])
        toggle_collect()
        for i in range(warmup, warmup + iterations):
            output = model(batches[i % count])
        toggle_collect()
        dump_stats_at(reason)
        stop_instrumentation()
    gc.enable()
    if output.shape[0] != batch_size or not bool(torch.isfinite(output).all()):
        raise RecstackError(f"{spec.name}: the forward pass gave a wrong or non-finite output "
                            f"of shape {tuple(output.shape)}")
    return {"torch": torch.__version__, "batches": count}
