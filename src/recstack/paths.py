"""Paths recstack writes: built from checked parts, inside the folder they belong to.

Run ids and names come from users and from stores (a store is a file anyone can hand over),
so none is joined into a path as it is: a run id must match :data:`RUN_ID_PATTERN` when it
is made, and a name read back is turned into a file-name part by :func:`file_part`. A path
the user names (``--html``, ``--to``...) is checked before anything is written, and files are
written whole (:func:`write_atomically`): a failure leaves the old file or none, never half
of one and never a stray temporary file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from recstack.errors import RecstackError
from recstack.text import shown

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RUN_ID_RULE = ("expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or "
               "digit")


def check_run_id(run_id: str, option: str = "--run-id") -> str:
    """``run_id`` when it is safe as a file name, else a one-line error naming ``option``."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id) or ".." in run_id:
        raise RecstackError(f"{option}: {shown(run_id)} is not allowed; {RUN_ID_RULE}")
    return run_id


def file_part(name: str) -> str:
    """A single file-name part for ``name``: itself when it is a safe run id, else its safe
    characters plus a digest of the whole (distinct names stay distinct; no separator, no
    ``..``, never empty)."""
    if RUN_ID_PATTERN.fullmatch(name) and ".." not in name:
        return name
    # Runs of dots collapse too: "0..0" must not keep its "..".
    kept = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "_", name)).strip("._-")[:40]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{kept}-{digest}" if kept else digest


def inside(base: Path, *names: str) -> Path:
    """``base`` joined with each of ``names`` made a :func:`file_part`: a path that cannot
    leave ``base``."""
    path = Path(base)
    for name in names:
        path = path / file_part(name)
    return path


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_file_destination(path: Path, option: str) -> Path:
    """Refuses, before anything is written, a file destination that cannot be one: a
    folder, or a path under a file or an unwritable folder."""
    path = Path(path)
    if path.is_dir():
        raise RecstackError(f"{option}: {shown(str(path))} is a folder; expected a file path")
    _check_parent(path.parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise RecstackError(f"{option}: {shown(str(path))} is not writable")
    return path


def check_folder_destination(path: Path, option: str) -> Path:
    """Refuses, before anything is written, a folder destination that is a file, lies under
    a file or cannot be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RecstackError(f"{option}: {shown(str(path))} is a file; expected a folder")
    _check_parent(path, option)
    return path


def _check_parent(folder: Path, option: str) -> None:
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise RecstackError(f"{option}: {shown(str(existing))} is a file, so nothing can be "
                            f"written under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RecstackError(f"{option}: the folder {shown(str(existing))} is not writable")


def write_atomically(path: Path, data: bytes | str) -> Path:
    """Writes ``data`` to ``path`` whole: through a temporary file beside it, renamed over
    ``path`` once complete; the temporary file is removed if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(temporary, 0o666 & ~_umask())  # as open() would make it, not mkstemp's 0600
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)  # reading the mask means setting one: put it straight back
    os.umask(mask)
    return mask
