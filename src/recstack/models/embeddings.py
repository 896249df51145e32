"""Embedding tables: filled fast, in place, deterministically; looked up per table (eager) or
all tables at once (fused).

A full-size model holds 2.5 to 4 GB of embeddings. torch's default generator fills on one
thread (about 3 s per GiB); numpy's PCG64, filling fixed-size chunks
from a thread pool, fills the same GiB in about 0.3 s. Each chunk has its own seed derived from
(model seed, table, chunk), so the values do not depend on the number of threads nor on where
the table lives: a table filled on its own and the same table filled as a slice of a fused
weight hold the same values. The fill happens in the tensor's own memory: building needs no
second copy of any table.

Large tables live in memory the kernel may back with 2 MiB transparent huge pages
(``madvise(MADV_HUGEPAGE)``; Linux's default THP mode, "madvise", applies huge pages only
where asked). A random gather from gigabytes of 4 KiB pages misses the TLB on nearly every
row, and the page walk itself misses the caches: a 4 GB table's
sum-pooled gather of 128-byte rows ran at 3.0 GB/s with 4 KiB pages and 4.3 GB/s with huge
pages (one thread, 655k lookups). Where the OS offers no huge pages the allocation is
ordinary memory; values and outputs are the same either way.

Lookups call ``torch.embedding_bag`` / ``torch.embedding`` directly rather than through
``nn.EmbeddingBag.__call__`` and ``F.embedding_bag``: the functional wrapper's argument
checks cost about as much as a small lookup itself (microseconds per table per forward).
"""

from __future__ import annotations

import contextlib
import math
import mmap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from recstack.batch import Batch, run_starts
from recstack.footprint import FILL_CHUNK_ELEMENTS, REDUCED_FILL_THREADS
from recstack.host import usable_cores
from recstack.models import table_formats
from recstack.precision import FP32, REFERENCE, Precision

CHUNK_ELEMENTS = FILL_CHUNK_ELEMENTS  # 64 MiB of float32: amortizes, and spreads over threads
_SUM = 0  # torch.embedding_bag's mode code for sum pooling
FLAT_SHIFT_MAX_IDS = 1 << 16
"""Up to this many ids (512 KiB of int64 shifts), fixed-pooling batches get flat shifts."""
_SHIFT_CACHE_ENTRIES = 64  # distinct lookup-count tuples whose id shifts a fused table keeps
_NO_PADDING = None  # as F.embedding_bag passes it: no padding row (-1 would mean the last row)


def _fill_threads() -> int:
    """Threads that fill a table: one per core this process may use."""
    return usable_cores()


def _chunk_generator(seed: int, table_index: int, chunk: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [seed, table_index, chunk])))


def chunk_values(seed: int, table_index: int, chunk: int, count: int,
                 bound: float) -> np.ndarray:
    """The first ``count`` float32 values of generator chunk ``chunk`` of a table, as
    :func:`fill_table` writes them (its draws are sequential: a prefix is the same values)."""
    part = _chunk_generator(seed, table_index, chunk).random(count, dtype=np.float32)
    part *= 2 * bound
    part -= bound
    return part


def fill_table(table: torch.Tensor, seed: int, table_index: int) -> torch.Tensor:
    """Fills a contiguous float32 ``(rows, dim)`` tensor in place, uniform in
    ``±sqrt(1 / rows)`` (the DLRM reference's initialisation), from a thread pool; returns
    it. ``table`` may be a slice of a larger weight (the fused layout)."""
    flat = table.numpy().reshape(-1)  # a view: contiguous rows
    bound = math.sqrt(1.0 / table.shape[0])
    num_chunks = max(1, math.ceil(flat.size / CHUNK_ELEMENTS))

    def fill(chunk: int) -> None:
        part = flat[chunk * CHUNK_ELEMENTS:(chunk + 1) * CHUNK_ELEMENTS]
        _chunk_generator(seed, table_index, chunk).random(out=part, dtype=np.float32)
        part *= 2 * bound
        part -= bound

    if num_chunks == 1:
        fill(0)
    else:
        with ThreadPoolExecutor(max_workers=min(_fill_threads(), num_chunks)) as pool:
            list(pool.map(fill, range(num_chunks)))
    return table


def fill_stored(table: torch.Tensor, dim: int, precision: str, seed: int,
                table_index: int) -> torch.Tensor:
    """Fills ``table`` (stored in ``precision``: :func:`table_formats.storage_shape`) with
    the values :func:`fill_table` gives the fp32 table of ``(seed, table_index)``, converted
    chunk by chunk; returns it."""
    if precision == REFERENCE:
        return fill_table(table, seed, table_index)
    threads = min(_fill_threads(), REDUCED_FILL_THREADS)
    table_formats.fill_converted(table, dim, precision, seed, table_index, CHUNK_ELEMENTS,
                                 threads, chunk_values)
    return table


# Tables smaller than this stay in ordinary memory: they fit the TLB's reach (and the caches)
# well enough that huge pages change nothing.
HUGE_PAGE_MIN_BYTES = 64 << 20


_SHARED = {"on": False}  # set by tables_in_shared_memory, read by empty_table


@contextlib.contextmanager
def tables_in_shared_memory() -> Iterator[None]:
    """Models built inside allocate their tables in shared memory (torch's, which a spawned
    process maps when handed the tensor), so serving engines read one copy. Shared memory
    gets no transparent huge pages where the kernel's shmem THP mode is ``never`` (the
    default): a serving engine's gathers pay the TLB misses a private table avoids."""
    _SHARED["on"] = True
    try:
        yield
    finally:
        _SHARED["on"] = False


def empty_table(rows: int, dim: int, precision: str = REFERENCE) -> torch.Tensor:
    """An uninitialised table of ``rows`` x ``dim`` stored in ``precision``
    (:func:`table_formats.storage_shape`); at ``HUGE_PAGE_MIN_BYTES`` or more, in anonymous
    memory advised for transparent huge pages where the OS supports it (in shared memory
    instead inside :func:`tables_in_shared_memory`)."""
    shape, dtype = table_formats.storage_shape(rows, dim, precision)
    size = shape[0] * shape[1] * dtype.itemsize
    if _SHARED["on"]:
        # The untouched pages of a fresh allocation read as the zero page: moving them to
        # shared memory costs no second copy of the table.
        return torch.empty(shape, dtype=dtype).share_memory_()
    advise = getattr(mmap, "MADV_HUGEPAGE", None)
    if size < HUGE_PAGE_MIN_BYTES or advise is None:
        return torch.empty(shape, dtype=dtype)
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        memory.madvise(advise)
    except OSError:  # THP disabled ("never") or not built in: ordinary pages
        pass
    # The tensor holds a reference to the mapping: it lives as long as the tensor.
    return torch.frombuffer(memory, dtype=dtype).view(shape)


def huge_pages_mode() -> str:
    """The kernel's transparent-huge-page mode (always, madvise, never), or "unavailable"."""
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return "unavailable"
    chosen = [word.strip("[]") for word in text.split() if word.startswith("[")]
    return chosen[0] if chosen else "unavailable"


def random_table(rows: int, dim: int, seed: int, table_index: int,
                 precision: str = REFERENCE) -> torch.Tensor:
    """A ``rows`` x ``dim`` table stored in ``precision``, filled by :func:`fill_stored`."""
    return fill_stored(empty_table(rows, dim, precision), dim, precision, seed, table_index)


def table_views(weight: torch.Tensor, bases: torch.Tensor, rows: tuple[int, ...]
                 ) -> list[torch.Tensor]:
    """Each table's rows of a fused ``weight`` (views), in order."""
    return [weight[base:base + count] for base, count in zip(bases.tolist(), rows)]


def fused_tables(rows: tuple[int, ...], dim: int, seed: int, first_table_index: int,
                 precision: str = REFERENCE) -> tuple[torch.Tensor, list[int]]:
    """One weight holding every table's rows back to back (stored in ``precision``), each
    table filled in place as :func:`random_table` would fill it alone; and each table's
    first row. Built in one allocation: the peak memory is the tables' own bytes (plus, in
    a reduced precision, the fill's chunks)."""
    bases = run_starts(rows)
    weight = empty_table(sum(rows), dim, precision)
    for k, (base, count) in enumerate(zip(bases, rows)):
        fill_stored(weight[base:base + count], dim, precision, seed, first_table_index + k)
    return weight, bases


def hold_fused_tables(module: nn.Module, rows: tuple[int, ...], dim: int, seed: int,
                      first_table_index: int, precision: Precision) -> str:
    """Gives a fused layout's ``module`` its tables (:func:`fused_tables`) as ``weight``,
    ``rows``, the ``row_bases`` buffer, ``stored_precision`` and the dtype its lookups are
    cast to; returns the stored precision."""
    stored = precision.table_precision(dim)
    module.stored_precision = stored
    weight, bases = fused_tables(rows, dim, seed, first_table_index, stored)
    module.weight = nn.Parameter(weight, requires_grad=False)
    module.rows = tuple(rows)
    module.register_buffer("row_bases", torch.tensor(bases, dtype=torch.int64),
                           persistent=False)
    module._out_dtype = out_dtype(stored, precision)
    return stored


class StoredTable(nn.Module):
    """A table in a reduced precision: its stored ``weight`` (fp16/bf16 rows, or FBGEMM's
    packed int8/int4 rows), frozen."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)


def table_modules(rows: tuple[int, ...], dim: int, seed: int, first_table_index: int,
                  stored: str, fp32_module: Callable[[torch.Tensor], nn.Module]
                  ) -> nn.ModuleList:
    """One module per table, stored in ``stored``: ``fp32_module(weight)`` in fp32 (the
    ``nn.EmbeddingBag`` or ``nn.Embedding`` the eager layout always had), else a
    :class:`StoredTable`."""
    make = fp32_module if stored == REFERENCE else StoredTable
    return nn.ModuleList(make(random_table(r, dim, seed, first_table_index + k, stored))
                         for k, r in enumerate(rows))


def _fp32_bag(weight: torch.Tensor) -> nn.Module:
    return nn.EmbeddingBag.from_pretrained(weight, freeze=True, mode="sum")


class PooledEmbeddings(nn.Module):
    """Eager backend: one sum-pooled ``nn.EmbeddingBag`` per table, one lookup per table.

    Input: a :class:`~recstack.batch.Batch` (per table flat ids ``(lookups_k,)`` and bag
    offsets ``(batch,)``). Output: ``(batch, tables, dim)``.

    Callers that pool the same ids through two modules (Wide & Deep's deep and wide tables)
    call :meth:`prepare` once and :meth:`pool` per module.

    In a reduced ``precision`` each table is a :class:`StoredTable` looked up by the
    precision's kernel (:func:`table_formats.pooled_lookup`), and the output is cast to the
    dense layers' type where it differs.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int = 0,
                 precision: Precision = FP32):
        super().__init__()
        stored = precision.table_precision(dim)
        self.stored_precision = stored
        self.bags = table_modules(rows, dim, seed, first_table_index, stored, _fp32_bag)
        self._lookup = None if stored == REFERENCE else table_formats.pooled_lookup(stored)
        self._out_dtype = out_dtype(stored, precision)
        # Each bag's parameter dict: read at call time without nn.Module.__getattr__.
        self._weights = tuple(bag._parameters for bag in self.bags)

    def prepare(self, batch: Batch) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Nothing to prepare: each table reads its own ids."""
        return batch.bag_indices, batch.bag_offsets

    def pool(self, prepared: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]
             ) -> torch.Tensor:
        indices, offsets = prepared
        lookup = self._lookup
        if lookup is None:
            bag = torch.embedding_bag
            pooled = [bag(weights["weight"], i, o, False, _SUM, False, None, False,
                          _NO_PADDING)[0]
                      for weights, i, o in zip(self._weights, indices, offsets)]
        else:
            pooled = [lookup(weights["weight"], i, o)
                      for weights, i, o in zip(self._weights, indices, offsets)]
        stacked = torch.stack(pooled, dim=1)
        return stacked if self._out_dtype is None else stacked.to(self._out_dtype)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.pool(self.prepare(batch))

    def table_weights(self) -> list[torch.Tensor]:
        """Each table's stored weight, in order (``(rows, dim)`` in fp32)."""
        return [bag.weight for bag in self.bags]


def out_dtype(stored: str, precision: Precision) -> torch.dtype | None:
    """The dtype pooled rows are cast to for the dense layers, or None where the lookup
    already gives it (fp32 tables and fp32 layers; bf16 tables and bf16 layers)."""
    wanted = getattr(torch, precision.dense_dtype_name)
    return None if wanted == table_formats.lookup_dtype(stored) else wanted


class FusedPooledEmbeddings(nn.Module):
    """Fused backend: every table's rows in one weight, one gather-and-pool for all tables.

    Reads the batch's ids in their all-tables form (``Batch.pooled_ids``, table after table,
    and ``Batch.pooled_offsets``); the ids of table ``k`` are shifted by its first row in the
    fused weight (one addition over all ids: the only work the fused layout adds). One
    ``embedding_bag`` (sum) then pools ``tables * batch`` bags, table-major, viewed as
    ``(batch, tables, dim)``.

    Input and output as :class:`PooledEmbeddings`.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int = 0,
                 precision: Precision = FP32):
        super().__init__()
        stored = hold_fused_tables(self, rows, dim, seed, first_table_index, precision)
        self.dim = dim
        self._lookup = None if stored == REFERENCE else table_formats.pooled_lookup(stored)
        # Read at call time without nn.Module.__getattr__ (see RecModel).
        self._parameter_dict = self._parameters
        self._shifts: dict[tuple[int, ...], torch.Tensor] = {}

    def _apply(self, fn, recurse=True):
        # .to(), .cuda(), .half() go through here: shifts cached for another device are gone.
        self._shifts = {}
        return super()._apply(fn, recurse)

    def _row_shifts(self, lookups: tuple[int, ...]) -> torch.Tensor:
        """What to add to the batch's ids when table ``k`` has ``lookups[k]`` of them: one
        shift per id ``(sum(lookups),)``; or, when the counts are equal (fixed pooling) and
        there are more than ``FLAT_SHIFT_MAX_IDS`` ids, ``(tables, 1)`` first rows broadcast
        over a ``(tables, lookups)`` view (a large batch then reads no shift array; a small
        one saves the two views, each a Python-to-operator call). Cached per counts (fixed
        pooling: one entry per batch size); variable pooling, whose counts change with every
        batch, fills the cache up to a bound and then computes them each time."""
        compiling = torch.compiler.is_compiling()
        shifts = None if compiling else self._shifts.get(lookups)
        if shifts is not None:
            return shifts
        bases = self.row_bases
        if lookups.count(lookups[0]) == len(lookups):
            flat = not compiling and sum(lookups) <= FLAT_SHIFT_MAX_IDS
            shifts = (bases.repeat_interleave(lookups[0], output_size=sum(lookups)) if flat
                      else bases.unsqueeze(1))
        else:
            shifts = torch.repeat_interleave(
                bases, torch.tensor(lookups, device=bases.device), output_size=sum(lookups))
        if not compiling and len(self._shifts) < _SHIFT_CACHE_ENTRIES:
            self._shifts[lookups] = shifts
        return shifts

    def prepare(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        """All tables' ids in the fused weight's rows ``(lookups,)``, their bag offsets
        ``(tables * batch,)``, and the batch size."""
        lookups = batch.lookups
        shifts = self._row_shifts(lookups)
        ids = batch.pooled_ids
        if shifts.dim() == 2:  # equal counts: shift a (tables, lookups) view
            ids = torch.add(ids.view(len(lookups), lookups[0]), shifts).view(-1)
        else:
            ids = torch.add(ids, shifts)
        return ids, batch.pooled_offsets, batch.size

    def pool(self, prepared: tuple[torch.Tensor, torch.Tensor, int]) -> torch.Tensor:
        ids, bags, batch = prepared
        lookup = self._lookup
        if lookup is None:  # (tables * batch, dim)
            pooled = torch.embedding_bag(self._parameter_dict["weight"], ids, bags, False, _SUM,
                                         False, None, False, _NO_PADDING)[0]
        else:
            pooled = lookup(self._parameter_dict["weight"], ids, bags)
        if self._out_dtype is not None:
            pooled = pooled.to(self._out_dtype)
        if batch == 1:  # (tables, dim) is already the one sample's rows: one view, not two
            return pooled.unsqueeze(0)
        return pooled.view(len(self.rows), batch, self.dim).transpose(0, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.pool(self.prepare(batch))

    def table_weights(self) -> list[torch.Tensor]:
        """Each table's ``(rows, dim)`` weight (views of the fused weight), in order."""
        return table_views(self.weight, self.row_bases, self.rows)


def pooled_embeddings(rows: tuple[int, ...], dim: int, seed: int, first_table_index: int = 0,
                      fused: bool = False, precision: Precision = FP32
                      ) -> PooledEmbeddings | FusedPooledEmbeddings:
    """The pooled tables of a model in the eager or the fused layout (same values), stored
    in ``precision``."""
    kind = FusedPooledEmbeddings if fused else PooledEmbeddings
    return kind(rows, dim, seed, first_table_index, precision)
