"""What runs on a cluster node, inside a Ray worker: a point in a fresh process of its own
(:func:`recstack.worker.run_isolated`, the local executor's isolation), the node's platform,
and the node's ceilings. Each returns plain data the driver stores; none touches the store.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime
from typing import Any

from recstack.executors import Collector, Machine, Measured, collector_for
from recstack.levels import LevelOptions
from recstack.points import Point


@functools.cache
def this_machine() -> Machine:
    """The node's platform, probed once per Ray worker process."""
    import ray

    from recstack.platform_info import collect_platform, describe_platform, platform_id

    info = collect_platform()
    return Machine(platform_id(info), describe_platform(info), info,
                   ray.get_runtime_context().get_node_id())


def _quiet_blas() -> None:
    # As scripts/dev.sh does: numpy's OpenBLAS threads spin and steal the point's cores.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def measure_point(collector: Collector | None, point: Point, settings: Any,
                  options: LevelOptions, timeout_s: float | None) -> tuple[str, Any]:
    """``("ok", Measured)`` or ``("error", (the point's exception, this node))``: the point's
    own failure comes back as a value, so that only a lost node or worker reaches the driver
    as a Ray error."""
    from recstack.collect.timing import point_cycled_set
    from recstack.worker import run_isolated

    _quiet_blas()
    machine = this_machine()
    began = datetime.now(UTC)
    try:
        record = run_isolated(collector or collector_for(point.level), point, settings,
                              options, timeout_s=timeout_s)
        ended = datetime.now(UTC)
        # Sized against this node's cache, as the collector sized it.
        cycled = None if point.serving is not None else \
            point_cycled_set(point, settings, options)
    except Exception as error:  # noqa: BLE001 - the point's failure is its result
        return "error", (error, machine)
    return "ok", Measured(record, machine, cycled, began, ended)


def probe() -> Machine:
    """The platform of the node this runs on."""
    return this_machine()


def measure_ceilings(threads: int, settings: Any) -> tuple[Machine, Any]:
    """The node's ceilings at ``threads`` (rows of the ``ceilings`` table), measured in a
    fresh process: the ceilings of one machine, as ``recstack ceilings`` measures them."""
    from recstack.worker import run_isolated

    _quiet_blas()
    machine = this_machine()
    return machine, run_isolated(_ceilings_frame, threads, settings, machine.platform_id)


def _ceilings_frame(threads: int, settings: Any, identity: str) -> Any:
    from recstack.collect.ceilings import ceilings_frame
    from recstack.collect.ceilings import measure_ceilings as measure
    from recstack.platform_info import collect_platform

    return ceilings_frame(measure(threads, collect_platform(), settings), identity, threads)
