"""What machine and software stack a measurement ran on.

:func:`collect_platform` returns a JSON-serializable dict; every field is ``None`` (or an empty
list) when it cannot be learned, and no exception escapes, because a benchmark must never
fail over a missing ``/proc`` file, a sandboxed ``sysctl`` or an absent ``nvidia-smi``.
:func:`platform_id` digests the fields that identify hardware and software stack;
:func:`describe_platform` writes one line for people.

What the text of ``/proc/cpuinfo``, ``sysctl`` and torch's build settings means is read by
the pure parsers of :mod:`recstack.platform_parsers`; the cores this process may use and
cpu0's caches come from :mod:`recstack.host`, which other parts of recstack read too.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from recstack.host import CPU0_CACHE, attempt, read_caches, read_stripped, usable_cores
from recstack.platform_parsers import (SYSCTL_CACHES, parse_cpuinfo, parse_darwin_flags,
                                       parse_sysctl_caches, parse_torch_config)


CPUINFO = Path("/proc/cpuinfo")
SYSFS_CPU = Path("/sys/devices/system/cpu")
SYSFS_NODE = Path("/sys/devices/system/node")
CPU0_GOVERNOR = SYSFS_CPU / "cpu0" / "cpufreq" / "scaling_governor"

# External commands can hang on broken drivers or sandboxes; a platform probe must not.
COMMAND_TIMEOUT_S = 2.0

# The first six are the ones every OpenMP/BLAS build honours; the others change latency
# (blocking time, placement) or thread counts of macOS Accelerate.
THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "KMP_AFFINITY",
    "GOMP_CPU_AFFINITY", "OMP_PROC_BIND", "OMP_PLACES", "KMP_BLOCKTIME",
    "VECLIB_MAXIMUM_THREADS",
)

KEYS: tuple[str, ...] = (
    "hostname", "os", "kernel", "machine",
    "cpu_model", "cpu_vendor", "cpu_flags_of_interest", "hypervisor", "virtualization",
    "logical_cores", "physical_cores", "usable_cores", "sockets", "numa_nodes",
    "caches", "memory_bytes", "cpu_freq_mhz", "cpu_governor", "transparent_hugepages",
    "python", "python_implementation", "numpy", "torch", "torch_cuda", "torch_blas",
    "torch_parallel_info", "torch_cpu_capability", "torch_threads", "torch_interop_threads",
    "thread_env", "gpus", "gpu_driver",
)


# --------------------------------------------------------------------------- probes


def _run(args: list[str], *, any_exit_code: bool = False) -> str | None:
    """Stripped stdout of a command, or None if it is absent, fails, hangs or prints nothing."""
    try:
        if shutil.which(args[0]) is None:
            return None
        done = subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                              check=False)
    except Exception:
        return None
    if done.returncode != 0 and not any_exit_code:
        return None
    out = (done.stdout or "").strip()
    return out or None


def _is_linux() -> bool:
    return sys.platform.startswith("linux")


def _is_macos() -> bool:
    return sys.platform == "darwin"


def _cpu_facts() -> dict[str, Any]:
    """CPU model, vendor, flags, hypervisor and sockets from whatever this OS offers."""
    facts: dict[str, Any] = {"model": None, "vendor": None, "flags_of_interest": None,
                             "hypervisor": None, "sockets": None}
    if _is_linux():
        text = read_stripped(CPUINFO)
        if text:
            facts.update(attempt(lambda: parse_cpuinfo(text)) or {})
        if facts["sockets"] is None:
            facts["sockets"] = _sysfs_sockets()
    elif _is_macos():
        facts["model"] = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        facts["vendor"] = _run(["sysctl", "-n", "machdep.cpu.vendor"]) or (
            "Apple" if platform.machine() == "arm64" else None)
        facts["flags_of_interest"] = _darwin_flags()
        vmm = _run(["sysctl", "-n", "kern.hv_vmm_present"])
        facts["hypervisor"] = vmm == "1" if vmm in ("0", "1") else None
    else:
        facts["model"] = attempt(platform.processor) or None
    return facts


def _sysfs_sockets() -> int | None:
    # ARM cpuinfo has no "physical id"; the topology directory does (-1 means unknown).
    ids = {read_stripped(p) for p in SYSFS_CPU.glob("cpu[0-9]*/topology/physical_package_id")}
    ids -= {None, "-1"}
    return len(ids) or None


def _darwin_flags() -> list[str] | None:
    x86 = _run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
               any_exit_code=True)
    return parse_darwin_flags(x86, _run(["sysctl", "-n", "hw.optional.neon"]))


def _caches() -> list[dict[str, Any]]:
    if _is_linux():
        return read_caches(CPU0_CACHE)
    if _is_macos():
        out = _run(["sysctl", *SYSCTL_CACHES, "hw.cachelinesize"], any_exit_code=True)
        return parse_sysctl_caches(out) if out else []
    return []


def _virtualization() -> str | None:
    # Exit code 1 with "none" is its answer on bare metal, not a failure.
    return _run(["systemd-detect-virt"], any_exit_code=True)


def _numa_nodes() -> int | None:
    if not _is_linux() or not SYSFS_NODE.is_dir():
        return None
    return len([p for p in SYSFS_NODE.glob("node[0-9]*") if p.is_dir()]) or None


def _cpu_freq() -> dict[str, float | None] | None:
    import psutil

    freq = psutil.cpu_freq()
    if freq is None:
        return None
    # psutil reports 0.0 for a bound it cannot read.
    return {name: (float(getattr(freq, name)) or None) for name in ("current", "min", "max")}


def _logical_cores() -> int | None:
    import psutil

    return psutil.cpu_count(logical=True) or os.cpu_count()


def _physical_cores() -> int | None:
    import psutil

    return psutil.cpu_count(logical=False)


def _memory_bytes() -> int | None:
    import psutil

    return int(psutil.virtual_memory().total)


def _numpy_version() -> str | None:
    import numpy

    return numpy.__version__


def _torch_facts() -> dict[str, Any]:
    facts: dict[str, Any] = dict.fromkeys(
        ("torch", "torch_cuda", "torch_blas", "torch_parallel_info", "torch_cpu_capability",
         "torch_threads", "torch_interop_threads"))
    facts["gpus"] = []
    try:
        import torch
    except Exception:
        return facts
    facts["torch"] = attempt(lambda: str(torch.__version__))
    facts["torch_cuda"] = attempt(lambda: torch.version.cuda)
    facts["torch_blas"] = attempt(lambda: parse_torch_config(torch.__config__.show()))
    facts["torch_parallel_info"] = attempt(lambda: str(torch.__config__.parallel_info()))
    facts["torch_cpu_capability"] = attempt(lambda: str(torch.backends.cpu.get_cpu_capability()))
    facts["torch_threads"] = attempt(torch.get_num_threads)
    facts["torch_interop_threads"] = attempt(torch.get_num_interop_threads)
    facts["gpus"] = attempt(lambda: _gpus(torch)) or []
    return facts


def _gpus(torch: Any) -> list[dict[str, Any]]:
    # is_available() does not create a CUDA context; only ask for properties once it says yes.
    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = attempt(lambda: torch.cuda.get_device_properties(index))
        if props is None:
            gpus.append({"index": index, "name": None, "total_memory_bytes": None,
                         "capability": None, "multiprocessors": None})
            continue
        gpus.append({
            "index": index,
            "name": str(props.name),
            "total_memory_bytes": int(props.total_memory),
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": int(props.multi_processor_count),
        })
    return gpus


def _gpu_driver() -> str | None:
    out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return (out.splitlines()[0].strip() or None) if out else None


# --------------------------------------------------------------------------- public API


def _huge_pages_mode() -> str:
    from recstack.models.embeddings import huge_pages_mode

    return huge_pages_mode()


def collect_platform() -> dict[str, Any]:
    """Describe this machine and software stack (keys in :data:`KEYS`); never raises."""
    cpu = attempt(_cpu_facts) or {}
    torch_facts = attempt(_torch_facts) or {}
    info: dict[str, Any] = {
        "hostname": attempt(socket.gethostname) or attempt(platform.node) or None,
        "os": attempt(platform.platform) or None,
        "kernel": attempt(platform.release) or None,
        "machine": attempt(platform.machine) or None,
        "cpu_model": cpu.get("model"),
        "cpu_vendor": cpu.get("vendor"),
        "cpu_flags_of_interest": cpu.get("flags_of_interest"),
        "hypervisor": cpu.get("hypervisor"),
        "virtualization": attempt(_virtualization),
        "logical_cores": attempt(_logical_cores),
        "physical_cores": attempt(_physical_cores),
        "usable_cores": attempt(usable_cores),
        "sockets": cpu.get("sockets"),
        "numa_nodes": attempt(_numa_nodes),
        "caches": attempt(_caches) or [],
        "memory_bytes": attempt(_memory_bytes),
        "cpu_freq_mhz": attempt(_cpu_freq),
        "cpu_governor": (read_stripped(CPU0_GOVERNOR) or None) if _is_linux() else None,
        # Large embedding tables ask for huge pages (models/embeddings.py): whether they get
        # them changes gather speed.
        "transparent_hugepages": attempt(_huge_pages_mode),
        "python": attempt(platform.python_version),
        "python_implementation": attempt(platform.python_implementation),
        "numpy": attempt(_numpy_version),
        "torch": torch_facts.get("torch"),
        "torch_cuda": torch_facts.get("torch_cuda"),
        "torch_blas": torch_facts.get("torch_blas"),
        "torch_parallel_info": torch_facts.get("torch_parallel_info"),
        "torch_cpu_capability": torch_facts.get("torch_cpu_capability"),
        "torch_threads": torch_facts.get("torch_threads"),
        "torch_interop_threads": torch_facts.get("torch_interop_threads"),
        "thread_env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
        "gpus": torch_facts.get("gpus") or [],
        "gpu_driver": attempt(_gpu_driver),
    }
    return info


def _identity(info: dict[str, Any]) -> dict[str, Any]:
    memory = info.get("memory_bytes")
    gpus = info.get("gpus") or []
    return {
        "hostname": info.get("hostname"),
        "machine": info.get("machine"),
        "cpu_model": info.get("cpu_model"),
        "logical_cores": info.get("logical_cores"),
        "physical_cores": info.get("physical_cores"),
        "caches": info.get("caches") or [],
        # The kernel's total shifts by a few pages between boots; whole GiB do not.
        "memory_gib": round(memory / (1 << 30)) if isinstance(memory, (int, float)) else None,
        "os": info.get("os"),
        "kernel": info.get("kernel"),
        "python": info.get("python"),
        "torch": info.get("torch"),
        "numpy": info.get("numpy"),
        "torch_blas": info.get("torch_blas"),
        "gpus": [[g.get("name"), g.get("total_memory_bytes")] if isinstance(g, dict) else g
                 for g in gpus],
        "gpu_driver": info.get("gpu_driver"),
    }


def platform_id(info: dict[str, Any]) -> str:
    """16 hex characters identifying the hardware and software stack described by ``info``.

    Frequencies, thread settings and other per-run values are left out, so repeated runs on
    one machine and stack share an id.
    """
    canonical = json.dumps(_identity(info), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def format_size(size_bytes: int) -> str:
    """``49152`` -> ``"48K"``, ``2097152`` -> ``"2M"``, ``1572864`` -> ``"1.5M"``."""
    for suffix, unit in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size_bytes >= unit:
            value = size_bytes / unit
            return f"{value:.0f}{suffix}" if value.is_integer() else f"{value:.1f}{suffix}"
    return f"{size_bytes}B"


def _describe_cores(info: dict[str, Any]) -> str | None:
    physical, logical = info.get("physical_cores"), info.get("logical_cores")
    usable = info.get("usable_cores")
    if physical is None and logical is None:
        return None
    text = f"{physical if physical is not None else '?'} cores"
    extra = [f"{logical} logical"] if logical is not None else []
    if usable is not None and logical is not None and usable < logical:
        extra.append(f"{usable} usable")
    return f"{text} ({', '.join(extra)})" if extra else text


def _describe_caches(info: dict[str, Any]) -> str | None:
    labels: dict[str, str] = {}
    for cache in info.get("caches") or []:
        # The instruction cache says little about a data-bound workload.
        if cache.get("type") == "Instruction":
            continue
        label = f"L{cache['level']}" + ("d" if cache.get("type") == "Data" else "")
        labels.setdefault(label, f"{label} {format_size(int(cache['size_bytes']))}")
    return " ".join(labels.values()) or None


def _describe_torch(info: dict[str, Any]) -> str | None:
    if not info.get("torch"):
        return None
    capability = info.get("torch_cpu_capability")
    return f"torch {info['torch']}" + (f" ({capability})" if capability else "")


def _describe_gpus(info: dict[str, Any]) -> str:
    gpus = [g for g in info.get("gpus") or [] if isinstance(g, dict)]
    if not gpus:
        return "no GPU"
    names: dict[str, int] = {}
    for gpu in gpus:
        memory = gpu.get("total_memory_bytes")
        name = gpu.get("name") or "GPU"
        if memory:
            name += f" {memory / (1 << 30):.0f} GiB"
        names[name] = names.get(name, 0) + 1
    text = ", ".join(f"{count}× {name}" for name, count in names.items())
    driver = info.get("gpu_driver")
    return f"{text} (driver {driver})" if driver else text


def _describe_virtualization(info: dict[str, Any]) -> str | None:
    virt = info.get("virtualization")
    virt = virt if virt and virt != "none" else None
    hypervisor = info.get("hypervisor")
    if hypervisor:
        return f"VM ({virt})" if virt else "VM"
    if virt:
        return virt
    return "bare metal" if hypervisor is False and info.get("virtualization") == "none" else None


def describe_platform(info: dict[str, Any]) -> str:
    """One line for people: CPU · cores · memory · caches · torch · GPUs · virtualization."""
    memory = info.get("memory_bytes")
    parts = [
        info.get("cpu_model") or info.get("machine") or "unknown CPU",
        attempt(lambda: _describe_cores(info)),
        f"{memory / (1 << 30):.1f} GiB" if isinstance(memory, (int, float)) else None,
        attempt(lambda: _describe_caches(info)),
        attempt(lambda: _describe_torch(info)),
        attempt(lambda: _describe_gpus(info)),
        attempt(lambda: _describe_virtualization(info)),
    ]
    return " · ".join(str(p) for p in parts if p)
