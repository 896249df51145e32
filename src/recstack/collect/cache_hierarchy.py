"""The caches valgrind simulates: their geometry, presets of known servers, and this host's.

valgrind's callgrind simulates two cache levels (first-level instruction and data caches and
a last level) of a geometry it is told (``--I1``, ``--D1``, ``--LL``) and accepts only some
geometries (:meth:`CacheGeometry.problem`). The presets are the servers the paper measured;
``host`` is this machine's caches as sysfs describes them, fitted to what valgrind accepts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError
from recstack.host import CPU0_CACHE, read_caches
from recstack.units import size_token


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
        return f"{size_token(self.size_bytes, ' ')} {self.assoc}-way {self.line} B lines"


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


def host_hierarchy(sysfs: Path | str = CPU0_CACHE) -> CacheHierarchy:
    """This machine's caches from sysfs: cpu0's L1i and L1d and its largest cache as the last
    level, each fitted to valgrind (see :func:`fit_to_valgrind`). RecstackError when sysfs
    does not describe them."""
    root = Path(sysfs)
    caches = []
    for cache in read_caches(root):
        size = cache["size_bytes"]
        line = cache["line_bytes"] or 64
        ways = cache["ways"] or max(1, size // line)  # 0 (or none listed): fully associative
        caches.append((cache["level"], cache["type"], CacheGeometry(size, ways, line)))
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
