"""Byte counts as text, and back.

Two spellings, for two readers: :func:`human_bytes` for a person reading a table or a message
(decimal units, three significant figures: ``"4.10 GB"``), and :func:`size_token` for a size
that is also a name (a column such as ``hit_rate_32KiB``, a cache geometry, a command-line
value): binary units, exact, and read back by :func:`parse_size`.
"""

from __future__ import annotations

import math
import re

from recstack.errors import SpecError

_DECIMAL_UNITS = (("GB", 10**9), ("MB", 10**6), ("KB", 10**3))
_BINARY_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))
_PARSED_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
                 "kb": 10**3, "mb": 10**6, "gb": 10**9}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)", re.ASCII)

SIZE_EXAMPLES = "expected sizes like 512KiB, 32MiB or 1GiB"


def human_bytes(count: float) -> str:
    """``"4.10 GB"``, ``"512.00 MB"``, ``"100 B"``: decimal units, two decimals."""
    for unit, size in _DECIMAL_UNITS:
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


def size_token(count: int, separator: str = "") -> str:
    """``"32KiB"``, ``"2MiB"``, ``"1GiB"``: the largest binary unit that divides ``count``
    exactly, else bytes (``"1536B"``), so that :func:`parse_size` gives ``count`` back.
    ``separator`` goes between number and unit (``" "`` for ``"480 MiB"``)."""
    for unit, size in _BINARY_UNITS:
        if count >= size and count % size == 0:
            return f"{count // size}{separator}{unit}"
    return f"{count}{separator}B"


def parse_size(text: str, field: str = "size", allowed: str = SIZE_EXAMPLES) -> int:
    """Bytes in ``"512KiB"``, ``"32 MiB"``, ``"1.5GB"``, ``"4096"`` (case ignored; KiB, MiB,
    GiB binary, KB, MB, GB decimal). A :class:`~recstack.errors.SpecError` naming ``field``
    and ``allowed`` for anything else."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match or match.group(2) not in _PARSED_UNITS:
        raise SpecError(field, text, allowed)
    size = float(match.group(1)) * _PARSED_UNITS[match.group(2)]
    if not math.isfinite(size):  # hundreds of digits overflow the float
        raise SpecError(field, text, allowed)
    return int(size)
