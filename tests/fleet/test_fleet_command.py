"""`recstack fleet` and `--executor ray` as users type them, against a real two-node cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from recstack.platform_info import collect_platform, platform_id
from tests.test_cli import assert_one_line_error, recstack

pytestmark = pytest.mark.slow


def test_fleet_lists_the_nodes_and_sweep_measures_each_point_on_each_platform(
        cluster: Any, tmp_path: Path) -> None:
    listed = recstack("fleet", "--address", cluster.address, "--json")
    assert listed.returncode == 0, listed.stderr
    nodes = json.loads(listed.stdout)["nodes"]
    here = platform_id(collect_platform())
    assert len(nodes) >= 2 and {node["platform_id"] for node in nodes} == {here}

    store = tmp_path / "r.duckdb"
    swept = recstack("sweep", "-m", "ncf", "--batch-sizes", "1", "--row-scale", "0.001",
                     "--threads", "1", "--backend", "eager", "--min-time", "0.05",
                     "--store", str(store), "--executor", "ray", "--address",
                     cluster.address, "--platforms", "all")
    assert swept.returncode == 0, swept.stderr
    assert "measuring on the Ray cluster" in swept.stdout
    with duckdb.connect(str(store), read_only=True) as db:
        label, measured_on = db.execute("SELECT label, platform_id FROM points").fetchone()
    assert label.endswith(f" on {here[:8]}") and measured_on == here


@pytest.mark.parametrize("args, text", [
    (["--platforms", "0123456789abcdef"], ("--platforms: '0123456789abcdef' is not a platform "
                                          "of the cluster")),
    (["--retries", "-1"], "--retries: -1 is not allowed"),
])
def test_cluster_options_out_of_range_are_one_line_errors(cluster: Any, tmp_path: Path,
                                                         args: list[str], text: str) -> None:
    result = recstack("sweep", "-m", "ncf", "--batch-sizes", "1", "--row-scale", "0.001",
                      "--store", str(tmp_path / "r.duckdb"), "--executor", "ray",
                      "--address", cluster.address, *args)
    assert_one_line_error(result, text)
    assert not (tmp_path / "r.duckdb").exists()


@pytest.mark.parametrize("args, text", [
    (["--executor", "slurm"], "--executor: 'slurm' is not allowed; expected one of local, ray"),
    (["--address", "10.0.0.1:6379"], "--address: only with --executor ray"),
    (["--platforms", "all"], "--platforms: only with --executor ray"),
    (["--executor", "ray", "--address", "127.0.0.1:1"], ("--address: no Ray cluster answered "
                                                        "at '127.0.0.1:1'")),
])
def test_executor_options_are_checked_before_anything_runs(tmp_path: Path, args: list[str],
                                                           text: str) -> None:
    result = recstack("sweep", "-m", "ncf", "--batch-sizes", "1", "--store",
                      str(tmp_path / "r.duckdb"), *args)
    assert_one_line_error(result, text)
    assert not (tmp_path / "r.duckdb").exists()
