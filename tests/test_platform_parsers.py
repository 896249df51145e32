"""Parsers of what an operating system says about its CPU and its torch build, on recorded
text."""

from __future__ import annotations

import torch

from recstack.platform_parsers import (parse_cpuinfo, parse_darwin_flags, parse_sysctl_caches,
                                       parse_torch_config)

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


def test_parse_darwin_flags() -> None:
    assert parse_darwin_flags(None, None) is None
    assert parse_darwin_flags("FPU SSE4.2 AVX1.0", None) == ["avx", "sse4_2"]
    assert parse_darwin_flags(None, "1") == ["neon"]
