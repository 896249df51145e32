"""The latency-bounded QPS search, on a stub whose valid rates are known."""

from __future__ import annotations

from recstack.serving.search import TestOutcome, search_latency_bounded


def _stub(capacity: float, limit: float | None):
    calls = []

    def run_test(scenario, qps, role):
        calls.append((scenario, round(qps, 3), role))
        if scenario == "offline":
            return TestOutcome(scenario, qps, False, capacity)
        return TestOutcome(scenario, qps, limit is not None and qps <= limit, min(qps, capacity))

    return run_test, calls


def test_the_search_brackets_the_highest_valid_rate():
    run_test, calls = _stub(1000.0, 640.0)
    result = search_latency_bounded(run_test, 2, 2.0, tolerance=0.05, max_tests=20)
    assert result.converged and result.capacity_qps == 1000.0
    assert result.latency_bounded_qps <= 640.0 < result.lowest_invalid_qps
    assert result.lowest_invalid_qps <= result.latency_bounded_qps * 1.05
    assert [c[0] for c in calls[:2]] == ["offline", "offline"]
    assert len(result.tests) == len(calls)


def test_a_request_slower_than_the_target_ends_the_search_at_a_calm_rate():
    calls = []

    def run_test(scenario, qps, role):
        calls.append(qps)
        if scenario == "offline":
            return TestOutcome(scenario, qps, False, 100.0)
        return TestOutcome(scenario, qps, False, qps, p50_ms=40.0)  # every request 40 ms

    result = search_latency_bounded(run_test, 1, 2.0, 0.1, 30, target_ms=25.0)
    assert result.latency_bounded_qps is None and "median request took 40 ms" in result.note
    assert calls[2:] == [80.0, 40.0]  # 0.8x the capacity, then the first rate at half


def test_nothing_valid_ends_with_no_rate():
    run_test, _ = _stub(1000.0, None)
    result = search_latency_bounded(run_test, 1, 2.0, tolerance=0.1, max_tests=30)
    assert result.latency_bounded_qps is None and "no rate" in result.note


def test_rates_above_the_offline_capacity_are_tried_while_valid():
    run_test, _ = _stub(100.0, 150.0)  # a server run sustains more than the offline estimate
    result = search_latency_bounded(run_test, 1, 2.0, tolerance=0.05, max_tests=30)
    assert result.converged and 140.0 < result.latency_bounded_qps <= 150.0
    run_test, _ = _stub(100.0, 1e9)
    endless = search_latency_bounded(run_test, 1, 2.0, tolerance=0.1, max_tests=8)
    assert "every rate tried was valid" in endless.note and not endless.converged


def test_the_test_budget_is_kept():
    run_test, calls = _stub(1000.0, 333.0)
    result = search_latency_bounded(run_test, 1, 2.0, tolerance=0.001, max_tests=5)
    assert len(calls) == 5 and not result.converged and "stopped after 5" in result.note
    assert result.latency_bounded_qps is not None and result.latency_bounded_qps <= 333.0
