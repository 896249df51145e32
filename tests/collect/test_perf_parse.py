"""perf stat output: counter rows (``-x,`` and ``-j``), derived rates, multiplexing and the
PMU check.

The fixtures under tests/data/perf are perf's documented formats: ``stat_x.csv`` and
``stat_j.json`` are the same run (generic events plus ``-M TopdownL1,TopdownL2`` on an Intel
server) as ``-x,`` and ``-j``; ``stat_topdown_legacy.csv`` is perf 5.x ``--topdown``;
``toplev_l2.csv`` is toplev ``-l2 -x,``; ``stat_cycles_host.txt`` is ``perf stat -e cycles
true`` on a machine with a PMU. ``stat_cycles_vm.txt``, ``stat_interval_vm.csv`` and
``stat_control_vm.json`` were recorded on this VM (perf 6.1, no PMU).
"""

from __future__ import annotations


import pytest

from recstack.collect.perf_events import (
    normalize_event,
)
from recstack.collect.perf_parse import (
    derived_rates,
    multiplexing_share,
    parse_perf_csv,
    parse_perf_json,
    pmu_available,
)
from recstack.errors import RecstackError

from tests.collect.perf_data import DATA, by_event, fixture  # noqa: E402,F401


# ---------------------------------------------------------------------------- perf -x,


def test_parse_csv_values_statuses_and_multiplexing() -> None:
    readings = parse_perf_csv(fixture("stat_x.csv"))
    assert len(readings) == 30  # comment and blank lines skipped
    ev = by_event(readings)

    instructions = ev["instructions"]
    assert instructions.value == 4812345678.0
    assert instructions.status == "counted"
    assert instructions.run_time_ns == 2004567123
    assert instructions.percent_running == 100.0 and not instructions.multiplexed
    assert instructions.metric_value == pytest.approx(1.52)
    assert instructions.metric_unit == "insn per cycle"
    assert ev["cycles"].metric_value is None and ev["cycles"].metric_unit is None

    llc = ev["LLC-load-misses"]
    assert llc.multiplexed and llc.percent_running == pytest.approx(49.88)
    assert llc.value == 1234567.0
    assert ev["dTLB-loads"].multiplexed and ev["branches"].multiplexed

    not_counted = ev["iTLB-load-misses"]
    assert not_counted.status == "not_counted"
    assert not_counted.value is None  # never 0
    assert not not_counted.multiplexed and not_counted.metric_value is None

    unsupported = ev["L1-icache-loads"]
    assert unsupported.status == "not_supported" and unsupported.value is None
    assert not unsupported.multiplexed

    metric_only = [r for r in readings if r.is_metric_only]
    assert len(metric_only) == 11
    assert all(r.status == "counted" and r.percent_running is None for r in metric_only)
    assert metric_only[0].metric_unit == "%  tma_bad_speculation"
    assert metric_only[0].metric_value == pytest.approx(10.2)
    assert all(r.interval is None for r in readings)


def test_parse_json_is_the_same_run_as_csv() -> None:
    from_csv = parse_perf_csv(fixture("stat_x.csv"))
    from_json = parse_perf_json(fixture("stat_j.json"))
    assert from_json == from_csv
    # JSON prints metric-value 0.000000 with an empty unit where perf computed nothing
    assert by_event(from_json)["cycles"].metric_value is None


def test_parse_json_tolerates_perf_messages_and_string_metrics() -> None:
    text = (
        "Events disabled\n"
        "Events enabled\n"
        '{"counter-value" : "1000.000000", "unit" : "", "event" : "instructions", '
        '"event-runtime" : 500, "pcnt-running" : 50.00, "metric-value" : "2.000000", '
        '"metric-unit" : "insn per cycle"}Events disabled\n'
        '{"counter-value" : "<not counted>", "unit" : "", "event" : "cycles", '
        '"event-runtime" : 0, "pcnt-running" : 0.00, "metric-value" : "0.000000", '
        '"metric-unit" : ""}\n'
        '{"metric-value" : "31.500000", "metric-unit" : "%  tma_retiring"}\n'
        "[1, 2]\n"
        "{not json\n"
    )
    readings = parse_perf_json(text)
    assert len(readings) == 3
    instructions, cycles, metric = readings
    assert instructions.value == 1000.0 and instructions.multiplexed
    assert instructions.metric_value == 2.0
    assert cycles.status == "not_counted" and cycles.value is None
    assert metric.is_metric_only and metric.metric_value == 31.5
    assert derived_rates(readings)["ipc"] is None  # cycles not counted: not 0, not inf


def test_parse_csv_with_interval_column_recorded_on_this_vm() -> None:
    readings = parse_perf_csv(fixture("stat_interval_vm.csv"))
    assert len(readings) == 6
    assert [r.interval for r in readings[:2]] == [pytest.approx(0.100166184)] * 2
    first, cycles, idle = readings[0], readings[1], readings[2]
    assert first.event == "task-clock" and first.value == pytest.approx(0.76)
    assert first.unit == "msec" and first.run_time_ns == 755453
    assert first.metric_unit == "CPUs utilized"
    assert cycles.status == "not_supported" and cycles.value is None
    assert idle.event == "task-clock" and idle.status == "not_counted" and idle.value is None


def test_parse_csv_edge_rows() -> None:
    text = (
        "# started on x\n"
        "\n"
        "1200,,instructions,100,100.00,,,\n"  # trailing empty field
        "     1.001141351,,,,,,11.5,%  tma_retiring\n"  # interval metric-only line
        "Events enabled\n"
        "304.81,msec,task-clock,304809838,100.00,0.277,CPUs utilized\n"
    )
    readings = parse_perf_csv(text)
    assert [r.event for r in readings] == ["instructions", "", "task-clock"]
    assert readings[0].value == 1200.0 and readings[0].metric_value is None
    assert readings[1].interval == pytest.approx(1.001141351)
    assert readings[1].metric_value == 11.5
    assert readings[2].interval is None and readings[2].value == pytest.approx(304.81)
    with pytest.raises(RecstackError, match="not a number"):
        parse_perf_csv("abc,,instructions,1,100.00,,\n")


# ---------------------------------------------------------------------------- derived


def test_derived_rates_from_the_fixture() -> None:
    rates = derived_rates(parse_perf_csv(fixture("stat_x.csv")))
    ins = 4812345678.0
    assert rates["ipc"] == pytest.approx(ins / 3165977420.0)
    assert rates["branch_mpki"] == pytest.approx(9123456 / ins * 1000)
    assert rates["branch_miss_rate"] == pytest.approx(9123456 / 912345678)
    assert rates["l1d_mpki"] == pytest.approx(72839450 / ins * 1000)
    assert rates["l1i_mpki"] == pytest.approx(34567890 / ins * 1000)
    assert rates["llc_mpki"] == pytest.approx(1234567 / ins * 1000)
    assert rates["dtlb_mpki"] == pytest.approx(2345678 / ins * 1000)
    assert rates["llc_miss_rate"] == pytest.approx(1234567 / 4567890)
    assert rates["l1d_miss_rate"] == pytest.approx(72839450 / 1456789012)
    # iTLB-load-misses was <not counted>; L2 was not requested: None, never 0
    assert rates["itlb_mpki"] is None
    assert rates["l2_mpki"] is None


def test_derived_rates_missing_inputs_are_none() -> None:
    rates = derived_rates(parse_perf_json(fixture("stat_control_vm.json")))
    assert set(rates.values()) == {None}
    assert set(derived_rates([]).values()) == {None}
    zero_cycles = parse_perf_csv("10,,instructions,1,100.00,,\n0,,cycles,1,100.00,,\n")
    assert derived_rates(zero_cycles)["ipc"] is None


def test_derived_rates_sum_hybrid_pmus_and_modifiers() -> None:
    text = (
        "600,,cpu_core/instructions/u,1,100.00,,\n"
        "400,,cpu_atom/instructions/u,1,100.00,,\n"
        "<not counted>,,cpu_atom/cycles/u,0,0.00,,\n"
        "500,,cpu_core/cycles/u,1,100.00,,\n"
        "5,,branch-misses:u,1,100.00,,\n"
    )
    rates = derived_rates(parse_perf_csv(text))
    assert rates["ipc"] == pytest.approx(1000 / 500)
    assert rates["branch_mpki"] == pytest.approx(5.0)
    assert normalize_event("cpu-cycles") == "cycles"
    assert normalize_event("L1-dcache-load-misses:k") == "l1-dcache-load-misses"


def test_multiplexing_share() -> None:
    assert multiplexing_share(parse_perf_csv(fixture("stat_x.csv"))) == pytest.approx(0.3333)
    assert multiplexing_share(parse_perf_json(fixture("stat_control_vm.json"))) == 1.0
    only_unsupported = parse_perf_csv("<not supported>,,cycles,0,100.00,,\n")
    assert multiplexing_share(only_unsupported) is None


# ---------------------------------------------------------------------------- PMU check


def test_pmu_available_on_a_vm() -> None:
    ok, reason = pmu_available(fixture("stat_cycles_vm.txt"))
    assert ok is False
    assert "not supported" in reason and reason.startswith("cycles")
    assert "\n" not in reason
    ok, reason = pmu_available("<not supported>,,cycles,0,100.00,,\n")
    assert not ok and "not supported" in reason
    ok, _ = pmu_available(fixture("stat_control_vm.json"))
    assert not ok


def test_pmu_available_with_real_counts() -> None:
    ok, reason = pmu_available(fixture("stat_cycles_host.txt"))
    assert ok is True and reason == "cycles: counted 1,024,389"
    ok, _ = pmu_available(fixture("stat_x.csv"))
    assert ok


def test_pmu_available_failures_have_reasons() -> None:
    assert pmu_available("") == (False, "perf printed nothing (is perf installed?)")
    denied = ("Error:\nAccess to performance monitoring and observability operations is "
              "limited.\nConsider adjusting /proc/sys/kernel/perf_event_paranoid setting\n")
    ok, reason = pmu_available(denied)
    assert not ok and "perf_event_paranoid" in reason
    ok, reason = pmu_available(" Performance counter stats for 'true':\n\n"
                               "     <not counted>      cycles\n")
    assert not ok and "not counted" in reason
