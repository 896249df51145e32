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
``PYTHONHASHSEED=0``: the counts are then bit-identical from run to run. The events are
callgrind's: ``Ir`` (instructions), ``Dr``/``Dw`` (data reads/writes), ``I1mr``/``D1mr``/``D1mw``
(first-level misses), ``ILmr``/``DLmr``/``DLmw`` (last-level misses), ``Bc``/``Bcm``
(conditional branches/mispredicted), ``Bi``/``Bim`` (indirect branches/mispredicted).

Every result is labelled :data:`SOURCE` and carries :data:`CAVEATS`: valgrind hides AVX-512,
so torch runs its AVX2 code path; only two cache levels are simulated; and the top-down split
is an estimate from a fixed penalty model (:data:`PENALTY_MODEL`), not measured pipeline
slots.

The library never prints. The ``--worker`` entry point (``python -m recstack.collect.cachesim
--worker JSON``) prints nothing either: its events go to the callgrind output file and its
outcome (or error) to a small JSON status file that the parent reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recstack.collect.native import build_shared_library, find_compiler
from recstack.errors import RecstackError, SpecError
from recstack.points import Point

# ---- events ------------------------------------------------------------------------------

EVENTS: tuple[str, ...] = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw",
                           "Bc", "Bcm", "Bi", "Bim")
"""callgrind's events with ``--cache-sim=yes --branch-sim=yes``, in its order."""

SOURCE = "simulated (valgrind callgrind, AVX2 code path)"
"""The label every simulated result carries, so it is never mistaken for measured counters."""

CAVEATS: tuple[str, ...] = (
    "valgrind hides AVX-512 from the program, so on CPUs with AVX-512 torch and its math "
    "libraries run their AVX2 code path: instruction counts and mix differ from a native run",
    "only two cache levels are simulated (first level and last level); the mid-level cache "
    "(L2) is not, so every first-level miss goes straight to the simulated last level",
    "no hardware prefetcher, TLB or out-of-order overlap is simulated, and branch prediction "
    "is valgrind's simple model (bimodal conditional, last-target indirect), much cruder than "
    "a real CPU's",
    "the top-down split is an estimate from a fixed penalty model "
    "(recstack.collect.cachesim.PENALTY_MODEL), not measured pipeline slots",
)

PENALTY_MODEL: dict[str, float] = {
    "issue_width": 4.0,
    "l1_miss_cycles": 12.0,
    "ll_miss_cycles": 200.0,
    "mispredict_cycles": 15.0,
}
"""Cycle costs that turn simulated events into an estimated top-down split.

These are textbook-order estimates for a recent Intel server core, not measurements, and they
ignore that an out-of-order core overlaps much of this latency:

- ``issue_width``: a 4-wide core retires at best 4 instructions per cycle, so the base cost of
  the work is ``Ir / 4`` cycles (the "retiring" share);
- ``l1_miss_cycles``: a first-level miss (instruction or data) served by the next level; about
  an L2 hit on Broadwell/Cascade Lake (LLC hits cost 40-70 cycles; L2 is not simulated);
- ``ll_miss_cycles``: a last-level miss served by DRAM (added on top of its first-level miss,
  so a DRAM access costs 12 + 200 cycles);
- ``mispredict_cycles``: the pipeline refill after a mispredicted branch.

Then ``cycles = Ir/issue_width + (I1mr + D1mr + D1mw) * l1_miss_cycles
+ (ILmr + DLmr + DLmw) * ll_miss_cycles + (Bcm + Bim) * mispredict_cycles``, and
``frontend_bound`` = instruction-miss cycles / cycles, ``bad_speculation`` = mispredict
cycles / cycles, ``backend_bound`` (memory only: no core-bound term) = data-miss cycles /
cycles, ``retiring`` = base cycles / cycles. Data write misses count like read misses
(pessimistic: real store buffers hide most of them).
"""

MAX_SIMULATED_EMBEDDING_BYTES = 64 * 2**20
"""Specs with more embedding bytes than this are refused: simulation is for scaled models."""

_HELPER_SOURCE = "callgrind_control.c"
_HELPER_FUNCTIONS = ("recstack_running_on_valgrind", "recstack_start_instrumentation",
                     "recstack_stop_instrumentation", "recstack_toggle_collect",
                     "recstack_zero_stats", "recstack_dump_stats_at")
_COMPILE_FLAGS: tuple[str, ...] = ("-shared", "-fPIC", "-O2")
_DUMP_REASON = "recstack forwards"
_MAX_BATCHES = 4  # distinct query batches cycled through, as the timing collector does


# ---- cache geometry ----------------------------------------------------------------------


@dataclass(frozen=True)
class CacheGeometry:
    """One simulated cache: total size in bytes, associativity (ways) and line size in bytes."""

    size_bytes: int
    assoc: int
    line: int = 64

    @property
    def sets(self) -> float:
        return self.size_bytes / (self.assoc * self.line)

    def problem(self) -> str | None:
        """Why valgrind would refuse this geometry, or None when it accepts it.

        valgrind's rules: positive integers, a power-of-two line of at least 16 bytes, a size
        above the line, at most size/line ways, and a power-of-two number of sets
        (size / (assoc x line)).
        """
        values = (self.size_bytes, self.assoc, self.line)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            return "size, associativity and line must be positive integers"
        if not _is_power_of_two(self.line) or self.line < 16:
            return f"line {self.line} B must be a power of two of at least 16 B"
        if self.size_bytes <= self.line:
            return f"size {self.size_bytes} B must exceed the line ({self.line} B)"
        if self.assoc > self.size_bytes // self.line:
            return (f"{self.assoc}-way exceeds the {self.size_bytes // self.line} lines "
                    "of the cache")
        if self.size_bytes % (self.assoc * self.line) or not _is_power_of_two(
                self.size_bytes // (self.assoc * self.line)):
            return (f"{self.size_bytes} B / ({self.assoc} ways x {self.line} B lines) = "
                    f"{self.sets:g} sets; valgrind needs a power-of-two number of sets")
        return None

    def valgrind_value(self) -> str:
        """``size,assoc,line`` as ``--I1``/``--D1``/``--LL`` take it."""
        return f"{self.size_bytes},{self.assoc},{self.line}"

    def describe(self) -> str:
        return f"{_human_bytes(self.size_bytes)} {self.assoc}-way {self.line} B lines"


@dataclass(frozen=True)
class CacheHierarchy:
    """The caches valgrind simulates: first-level instruction and data, and the last level."""

    name: str
    l1i: CacheGeometry
    l1d: CacheGeometry
    ll: CacheGeometry
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _human_bytes(size: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale and size % (scale // 4) == 0:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def fit_to_valgrind(geometry: CacheGeometry) -> CacheGeometry:
    """``geometry`` with the same size and line and the fewest extra ways that give a
    power-of-two number of sets, as valgrind itself adjusts a detected last-level cache
    (e.g. 480 MiB 16-way becomes 480 MiB 30-way). Unchanged when already valid."""
    if geometry.problem() is None:
        return geometry
    size, line = geometry.size_bytes, geometry.line
    if (not _is_power_of_two(line) or line < 16 or size <= line or size % line
            or geometry.assoc < 1):
        raise RecstackError(f"cache geometry {geometry.describe()} cannot be simulated: "
                            f"{geometry.problem()}")
    lines = size // line
    sets = 1
    while lines % (sets * 2) == 0 and sets * 2 <= lines // geometry.assoc:
        sets *= 2
    return CacheGeometry(size, lines // sets, line)


def valgrind_cache_args(hierarchy: CacheHierarchy) -> list[str]:
    """``--I1=...``, ``--D1=...``, ``--LL=...`` for ``hierarchy``; RecstackError (one line)
    when valgrind would refuse a level."""
    args = []
    for option, level in (("--I1", "l1i"), ("--D1", "l1d"), ("--LL", "ll")):
        geometry: CacheGeometry = getattr(hierarchy, level)
        problem = geometry.problem()
        if problem is not None:
            raise RecstackError(f"cache hierarchy {hierarchy.name!r}, {level}: {problem}")
        args.append(f"{option}={geometry.valgrind_value()}")
    return args


_KIB, _MIB = 2**10, 2**20

BROADWELL = CacheHierarchy(
    name="broadwell",
    l1i=CacheGeometry(32 * _KIB, 8, 64),
    l1d=CacheGeometry(32 * _KIB, 8, 64),
    ll=CacheGeometry(40 * _MIB, 20, 64),
    description=(
        "Broadwell-EP server, as Intel Xeon E5-2683 v4 (16 cores): 32 KiB 8-way L1i and L1d, "
        "64 B lines; shared LLC 2.5 MiB 20-way per core = 40 MiB 20-way per socket, which is "
        "32768 sets (a power of two), so valgrind takes it without rounding. Parts with other "
        "core counts (e.g. 35 MiB on 14 cores) would need their ways changed. The 256 KiB L2 "
        "is not simulated."),
)

CASCADELAKE = CacheHierarchy(
    name="cascadelake",
    l1i=CacheGeometry(32 * _KIB, 8, 64),
    l1d=CacheGeometry(32 * _KIB, 8, 64),
    ll=CacheGeometry(22 * _MIB, 11, 64),
    description=(
        "Cascade Lake server, as Intel Xeon Gold 6242 (16 cores): 32 KiB 8-way L1i and L1d, "
        "64 B lines; shared non-inclusive LLC 1.375 MiB 11-way per core = 22 MiB 11-way per "
        "socket, which is 32768 sets (a power of two), so valgrind takes it without "
        "rounding. The private 1 MiB 16-way L2 is not simulated (valgrind simulates two "
        "levels)."),
)


_SYSFS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")


def _parse_sysfs_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)\s*", text)
    if match is None:
        raise ValueError(f"unreadable cache size {text!r}")
    return int(match.group(1)) * {"": 1, "K": _KIB, "M": _MIB, "G": 2**30}[match.group(2)]


def host_hierarchy(sysfs: Path | str = _SYSFS_CACHE) -> CacheHierarchy:
    """This machine's caches from sysfs: cpu0's L1i and L1d and its largest cache as the last
    level, each fitted to valgrind (see :func:`fit_to_valgrind`). RecstackError when sysfs
    does not describe them."""
    root = Path(sysfs)
    caches = []
    try:
        for index in sorted(root.glob("index*")):
            def read(name: str, index: Path = index) -> str:
                return (index / name).read_text().strip()

            size = _parse_sysfs_size(read("size"))
            line = int(read("coherency_line_size") or 0) or 64
            ways = int(read("ways_of_associativity") or 0) or max(1, size // line)  # 0: full
            caches.append((int(read("level")), read("type"), CacheGeometry(size, ways, line)))
    except (OSError, ValueError) as error:
        raise RecstackError(f"cannot read this machine's caches from {root}: {error}") from None
    l1i = next((g for level, kind, g in caches if level == 1 and kind in ("Instruction",
                                                                         "Unified")), None)
    l1d = next((g for level, kind, g in caches if level == 1 and kind in ("Data", "Unified")),
               None)
    last = [g for _, kind, g in caches if kind in ("Unified", "Data")]
    if l1i is None or l1d is None or not last:
        raise RecstackError(f"cannot read this machine's caches from {root}: no first-level "
                            "instruction and data caches listed; use a preset "
                            "(broadwell, cascadelake)")
    ll = max(last, key=lambda g: g.size_bytes)
    fitted = fit_to_valgrind(ll)
    note = "" if fitted == ll else (f"; LLC {ll.describe()} simulated as {fitted.describe()} "
                                    "(more ways, same size: valgrind needs a power-of-two "
                                    "number of sets)")
    return CacheHierarchy(
        name="host", l1i=fit_to_valgrind(l1i), l1d=fit_to_valgrind(l1d), ll=fitted,
        description=f"this machine (sysfs {root}): L1i {l1i.describe()}, L1d {l1d.describe()}, "
                    f"largest cache {ll.describe()} as the last level{note}")


def _presets() -> dict[str, CacheHierarchy]:
    presets = {"broadwell": BROADWELL, "cascadelake": CASCADELAKE}
    try:
        presets["host"] = host_hierarchy()
    except RecstackError:
        pass  # no sysfs cache description (not Linux, or a container hiding it)
    return presets


PRESETS: dict[str, CacheHierarchy] = _presets()
"""Named cache hierarchies; ``host`` is present where sysfs describes this machine's caches."""


def preset(name: str) -> CacheHierarchy:
    """The preset called ``name``; RecstackError naming the choices otherwise."""
    if name in PRESETS:
        return PRESETS[name]
    if name == "host":
        return host_hierarchy()  # raises with the reason
    raise RecstackError(f"cache hierarchy {name!r} is unknown; expected one of "
                        f"{', '.join(PRESETS)}")


# ---- callgrind output --------------------------------------------------------------------


def parse_callgrind_totals(text: str) -> dict[str, int]:
    """Event totals of a callgrind output file (its format version 1).

    The ``events:`` line names the events; the ``totals:`` line (or, without one, the older
    ``summary:`` line) gives their sums in that order. Trailing zeros may be left out, as the
    format allows. RecstackError when either line is missing or malformed.
    """
    events: list[str] | None = None
    totals: list[str] | None = None
    summary: list[str] | None = None
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "events" and events is None:
            events = rest.split()
        elif key == "totals":
            totals = rest.split()
        elif key == "summary":
            summary = rest.split()
    values = totals if totals is not None else summary
    if not events:
        raise RecstackError("callgrind output has no events: line")
    if values is None:
        raise RecstackError("callgrind output has no totals: or summary: line")
    if len(values) > len(events) or not all(v.isdigit() for v in values):
        raise RecstackError(f"callgrind output has a malformed totals line {' '.join(values)!r} "
                            f"for events {' '.join(events)!r}")
    counts = [int(v) for v in values] + [0] * (len(events) - len(values))
    return dict(zip(events, counts, strict=True))


# ---- results -----------------------------------------------------------------------------


def _per_kilo(count: float, instructions: float) -> float:
    return 1000.0 * count / instructions if instructions > 0 else 0.0


def estimated_cycles(totals: dict[str, float], model: dict[str, float] | None = None
                     ) -> dict[str, float]:
    """The penalty model's cycles, by component: ``base``, ``instruction_misses``,
    ``data_misses``, ``mispredicts`` and their ``total`` (see :data:`PENALTY_MODEL`)."""
    m = PENALTY_MODEL if model is None else model
    t = {event: float(totals.get(event, 0)) for event in EVENTS}
    parts = {
        "base": t["Ir"] / m["issue_width"],
        "instruction_misses": t["I1mr"] * m["l1_miss_cycles"] + t["ILmr"] * m["ll_miss_cycles"],
        "data_misses": ((t["D1mr"] + t["D1mw"]) * m["l1_miss_cycles"]
                        + (t["DLmr"] + t["DLmw"]) * m["ll_miss_cycles"]),
        "mispredicts": (t["Bcm"] + t["Bim"]) * m["mispredict_cycles"],
    }
    parts["total"] = sum(parts.values())
    return parts


def estimate_topdown(totals: dict[str, float], model: dict[str, float] | None = None
                     ) -> dict[str, float]:
    """Top-down-style fractions (summing to 1) from the penalty model: ``retiring``,
    ``bad_speculation``, ``frontend_bound``, ``backend_bound``. All zero without work."""
    cycles = estimated_cycles(totals, model)
    total = cycles["total"]
    if total <= 0:
        return dict.fromkeys(("retiring", "bad_speculation", "frontend_bound",
                              "backend_bound"), 0.0)
    return {
        "retiring": cycles["base"] / total,
        "bad_speculation": cycles["mispredicts"] / total,
        "frontend_bound": cycles["instruction_misses"] / total,
        "backend_bound": cycles["data_misses"] / total,
    }


@dataclass(frozen=True)
class SimulationResult:
    """Simulated events of one point's forward passes, per forward, and what follows."""

    hierarchy: str
    iterations: int
    totals: dict[str, float]
    """Events per forward pass (collected totals / iterations)."""
    warmup: int = 0
    geometry: dict[str, str] = field(default_factory=dict)
    """``l1i``, ``l1d``, ``ll`` as ``size,assoc,line`` (what valgrind simulated)."""
    source: str = SOURCE
    caveats: list[str] = field(default_factory=lambda: list(CAVEATS))
    threads: int = 1
    valgrind_version: str | None = None
    wall_seconds: float | None = None
    """How long the simulation took (the whole valgrind run)."""

    def __post_init__(self) -> None:
        missing = [event for event in EVENTS if event not in self.totals]
        if missing:
            raise RecstackError(f"simulated events lack {', '.join(missing)}; callgrind must "
                                "run with --cache-sim=yes --branch-sim=yes")

    @property
    def instructions(self) -> float:
        return float(self.totals["Ir"])

    @property
    def i1_mpki(self) -> float:
        return _per_kilo(self.totals["I1mr"], self.instructions)

    @property
    def d1_mpki(self) -> float:
        return _per_kilo(self.totals["D1mr"] + self.totals["D1mw"], self.instructions)

    @property
    def ll_mpki(self) -> float:
        return _per_kilo(self.totals["ILmr"] + self.totals["DLmr"] + self.totals["DLmw"],
                         self.instructions)

    @property
    def branch_mpki(self) -> float:
        return _per_kilo(self.totals["Bcm"] + self.totals["Bim"], self.instructions)

    @property
    def branch_mispredict_rate(self) -> float:
        branches = self.totals["Bc"] + self.totals["Bi"]
        return (self.totals["Bcm"] + self.totals["Bim"]) / branches if branches > 0 else 0.0

    @property
    def estimated_cycles(self) -> float:
        return estimated_cycles(self.totals)["total"]

    @property
    def estimated_ipc(self) -> float:
        cycles = self.estimated_cycles
        return self.instructions / cycles if cycles > 0 else 0.0

    @property
    def estimated_topdown(self) -> dict[str, float]:
        """Penalty-model fractions (see :data:`PENALTY_MODEL`); an estimate, not counters."""
        return estimate_topdown(self.totals)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values, the derived rates and the penalty model included."""
        data = asdict(self)
        data.update(instructions=self.instructions, i1_mpki=self.i1_mpki,
                    d1_mpki=self.d1_mpki, ll_mpki=self.ll_mpki, branch_mpki=self.branch_mpki,
                    branch_mispredict_rate=self.branch_mispredict_rate,
                    estimated_ipc=self.estimated_ipc,
                    estimated_topdown=self.estimated_topdown,
                    penalty_model=dict(PENALTY_MODEL))
        return data


# ---- tools: valgrind and the helper --------------------------------------------------------


def valgrind_available() -> tuple[bool, str]:
    """(True, version) when valgrind runs here, else (False, why not and how to get it)."""
    path = shutil.which("valgrind")
    if path is None:
        return False, "valgrind is not installed (apt-get install valgrind)"
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True,
                                timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"valgrind at {path} does not run: {error}"
    version = result.stdout.strip()
    if result.returncode != 0 or not version:
        return False, f"valgrind at {path} does not run (exit status {result.returncode})"
    return True, version


def _include_flags() -> list[str]:
    """valgrind's include directory when it is installed outside the compiler's defaults."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return []
    include = Path(valgrind).resolve().parent.parent / "include"
    return ["-I", str(include)] if (include / "valgrind" / "callgrind.h").is_file() else []


def _explain_build_error(errors: list[str]) -> str | None:
    if any("callgrind.h" in line or "valgrind.h" in line for line in errors):
        return ("valgrind's callgrind.h is missing; simulated counters need valgrind's "
                "headers (apt-get install valgrind; valgrind-devel on Fedora/RHEL)")
    return None


def build_helper(cache_dir: Path | str | None = None) -> Path:
    """The compiled callgrind helper, built once per source version into ``cache_dir``
    (default :func:`recstack.collect.native.helper_cache_dir`), named by a hash of its source.
    RecstackError naming what is missing (a C compiler, valgrind's callgrind.h) when it
    cannot be built."""
    compiler = find_compiler("CC", ("cc", "gcc", "clang"), "C",
                             "simulated counters compile a small valgrind helper")
    return build_shared_library(_HELPER_SOURCE, compiler,
                                [*_COMPILE_FLAGS, *_include_flags()], cache_dir,
                                explain=_explain_build_error)


# ---- the simulation ----------------------------------------------------------------------


def check_simulation_size(spec: Any) -> None:
    """Refuses specs whose embeddings exceed :data:`MAX_SIMULATED_EMBEDDING_BYTES`."""
    from recstack.footprint import footprint, round_down

    size = footprint(spec).embedding_bytes
    if size <= MAX_SIMULATED_EMBEDDING_BYTES:
        return
    full = footprint(spec.scaled(1.0)).embedding_bytes
    fits = round_down(MAX_SIMULATED_EMBEDDING_BYTES / full)
    raise RecstackError(
        f"{spec.name} at row_scale {spec.row_scale:g} has {size / 2**20:.0f} MiB of embeddings; "
        f"simulation under valgrind is for scaled models (at most "
        f"{MAX_SIMULATED_EMBEDDING_BYTES / 2**20:.0f} MiB): pass a scaled spec, e.g. "
        f"row_scale {fits:g} or smaller")


def _check_count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SpecError(name, value, f"expected an integer >= {least}")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONHASHSEED="0")
    # The child imports this very recstack, installed or not.
    package_root = str(Path(__file__).resolve().parents[2])
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = package_root + (os.pathsep + existing if existing else "")
    return env


def _tail(text: str, lines: int = 1) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def simulate_point(point: Point, hierarchy: CacheHierarchy | str = "host", iterations: int = 3,
                   warmup: int = 1, timeout_s: float = 900) -> SimulationResult:
    """Simulated cache and branch events of ``point``'s forward passes (see the module
    docstring). ``hierarchy`` is a :class:`CacheHierarchy` or a preset name. Simulation runs
    one thread on the CPU whatever the point's thread count (a caveat says so when it
    differs); CUDA points and specs with over 64 MiB of embeddings are refused."""
    from recstack.worker import WorkerCrashed, WorkerTimedOut, die_with_parent_hook

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
        out = Path(work) / "callgrind.out"
        status_path = Path(work) / "status.json"
        request = {
            "spec": point.spec.to_config(), "batch_size": point.batch_size, "seed": point.seed,
            "query": point.query.to_dict(), "iterations": iterations, "warmup": warmup,
            "helper": str(helper), "status": str(status_path),
        }
        command = ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--branch-sim=yes",
                   "--instr-atstart=no", "--collect-atstart=no", *cache_args,
                   f"--callgrind-out-file={out}", f"--log-file={Path(work) / 'valgrind.log'}",
                   sys.executable, "-m", "recstack.collect.cachesim", "--worker",
                   json.dumps(request, separators=(",", ":"))]
        start = time.perf_counter()
        try:
            child = subprocess.run(command, cwd=work, env=_child_env(), capture_output=True,
                                   text=True, timeout=timeout_s, check=False,
                                   preexec_fn=die_with_parent_hook())
        except subprocess.TimeoutExpired:
            raise WorkerTimedOut(f"{point.label}: the simulation took longer than "
                                 f"{timeout_s:g} s and was killed") from None
        wall = time.perf_counter() - start
        try:
            status = json.loads(status_path.read_text())
        except (OSError, ValueError):
            log = Path(work) / "valgrind.log"
            detail = _tail(child.stderr) or (_tail(log.read_text()) if log.is_file() else "")
            how = (f"was killed by {signal.Signals(-child.returncode).name}"
                   if child.returncode < 0 else f"exited with status {child.returncode}")
            raise WorkerCrashed(f"{point.label}: the simulation under valgrind {how} without "
                                f"an answer" + (f": {detail}" if detail else "")) from None
        if "error" in status:
            raise RecstackError(status["error"])
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


def _run_worker(request: dict[str, Any]) -> dict[str, Any]:
    """Builds the point's model and batches, then runs the forwards between client requests.
    Returns what the parent may want to know besides the events."""
    import ctypes
    import gc

    helper = ctypes.CDLL(request["helper"])
    for name in _HELPER_FUNCTIONS:
        getattr(helper, name).restype = ctypes.c_int if name.endswith("valgrind") else None
    if not helper.recstack_running_on_valgrind():
        raise RecstackError("the cachesim worker must run under valgrind (simulate_point "
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
    from recstack.specs import spec_from_config

    torch.set_num_threads(1)
    spec = spec_from_config(request["spec"])
    check_simulation_size(spec)
    query = QuerySpec(**request["query"])
    batch_size, warmup, iterations = (request["batch_size"], request["warmup"],
                                      request["iterations"])
    model = build_model(spec, seed=request["seed"], device="cpu")
    count = max(1, min(_MAX_BATCHES, warmup + iterations))
    batches = generate_batches(spec, query, batch_size, count)

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


def _worker_main(argv: list[str]) -> int:
    """``--worker JSON``: runs :func:`_run_worker` and writes its outcome, or the error, to
    the request's status file. Prints nothing."""
    if len(argv) != 2 or argv[0] != "--worker":
        return 2
    request = json.loads(argv[1])
    try:
        outcome: dict[str, Any] = {"ok": _run_worker(request)}
        code = 0
    except RecstackError as error:
        outcome, code = {"error": str(error)}, 1
    except Exception as error:  # noqa: BLE001 - every failure goes back to the parent
        outcome, code = {"error": f"the simulated run failed: {type(error).__name__}: "
                                  f"{error}"}, 1
    Path(request["status"]).write_text(json.dumps(outcome))
    return code


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
