"""Embedding-access trace files read as untrusted input, and written (sample traces).

The format of Meta's open embedding-lookup traces (the ``dlrm_datasets`` repository) and
FBGEMM's embedding benchmarks: a ``torch.save``d tuple ``(indices, offsets, lengths)``,
optionally gzip-compressed, over ``T`` tables and ``B`` samples:

- ``indices``: every id, 1-D integers, table after table, sample after sample within each;
- ``offsets``: where each (table, sample) bag starts, 1-D, ``T * B + 1`` values from 0 to
  ``len(indices)``, never decreasing;
- ``lengths``: ``(T, B)`` ids per bag (the differences of ``offsets``).

A trace is data from outside: it is loaded with ``torch.load(..., weights_only=True)``,
which unpickles tensors and plain containers only (a pickle of any other object is refused
before it runs), then every rule above is checked, and ids must be non-negative. Every
problem is one :class:`~recstack.errors.RecstackError` line naming the file. Reading is
this module's job; mapping a trace's tables onto a model's and cutting batches from it are
the query side's (not built yet).
"""

from __future__ import annotations

import gzip
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError
from recstack.userfiles import require_file

MAX_TRACE_BYTES = 8 << 30
"""The largest trace file read (Meta's published traces are about 1 to 3 GB each)."""
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Trace:
    """A validated trace: ``indices`` ``(ids,)``, ``offsets`` ``(tables * samples + 1,)``,
    both int64; ``name``: the file's name."""

    name: str
    indices: Any
    offsets: Any
    tables: int
    samples: int

    def table_ids(self, table: int) -> Any:
        """Every id of ``table``, in sample order ``(ids of the table,)``."""
        start = int(self.offsets[table * self.samples])
        end = int(self.offsets[(table + 1) * self.samples])
        return self.indices[start:end]

    def table_offsets(self, table: int) -> Any:
        """Where each sample's bag of ``table`` starts within :meth:`table_ids`
        ``(samples,)``."""
        bags = self.offsets[table * self.samples:(table + 1) * self.samples]
        return bags - bags[0]


def read_trace(path: str | Path, option: str = "--trace") -> Trace:
    """The trace in ``path`` (see the module docstring), checked; ``option`` names where the
    path came from in errors."""
    import torch

    path = Path(path)
    require_file(path, option, MAX_TRACE_BYTES, "a trace file", "bytes of trace")
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise RecstackError(f"{path.name}: a truncated or damaged gzip file ({error})"
                                ) from None
    try:
        with warnings.catch_warnings():  # its notes on a foreign pickle: the error says it
            warnings.simplefilter("ignore")
            loaded = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - whatever the unpickler says is the reason
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise RecstackError(f"{path.name}: not a trace of plain tensors saved by torch.save "
                            f"({type(error).__name__}: {first[:160]})") from None
    return _checked(loaded, path.name)


def _checked(loaded: Any, name: str) -> Trace:
    import torch

    if not isinstance(loaded, (tuple, list)) or len(loaded) != 3 or \
            not all(isinstance(part, torch.Tensor) for part in loaded):
        raise RecstackError(f"{name}: expected a tuple of three tensors (indices, offsets, "
                            f"lengths), not {_kind(loaded)}")
    indices, offsets, lengths = loaded
    for label, tensor, dims in (("indices", indices, 1), ("offsets", offsets, 1),
                                ("lengths", lengths, 2)):
        if tensor.dim() != dims or tensor.dtype.is_floating_point or tensor.is_complex() \
                or tensor.dtype == torch.bool:
            raise RecstackError(f"{name}: {label} must be a {dims}-D integer tensor, not "
                                f"{tensor.dim()}-D {tensor.dtype}")
    tables, samples = (int(n) for n in lengths.shape)
    if tables < 1 or samples < 1:
        raise RecstackError(f"{name}: lengths has shape {tuple(lengths.shape)}; expected at "
                            "least one table and one sample")
    indices, offsets = indices.to(torch.int64), offsets.to(torch.int64)
    if offsets.numel() != tables * samples + 1:
        raise RecstackError(f"{name}: offsets has {offsets.numel()} values; expected tables x "
                            f"samples + 1 = {tables * samples + 1} (lengths is {tables} x "
                            f"{samples})")
    if int(offsets[0]) != 0 or int(offsets[-1]) != indices.numel() or \
            bool((offsets[1:] < offsets[:-1]).any()):
        raise RecstackError(f"{name}: offsets must rise from 0 to the {indices.numel()} "
                            "indices, never decreasing")
    if not torch.equal(offsets.diff().view(tables, samples), lengths.to(torch.int64)):
        raise RecstackError(f"{name}: lengths differ from the bags the offsets mark")
    if indices.numel() and int(indices.min()) < 0:
        raise RecstackError(f"{name}: ids must be non-negative; found {int(indices.min())}")
    return Trace(name=name, indices=indices, offsets=offsets, tables=tables, samples=samples)


def _kind(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def write_trace(path: str | Path, bags: list[list[list[int]]], compress: bool = False) -> Path:
    """Writes a trace in the format above: ``bags[table][sample]`` the ids of that bag (the
    same number of samples in every table); gzip-compressed with ``compress``. For sample
    traces (tests, examples): recstack never downloads one."""
    import torch

    samples = {len(table) for table in bags}
    if len(samples) != 1:
        raise ValueError("write_trace: every table needs the same number of samples")
    lengths = torch.tensor([[len(bag) for bag in table] for table in bags], dtype=torch.int64)
    indices = torch.tensor([i for table in bags for bag in table for i in bag],
                           dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.view(-1).cumsum(0)])
    buffer = io.BytesIO()
    torch.save((indices, offsets, lengths), buffer)
    data = gzip.compress(buffer.getvalue()) if compress else buffer.getvalue()
    path = Path(path)
    path.write_bytes(data)
    return path
