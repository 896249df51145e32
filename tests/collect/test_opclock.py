"""The operator clock: a RecordFunction callback compiled against the installed torch."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from recstack.collect import opclock
from recstack.collect.opclock import (MIN_ROUNDS, OperatorClock, build_clock, clock_rounds,
                                      unclockable_reason)
from recstack.errors import RecstackError

HAS_CXX = any(shutil.which(name) for name in ("c++", "g++", "clang++"))
needs_cxx = pytest.mark.skipif(not HAS_CXX, reason="the operator clock needs a C++ compiler "
                                                   "(apt-get install g++)")


@pytest.fixture(scope="module")
def clock() -> OperatorClock:
    if not HAS_CXX:
        pytest.skip("the operator clock needs a C++ compiler (apt-get install g++)")
    return OperatorClock()


@needs_cxx
def test_clock_is_built_once_per_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_clock(tmp_path)
    assert build_clock(tmp_path) == built  # cached: not built again
    # Another torch build (its version and place are in the key) gets a library of its own.
    flags, _ = opclock._torch_flags()
    monkeypatch.setattr(opclock, "_torch_flags", lambda: (flags, "torch 9.9 elsewhere"))
    other = build_clock(tmp_path)
    assert other != built
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([built.name, other.name])


def test_missing_compiler_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(RecstackError, match="C\\+\\+ compiler CXX='/nonexistent/c\\+\\+' is "
                                            "not found.*apt-get install g\\+\\+"):
        build_clock(tmp_path)


def test_counts_top_level_and_nested_operators(clock: OperatorClock) -> None:
    x, weight, bias = torch.randn(8, 16), torch.randn(4, 16), torch.randn(4)
    torch.nn.functional.linear(x, weight, bias)  # first-call costs outside the clock
    with clock:
        torch.nn.functional.linear(x, weight, bias)
        torch.relu(x)
        inside, top, observed = clock.take()
        assert top == 2
        assert observed > top  # linear runs addmm (and a transpose) inside itself
        assert inside > 0
        assert clock.take() == (0, 0, 0)  # a take resets
    with clock:  # stopped, started again: counting from zero
        assert clock.take() == (0, 0, 0)


def test_time_inside_operators_is_inside(clock: OperatorClock) -> None:
    a = torch.randn(384, 384)
    torch.mm(a, a)
    with clock:
        start = time.perf_counter_ns()
        torch.mm(a, a)
        middle = time.perf_counter_ns()
        spin_until = middle + 2_000_000
        while time.perf_counter_ns() < spin_until:  # 2 ms of Python, outside any operator
            pass
        end = time.perf_counter_ns()
        inside, top, _ = clock.take()
    assert top == 1
    # Most of the call is the operator; the Python spin after it is not counted.
    assert (middle - start) / 2 < inside <= middle - start < end - start - 2_000_000


def test_counts_only_its_own_thread(clock: OperatorClock) -> None:
    x = torch.randn(8, 8)

    def elsewhere() -> None:
        for _ in range(10):
            torch.relu(x)

    with clock:
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        assert clock.take()[1] == 0
        torch.relu(x)
        assert clock.take()[1] == 1


def test_refuses_to_start_twice(clock: OperatorClock) -> None:
    with clock:
        with pytest.raises(RecstackError, match="already running"):
            clock.__enter__()


def test_rounds_bracket_python_time_as_outside(clock: OperatorClock) -> None:
    x = torch.randn(4, 4)

    def forward(_: int) -> None:
        torch.relu(x)
        spin_until = time.perf_counter_ns() + 200_000  # 0.2 ms between operators
        while time.perf_counter_ns() < spin_until:
            pass
        torch.relu(x)

    reading = clock_rounds(forward, typical_s=200e-6, clock=clock, rounds=3)
    medians = reading.medians()
    assert reading.operators == 2 and reading.observed >= 2
    assert len(reading.plain_us) == len(reading.clocked_us) == 3
    assert medians["outside_us"] >= 190 and medians["inside_us"] < 50
    assert medians["plain_us"] >= 190


def test_calibration_bounds_the_clocks_own_cost_outside_an_operator(
        clock: OperatorClock) -> None:
    with pytest.raises(RecstackError, match="not running"):
        clock.calibrate(10)
    x = torch.randn(4, 4)
    with clock:
        outside_ns, read_ns = clock.calibrate(500)
        clock.take()
        # What the callbacks cost in all per operator, for comparison: a clocked relu against
        # a plain one, fastest of many.
        start = time.perf_counter_ns()
        for _ in range(2000):
            torch.relu(x)
        clocked_ns = (time.perf_counter_ns() - start) / 2000
    start = time.perf_counter_ns()
    for _ in range(2000):
        torch.relu(x)
    plain_ns = (time.perf_counter_ns() - start) / 2000
    assert 0 < read_ns < 1000
    # A part of what the clock adds, never more than all of it (with room for noise).
    assert 0 < outside_ns < max(clocked_ns - plain_ns, 0) + 300


def test_rounds_carry_the_calibration(clock: OperatorClock) -> None:
    reading = clock_rounds(lambda _: torch.relu(torch.ones(2)), typical_s=2e-6, clock=clock,
                           rounds=3)
    assert reading.callback_outside_us > 0
    assert reading.operators == 2  # ones and relu: the calibration's scopes are not counted


def test_slow_iterations_get_fewer_rounds(clock: OperatorClock,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opclock, "BUDGET_SECONDS", 0.001)
    calls = []
    reading = clock_rounds(calls.append, typical_s=1.0, clock=clock)
    assert reading.iterations_per_round == 1
    assert len(reading.plain_us) == MIN_ROUNDS and len(calls) == 2 * MIN_ROUNDS


def test_what_cannot_be_clocked_says_why() -> None:
    assert unclockable_reason("cpu", "eager") is None
    assert unclockable_reason("cpu", "fused") is None
    assert unclockable_reason("cpu", "static") is None
    assert "inductor" in unclockable_reason("cpu", "compile")
    assert "device" in unclockable_reason("cuda:0", "eager")


@needs_cxx
def test_static_runtime_nodes_are_its_operators() -> None:
    """Watching a Static Runtime graph, the clock counts its nodes (not the kernels they
    call, nor dispatcher calls made from Python), and leaves out its list and tuple nodes:
    the same operators as the profiler's view (recstack.collect.operators.is_runtime_glue)."""
    from recstack import static_runtime
    from recstack.backends import build_for_backend
    from recstack.collect.operators import STATIC_RUNTIME_OP_SCOPE, is_runtime_glue
    from tests.conftest import one_batch, small_spec

    if static_runtime.unavailable_reason() is not None:
        pytest.skip(static_runtime.unavailable_reason())
    spec = small_spec("din")  # its graph unpacks a list (prim::ListUnpack): glue
    model, batch = build_for_backend(spec, "static"), one_batch(spec, 4)
    model.prepare([batch])
    with torch.inference_mode(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model(batch)
    nodes = [e.name for e in profile.events() if e.scope == STATIC_RUNTIME_OP_SCOPE]
    operators = [name for name in nodes if not is_runtime_glue(name, STATIC_RUNTIME_OP_SCOPE)]
    assert len(operators) < len(nodes)  # there was glue to leave out
    x = torch.randn(4, 4)
    with torch.inference_mode(), OperatorClock(static_runtime=True) as clock:
        model(batch)
        _, top, observed = clock.take()
        torch.relu(x)  # a dispatcher call from Python: not a Static Runtime node
        assert clock.take() == (0, 0, 0)
    assert top == observed == len(operators)
    assert opclock.watches_static_runtime("static")
    assert not opclock.watches_static_runtime("fused")
