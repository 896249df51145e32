"""A real two-node Ray cluster on this machine (Ray's own cluster utilities), shared by the
fleet tests of a module; skipped, saying why, where Ray is not installed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'recstack[ray]' "
                                        "(scripts/dev.sh test installs it)")


def measuring_node(cluster: Any) -> Any:
    """One more node with a measuring slot and one CPU."""
    from recstack.fleet import SLOT

    return cluster.add_node(num_cpus=1, resources={SLOT: 1.0})


@pytest.fixture(scope="package")
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    from recstack.fleet import SLOT

    made = Cluster(initialize_head=True,
                   head_node_args={"num_cpus": 1, "resources": {SLOT: 1.0},
                                   "include_dashboard": False})
    measuring_node(made)
    # Connected here without Ray's log stream, which would flood the test output.
    ray.init(address=made.address, log_to_driver=False, logging_level=logging.ERROR)
    yield made
    ray.shutdown()
    made.shutdown()
