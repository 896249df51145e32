"""Names of measured ceilings (kinds and shapes) that more than the collector reads.

The gather-from-a-table ceiling stores its shape as text (``"row 128 B, table 4096 B, ids
20"``); a ceiling measured in a reduced precision stores it in its kind (``gemm_bf16``,
``gather_table_int8``: the fp32 kind's name, ``_`` and the precision). The collector writes
them and the roofline, the ``ceilings`` command and the coverage check read them back.
Keeping the writers and the parsers together keeps them in step, and keeps readers of stored
ceilings free of the collector's measuring code.
"""

from __future__ import annotations

import re

CACHE_LINE_BYTES = 64
"""A random row gather moves at least one cache line, however small the row."""

_TABLE_GATHER_SHAPE = re.compile(r"row (\d+) B, table (\d+) B(?:, ids (\d+))?")


def table_gather_shape(row_bytes: int, table_bytes: int, ids: int) -> str:
    """The stored shape of a ``gather_table`` ceiling: rows of ``row_bytes`` gathered from a
    table of ``table_bytes``, ``ids`` distinct ids per call."""
    return f"row {row_bytes} B, table {table_bytes} B, ids {ids}"


def parse_table_gather_shape(shape: str) -> tuple[int, int, int | None] | None:
    """``(row_bytes, table_bytes, ids)`` of a ``gather_table`` shape (``ids`` None when the
    shape names no run length), None if it is not one."""
    match = _TABLE_GATHER_SHAPE.fullmatch(shape.strip())
    if not match:
        return None
    ids = match.group(3)
    return int(match.group(1)), int(match.group(2)), int(ids) if ids is not None else None


KIND_PRECISIONS: tuple[str, ...] = ("fp16", "bf16", "int8", "int4")
"""Precisions a ceiling's kind may name (fp32's kinds name none)."""


def precision_kind(kind: str, precision: str) -> str:
    """The kind of the ``kind`` ceiling measured in ``precision`` (``kind`` itself in
    fp32)."""
    return kind if precision == "fp32" else f"{kind}_{precision}"


def split_precision_kind(kind: str) -> tuple[str, str]:
    """``(fp32 kind, precision)`` of a stored kind: ``("gemm_large", "bf16")`` for
    ``gemm_large_bf16``, ``("gemm_large", "fp32")`` for ``gemm_large``."""
    base, _, suffix = kind.rpartition("_")
    return (base, suffix) if base and suffix in KIND_PRECISIONS else (kind, "fp32")
