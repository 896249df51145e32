"""Pure parsers of what an operating system says about its CPU and its torch build.

They read recorded text (``/proc/cpuinfo``, ``torch.__config__.show()``, macOS ``sysctl``
output), so tests can feed them any machine's; unlike
:func:`recstack.platform_info.collect_platform` they may raise ``ValueError`` on malformed
input.
"""

from __future__ import annotations

import re
from typing import Any

FLAGS_OF_INTEREST: frozenset[str] = frozenset(
    {"avx", "avx2", "avx512f", "avx512_bf16", "amx_tile", "fma", "sse4_2", "neon", "asimd"})

# macOS x86 spells some features differently from Linux.
_DARWIN_FLAG_NAMES = {"avx1.0": "avx", "sse4.2": "sse4_2"}

# ARM /proc/cpuinfo usually has no "model name"; these codes name the common server and
# laptop cores so that the platform is still told apart.
_ARM_IMPLEMENTERS = {
    "0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu", "0x48": "HiSilicon",
    "0x4e": "NVIDIA", "0x50": "APM", "0x51": "Qualcomm", "0x61": "Apple", "0xc0": "Ampere",
}
_ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd40"): "Neoverse-V1", ("0x41", "0xd49"): "Neoverse-N2",
    ("0x41", "0xd4f"): "Neoverse-V2", ("0xc0", "0xac3"): "Ampere-1",
}

# The macOS sysctl names of the cache sizes, with the level and type each one describes.
SYSCTL_CACHES = {
    "hw.l1dcachesize": (1, "Data"),
    "hw.l1icachesize": (1, "Instruction"),
    "hw.l2cachesize": (2, "Unified"),
    "hw.l3cachesize": (3, "Unified"),
}

_ON = {"ON", "1", "TRUE", "YES"}


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Model, vendor, flags of interest, hypervisor flag and socket count from ``/proc/cpuinfo``.

    Returns ``{"model", "vendor", "flags_of_interest", "hypervisor", "sockets", "processors"}``;
    ``hypervisor`` is ``None`` where the text has no x86 ``flags`` line (ARM has none), and
    ``flags_of_interest`` is ``None`` where it has neither ``flags`` nor ``Features``.
    """
    first: dict[str, str] = {}
    physical_ids: set[str] = set()
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            processors += 1
        elif key == "physical id":
            physical_ids.add(value)
        first.setdefault(key, value)

    implementer = first.get("CPU implementer", "").lower() or None
    part = first.get("CPU part", "").lower() or None
    model = next((first[k] for k in ("model name", "Processor", "cpu model", "cpu")
                  if first.get(k)), None)
    if model is None and implementer is not None:
        vendor_name = _ARM_IMPLEMENTERS.get(implementer, implementer)
        part_name = _ARM_PARTS.get((implementer, part or ""), f"part {part}" if part else None)
        model = f"{vendor_name} {part_name}" if part_name else vendor_name

    vendor = first.get("vendor_id") or None
    if vendor is None and implementer is not None:
        vendor = _ARM_IMPLEMENTERS.get(implementer, implementer)

    x86_flags = first.get("flags")
    flag_line = x86_flags if x86_flags is not None else first.get("Features")
    flags = set(flag_line.split()) if flag_line is not None else None
    return {
        "model": model,
        "vendor": vendor,
        "flags_of_interest": sorted(flags & FLAGS_OF_INTEREST) if flags is not None else None,
        "hypervisor": ("hypervisor" in flags) if x86_flags is not None and flags is not None
        else None,
        "sockets": len(physical_ids) or None,
        "processors": processors,
    }


def parse_darwin_flags(features: str | None, neon: str | None) -> list[str] | None:
    """Flags of interest from macOS ``sysctl -n machdep.cpu.features
    machdep.cpu.leaf7_features`` (x86) and ``sysctl -n hw.optional.neon`` (Apple silicon);
    None when neither answered."""
    if features is None and neon is None:
        return None
    flags = {_DARWIN_FLAG_NAMES.get(f, f) for f in (features or "").lower().split()}
    if neon == "1":
        flags.add("neon")
    return sorted(flags & FLAGS_OF_INTEREST)


def parse_torch_config(text: str) -> dict[str, Any]:
    """BLAS, LAPACK, oneDNN and OpenMP of a torch build, from ``torch.__config__.show()``.

    Reads ``KEY=value`` settings both from the ``Build settings:`` line and from lines of their
    own; where a build does not print ``USE_MKLDNN``/``USE_OPENMP`` the banner lines for
    oneDNN/OpenMP decide. Returns ``{"blas", "lapack", "mkldnn", "openmp", "mkl"}``.
    """
    settings: dict[str, str] = {}
    banner_mkldnn = banner_openmp = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("- "):
            line = line[2:].strip()
        if line.startswith("Build settings:"):
            line = line[len("Build settings:"):]
        else:
            banner_mkldnn |= "MKL-DNN" in line or "oneDNN" in line
            banner_openmp |= line.startswith("OpenMP")
        for token in line.split(","):
            match = re.fullmatch(r"\s*([A-Z][A-Z0-9_]*)=(.*)", token)
            if match:
                settings.setdefault(match.group(1), match.group(2).strip())

    def flag(key: str, fallback: bool) -> bool:
        return settings[key].upper() in _ON if key in settings else fallback

    return {
        "blas": settings.get("BLAS_INFO") or None,
        "lapack": settings.get("LAPACK_INFO") or None,
        "mkldnn": flag("USE_MKLDNN", banner_mkldnn),
        "openmp": flag("USE_OPENMP", banner_openmp),
        "mkl": flag("USE_MKL", False),
    }


def parse_sysctl_caches(text: str) -> list[dict[str, Any]]:
    """Caches from macOS ``sysctl hw.l1dcachesize ... hw.cachelinesize`` (``name: value`` lines)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip().isdigit():
            values[key.strip()] = int(value.strip())
    line_bytes = values.get("hw.cachelinesize") or None
    return [
        {"level": level, "type": kind, "size_bytes": values[key], "line_bytes": line_bytes,
         "ways": None, "shared_by_cpus": None}
        for key, (level, kind) in SYSCTL_CACHES.items() if values.get(key)
    ]
