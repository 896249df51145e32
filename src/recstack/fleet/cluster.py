"""The cluster: connecting to it, the nodes that measure, their platforms, and where a point
may run.

A node measures when it offers the custom resource :data:`SLOT` (one per node: ``ray start
--resources '{"recstack_slot": 1}'``). A timed point (timing, operators, serving, counted
hardware) takes the whole slot, so no two timed points, and nothing else of recstack's,
share a node while it runs; a simulated hardware point, deterministic, takes a sliver of the
slot and one CPU, so a node runs one per CPU Ray gives it, and never beside a timed point.
A node's platform is what :mod:`recstack.platform_info` reports on it, probed when the
driver connects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recstack.errors import RecstackError
from recstack.executors import Machine
from recstack.text import one_line, shown

SLOT = "recstack_slot"
"""The custom resource a measuring node offers (one)."""
SIMULATION_SHARE = 0.001
"""The part of a node's slot a simulated point takes (with one CPU)."""
NODE_LABEL = "ray.io/node-id"
"""The label every Ray node carries, which pins a task to chosen nodes."""
START_HINT = ("start the head with `ray start --head --resources '{\"recstack_slot\": 1}'` "
              "and each other node with `ray start --address HEAD:6379 --resources "
              "'{\"recstack_slot\": 1}'` (README, \"A fleet\")")
PROBE_TIMEOUT_S = 180.0
CONNECT_TIMEOUT_S = 10.0


def require_ray() -> Any:
    """The ``ray`` module, or the one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RecstackError("--executor: ray needs Ray, which is not installed here; install "
                            "it with pip install 'recstack[ray]'") from None
    return ray


def connect(address: str | None) -> Any:
    """Connects this process to the cluster at ``address`` (default: ``RAY_ADDRESS``, else
    the cluster started on this machine); ``local`` starts a private one-node cluster of
    this machine with one measuring slot. Returns ``ray``."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    # Ray's own notices (its log stream, its banner) would interleave with the progress lines.
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address == "local":
        from recstack.host import usable_cores

        ray.init(num_cpus=usable_cores(), resources={SLOT: 1.0}, include_dashboard=False,
                 **quiet)
        return ray
    if address:
        _check_reachable(address)
    try:
        ray.init(address=address or "auto", **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RecstackError(f"--address: no Ray cluster answered at {shown(address or 'auto')} "
                            f"({one_line(error, 160)}); {START_HINT}, or give --address local "
                            "for a one-node cluster of this machine") from None
    return ray


def _check_reachable(address: str) -> None:
    """Refuses, at once, a HOST:PORT nothing listens on (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # a Ray client address or a name Ray resolves: Ray's own checks apply
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise RecstackError(f"--address: no Ray cluster answered at {shown(address)} "
                            f"({error.strerror or error}); {START_HINT}, or give --address "
                            "local for a one-node cluster of this machine") from None


@dataclass(frozen=True)
class FleetNode:
    """A node that measures: its Ray id, its address, the CPUs Ray gives it, its platform."""

    node_id: str
    address: str
    cpus: int
    machine: Machine

    @property
    def platform_id(self) -> str:
        return self.machine.platform_id


def live_node_ids(ray: Any) -> set[str]:
    """The nodes alive now that offer a measuring slot."""
    return {node["NodeID"] for node in ray.nodes()
            if node.get("Alive") and node.get("Resources", {}).get(SLOT, 0) >= 1}


def discover(ray: Any) -> tuple[list[FleetNode], list[str]]:
    """Every live measuring node with its platform (a probe task on each), in address
    order, and why each node left out did not answer (a node that died moments ago is still
    listed alive for a while)."""
    from recstack.fleet import node as on_node

    nodes = [node for node in ray.nodes()
             if node.get("Alive") and node.get("Resources", {}).get(SLOT, 0) >= 1]
    if not nodes:
        raise RecstackError(f"--executor ray: no node of the cluster offers the resource "
                            f"{SLOT}, so none may measure; {START_HINT}")
    probe = ray.remote(num_cpus=0, max_retries=0)(on_node.probe)
    refs = [probe.options(label_selector={NODE_LABEL: node["NodeID"]}).remote()
            for node in nodes]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    found, missing = [], []
    for node, ref in zip(nodes, refs, strict=True):
        name = f"node {node['NodeID'][:12]} ({node.get('NodeManagerAddress', '?')})"
        if ref not in ready:
            ray.cancel(ref, force=True)
            missing.append(f"{name}: no answer within {PROBE_TIMEOUT_S:g} s")
            continue
        try:
            machine = ray.get(ref)
        except Exception as error:  # noqa: BLE001 - any failure of a probe leaves its node out
            missing.append(f"{name}: {one_line(error, 160)}")
            continue
        found.append(FleetNode(node["NodeID"], str(node.get("NodeManagerAddress", "")),
                               int(node["Resources"].get("CPU", 0)), machine))
    if not found:
        raise RecstackError(f"--executor ray: no measuring node told its platform "
                            f"({missing[0]}); is recstack installed on every node, in the "
                            "same Python as the driver?")
    return sorted(found, key=lambda n: (n.address, n.node_id)), missing


def select(nodes: Sequence[FleetNode], platforms: Sequence[str]
           ) -> tuple[list[FleetNode], tuple[str, ...]]:
    """The nodes a run may use and the platforms each point is measured on: with no
    ``platforms``, every node and none (each point once, wherever a slot is free); with
    ``all``, every platform of the cluster; else the platform ids given (checked)."""
    known = sorted({node.platform_id for node in nodes})
    wanted = [p.strip() for p in platforms if p.strip()]
    if not wanted:
        return list(nodes), ()
    if wanted == ["all"]:
        return list(nodes), tuple(known)
    unknown = [p for p in wanted if p not in known]
    if unknown:
        listed = "; ".join(f"{pid} ({next(n.machine.description for n in nodes if n.platform_id == pid)})"
                           for pid in known)
        raise RecstackError(f"--platforms: {shown(unknown[0])} is not a platform of the "
                            f"cluster; expected all or ids of: {listed}")
    chosen = tuple(dict.fromkeys(wanted))
    return [node for node in nodes if node.platform_id in chosen], chosen
