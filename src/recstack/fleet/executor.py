"""``--executor ray``: every point a Ray task on a measuring node of the cluster, run there
in a fresh process as :class:`recstack.executors.LocalExecutor` runs it here. Specs, query
settings and level options travel; models, queries and tensors are built on the node, and
only the record comes back, for the driver alone to store.

A point's node or worker lost mid-point raises :class:`recstack.executors.PointLost`: the run
stores the point as failed and measures it again (``retries`` times) on another node.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from recstack.errors import RecstackError
from recstack.executors import Collector, Machine, Measured, PointLost
from recstack.fleet.cluster import (
    NODE_LABEL,
    SIMULATION_SHARE,
    SLOT,
    FleetNode,
    connect,
    discover,
    live_node_ids,
    select,
)
from recstack.levels import LevelOptions
from recstack.limits import check_int
from recstack.points import Point
from recstack.records import Record
from recstack.text import one_line

EXECUTORS = ("local", "ray")
WHOLE_SLOT: dict[str, Any] = {"num_cpus": 0, "resources": {SLOT: 1.0}}
"""A timed point's (or ceilings') claim: the node alone."""
SIMULATED_SHARE: dict[str, Any] = {"num_cpus": 1, "resources": {SLOT: SIMULATION_SHARE}}
"""A simulated point's claim: one CPU, beside others of its kind."""
RETRIES_MAX = 10


def simulated(point: Point, options: LevelOptions) -> bool:
    """Whether the point is a simulated hardware point: deterministic, so it may share its
    node with others of its kind (one per CPU)."""
    return point.level == "hardware" and options.hardware_mode == "simulated"


def needs_gpu(point: Point) -> bool:
    serving = point.serving
    return point.device.startswith("cuda") or (
        serving is not None and serving.offload_threshold is not None)


@dataclass
class RayExecutor:
    """Points as Ray tasks on the cluster at ``address`` (:func:`recstack.fleet.cluster.
    connect`), on the platforms ``platforms`` selects (:func:`recstack.fleet.cluster.select`).
    """

    address: str | None = None
    platforms: Sequence[str] = ()
    retries: int = 1
    """How often a point whose node or worker was lost is measured again."""
    timeout_s: float | None = None
    collector: Collector | None = None
    """Replaces every level's collector (tests inject failures and sleeps with it)."""
    remote: ClassVar[bool] = True
    nodes: list[FleetNode] = field(init=False)
    selected: list[FleetNode] = field(init=False)
    covered: tuple[str, ...] = field(init=False)
    """The platforms each point is measured on (empty: each point once, anywhere)."""
    unreachable: list[str] = field(init=False)
    """Nodes listed alive that did not tell their platform, and why: not used."""

    def __post_init__(self) -> None:
        check_int("--retries", self.retries, 0, RETRIES_MAX)
        self._ray = connect(self.address)
        self.nodes, self.unreachable = discover(self._ray)
        self.selected, self.covered = select(self.nodes, self.platforms)
        from recstack.fleet import node as on_node

        # Ray retries nothing itself: a lost point is stored as failed before it is retried.
        self._measure = self._ray.remote(max_retries=0)(on_node.measure_point)
        self._ceilings = self._ray.remote(max_retries=0)(on_node.measure_ceilings)
        self._lock = threading.Lock()
        self._in_flight: set[Any] = set()
        self._told = False

    @property
    def parallelism(self) -> int:
        """Points worth keeping in flight: one per CPU of the nodes used (Ray's resources
        queue the timed ones one per node)."""
        return sum(max(1, node.cpus) for node in self.selected)

    def machines(self) -> list[Machine]:
        """One machine of each platform the run uses."""
        return list({node.platform_id: node.machine for node in self.selected}.values())

    def notes(self) -> list[str]:
        """Where the run measures, for the notes a run starts with: once per executor (the
        stages of one command share it), nothing after."""
        if self._told:
            return []
        self._told = True
        platforms = {node.platform_id: node.machine.description for node in self.selected}
        listed = "; ".join(f"{pid} ({description})" for pid, description in platforms.items())
        where = (f"each point on each of {len(self.covered)} platform(s)" if self.covered
                 else "each point once, on whichever node has a free slot (the platform "
                      "that measured it is stored with it)")
        return [(f"measuring on the Ray cluster: {len(self.selected)} node(s) of "
                 f"{len(platforms)} platform(s), {where}: {listed}"),
                ("on the cluster, auto backends use the shipped choices (races stored for "
                 "this machine say nothing of the nodes), and memory admission was checked "
                 "against this machine: a node with less memory fails the points it cannot "
                 "hold"),
                *(f"left out: {why}" for why in self.unreachable)]

    def _live_nodes_of(self, platform: str | None) -> tuple[list[str], set[str]]:
        """The run's live nodes of ``platform`` (any, when None) and every live measuring
        node; refused when the platform has none left."""
        live = live_node_ids(self._ray)
        usable = [node.node_id for node in self.selected if node.node_id in live
                  and (platform is None or node.platform_id == platform)]
        if not usable:
            where = f"platform {platform}" if platform else "this run"
            raise RecstackError(f"no live node of {where} is left to measure it")
        return usable, live

    def placement(self, point: Point, options: LevelOptions) -> dict[str, Any]:
        """The Ray options of the point's task: its share of a slot, its CPUs and GPUs, and
        the live nodes it may run on (refused when none is left)."""
        usable, live = self._live_nodes_of(point.platform)
        share = SIMULATED_SHARE if simulated(point, options) else WHOLE_SLOT
        restrict = {} if len(usable) == len(live) else \
            {"label_selector": {NODE_LABEL: f"in({','.join(usable)})"}}
        return {**share, **restrict, "num_gpus": 1 if needs_gpu(point) else 0,
                "name": f"recstack {point.label}"[:200]}

    def measure(self, point: Point, settings: Any, options: LevelOptions) -> Record:
        return self.measure_where(point, settings, options).record

    def measure_where(self, point: Point, settings: Any, options: LevelOptions) -> Measured:
        ref = self._measure.options(**self.placement(point, options)).remote(
            self.collector, point, settings, options, self.timeout_s)
        status, value = self._get(ref, "measuring it")
        if status == "error":
            error, machine = value
            try:
                error.measured_on = machine  # the failed point's row names its node
            except AttributeError:
                pass  # an exception that takes no attributes: its row names the run's machine
            raise error
        return value

    def measure_ceilings(self, machine: Machine, threads: int, settings: Any
                         ) -> tuple[Machine, Any]:
        """Ceilings at ``threads`` measured on a node of ``machine``'s platform, alone on
        it: (the node's machine, rows of the ``ceilings`` table)."""
        nodes, _ = self._live_nodes_of(machine.platform_id)
        ref = self._ceilings.options(
            **WHOLE_SLOT, label_selector={NODE_LABEL: f"in({','.join(nodes)})"}
        ).remote(threads, settings)
        return self._get(ref, "measuring its ceilings")

    def _get(self, ref: Any, doing: str) -> Any:
        from ray import exceptions

        with self._lock:
            self._in_flight.add(ref)
        try:
            return self._ray.get(ref)
        except exceptions.TaskCancelledError:
            raise RecstackError("cancelled: the run stopped") from None
        except exceptions.RayTaskError as error:
            # Raised outside the point's own code (its arguments or result could not travel).
            raise RecstackError(one_line(f"the node failed {doing}: {error}", 300)) from None
        except exceptions.RayError as error:
            raise PointLost(one_line(f"its node or worker was lost while {doing} "
                                     f"({type(error).__name__}: {error})", 300)) from None
        finally:
            with self._lock:
                self._in_flight.discard(ref)

    def cancel(self) -> None:
        """Stops every task in flight (the run is ending early)."""
        with self._lock:
            refs = list(self._in_flight)
        for ref in refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001,S110 - a task that already ended needs nothing
                pass


def executor_for(name: str, address: str | None = None,
                 platforms: Sequence[str] = (), retries: int = 1) -> RayExecutor | None:
    """The executor ``--executor`` names (None: the local one, the API's default); the
    cluster options are refused without ``ray``."""
    if name not in EXECUTORS:
        raise RecstackError(f"--executor: {name!r} is not allowed; expected one of "
                            f"{', '.join(EXECUTORS)}")
    if name == "local":
        given = [flag for flag, value in (("--address", address), ("--platforms", platforms))
                 if value]
        if given:
            raise RecstackError(f"{given[0]}: only with --executor ray (this run measures "
                                "on this machine)")
        return None
    return RayExecutor(address=address, platforms=tuple(platforms), retries=retries)
