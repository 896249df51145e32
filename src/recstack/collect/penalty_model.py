"""What simulated events mean: callgrind's totals, the penalty model and a simulation's result.

The events are callgrind's: ``Ir`` (instructions), ``Dr``/``Dw`` (data reads/writes),
``I1mr``/``D1mr``/``D1mw`` (first-level misses), ``ILmr``/``DLmr``/``DLmw`` (last-level
misses), ``Bc``/``Bcm`` (conditional branches/mispredicted), ``Bi``/``Bim`` (indirect
branches/mispredicted). A fixed penalty model (:data:`PENALTY_MODEL`) turns them into
estimated cycles and a top-down-style split: an estimate, not measured pipeline slots, which
is why every result is labelled :data:`SOURCE` and carries :data:`CAVEATS`. Pure: nothing here
runs valgrind (:mod:`recstack.collect.cachesim` does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recstack.errors import RecstackError

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
    "(recstack.collect.penalty_model.PENALTY_MODEL), not measured pipeline slots",
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
