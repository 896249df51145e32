"""Characterizing a fleet: points measured on the nodes of a Ray cluster, each in a fresh
process on its node exactly as locally, results stored by the driver alone.

- :mod:`recstack.fleet.cluster`: connecting, the nodes that measure and their platforms;
- :mod:`recstack.fleet.node`: what runs on a node (a point, a platform probe, ceilings);
- :mod:`recstack.fleet.executor`: :class:`RayExecutor`, the executor of ``--executor ray``.

Ray is an optional dependency (``pip install 'recstack[ray]'``): nothing here imports it
before a cluster is asked for.
"""

from recstack.fleet.cluster import SIMULATION_SHARE, SLOT, FleetNode
from recstack.fleet.executor import RayExecutor, executor_for

__all__ = ["SIMULATION_SHARE", "SLOT", "FleetNode", "RayExecutor", "executor_for"]
