"""Running a simulation: the helper build, the refusals, the child outside valgrind and (slow)
a real simulation under valgrind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recstack.collect import cachesim
from recstack.collect.cachesim import build_helper, simulate_point
from recstack.collect.penalty_model import CAVEATS, SOURCE
from recstack.collect.valgrind_probe import probe_valgrind, valgrind_available
from recstack.errors import RecstackError, SpecError
from recstack.points import Point
from recstack.specs import zoo_spec
from recstack.worker import tool_child_main

valgrind_ok, valgrind_why = valgrind_available()
compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
has_callgrind_h = probe_valgrind().header is not None
needs_compiler = pytest.mark.skipif(
    compiler is None or not has_callgrind_h,
    reason="the callgrind helper needs a C compiler and valgrind's callgrind.h "
           "(apt-get install gcc valgrind)")


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
    monkeypatch.setattr(cachesim, "callgrind_include_flags", lambda: [])
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
               "helper": str(build_helper(tmp_path))}
    assert tool_child_main(["simulated-forwards", json.dumps(request), str(status)]) == 1
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
