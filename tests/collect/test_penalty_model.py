"""What simulated events mean: callgrind output parsing, derived rates and the penalty model."""

from __future__ import annotations

import json

import pytest

from recstack.collect.penalty_model import (CAVEATS, EVENTS, PENALTY_MODEL, SOURCE,
                                            SimulationResult, estimate_topdown,
                                            parse_callgrind_totals)
from recstack.errors import RecstackError

# A callgrind output file as callgrind 3.19 writes it for a client-request dump (format
# version 1: header, events line, summary, cost lines, totals), shortened.
FIXTURE = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  python -m recstack.worker simulated-forwards {} status.json
part: 1

desc: I1 cache: 32768 B, 64 B, 8-way associative
desc: D1 cache: 32768 B, 64 B, 8-way associative
desc: LL cache: 41943040 B, 64 B, 20-way associative

desc: Timerange: Basic block 0 - 487728
desc: Trigger: Client Request: recstack forwards

positions: line
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
summary: 3000 900 450 60 75 15 6 9 3 300 24 60 12


ob=(1) /usr/lib/libc.so.6
fl=(1) ???
fn=(1) memcpy
0 2000 600 300 40 50 10 4 6 2 200 16 40 8
fn=(2) free
0 1000 300 150 20 25 5 2 3 1 100 8 20 4

totals: 3000 900 450 60 75 15 6 9 3 300 24 60 12
"""
FIXTURE_TOTALS = dict(zip(EVENTS, (3000, 900, 450, 60, 75, 15, 6, 9, 3, 300, 24, 60, 12),
                          strict=True))


# ---- parsing -----------------------------------------------------------------------------


def test_parse_totals_line() -> None:
    assert parse_callgrind_totals(FIXTURE) == FIXTURE_TOTALS


def test_totals_win_over_summary() -> None:
    # callgrind's end-of-program dump after collection was toggled off writes summary: 0
    text = "events: Ir Dr\nsummary: 0\nfn=(1) f\n0 5 2\ntotals: 5 2\n"
    assert parse_callgrind_totals(text) == {"Ir": 5, "Dr": 2}


def test_summary_alone_and_trailing_zeros_left_out() -> None:
    text = "version: 1\nevents: Ir Dr Dw I1mr\nsummary: 10 4\n"
    assert parse_callgrind_totals(text) == {"Ir": 10, "Dr": 4, "Dw": 0, "I1mr": 0}


@pytest.mark.parametrize(("text", "message"), [
    ("totals: 1 2\n", "no events: line"),
    ("events: Ir Dr\nfn=(1) f\n0 1 2\n", "no totals: or summary: line"),
    ("events: Ir\ntotals: 1 2\n", "malformed totals line"),
    ("events: Ir Dr\ntotals: 1 x\n", "malformed totals line"),
])
def test_parse_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(RecstackError, match=message) as caught:
        parse_callgrind_totals(text)
    assert "\n" not in str(caught.value)


# ---- derived rates and the penalty model ---------------------------------------------------


def _result(totals: dict[str, float], iterations: int = 1) -> SimulationResult:
    return SimulationResult(hierarchy="test", iterations=iterations, totals=totals)


def test_rates_per_kilo_instruction() -> None:
    result = _result({k: float(v) for k, v in FIXTURE_TOTALS.items()})
    assert result.instructions == 3000
    assert result.i1_mpki == pytest.approx(1000 * 60 / 3000)            # 20
    assert result.d1_mpki == pytest.approx(1000 * (75 + 15) / 3000)     # 30
    assert result.ll_mpki == pytest.approx(1000 * (6 + 9 + 3) / 3000)   # 6
    assert result.branch_mpki == pytest.approx(1000 * (24 + 12) / 3000)  # 12
    assert result.branch_mispredict_rate == pytest.approx(36 / 360)
    assert result.source == SOURCE == "simulated (valgrind callgrind, AVX2 code path)"
    assert result.caveats == list(CAVEATS)


def test_penalty_model_by_hand() -> None:
    assert PENALTY_MODEL == {"issue_width": 4.0, "l1_miss_cycles": 12.0,
                             "ll_miss_cycles": 200.0, "mispredict_cycles": 15.0}
    result = _result({k: float(v) for k, v in FIXTURE_TOTALS.items()})
    base = 3000 / 4                          # 750
    frontend = 60 * 12 + 6 * 200             # 720 + 1200 = 1920
    backend = (75 + 15) * 12 + (9 + 3) * 200  # 1080 + 2400 = 3480
    speculation = (24 + 12) * 15             # 540
    cycles = base + frontend + backend + speculation  # 6690
    assert result.estimated_cycles == pytest.approx(cycles)
    assert result.estimated_ipc == pytest.approx(3000 / cycles)
    topdown = result.estimated_topdown
    assert topdown == pytest.approx({"retiring": base / cycles,
                                     "bad_speculation": speculation / cycles,
                                     "frontend_bound": frontend / cycles,
                                     "backend_bound": backend / cycles})
    assert sum(topdown.values()) == pytest.approx(1.0)


def test_penalty_model_edge_cases() -> None:
    zero = dict.fromkeys(EVENTS, 0.0)
    assert estimate_topdown(zero) == dict.fromkeys(
        ("retiring", "bad_speculation", "frontend_bound", "backend_bound"), 0.0)
    only_work = {**zero, "Ir": 400.0}
    assert estimate_topdown(only_work)["retiring"] == 1.0
    assert _result(zero).i1_mpki == 0.0


def test_result_needs_every_event_and_serialises() -> None:
    with pytest.raises(RecstackError, match="lack Bcm, Bim"):
        _result({k: 1.0 for k in EVENTS if k not in ("Bcm", "Bim")})
    data = _result({k: float(v) for k, v in FIXTURE_TOTALS.items()}).to_dict()
    json.dumps(data)
    assert data["source"] == SOURCE and data["penalty_model"] == PENALTY_MODEL
    assert data["ll_mpki"] == pytest.approx(6.0)
    assert set(data["estimated_topdown"]) == {"retiring", "bad_speculation",
                                              "frontend_bound", "backend_bound"}
