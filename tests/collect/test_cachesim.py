"""Simulated counters: callgrind output parsing, cache geometries, the penalty model, the
helper build and (slow) a real simulation under valgrind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recstack.collect import cachesim
from recstack.collect.cachesim import (
    CAVEATS,
    EVENTS,
    PENALTY_MODEL,
    PRESETS,
    SOURCE,
    CacheGeometry,
    CacheHierarchy,
    SimulationResult,
    build_helper,
    estimate_topdown,
    fit_to_valgrind,
    host_hierarchy,
    parse_callgrind_totals,
    preset,
    simulate_point,
    valgrind_available,
    valgrind_cache_args,
)
from recstack.errors import RecstackError, SpecError
from recstack.points import Point
from recstack.specs import zoo_spec

# A callgrind output file as callgrind 3.19 writes it for a client-request dump (format
# version 1: header, events line, summary, cost lines, totals), shortened.
FIXTURE = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  python -m recstack.collect.cachesim --worker {}
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

valgrind_ok, valgrind_why = valgrind_available()
compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
has_callgrind_h = Path("/usr/include/valgrind/callgrind.h").is_file()
needs_compiler = pytest.mark.skipif(
    compiler is None or not has_callgrind_h,
    reason="the callgrind helper needs a C compiler and valgrind's callgrind.h "
           "(apt-get install gcc valgrind)")


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


# ---- cache geometry ----------------------------------------------------------------------


def test_presets_give_valid_valgrind_args() -> None:
    assert {"broadwell", "cascadelake"} <= set(PRESETS)
    for hierarchy in PRESETS.values():
        args = valgrind_cache_args(hierarchy)
        assert [a.split("=")[0] for a in args] == ["--I1", "--D1", "--LL"]
        for level in (hierarchy.l1i, hierarchy.l1d, hierarchy.ll):
            assert level.problem() is None
            sets = level.size_bytes // (level.assoc * level.line)
            assert sets * level.assoc * level.line == level.size_bytes
            assert sets & (sets - 1) == 0
    assert valgrind_cache_args(PRESETS["broadwell"]) == [
        "--I1=32768,8,64", "--D1=32768,8,64", "--LL=41943040,20,64"]
    assert valgrind_cache_args(PRESETS["cascadelake"]) == [
        "--I1=32768,8,64", "--D1=32768,8,64", "--LL=23068672,11,64"]
    assert preset("broadwell") is PRESETS["broadwell"]


def test_invalid_geometry_is_refused_in_one_line() -> None:
    # 35 MiB 20-way (a 14-core Broadwell) is 28672 sets: not a power of two.
    bad = CacheHierarchy("odd", PRESETS["broadwell"].l1i, PRESETS["broadwell"].l1d,
                         CacheGeometry(35 * 2**20, 20, 64))
    with pytest.raises(RecstackError) as caught:
        valgrind_cache_args(bad)
    message = str(caught.value)
    assert "\n" not in message
    assert "'odd', ll" in message and "28672 sets" in message and "power-of-two" in message
    for geometry, words in ((CacheGeometry(32768, 8, 48), "line 48 B"),
                            (CacheGeometry(32768, 8, 8), "at least 16 B"),
                            (CacheGeometry(64, 1, 64), "must exceed the line"),
                            (CacheGeometry(1024, 32, 64), "exceeds the 16 lines")):
        assert words in (geometry.problem() or "")
    with pytest.raises(RecstackError, match="unknown; expected one of broadwell"):
        preset("skylake")


def test_fit_to_valgrind_adds_ways_as_valgrind_does() -> None:
    # valgrind itself turns a detected 480 MiB 16-way LLC into 480 MiB 30-way.
    fitted = fit_to_valgrind(CacheGeometry(480 * 2**20, 16, 64))
    assert fitted == CacheGeometry(480 * 2**20, 30, 64)
    assert fit_to_valgrind(CacheGeometry(35 * 2**20, 20, 64)) == CacheGeometry(35 * 2**20, 35, 64)
    valid = CacheGeometry(32768, 8, 64)
    assert fit_to_valgrind(valid) is valid
    with pytest.raises(RecstackError, match="cannot be simulated"):
        fit_to_valgrind(CacheGeometry(32768, 8, 48))


def _fake_sysfs(root: Path, caches: list[tuple[int, str, str, int]]) -> Path:
    for i, (level, kind, size, ways) in enumerate(caches):
        index = root / f"index{i}"
        index.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size),
                            ("ways_of_associativity", ways), ("coherency_line_size", 64)):
            (index / name).write_text(f"{value}\n")
    return root


def test_host_hierarchy_from_sysfs(tmp_path: Path) -> None:
    root = _fake_sysfs(tmp_path / "cache", [(1, "Data", "48K", 12), (1, "Instruction", "64K", 16),
                                            (2, "Unified", "2048K", 16),
                                            (3, "Unified", "491520K", 16)])
    host = host_hierarchy(root)
    assert host.name == "host"
    assert host.l1d == CacheGeometry(48 * 1024, 12, 64)
    assert host.l1i == CacheGeometry(64 * 1024, 16, 64)
    assert host.ll == CacheGeometry(480 * 2**20, 30, 64)
    assert "simulated as 480 MiB 30-way" in host.description
    valgrind_cache_args(host)
    with pytest.raises(RecstackError, match="cannot read this machine's caches"):
        host_hierarchy(_fake_sysfs(tmp_path / "l2only", [(2, "Unified", "1024K", 16)]))


# ---- the helper and the refusals -----------------------------------------------------------


@needs_compiler
def test_helper_is_built_once_per_source(tmp_path: Path) -> None:
    built = build_helper(tmp_path)
    assert built.is_file() and built.parent == tmp_path
    assert built.name.startswith("callgrind_control-") and built.suffix == ".so"
    stamp = built.stat().st_mtime_ns
    assert build_helper(tmp_path) == built and built.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [built.name]  # no build leftovers


def test_missing_compiler_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(RecstackError, match="C compiler CC='/nonexistent/cc' is not found.*"
                                            "apt-get install gcc"):
        build_helper(tmp_path)


@needs_compiler
def test_missing_header_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # -nostdinc hides every system include directory, callgrind.h's among them.
    monkeypatch.setattr(cachesim, "_COMPILE_FLAGS", (*cachesim._COMPILE_FLAGS, "-nostdinc"))
    monkeypatch.setattr(cachesim, "_include_flags", lambda: [])
    with pytest.raises(RecstackError) as caught:
        build_helper(tmp_path)
    assert "callgrind.h is missing" in str(caught.value)
    assert "apt-get install valgrind" in str(caught.value)


def test_full_size_and_gpu_points_are_refused() -> None:
    with pytest.raises(RecstackError, match=r"rmc1 at row_scale 1 has \d+ MiB of embeddings; "
                                            r"simulation .* is for scaled models .* "
                                            r"pass a scaled spec, e.g. row_scale 0.0\d+"):
        simulate_point(Point(zoo_spec("rmc1"), 4), "broadwell")
    with pytest.raises(RecstackError, match="model the CPU; the point runs on cuda"):
        simulate_point(Point(zoo_spec("rmc1").scaled(1e-4), 4, device="cuda"), "broadwell")
    with pytest.raises(SpecError, match="iterations"):
        simulate_point(Point(zoo_spec("rmc1").scaled(1e-4), 4), "broadwell", iterations=0)


@needs_compiler
def test_worker_refuses_to_run_outside_valgrind(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    request = {"spec": zoo_spec("ncf").scaled(1e-4).to_config(), "batch_size": 2, "seed": 0,
               "query": {}, "iterations": 1, "warmup": 0,
               "helper": str(build_helper(tmp_path)), "status": str(status)}
    assert cachesim._worker_main(["--worker", json.dumps(request)]) == 1
    assert "must run under valgrind" in json.loads(status.read_text())["error"]


# ---- a real simulation -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not valgrind_ok, reason=f"no valgrind: {valgrind_why}")
@needs_compiler
def test_simulation_is_deterministic_and_labelled() -> None:
    # About 12 s per simulated point here (torch imports unsimulated; ~1.2 M instructions
    # per forward of this model at batch 4).
    point = Point(zoo_spec("rmc1").scaled(1e-4), 4, threads=2)
    first = simulate_point(point, "broadwell", iterations=1, warmup=1)
    second = simulate_point(point, "broadwell", iterations=1, warmup=1)
    assert first.instructions > 0
    assert first.totals["Ir"] == second.totals["Ir"]
    assert first.totals == second.totals  # every event, bit for bit
    assert first.source == SOURCE and "AVX2" in first.source
    assert first.caveats[:len(CAVEATS)] == list(CAVEATS)
    assert first.caveats[-1] == "simulated with 1 thread; the point asks for 2"
    assert first.hierarchy == "broadwell" and first.geometry["ll"] == "41943040,20,64"
    assert first.totals["Bc"] > 0 and first.totals["Dr"] > 0
    assert 0 < first.estimated_topdown["retiring"] < 1
    assert first.wall_seconds is not None and first.wall_seconds > 0
