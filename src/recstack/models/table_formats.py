"""Embedding tables stored in a reduced precision: built directly in it, and looked up.

A table in fp16, bf16, int8 or int4 (see :mod:`recstack.precision`) holds the values the
fp32 table of the same seed holds, rounded or quantized: its rows are made from the same
generator chunks (:func:`recstack.models.embeddings.chunk_values`), chunk by chunk, and never
as a full fp32 copy. Each thread owns the rows that begin in its generator chunk: it draws
that chunk (and the first elements of the next, for the row straddling the boundary),
converts those rows and writes them into the table's storage. Peak memory: the stored table
plus, per fill thread, one chunk of float32 values and a slice of converted rows
(:func:`recstack.footprint.chunk_overhead_bytes`).

Quantized rows are made by torch's own packing operators
(``quantized::embedding_bag_byte_prepack``, ``quantized::embedding_bag_4bit_prepack``), so
the layout is exactly what its lookup kernels read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from recstack.footprint import CONVERT_SLICE_BYTES
from recstack.precision import row_bytes

_SUM = 0
_HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def storage_shape(rows: int, dim: int, precision: str) -> tuple[tuple[int, int], torch.dtype]:
    """The shape and dtype a table of ``rows`` x ``dim`` is stored in."""
    if precision == "fp32":
        return (rows, dim), torch.float32
    if precision in _HALF:
        return (rows, dim), _HALF[precision]
    return (rows, row_bytes(precision, dim)), torch.uint8


def convert_rows(dim: int, precision: str) -> int:
    """Rows converted at a time (see :func:`fill_converted`): about
    :data:`recstack.footprint.CONVERT_SLICE_BYTES` of converted rows."""
    return max(1, CONVERT_SLICE_BYTES // row_bytes(precision, dim))


def _convert(values: torch.Tensor, precision: str) -> torch.Tensor:
    """``(rows, dim)`` float32 values in ``precision``'s storage form."""
    if precision in _HALF:
        return values.to(_HALF[precision])
    if precision == "int8":
        return torch.ops.quantized.embedding_bag_byte_prepack(values)
    return torch.ops.quantized.embedding_bag_4bit_prepack(values, False)


def fill_converted(storage: torch.Tensor, dim: int, precision: str, seed: int,
                   table_index: int, chunk_elements: int, threads: int,
                   chunk_values: Callable[[int, int, int, int, float], np.ndarray]) -> None:
    """Fills ``storage`` (a table of ``storage.shape[0]`` rows of width ``dim`` in
    ``precision``, or a slice of a fused one) with the rows of the fp32 table of
    ``(seed, table_index)``, converted. ``chunk_values(seed, table_index, chunk, count,
    bound)`` draws the first ``count`` float32 values of a generator chunk."""
    rows = storage.shape[0]
    total = rows * dim
    bound = math.sqrt(1.0 / rows)
    num_chunks = max(1, math.ceil(total / chunk_elements))

    def fill(chunk: int) -> None:
        start = chunk * chunk_elements
        end = min(total, start + chunk_elements)
        first_row = -(-start // dim)
        last_row = min(rows, -(-end // dim))  # rows that begin inside this chunk
        if first_row >= last_row:
            return
        values = chunk_values(seed, table_index, chunk, end - start, bound)
        need = last_row * dim - end  # the straddling row's elements in the next chunk
        if need > 0:
            values = np.concatenate(
                [values, chunk_values(seed, table_index, chunk + 1, need, bound)])
        offset = first_row * dim - start
        block = torch.from_numpy(values[offset:offset + (last_row - first_row) * dim])
        block = block.view(-1, dim)
        # Converted a slice at a time: torch allocates each converted slice anew, and glibc
        # kept every freed 20 MB one resident (a chunk's rows at once grew the build by the
        # converted table again); 1 MiB slices are reused.
        step = convert_rows(dim, precision)
        count = last_row - first_row
        for row in range(0, count, step):
            stop = min(count, row + step)
            storage[first_row + row:first_row + stop] = _convert(block[row:stop], precision)

    if num_chunks == 1:
        fill(0)
    else:
        with ThreadPoolExecutor(max_workers=min(threads, num_chunks)) as pool:
            list(pool.map(fill, range(num_chunks)))


def _pool_float(weight: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor
                ) -> torch.Tensor:
    return torch.embedding_bag(weight, ids, offsets, False, _SUM, False, None, False, None)[0]


def _pool_int8(weight: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    return torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
        weight, ids, offsets, False, _SUM, False, None, None, False)


def _pool_int4(weight: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    return torch.ops.quantized.embedding_bag_4bit_rowwise_offsets(
        weight, ids, offsets, False, _SUM, False, None, None, False)


def pooled_lookup(precision: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                                                torch.Tensor]:
    """``lookup(weight, ids, offsets) -> (bags, dim)`` sum-pooled rows, for a table stored
    in ``precision`` (fp16 and bf16 tables give their own dtype; quantized ones float32).
    Module-level functions: a model handed to a serving engine's process is pickled."""
    return {"int8": _pool_int8, "int4": _pool_int4}.get(precision, _pool_float)


def lookup_dtype(precision: str) -> torch.dtype:
    """The dtype a lookup of a table stored in ``precision`` gives (quantized: float32)."""
    return _HALF.get(precision, torch.float32)


def row_lookup(precision: str, dim: int) -> Callable[[torch.Tensor, torch.Tensor],
                                                      torch.Tensor]:
    """``gather(weight, ids)``: rows (not pooled) of a table stored in ``precision``,
    ``(…)`` ids -> ``(…, dim)``; ``torch.embedding`` itself for float tables."""
    return RowLookup(precision, dim) if precision in ("int8", "int4") else torch.embedding


class RowLookup:
    """Rows of a quantized table: torch has no plain gather of one taking a tensor, so each
    id is its own bag of one, with the bag offsets cached per id count."""

    def __init__(self, precision: str, dim: int):
        self.dim = dim
        self._pool = pooled_lookup(precision)
        self._offsets: dict[int, torch.Tensor] = {}

    def __call__(self, weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1).contiguous()  # a strided step slice may stay strided
        count = int(flat.shape[0])
        offsets = self._offsets.get(count)
        if offsets is None or offsets.device != flat.device:
            offsets = torch.arange(count, device=flat.device)
            self._offsets[count] = offsets
        return self._pool(weight, flat, offsets).view(*ids.shape, self.dim)
