"""Platform description: parsers on recorded text, the live probe, the id and the one-liner."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recstack import platform_info
from recstack.platform_info import (
    KEYS,
    collect_platform,
    describe_platform,
    parse_cpu_list,
    parse_cpuinfo,
    parse_size,
    parse_sysctl_caches,
    parse_torch_config,
    platform_id,
    read_caches,
)

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
cpu cores\t: 56
flags\t\t: fpu vme sse sse2 sse4_1 sse4_2 fma avx hypervisor avx2 avx512f avx512bw amx_tile
cpu MHz\t\t: 2000.000

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 1
cpu cores\t: 56
flags\t\t: fpu vme sse sse2 sse4_1 sse4_2 fma avx hypervisor avx2 avx512f avx512bw amx_tile
"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""

TORCH_CONFIG = """\
PyTorch built with:
  - GCC 13.3
  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605
  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71049cd69a3df32adcccb623b12cd7baa22)
  - OpenMP 201511 (a.k.a. OpenMP 4.5)
  - BLAS_INFO=mkl
  - LAPACK_INFO=mkl
  - CPU capability usage: AVX512
  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, CXX_FLAGS= -DUSE_PTHREADPOOL -O2, \
LAPACK_INFO=mkl, TORCH_VERSION=2.13.0, USE_CUDA=0, USE_MKL=ON, USE_MKLDNN=ON, USE_OPENMP=ON,
"""


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


# --------------------------------------------------------------------------- parsers


def test_parse_cpuinfo_x86() -> None:
    parsed = parse_cpuinfo(X86_CPUINFO)
    assert parsed["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert parsed["vendor"] == "GenuineIntel"
    assert parsed["flags_of_interest"] == ["amx_tile", "avx", "avx2", "avx512f", "fma", "sse4_2"]
    assert parsed["hypervisor"] is True
    assert parsed["sockets"] == 2
    assert parsed["processors"] == 2


def test_parse_cpuinfo_x86_without_hypervisor_flag_is_bare_metal() -> None:
    parsed = parse_cpuinfo(X86_CPUINFO.replace(" hypervisor", ""))
    assert parsed["hypervisor"] is False


def test_parse_cpuinfo_arm() -> None:
    parsed = parse_cpuinfo(ARM_CPUINFO)
    assert parsed["model"] == "ARM Neoverse-N1"
    assert parsed["vendor"] == "ARM"
    assert parsed["flags_of_interest"] == ["asimd"]
    assert parsed["hypervisor"] is None
    assert parsed["sockets"] is None


def test_parse_cpuinfo_empty() -> None:
    parsed = parse_cpuinfo("")
    assert parsed["model"] is None
    assert parsed["flags_of_interest"] is None
    assert parsed["hypervisor"] is None


@pytest.mark.parametrize(("text", "expected"), [
    ("32K", 32 * 1024), ("1024K", 1024 * 1024), ("32M", 32 * 1024 * 1024),
    ("1G", 1 << 30), ("65536", 65536), ("48K\n", 48 * 1024), ("64 KiB", 64 * 1024),
    ("2m", 2 << 20),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "K", "12Q", "1.5M"])
def test_parse_size_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


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


def test_parse_sysctl_caches() -> None:
    text = ("hw.l1dcachesize: 65536\nhw.l1icachesize: 131072\nhw.l2cachesize: 4194304\n"
            "hw.cachelinesize: 128\n")
    caches = parse_sysctl_caches(text)
    assert [(c["level"], c["type"], c["size_bytes"]) for c in caches] == [
        (1, "Data", 65536), (1, "Instruction", 131072), (2, "Unified", 4194304)]
    assert all(c["line_bytes"] == 128 for c in caches)


def test_parse_torch_config_snippet() -> None:
    parsed = parse_torch_config(TORCH_CONFIG)
    assert parsed == {"blas": "mkl", "lapack": "mkl", "mkldnn": True, "openmp": True,
                      "mkl": True}


def test_parse_torch_config_off_settings_and_banner_fallback() -> None:
    off = parse_torch_config("  - Build settings: BLAS_INFO=open, USE_MKLDNN=OFF, USE_OPENMP=OFF,")
    assert off == {"blas": "open", "lapack": None, "mkldnn": False, "openmp": False,
                   "mkl": False}
    banner = parse_torch_config("  - OpenMP 201511\n  - Intel(R) MKL-DNN v3.1\n")
    assert banner["openmp"] is True and banner["mkldnn"] is True and banner["blas"] is None
    assert parse_torch_config("")["blas"] is None


def test_parse_torch_config_of_this_torch() -> None:
    parsed = parse_torch_config(torch.__config__.show())
    assert parsed["blas"] is None or isinstance(parsed["blas"], str)
    assert isinstance(parsed["mkldnn"], bool) and isinstance(parsed["openmp"], bool)


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
