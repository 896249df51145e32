"""Platform description: the live probe, the id and the one-liner, and sources that fail."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recstack import platform_info
from recstack.platform_info import KEYS, collect_platform, describe_platform, platform_id

# --------------------------------------------------------------------------- live probe


def test_collect_platform_describes_this_machine() -> None:
    info = collect_platform()
    json.dumps(info)
    assert set(KEYS) <= set(info)
    assert info["logical_cores"] >= 1
    assert info["memory_bytes"] > 0
    assert info["torch"] == torch.__version__
    assert info["gpus"] == []
    assert isinstance(info["torch_blas"], dict)
    assert {"blas", "lapack", "mkldnn", "openmp"} <= set(info["torch_blas"])
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "KMP_AFFINITY",
                 "GOMP_CPU_AFFINITY", "OMP_PROC_BIND"):
        assert name in info["thread_env"]
    if sys.platform.startswith("linux"):
        assert info["caches"]
        assert all(c["size_bytes"] > 0 for c in info["caches"])


def test_describe_platform_of_this_machine_is_one_line() -> None:
    info = collect_platform()
    line = describe_platform(info)
    assert "\n" not in line
    assert f"torch {torch.__version__}" in line
    assert "no GPU" in line


# --------------------------------------------------------------------------- id and line


def _sample_info() -> dict:
    return {
        "hostname": "node1", "os": "Linux-6.8", "kernel": "6.8", "machine": "x86_64",
        "cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "logical_cores": 8, "physical_cores": 4,
        "usable_cores": 8,
        "caches": [{"level": 1, "type": "Data", "size_bytes": 49152, "line_bytes": 64,
                    "ways": 12, "shared_by_cpus": 2}],
        "memory_bytes": 32 * (1 << 30) - 123_456, "cpu_freq_mhz": {"current": 2000.0},
        "python": "3.11.7", "torch": "2.13.0", "numpy": "2.4.0",
        "torch_blas": {"blas": "mkl", "lapack": "mkl", "mkldnn": True, "openmp": True},
        "torch_threads": 8, "thread_env": {"OMP_NUM_THREADS": None},
        "gpus": [], "gpu_driver": None, "hypervisor": False, "virtualization": "none",
    }


def test_platform_id_is_stable_and_tracks_hardware_not_run_settings() -> None:
    info = _sample_info()
    first = platform_id(info)
    assert first == platform_id(_sample_info())
    assert len(first) == 16 and int(first, 16) >= 0

    assert platform_id({**info, "cpu_model": "AMD EPYC 9654"}) != first
    assert platform_id({**info, "torch": "2.14.0"}) != first
    assert platform_id({**info, "gpus": [{"name": "NVIDIA H100", "total_memory_bytes": 1}]}) \
        != first

    assert platform_id({**info, "cpu_freq_mhz": {"current": 3500.0}}) == first
    assert platform_id({**info, "thread_env": {"OMP_NUM_THREADS": "4"}}) == first
    assert platform_id({**info, "torch_threads": 1}) == first
    assert platform_id({**info, "memory_bytes": info["memory_bytes"] + 4096}) == first


def test_platform_id_of_partial_info() -> None:
    assert len(platform_id({})) == 16
    assert platform_id(collect_platform()) == platform_id(collect_platform())


def test_describe_platform_sample() -> None:
    info = {**_sample_info(), "torch_cpu_capability": "AVX512", "hypervisor": True,
            "virtualization": "kvm",
            "gpus": [{"index": i, "name": "NVIDIA H100", "total_memory_bytes": 80 << 30}
                     for i in range(2)],
            "gpu_driver": "550.54.15"}
    line = describe_platform(info)
    assert line == ("Intel(R) Xeon(R) Platinum 8480+ · 4 cores (8 logical) · 32.0 GiB · L1d 48K"
                    " · torch 2.13.0 (AVX512) · 2× NVIDIA H100 80 GiB (driver 550.54.15)"
                    " · VM (kvm)")


def test_describe_platform_of_empty_info() -> None:
    assert describe_platform({}) == "unknown CPU · no GPU"


# --------------------------------------------------------------------------- failing sources


def _raise(*args: object, **kwargs: object) -> None:
    raise OSError("unavailable")


def test_failing_sources_give_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Path, "read_text", _raise)
    monkeypatch.setattr(subprocess, "run", _raise)
    monkeypatch.setattr(platform, "processor", _raise)
    # Pretend every command exists, so the subprocess path itself is exercised.
    monkeypatch.setattr(platform_info.shutil, "which", lambda name: f"/usr/bin/{name}")

    info = collect_platform()
    json.dumps(info)
    assert info["cpu_model"] is None
    assert info["gpu_driver"] is None
    assert info["virtualization"] is None
    assert info["caches"] == []
    assert info["cpu_governor"] is None
    assert info["torch"] == torch.__version__
    describe_platform(info)
    platform_id(info)


def test_hung_command_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(args: list[str], **kwargs: object) -> None:
        raise subprocess.TimeoutExpired(args, kwargs.get("timeout", 0))

    monkeypatch.setattr(subprocess, "run", hang)
    monkeypatch.setattr(platform_info.shutil, "which", lambda name: f"/usr/bin/{name}")
    info = collect_platform()
    assert info["gpu_driver"] is None and info["virtualization"] is None


def test_failing_psutil_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    for name in ("cpu_count", "virtual_memory", "cpu_freq"):
        monkeypatch.setattr(psutil, name, _raise)
    info = collect_platform()
    assert info["physical_cores"] is None
    assert info["memory_bytes"] is None
    assert info["cpu_freq_mhz"] is None


def test_commands_are_read_when_they_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "nvidia-smi": subprocess.CompletedProcess([], 0, "550.54.15\n550.54.15\n", ""),
        # Bare metal: systemd-detect-virt says "none" and exits 1.
        "systemd-detect-virt": subprocess.CompletedProcess([], 1, "none\n", ""),
    }

    def fake_run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert kwargs.get("timeout") == platform_info.COMMAND_TIMEOUT_S
        return answers.get(args[0], subprocess.CompletedProcess([], 1, "", "no"))

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(platform_info.shutil, "which", lambda name: f"/usr/bin/{name}")
    info = collect_platform()
    assert info["gpu_driver"] == "550.54.15"
    assert info["virtualization"] == "none"


def test_failing_nvidia_smi_exit_code_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = subprocess.CompletedProcess([], 9, "NVIDIA-SMI has failed\n", "")
    monkeypatch.setattr(subprocess, "run", lambda args, **kwargs: failed)
    monkeypatch.setattr(platform_info.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert collect_platform()["gpu_driver"] is None
