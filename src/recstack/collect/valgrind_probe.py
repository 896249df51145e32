"""Where valgrind is, whether it runs, and where its callgrind header is.

The simulated counters need both the valgrind program and its ``valgrind/callgrind.h``
header (a small helper is compiled against it, see :mod:`recstack.collect.cachesim`).
``recstack doctor`` and the simulation ask this one probe, so that the doctor never calls
the simulation available where the helper cannot be built. The probe never raises.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

VERSION_TIMEOUT_S = 60
HEADER = Path("valgrind") / "callgrind.h"
INSTALL_HINT = "apt-get install valgrind"
HEADER_HINT = "apt-get install valgrind; valgrind-devel on Fedora/RHEL"
# Compilers look here without being told; a valgrind installed under another prefix (its own
# build in /opt, a conda environment) keeps its headers in that prefix's include directory.
_DEFAULT_INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"))


@dataclass(frozen=True)
class ValgrindProbe:
    """What the probe found. ``problem`` says why valgrind cannot be used (and how to get
    it); None when it runs."""

    path: str | None
    version: str | None
    problem: str | None
    header: Path | None
    """``callgrind.h`` as a compiler will find it (own prefix first), None if nowhere."""

    @property
    def runs(self) -> bool:
        return self.problem is None


def probe_valgrind() -> ValgrindProbe:
    """valgrind on the PATH, its ``--version``, and where ``callgrind.h`` is."""
    path, _, header = _locate()
    if path is None:
        return ValgrindProbe(None, None, f"valgrind is not installed ({INSTALL_HINT})", header)
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True,
                                timeout=VERSION_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return ValgrindProbe(path, None, f"valgrind at {path} does not run: {error}",
                             header)
    version = result.stdout.strip()
    if result.returncode != 0 or not version:
        return ValgrindProbe(path, None, f"valgrind at {path} does not run (exit status "
                                         f"{result.returncode})", header)
    return ValgrindProbe(path, version, None, header)


def valgrind_available() -> tuple[bool, str]:
    """(True, version) when valgrind runs here, else (False, why not and how to get it)."""
    found = probe_valgrind()
    return (True, found.version or "") if found.runs else (False, found.problem or "")


def callgrind_include_flags() -> list[str]:
    """What a compiler needs to find ``callgrind.h`` besides its own defaults (valgrind is
    not run)."""
    _, own_include, _ = _locate()
    return ["-I", str(own_include)] if own_include is not None else []


def explain_missing_header(compiler_errors: list[str]) -> str | None:
    """The message for a helper build that failed for want of valgrind's headers; None when
    the compiler's errors are about something else."""
    if any("callgrind.h" in line or "valgrind.h" in line for line in compiler_errors):
        return ("valgrind's callgrind.h is missing; simulated counters need valgrind's "
                f"headers ({HEADER_HINT})")
    return None


def _locate() -> tuple[str | None, Path | None, Path | None]:
    """(valgrind's path, its own include directory where that holds the header, the header
    as a compiler finds it: there first, then in the compiler's default directories)."""
    path = shutil.which("valgrind")
    own: Path | None = None
    if path is not None:
        own = Path(path).resolve().parent.parent / "include"
        own = own if (own / HEADER).is_file() else None
    directories = ((own,) if own is not None else ()) + _DEFAULT_INCLUDE_DIRS
    return path, own, next((d / HEADER for d in directories if (d / HEADER).is_file()), None)
