"""Top-down fractions from perf's metric rows and from toplev.

Fixtures: ``stat_x.csv`` and ``stat_j.json`` (the same run with ``-M TopdownL1,TopdownL2``),
``stat_topdown_legacy.csv`` (perf 5.x ``--topdown``), ``toplev_l2.csv`` (toplev ``-l2 -x,``),
``stat_control_vm.json`` (recorded on this VM, no PMU).
"""

from __future__ import annotations


import pytest

from recstack.collect.perf_parse import (
    parse_perf_csv,
    parse_perf_json,
)
from recstack.collect.perf_topdown import (
    TOPDOWN_LEVEL1,
    TopdownNode,
    parse_toplev_csv,
    topdown_from_readings,
    topdown_from_toplev,
)

from tests.collect.perf_data import DATA, by_event, fixture  # noqa: E402,F401


# ---------------------------------------------------------------------------- top-down


def test_topdown_from_perf_metric_rows() -> None:
    csv_run = parse_perf_csv(fixture("stat_x.csv"))
    for readings in (csv_run, parse_perf_json(fixture("stat_j.json"))):
        td = topdown_from_readings(readings)
        assert td is not None
        assert td["retiring"] == pytest.approx(0.401)
        assert td["bad_speculation"] == pytest.approx(0.102)
        assert td["frontend_bound"] == pytest.approx(0.243)
        assert td["backend_bound"] == pytest.approx(0.254)
        assert sum(td[k] for k in TOPDOWN_LEVEL1) == pytest.approx(1.0, abs=1e-6)
        assert td["memory_bound"] == pytest.approx(0.177)
        assert td["fetch_latency"] + td["fetch_bandwidth"] == pytest.approx(td["frontend_bound"])
        bad_speculation = td["branch_mispredicts"] + td["machine_clears"]
        assert bad_speculation == pytest.approx(td["bad_speculation"])
        assert td["light_operations"] + td["heavy_operations"] == pytest.approx(td["retiring"])
        assert "l1_bound" not in td  # level 3 is not reported


def test_topdown_from_legacy_topdown_flag_rows() -> None:
    readings = parse_perf_csv(fixture("stat_topdown_legacy.csv"))
    td = topdown_from_readings(readings)
    assert td == pytest.approx({"retiring": 0.238, "bad_speculation": 0.116,
                                "frontend_bound": 0.283, "backend_bound": 0.363})
    # perf 5.x Ice Lake level-2 naming
    ice = parse_perf_csv("1,,slots,1,100.00,12.0%,branch mispredict\n"
                         "1,,topdown-fetch-lat,1,100.00,20.0%,fetch latency\n")
    assert topdown_from_readings(ice) == pytest.approx({"fetch_latency": 0.2,
                                                        "branch_mispredicts": 0.12})


def test_topdown_absent_is_none() -> None:
    assert topdown_from_readings(parse_perf_json(fixture("stat_control_vm.json"))) is None
    assert topdown_from_readings([]) is None


def test_parse_toplev_csv() -> None:
    nodes = parse_toplev_csv(fixture("toplev_l2.csv"))
    assert len(nodes) == 12  # the Info metric is not a node
    names = {n.area: n for n in nodes}
    fe = names["Frontend_Bound"]
    assert isinstance(fe, TopdownNode)
    assert fe.level == 1 and fe.value == pytest.approx(0.2431) and fe.unit == "% Slots"
    assert fe.multiplex == 100.0 and not fe.bottleneck
    mem = names["Backend_Bound.Memory_Bound"]
    assert mem.level == 2 and mem.value == pytest.approx(0.177)
    assert mem.multiplex == pytest.approx(49.92)
    assert names["Backend_Bound"].bottleneck
    assert [n.area for n in nodes if n.bottleneck] == ["Backend_Bound"]
    level1 = [n for n in nodes if n.level == 1]
    assert {n.area for n in level1} == {"Frontend_Bound", "Bad_Speculation", "Backend_Bound",
                                        "Retiring"}
    assert sum(n.value for n in level1) == pytest.approx(1.0, abs=1e-3)
    for parent in level1:
        children = [n for n in nodes if n.area.startswith(parent.area + ".")]
        assert len(children) == 2
        assert sum(c.value for c in children) == pytest.approx(parent.value, abs=1e-3)

    td = topdown_from_toplev(nodes)
    assert td is not None and td["backend_bound"] == pytest.approx(0.254)
    assert td["core_bound"] == pytest.approx(0.077)
    assert topdown_from_toplev([]) is None


def test_parse_toplev_csv_with_timestamp_and_without_header() -> None:
    text = (
        "1.000,S0-C0,Frontend_Bound,20.0,% Slots,,,0.0,80.0,,\n"
        "1.000,S0-C0,Frontend_Bound.Fetch_Latency,12.5,% Slots ?,,,0.0,80.0,,\n"
        "2.000,S0-C0,Backend_Bound,50.0,% Slots,,,0.0,,<==,\n"
    )
    nodes = parse_toplev_csv(text)
    assert [n.area for n in nodes] == ["Frontend_Bound", "Frontend_Bound.Fetch_Latency",
                                       "Backend_Bound"]
    assert nodes[0].timestamp == "1.000" and nodes[0].cpus == "S0-C0"
    assert nodes[1].unit == "% Slots" and nodes[1].level == 2
    assert nodes[2].multiplex is None and nodes[2].bottleneck
