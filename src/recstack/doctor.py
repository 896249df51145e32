"""What this machine offers for each level of characterization, and what is missing.

Every probe is a small function that never raises: a missing tool or an unreadable file is an
answer ("not available, because ..."), not an error.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_S = 10
COMPILE_PROBE_TIMEOUT_S = 240  # a cold inductor compile of a tiny function takes seconds
# What the compile probe runs in a fresh interpreter: inductor compiles C++ for the CPU, so
# this fails where there is no working C++ compiler (or inductor cannot run for any reason).
_COMPILE_PROBE = """
import torch
f = torch.compile(lambda x: torch.relu(x @ x.T).sum(dim=1), dynamic=False)
x = torch.arange(16.0).reshape(4, 4)
assert torch.allclose(f(x), torch.relu(x @ x.T).sum(dim=1))
print(torch.__version__)
"""


@dataclass(frozen=True)
class Capability:
    """One thing recstack can use, whether it is here, and what that means."""

    name: str
    available: bool
    detail: str
    """What was found (a version, a value) or why it is missing."""
    meaning: str
    """What recstack does with it, or without it."""
    remedy: str | None = None
    """How to get it, when it is missing and can be had."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run(argv: list[str]) -> tuple[int, str] | None:
    """(exit status, stdout+stderr) of a command, or None if it cannot run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, (done.stdout or "") + (done.stderr or "")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def probe_perf() -> Capability:
    if shutil.which("perf") is None:
        return Capability("perf", False, "perf is not installed",
                          "no measured hardware counters",
                          "install linux-perf (Debian) / linux-tools-$(uname -r) (Ubuntu)")
    result = _run(["perf", "--version"])
    version = result[1].strip() if result else "perf (version unknown)"
    return Capability("perf", True, version, "can read hardware counters where the CPU exposes "
                                             "them")


def probe_paranoid() -> Capability:
    value = _read("/proc/sys/kernel/perf_event_paranoid")
    if value is None:
        return Capability("perf_event_paranoid", False, "not readable (not Linux?)",
                          "perf's permission level is unknown")
    level = int(value) if value.lstrip("-").isdigit() else None
    if level is not None and level <= 0:
        return Capability("perf_event_paranoid", True, value,
                          "any user may count CPU and kernel events (toplev needs <= 0)")
    return Capability("perf_event_paranoid", False, value,
                      "user-space counting of own processes only; pmu-tools' toplev needs "
                      "<= 0 or root",
                      "sudo sysctl kernel.perf_event_paranoid=0 (or run as root)")


def probe_pmu() -> Capability:
    """Do hardware counters actually count? ``perf stat -e cycles,instructions true``."""
    from recstack.collect.perf_parse import pmu_available

    if shutil.which("perf") is None:
        return Capability("hardware counters (PMU)", False, "perf is not installed",
                          "the hardware level falls back to simulation (valgrind)",
                          "install perf, on a machine whose CPU exposes its PMU")
    result = _run(["perf", "stat", "-e", "cycles,instructions", "true"])
    if result is None:
        return Capability("hardware counters (PMU)", False, "perf stat could not run",
                          "the hardware level falls back to simulation (valgrind)")
    works, reason = pmu_available(result[1])
    if works:
        return Capability("hardware counters (PMU)", True, reason,
                          "the hardware level is measured with perf stat")
    return Capability("hardware counters (PMU)", False, reason,
                      "the hardware level falls back to simulation (valgrind), labelled "
                      "simulated",
                      "run on bare metal, or on a VM type that passes the PMU through "
                      "(e.g. a whole-host/metal instance)")


def probe_hypervisor(platform: dict[str, Any]) -> Capability:
    virtual = platform.get("hypervisor")
    kind = platform.get("virtualization")
    if virtual is None and kind is None:
        return Capability("hypervisor", False, "unknown", "cannot tell VM from bare metal")
    if virtual or (kind not in (None, "none")):
        return Capability("hypervisor", True, f"virtual machine ({kind or 'hypervisor flag'})",
                          "VMs often hide the PMU and add timing noise from other tenants")
    return Capability("hypervisor", False, "bare metal",
                      "no hypervisor between recstack and the CPU")


def probe_toplev() -> Capability:
    path = shutil.which("toplev") or shutil.which("toplev.py")
    if path is None:
        return Capability("pmu-tools (toplev)", False, "toplev is not on PATH",
                          "top-down comes from perf's own TopdownL1/L2 metric groups where "
                          "perf has them",
                          "git clone pmu-tools and put toplev on PATH; pre-fetch its event "
                          "lists on offline machines")
    return Capability("pmu-tools (toplev)", True, path,
                      "full top-down tree (levels 1-3) where the PMU is available")


def probe_valgrind() -> Capability:
    """Can the hardware level be simulated: valgrind runs, its callgrind.h is where the
    helper's build finds it, and there is a C compiler (the probe the simulation uses)."""
    from recstack.collect import valgrind_probe
    from recstack.collect.native import find_compiler
    from recstack.errors import RecstackError

    found = valgrind_probe.probe_valgrind()
    if found.path is None:
        return Capability("valgrind", False, "valgrind is not installed",
                          "no simulated counters: the hardware level cannot run without a PMU",
                          valgrind_probe.INSTALL_HINT)
    if not found.runs:
        return Capability("valgrind", False, found.problem or "valgrind does not run",
                          "no simulated counters: the hardware level cannot run without a PMU",
                          valgrind_probe.INSTALL_HINT)
    try:
        compiler = find_compiler("CC", ("cc", "gcc", "clang"), "C", "simulation")[0]
    except RecstackError:
        compiler = None
    if found.header is None or compiler is None:
        missing = "callgrind.h" if found.header is None else "a C compiler"
        return Capability("valgrind", False, f"{found.version}, but {missing} is missing",
                          "simulation needs a small compiled helper to start and stop "
                          "collection around the forward passes",
                          "apt-get install valgrind gcc")
    return Capability("valgrind", True, f"{found.version} (callgrind.h, {Path(compiler).name})",
                      "simulated caches and branches (AVX2 code path under valgrind)")


def probe_cuda(platform: dict[str, Any]) -> Capability:
    gpus = platform.get("gpus") or []
    if gpus:
        names = ", ".join(str(g.get("name")) for g in gpus)
        driver = platform.get("gpu_driver")
        return Capability("CUDA", True, f"{names}" + (f" (driver {driver})" if driver else ""),
                          "the systems and software levels also run on the GPU")
    cuda = platform.get("torch_cuda")
    detail = ("torch is a CPU build" if not cuda
              else f"torch built for CUDA {cuda}, but no GPU is visible")
    return Capability("CUDA", False, detail, "CPU only: no GPU points in sweeps",
                      "on a GPU machine, install a CUDA build of torch (scripts/dev.sh does "
                      "when nvidia-smi works)")


def probe_compile() -> Capability:
    """Does ``torch.compile`` (inductor) work here? Compiles and checks a tiny function in a
    fresh interpreter, so a crash or a hang cannot take the caller with it."""
    import sys

    meaning_ok = "the compile execution backend can run (--backend compile)"
    meaning_missing = ("points with --backend compile fail with this reason as their error; "
                       "eager, fused and static run")
    try:
        done = subprocess.run([sys.executable, "-c", _COMPILE_PROBE], capture_output=True,
                              text=True, timeout=COMPILE_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Capability("torch.compile", False,
                          f"a tiny compile did not finish in {COMPILE_PROBE_TIMEOUT_S} s",
                          meaning_missing)
    except (OSError, subprocess.SubprocessError) as error:
        return Capability("torch.compile", False, f"could not start python: {error}",
                          meaning_missing)
    if done.returncode == 0:
        compiler = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
        where = f", C++ compiler {Path(compiler).name}" if compiler else ""
        return Capability("torch.compile", True,
                          f"inductor works (torch {done.stdout.strip()}{where})", meaning_ok)
    lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    reason = lines[-1].strip()[:200] if lines else f"exit status {done.returncode}"
    return Capability("torch.compile", False, reason, meaning_missing,
                      "install a C++ compiler (apt-get install g++) and python headers "
                      "(python3-dev)")


def probe_static_runtime() -> Capability:
    """Does PyTorch's Static Runtime run a traced graph here (the static backend)?"""
    import torch

    from recstack.static_runtime import self_check

    reason = self_check()
    if reason is None:
        return Capability("Static Runtime", True, f"torch {torch.__version__}",
                          "the static execution backend can run (--backend static)")
    return Capability("Static Runtime", False, reason,
                      "points with --backend static fail with this reason as their error; "
                      "where auto would pick static it runs fused")


def hardware_mode(capabilities: list[Capability]) -> tuple[str, str]:
    """How the hardware level will run here: ``measured``, ``simulated`` or ``unavailable``,
    with the reason."""
    found = {c.name: c for c in capabilities}
    pmu = found.get("hardware counters (PMU)")
    valgrind = found.get("valgrind")
    if pmu is not None and pmu.available:
        return "measured", "hardware counters work: perf stat measures the top-down level"
    if valgrind is not None and valgrind.available:
        why = pmu.detail if pmu is not None else "no hardware counters"
        return "simulated", f"no hardware counters ({why}); valgrind simulates caches and " \
                            "branches instead, and results are labelled simulated"
    return "unavailable", "neither hardware counters nor valgrind are available"


def diagnose() -> dict[str, Any]:
    """Every capability, and the mode the hardware level will use."""
    from recstack.platform_info import collect_platform, describe_platform

    platform = collect_platform()
    capabilities = [probe_pmu(), probe_perf(), probe_paranoid(), probe_hypervisor(platform),
                    probe_toplev(), probe_valgrind(), probe_cuda(platform), probe_compile(),
                    probe_static_runtime()]
    mode, reason = hardware_mode(capabilities)
    return {"platform": describe_platform(platform), "hardware_level": mode,
            "hardware_level_reason": reason,
            "capabilities": [c.to_dict() for c in capabilities]}
