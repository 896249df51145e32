"""Facts about the machine this process runs on, read straight from the operating system.

Two things more than one part of recstack needs, read in one place: how many cores this
process may run on (its CPU affinity, which a container or ``taskset`` can make smaller than
the machine), and cpu0's caches as Linux describes them in sysfs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CPU0_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")

_SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def usable_cores() -> int:
    """The cores this process may run on (at least 1): its affinity where the OS has one
    (Linux), else every core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parse_sysfs_size(text: str) -> int:
    """Bytes in a size as the kernel writes it: ``"32K"``, ``"1024K"``, ``"32M"``, ``"1G"``,
    ``"64 KiB"``, ``"65536"`` (K, M, G, T are binary). ValueError for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def parse_cpu_list(text: str) -> int:
    """Number of CPUs in a kernel cpu list such as ``"0-3,8-11"`` (8); ``""`` is 0."""
    count = 0
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        if sep:
            low, high = int(first), int(last)
            if high < low:
                raise ValueError(f"not a cpu list: {text!r}")
            count += high - low + 1
        else:
            int(first)
            count += 1
    return count


def read_caches(root: Path | str = CPU0_CACHE) -> list[dict[str, Any]]:
    """cpu0's caches from a sysfs cache directory (``.../cpu0/cache``), in index order:
    ``level``, ``type`` (``Data``, ``Instruction``, ``Unified``), ``size_bytes``,
    ``line_bytes``, ``ways`` and ``shared_by_cpus``. Never raises.

    An ``index*`` entry whose ``level``, ``type`` or ``size`` is missing or unreadable is
    skipped (a cache without them cannot be described); a missing ``coherency_line_size``,
    ``ways_of_associativity`` or ``shared_cpu_list`` leaves that field ``None``.
    """
    root = Path(root)
    try:
        entries = [p for p in root.iterdir() if re.fullmatch(r"index\d+", p.name)]
    except OSError:
        return []
    caches = []
    for entry in sorted(entries, key=lambda p: int(p.name[len("index"):])):
        level = attempt(lambda: int(read_stripped(entry / "level")))
        kind = read_stripped(entry / "type")
        size = attempt(lambda: parse_sysfs_size(read_stripped(entry / "size")))
        if level is None or not kind or size is None:
            continue
        caches.append({
            "level": level,
            "type": kind,
            "size_bytes": size,
            "line_bytes": attempt(lambda: int(read_stripped(entry / "coherency_line_size"))),
            "ways": attempt(lambda: int(read_stripped(entry / "ways_of_associativity"))),
            "shared_by_cpus": attempt(lambda: parse_cpu_list(read_stripped(entry / "shared_cpu_list"))),
        })
    return caches


def attempt(fn: Callable[[], T]) -> T | None:
    """``fn()``, or None when it raises: a fact the machine does not give is absent."""
    try:
        return fn()
    except Exception:
        return None


def read_stripped(path: Path) -> str | None:
    """A small system file's text, stripped; None when it cannot be read."""
    try:
        return path.read_text().strip()
    except Exception:
        return None


PROC_STAT = Path("/proc/stat")


def cpu_time_totals(stat_text: str) -> tuple[int, int, int] | None:
    """From ``/proc/stat``: (busy, total) clock ticks of all CPUs together, and how many CPUs
    the file lists. Idle and I/O wait are not busy; guest time is already inside user time,
    so only the first eight fields are summed. None when the text has no ``cpu`` line."""
    cpus = sum(1 for line in stat_text.splitlines() if re.match(r"cpu\d+\s", line))
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:9]]
            idle = sum(values[3:5])
            return sum(values) - idle, sum(values), cpus
    return None


def busy_cores(sample_s: float = 0.25) -> float | None:
    """How many cores other work keeps busy right now: the machine's non-idle CPU time over
    a short sample, in cores (this process sleeps through the sample). A current measure,
    unlike the load average, which lags by minutes: it still counts a command that ended a
    minute ago. None where ``/proc/stat`` cannot be read."""
    import time

    first = cpu_time_totals(read_stripped(PROC_STAT) or "")
    time.sleep(sample_s)
    second = cpu_time_totals(read_stripped(PROC_STAT) or "")
    if first is None or second is None or second[1] <= first[1] or not second[2]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * second[2]
