"""Small native helpers that collectors compile at run time and load with ctypes.

Two collectors need a few lines of native code that Python cannot provide: the simulated
counters' callgrind client requests (``callgrind_control.c``) and the operator clock's
PyTorch RecordFunction callback (``opclock.cpp``). Each ships as source in the package and is
compiled once per source version (and per whatever else changes the binary: the machine, the
torch build) into the user's cache directory, named by a hash of all that, and replaced
atomically, so concurrent builds leave one whole file.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from recstack.errors import RecstackError

BUILD_TIMEOUT_S = 180


def helper_cache_dir() -> Path:
    """Where compiled helpers are kept: ``$XDG_CACHE_HOME/recstack`` or ``~/.cache/recstack``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recstack"


def packaged_source(name: str) -> str:
    """The text of a source file shipped in ``recstack.collect``."""
    from importlib import resources

    try:
        return resources.files("recstack.collect").joinpath(name).read_text()
    except (OSError, ModuleNotFoundError) as error:
        raise RecstackError(f"recstack's {name} is missing from the installation "
                            f"({error}); reinstall recstack") from None


def find_compiler(variable: str, names: Sequence[str], language: str, purpose: str
                  ) -> list[str]:
    """The compiler command: ``$variable`` when set (it must exist), else the first of
    ``names`` on the PATH. ``purpose`` completes "... compile ..." in the error."""
    configured = os.environ.get(variable)
    if configured:
        command = shlex.split(configured)
        if command and shutil.which(command[0]):
            return command
        raise RecstackError(f"the {language} compiler {variable}={configured!r} is not found; "
                            f"{purpose}: install a {language} compiler (apt-get install "
                            f"{'g++' if language == 'C++' else 'gcc'}) or set {variable} to one")
    for name in names:
        path = shutil.which(name)
        if path:
            return [path]
    raise RecstackError(f"no {language} compiler found ({', '.join(names)}); {purpose}: "
                        f"install one (apt-get install {'g++' if language == 'C++' else 'gcc'})"
                        f" or set {variable}")


def build_shared_library(source_name: str, compiler: Sequence[str], flags: Sequence[str],
                         cache_dir: Path | str | None = None, key_extra: str = "",
                         explain: Callable[[list[str]], str | None] | None = None,
                         libraries: Sequence[str] = ()) -> Path:
    """``source_name`` (a packaged source) compiled with ``compiler`` and ``flags`` into a
    shared library in ``cache_dir`` (default :func:`helper_cache_dir`), once per source,
    machine and ``key_extra``. ``libraries`` (``-l...``) follow the source on the command
    line, where linkers that drop unneeded libraries still see them used. ``explain`` may turn the compiler's error lines into a better
    message (what to install); otherwise the first error line is reported."""
    source = packaged_source(source_name)
    command_line = shlex.join([*compiler, *flags, "-o", "SOURCE", *libraries])
    key = hashlib.sha256(f"{platform.machine()}\n{key_extra}\n{command_line}\n{source}"
                         .encode()).hexdigest()[:16]
    directory = Path(cache_dir) if cache_dir is not None else helper_cache_dir()
    target = directory / f"{Path(source_name).stem}-{key}.so"
    if target.is_file():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RecstackError(f"cannot create the helper cache directory {directory}: "
                            f"{error.strerror or error}") from None
    with tempfile.TemporaryDirectory(prefix="build-", dir=directory) as work:
        source_path = Path(work) / source_name
        source_path.write_text(source)
        built = Path(work) / target.name
        command = [*compiler, *flags, "-o", str(built), str(source_path), *libraries]
        try:
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=BUILD_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RecstackError(f"the compiler {compiler[0]} failed to run: {error}") from None
        if result.returncode != 0:
            errors = result.stderr.strip().splitlines()
            better = explain(errors) if explain is not None else None
            if better:
                raise RecstackError(better)
            first = next((line for line in errors if "error" in line), errors[0] if errors
                         else f"exit status {result.returncode}")
            raise RecstackError(f"compiling {source_name} with {compiler[0]} failed: "
                                f"{first.strip()}")
        os.replace(built, target)
    return target
