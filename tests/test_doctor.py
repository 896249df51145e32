"""recstack doctor: capabilities, the hardware level's mode, and the command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recstack import doctor
from recstack.doctor import Capability, hardware_mode


def pmu_counts_here() -> bool:
    try:
        out = subprocess.run(["perf", "stat", "-e", "instructions", "true"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return "<not supported>" not in out.stderr and out.returncode == 0


def cap(name: str, available: bool, detail: str = "d") -> Capability:
    return Capability(name, available, detail, "m")


def test_mode_prefers_measured_then_simulated() -> None:
    assert hardware_mode([cap("hardware counters (PMU)", True), cap("valgrind", True)]
                         )[0] == "measured"
    mode, reason = hardware_mode([cap("hardware counters (PMU)", False, "cycles: <not "
                                      "supported>"), cap("valgrind", True)])
    assert mode == "simulated" and "cycles: <not supported>" in reason
    assert "labelled simulated" in reason
    assert hardware_mode([cap("hardware counters (PMU)", False), cap("valgrind", False)]
                         )[0] == "unavailable"


def test_paranoid_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "_read", lambda path: "2")
    strict = doctor.probe_paranoid()
    assert not strict.available and "sysctl kernel.perf_event_paranoid=0" in strict.remedy
    monkeypatch.setattr(doctor, "_read", lambda path: "-1")
    assert doctor.probe_paranoid().available
    monkeypatch.setattr(doctor, "_read", lambda path: None)
    assert doctor.probe_paranoid().detail.startswith("not readable")


def test_missing_tools_are_answers_not_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    for probe in (doctor.probe_perf, doctor.probe_pmu, doctor.probe_toplev,
                  doctor.probe_valgrind):
        capability = probe()
        assert not capability.available and capability.remedy


def test_cuda_probe_without_gpu() -> None:
    missing = doctor.probe_cuda({"gpus": [], "torch_cuda": None})
    assert not missing.available and missing.detail == "torch is a CPU build"
    present = doctor.probe_cuda({"gpus": [{"name": "NVIDIA H100"}], "gpu_driver": "550.1"})
    assert present.available and "NVIDIA H100 (driver 550.1)" in present.detail


def test_doctor_command_on_this_machine() -> None:
    result = subprocess.run([sys.executable, "-m", "recstack", "doctor", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = {c["name"] for c in report["capabilities"]}
    assert names == {"hardware counters (PMU)", "perf", "perf_event_paranoid", "hypervisor",
                     "pmu-tools (toplev)", "valgrind", "CUDA", "torch.compile",
                     "Static Runtime"}
    if pmu_counts_here():
        assert report["hardware_level"] == "measured"
    else:
        pmu = next(c for c in report["capabilities"] if c["name"] == "hardware counters (PMU)")
        assert not pmu["available"] and "not supported" in pmu["detail"]
        assert report["hardware_level"] in ("simulated", "unavailable")
    static = next(c for c in report["capabilities"] if c["name"] == "Static Runtime")
    assert static["available"], static["detail"]  # torch 2.13 (the pinned CPU build) has it
    table = subprocess.run([sys.executable, "-m", "recstack", "doctor"], capture_output=True,
                           text=True, timeout=120)
    assert table.returncode == 0 and "hardware level:" in table.stdout
