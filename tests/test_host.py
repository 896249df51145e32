"""What the operating system says about this host: usable cores, and cpu0's caches from
sysfs (a fake sysfs tree here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recstack.host import parse_cpu_list, parse_sysfs_size, read_caches, usable_cores


def test_usable_cores_is_this_process_affinity() -> None:
    cores = usable_cores()
    assert cores >= 1
    if hasattr(os, "sched_getaffinity"):
        assert cores == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("text", "expected"), [
    ("32K", 32 * 1024), ("1024K", 1024 * 1024), ("32M", 32 * 1024 * 1024),
    ("1G", 1 << 30), ("65536", 65536), ("48K\n", 48 * 1024), ("64 KiB", 64 * 1024),
    ("2m", 2 << 20),
])
def test_parse_sysfs_size(text: str, expected: int) -> None:
    assert parse_sysfs_size(text) == expected


@pytest.mark.parametrize("text", ["", "K", "12Q", "1.5M"])
def test_parse_sysfs_size_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_sysfs_size(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 1), ("0-3", 4), ("0-3,8-11", 8), ("0,2,4\n", 3), ("0-1,5", 3), ("", 0),
])
def test_parse_cpu_list(text: str, expected: int) -> None:
    assert parse_cpu_list(text) == expected


def _write_index(root: Path, index: int, **files: str) -> None:
    directory = root / f"index{index}"
    directory.mkdir(parents=True)
    for name, value in files.items():
        (directory / name).write_text(value + "\n")


def test_read_caches_from_fake_sysfs(tmp_path: Path) -> None:
    common = {"coherency_line_size": "64", "ways_of_associativity": "12"}
    _write_index(tmp_path, 0, level="1", type="Data", size="48K", shared_cpu_list="0,56",
                 **common)
    _write_index(tmp_path, 1, level="1", type="Instruction", size="32K", shared_cpu_list="0,56",
                 **common)
    # No ways_of_associativity here: the entry stays, with None for that field.
    _write_index(tmp_path, 2, level="2", type="Unified", size="2048K", shared_cpu_list="0,56",
                 coherency_line_size="64")
    _write_index(tmp_path, 3, level="3", type="Unified", size="105M",
                 shared_cpu_list="0-55,112-167", **common)
    (tmp_path / "uevent").write_text("")

    caches = read_caches(tmp_path)
    assert [(c["level"], c["type"]) for c in caches] == [
        (1, "Data"), (1, "Instruction"), (2, "Unified"), (3, "Unified")]
    assert caches[0] == {"level": 1, "type": "Data", "size_bytes": 48 * 1024, "line_bytes": 64,
                         "ways": 12, "shared_by_cpus": 2}
    assert caches[2]["ways"] is None
    assert caches[2]["size_bytes"] == 2 << 20
    assert caches[3]["size_bytes"] == 105 << 20
    assert caches[3]["shared_by_cpus"] == 112


def test_read_caches_skips_entries_without_size_and_orders_numerically(tmp_path: Path) -> None:
    _write_index(tmp_path, 0, level="1", type="Data")  # no size: cannot be described
    _write_index(tmp_path, 10, level="3", type="Unified", size="32M")
    _write_index(tmp_path, 2, level="2", type="Unified", size="1M")
    caches = read_caches(tmp_path)
    assert [c["level"] for c in caches] == [2, 3]
    assert caches[0]["line_bytes"] is None and caches[0]["shared_by_cpus"] is None


def test_read_caches_of_missing_directory_is_empty(tmp_path: Path) -> None:
    assert read_caches(tmp_path / "absent") == []
