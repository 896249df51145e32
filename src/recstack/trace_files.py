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
the query side's.

:func:`read_trace` is the one entry point for every format, picked by the file name's
suffix (:data:`SUFFIXES`): this torch format, Criteo click logs
(:mod:`recstack.trace_criteo`) and tables of accesses in CSV or Parquet
(:mod:`recstack.trace_tables`). Each gives the same :class:`Trace`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError
from recstack.limits import is_integer
from recstack.text import shown
from recstack.userfiles import require_file

MAX_TRACE_BYTES = 8 << 30
"""The largest trace file read whole (Meta's published traces are about 1 to 3 GB each); a
Criteo day or a table of accesses may be larger when only its start is read
(``max_samples``, ``--trace-samples``: :func:`most_bytes`)."""
SUFFIXES: dict[str, tuple[str, ...]] = {
    "torch": (".pt", ".pth", ".pt.gz", ".pth.gz"),
    "criteo": (".tsv", ".txt", ".tsv.gz", ".txt.gz"),
    "table": (".csv", ".csv.gz", ".parquet"),
}
"""The file-name endings of each trace format (any letter case)."""
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Trace:
    """A validated trace: ``indices`` ``(ids,)``, ``offsets`` ``(tables * samples + 1,)``,
    both int64; ``name``: the file's name; ``dense`` ``(samples, features)`` float32 where
    the format has dense features (Criteo), else None; ``labels`` ``(samples,)`` float32
    clicks where it has them; ``format``: a key of :data:`SUFFIXES`; ``digest``: the first
    16 hex digits of the SHA-256 of the whole file as stored (compressed or not, however
    many samples were kept), to key results to the trace's content."""

    name: str
    indices: Any
    offsets: Any
    tables: int
    samples: int
    dense: Any = None
    format: str = "torch"
    digest: str = ""
    labels: Any = None

    def table_ids(self, table: int) -> Any:
        """Every id of ``table``, in sample order ``(ids of the table,)``."""
        start = int(self.offsets[table * self.samples])
        end = int(self.offsets[(table + 1) * self.samples])
        return self.indices[start:end]

    def streams(self) -> dict[int, Any]:
        """Every table's ids as a numpy array ``{table: (ids,)}``: the access streams the
        locality analyses read."""
        return {table: self.table_ids(table).numpy() for table in range(self.tables)}

    def table_offsets(self, table: int) -> Any:
        """Where each sample's bag of ``table`` starts within :meth:`table_ids`
        ``(samples,)``."""
        bags = self.offsets[table * self.samples:(table + 1) * self.samples]
        return bags - bags[0]


def trace_format(path: str | Path) -> str:
    """The format of the trace file ``path`` from its name (a key of :data:`SUFFIXES`)."""
    name = Path(path).name
    lowered = name.lower()
    for kind, endings in SUFFIXES.items():
        if lowered.endswith(endings):
            return kind
    accepted = ", ".join(ending for endings in SUFFIXES.values() for ending in endings)
    raise RecstackError(f"{name}: not a trace file name recstack reads; expected a "
                        f"name ending {accepted}")


def read_trace(path: str | Path, option: str = "--trace",
               max_samples: int | None = None) -> Trace:
    """The trace in ``path``, in the format its name says (:data:`SUFFIXES`), checked;
    ``option`` names where the path came from in errors; ``max_samples`` keeps only the
    first that many samples (the text formats read no further than they need)."""
    kind = trace_format(path)
    check_max_samples(max_samples, option)
    if kind == "criteo":
        from recstack.trace_criteo import read_criteo
        return read_criteo(path, option, max_samples)
    if kind == "table":
        from recstack.trace_tables import read_table_file
        return read_table_file(path, option, max_samples)
    return read_torch_trace(path, option, max_samples)


def most_bytes(max_samples: int | None) -> int:
    """The size limit of a text or table trace: :data:`MAX_TRACE_BYTES` when it is read
    whole, none when only its first ``max_samples`` are kept (the rest is streamed past,
    never held)."""
    return MAX_TRACE_BYTES if max_samples is None else 1 << 62


def check_max_samples(max_samples: int | None, option: str) -> None:
    """Refuses a ``max_samples`` that is not None or a positive integer."""
    if max_samples is not None and (not is_integer(max_samples) or max_samples < 1):
        raise RecstackError(f"{option}: max_samples {shown(max_samples)} is not allowed; "
                            "expected a positive integer or none")


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of the file's bytes (read in blocks, so a
    large trace is never held whole for it)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def read_torch_trace(path: str | Path, option: str = "--trace",
                     max_samples: int | None = None) -> Trace:
    """The torch-format trace in ``path`` (see the module docstring), checked, whatever its
    name; the first ``max_samples`` samples of it, when given (cut after loading: the
    format has no way to read less)."""
    import torch

    path = Path(path)
    require_file(path, option, MAX_TRACE_BYTES, "a trace file", "bytes of trace")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    if data[:2] == GZIP_MAGIC:
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
        raise RecstackError(f"{path.name}: not a trace of plain tensors saved by torch.save "
                            f"({_load_problem(error)}); objects in a trace are refused, "
                            "never run") from None
    trace = replace(_checked(loaded, path.name), digest=digest)
    if max_samples is not None and max_samples < trace.samples:
        trace = first_samples(trace, max_samples)
    return trace


def first_samples(trace: Trace, count: int) -> Trace:
    """``trace`` cut to its first ``count`` samples (``count`` below ``trace.samples``)."""
    import torch

    lengths = trace.offsets.diff().view(trace.tables, trace.samples)[:, :count]
    indices = torch.cat([trace.table_ids(table)[:int(lengths[table].sum())]
                         for table in range(trace.tables)])
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.reshape(-1).cumsum(0)])
    dense = None if trace.dense is None else trace.dense[:count]
    labels = None if trace.labels is None else trace.labels[:count]
    return replace(trace, indices=indices, offsets=offsets, samples=count, dense=dense,
                   labels=labels)


def _load_problem(error: Exception) -> str:
    """The line of torch.load's error that names the problem: the weights-only unpickler's
    own reason (e.g. ``Unsupported global: GLOBAL os.system``) rather than its advice."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first[:160]}"


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
    return Trace(name=name, indices=indices, offsets=offsets, tables=tables, samples=samples,
                 format="torch")


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
    # mtime=0: the same bags give the same bytes (the shipped sample traces are compared)
    data = gzip.compress(buffer.getvalue(), mtime=0) if compress else buffer.getvalue()
    path = Path(path)
    path.write_bytes(data)
    return path
