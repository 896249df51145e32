"""Hardware collector: top-down fractions and miss rates of one point.

Measured with ``perf stat`` where the CPU exposes its counters; simulated with valgrind
(:mod:`recstack.collect.cachesim`) where it does not. Which one is decided once per sweep from
:func:`recstack.doctor.hardware_mode` and stored with every result as its ``source``: a
simulated figure is never shown without that label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recstack.collect.timing import TimingSettings
from recstack.errors import RecstackError
from recstack.levels import LevelOptions
from recstack.points import Point
from recstack.records import Hardware, HardwareRecord
from recstack.records.hardware import RATES, TOPDOWN_LEVEL1
from recstack.specs import ModelSpec

SIMULATED = "simulated"
MEASURED = "measured"
# Simulation is for scaled models; a sweep scales the others down to about this much.
SIMULATION_EMBEDDING_BYTES = 32 * 2**20


@dataclass(frozen=True)
class HardwareResult:
    """What the hardware level found for one point. A rate that was not measured is None,
    never 0."""

    source: str
    """``measured (perf stat)`` or ``simulated (valgrind ...)``: shown with every figure."""
    instructions_per_iteration: float | None
    rates: dict[str, float | None]
    topdown: dict[str, float] | None
    """Level-1 (and level-2 where measured) fractions of pipeline slots."""
    multiplexing: float | None = None
    """Smallest share of time an event was counted (1.0: no multiplexing; None: simulated)."""
    hierarchy: str | None = None
    """The simulated cache hierarchy (simulation only)."""
    caveats: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scaled_for_simulation(spec: ModelSpec,
                          budget_bytes: int = SIMULATION_EMBEDDING_BYTES) -> tuple[ModelSpec, str]:
    """The spec with rows scaled so its embeddings fit ``budget_bytes`` (unchanged if they
    already do), and a note saying so."""
    from recstack.footprint import footprint, row_scale_for_budget

    size = footprint(spec).embedding_bytes
    if size <= budget_bytes:
        return spec, ""
    scale = row_scale_for_budget(spec, budget_bytes)
    if scale is None:
        raise RecstackError(f"{spec.name}: its tables do not fit "
                            f"{budget_bytes / 2**20:.0f} MiB even at one row each")
    return spec.scaled(scale), (f"{spec.name}: simulated at row_scale {scale:g} (simulation "
                                f"under valgrind is for models with at most "
                                f"{budget_bytes / 2**20:.0f} MiB of embeddings)")


def simulated_result(point: Point, hierarchy: str, iterations: int = 3) -> HardwareResult:
    """The hardware level of ``point`` from a valgrind simulation."""
    from recstack.collect.cachesim import simulate_point

    simulation = simulate_point(point, hierarchy, iterations=iterations, warmup=1)
    return HardwareResult(
        source=simulation.source,
        instructions_per_iteration=simulation.instructions,
        rates={"ipc": simulation.estimated_ipc, "l1i_mpki": simulation.i1_mpki,
               "l1d_mpki": simulation.d1_mpki, "llc_mpki": simulation.ll_mpki,
               "branch_mpki": simulation.branch_mpki,
               # valgrind simulates no TLB
               "dtlb_mpki": None, "itlb_mpki": None},
        topdown=simulation.estimated_topdown,
        hierarchy=simulation.hierarchy,
        caveats=list(simulation.caveats) + ["IPC is the penalty model's estimate"],
        raw={"totals": simulation.totals, "geometry": simulation.geometry,
             "valgrind": simulation.valgrind_version},
    )


def hardware_point(point: Point, settings: TimingSettings, mode: str,
                   hierarchy: str = "host", no_multiplex: bool = False) -> HardwareResult:
    """Collects the hardware level of ``point`` in the given mode (``measured`` or
    ``simulated``; see :func:`recstack.doctor.hardware_mode`). ``no_multiplex`` runs the
    measured loop once per small group of events instead of multiplexing them."""
    if mode == SIMULATED:
        return simulated_result(point, hierarchy)
    if mode == MEASURED:
        from recstack.collect.perfcounters import measured_result

        return measured_result(point, settings, no_multiplex=no_multiplex)
    raise RecstackError(f"hardware level: mode {mode!r} is not allowed; expected measured or "
                        "simulated (`recstack doctor` says which this machine supports)")


def collect_hardware(point: Point, settings: TimingSettings,
                     options: LevelOptions | None = None) -> HardwareRecord:
    """The hardware level's collector: the point's counters or simulation (in a fresh
    worker) as its record; the mode was decided once for the plan."""
    options = options or LevelOptions()
    result = hardware_point(point, settings, options.hardware_mode or "", options.hierarchy,
                            options.no_multiplex)
    return hardware_record(result)


def hardware_record(result: HardwareResult) -> HardwareRecord:
    topdown = result.topdown or {}
    return HardwareRecord(Hardware(
        source=result.source, hierarchy=result.hierarchy,
        instructions=result.instructions_per_iteration,
        **{name: result.rates.get(name) for name in RATES},
        **{name: topdown.get(name) for name in TOPDOWN_LEVEL1},
        topdown=topdown, multiplexing=result.multiplexing, caveats=list(result.caveats),
        raw=result.raw))
