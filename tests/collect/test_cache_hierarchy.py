"""The simulated caches: presets, valgrind's geometry rules, and this host's caches from a fake
sysfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from recstack.collect.cache_hierarchy import (PRESETS, CacheGeometry, CacheHierarchy,
                                              fit_to_valgrind, host_hierarchy, preset,
                                              valgrind_cache_args)
from recstack.errors import RecstackError


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
