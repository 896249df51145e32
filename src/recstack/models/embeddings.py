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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from recstack.batch import Batch, run_starts
from recstack.host import usable_cores

CHUNK_ELEMENTS = 1 << 24  # 64 MiB of float32: large enough to amortize, small enough to spread
_SUM = 0  # torch.embedding_bag's mode code for sum pooling
FLAT_SHIFT_MAX_IDS = 1 << 16
"""Up to this many ids (512 KiB of int64 shifts), fixed-pooling batches get flat shifts."""
_SHIFT_CACHE_ENTRIES = 64  # distinct lookup-count tuples whose id shifts a fused table keeps
_NO_PADDING = None  # as F.embedding_bag passes it: no padding row (-1 would mean the last row)


def _fill_threads() -> int:
    """Threads that fill a table: one per core this process may use."""
    return usable_cores()


def fill_table(table: torch.Tensor, seed: int, table_index: int) -> torch.Tensor:
    """Fills a contiguous float32 ``(rows, dim)`` tensor in place, uniform in
    ``±sqrt(1 / rows)`` (the DLRM reference's initialisation), from a thread pool; returns
    it. ``table`` may be a slice of a larger weight (the fused layout)."""
    flat = table.numpy().reshape(-1)  # a view: contiguous rows
    bound = math.sqrt(1.0 / table.shape[0])
    num_chunks = max(1, math.ceil(flat.size / CHUNK_ELEMENTS))

    def fill(chunk: int) -> None:
        part = flat[chunk * CHUNK_ELEMENTS:(chunk + 1) * CHUNK_ELEMENTS]
        generator = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            [seed, table_index, chunk])))
        generator.random(out=part, dtype=np.float32)
        part *= 2 * bound
        part -= bound

    if num_chunks == 1:
        fill(0)
    else:
        with ThreadPoolExecutor(max_workers=min(_fill_threads(), num_chunks)) as pool:
            list(pool.map(fill, range(num_chunks)))
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


def empty_table(rows: int, dim: int) -> torch.Tensor:
    """An uninitialised float32 ``(rows, dim)`` tensor; at ``HUGE_PAGE_MIN_BYTES`` or more,
    in anonymous memory advised for transparent huge pages where the OS supports it (in
    shared memory instead inside :func:`tables_in_shared_memory`)."""
    size = rows * dim * 4
    if _SHARED["on"]:
        # The untouched pages of a fresh allocation read as the zero page: moving them to
        # shared memory costs no second copy of the table.
        return torch.empty((rows, dim), dtype=torch.float32).share_memory_()
    advise = getattr(mmap, "MADV_HUGEPAGE", None)
    if size < HUGE_PAGE_MIN_BYTES or advise is None:
        return torch.empty((rows, dim), dtype=torch.float32)
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        memory.madvise(advise)
    except OSError:  # THP disabled ("never") or not built in: ordinary pages
        pass
    # The tensor holds a reference to the mapping: it lives as long as the tensor.
    return torch.frombuffer(memory, dtype=torch.float32).view(rows, dim)


def huge_pages_mode() -> str:
    """The kernel's transparent-huge-page mode (always, madvise, never), or "unavailable"."""
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return "unavailable"
    chosen = [word.strip("[]") for word in text.split() if word.startswith("[")]
    return chosen[0] if chosen else "unavailable"


def random_table(rows: int, dim: int, seed: int, table_index: int) -> torch.Tensor:
    """A ``(rows, dim)`` float32 table filled by :func:`fill_table`."""
    return fill_table(empty_table(rows, dim), seed, table_index)


def _table_views(weight: torch.Tensor, bases: torch.Tensor, rows: tuple[int, ...]
                 ) -> list[torch.Tensor]:
    """Each table's ``(rows, dim)`` rows of a fused ``weight`` (views), in order."""
    return [weight[base:base + count] for base, count in zip(bases.tolist(), rows)]


def fused_tables(rows: tuple[int, ...], dim: int, seed: int, first_table_index: int
                 ) -> tuple[torch.Tensor, list[int]]:
    """One ``(sum(rows), dim)`` weight holding every table's rows back to back, each table
    filled in place as :func:`random_table` would fill it alone; and each table's first row.
    Built in one allocation: the peak memory is the tables' own bytes."""
    bases = run_starts(rows)
    weight = empty_table(sum(rows), dim)
    for k, (base, count) in enumerate(zip(bases, rows)):
        fill_table(weight[base:base + count], seed, first_table_index + k)
    return weight, bases


class PooledEmbeddings(nn.Module):
    """Eager backend: one sum-pooled ``nn.EmbeddingBag`` per table, one lookup per table.

    Input: a :class:`~recstack.batch.Batch` (per table flat ids ``(lookups_k,)`` and bag
    offsets ``(batch,)``). Output: ``(batch, tables, dim)``.

    Callers that pool the same ids through two modules (Wide & Deep's deep and wide tables)
    call :meth:`prepare` once and :meth:`pool` per module.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int = 0):
        super().__init__()
        self.bags = nn.ModuleList(
            nn.EmbeddingBag.from_pretrained(
                random_table(r, dim, seed, first_table_index + k), freeze=True, mode="sum")
            for k, r in enumerate(rows)
        )
        # Each bag's parameter dict: read at call time without nn.Module.__getattr__.
        self._weights = tuple(bag._parameters for bag in self.bags)

    def prepare(self, batch: Batch) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Nothing to prepare: each table reads its own ids."""
        return batch.bag_indices, batch.bag_offsets

    def pool(self, prepared: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]
             ) -> torch.Tensor:
        indices, offsets = prepared
        bag = torch.embedding_bag
        pooled = [bag(weights["weight"], i, o, False, _SUM, False, None, False,
                      _NO_PADDING)[0]
                  for weights, i, o in zip(self._weights, indices, offsets)]
        return torch.stack(pooled, dim=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.pool(self.prepare(batch))

    def table_weights(self) -> list[torch.Tensor]:
        """Each table's ``(rows, dim)`` weight, in order."""
        return [bag.weight for bag in self.bags]


class FusedPooledEmbeddings(nn.Module):
    """Fused backend: every table's rows in one weight, one gather-and-pool for all tables.

    Reads the batch's ids in their all-tables form (``Batch.pooled_ids``, table after table,
    and ``Batch.pooled_offsets``); the ids of table ``k`` are shifted by its first row in the
    fused weight (one addition over all ids: the only work the fused layout adds). One
    ``embedding_bag`` (sum) then pools ``tables * batch`` bags, table-major, viewed as
    ``(batch, tables, dim)``.

    Input and output as :class:`PooledEmbeddings`.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int = 0):
        super().__init__()
        weight, bases = fused_tables(rows, dim, seed, first_table_index)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.rows = tuple(rows)
        self.dim = dim
        self.register_buffer("row_bases", torch.tensor(bases, dtype=torch.int64),
                             persistent=False)
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
        pooled = torch.embedding_bag(self._parameter_dict["weight"], ids, bags, False, _SUM,
                                     False, None, False, _NO_PADDING)[0]  # (tables * batch, dim)
        if batch == 1:  # (tables, dim) is already the one sample's rows: one view, not two
            return pooled.unsqueeze(0)
        return pooled.view(len(self.rows), batch, self.dim).transpose(0, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.pool(self.prepare(batch))

    def table_weights(self) -> list[torch.Tensor]:
        """Each table's ``(rows, dim)`` weight (views of the fused weight), in order."""
        return _table_views(self.weight, self.row_bases, self.rows)


def pooled_embeddings(rows: tuple[int, ...], dim: int, seed: int, first_table_index: int = 0,
                      fused: bool = False) -> PooledEmbeddings | FusedPooledEmbeddings:
    """The pooled tables of a model in the eager or the fused layout (same values)."""
    kind = FusedPooledEmbeddings if fused else PooledEmbeddings
    return kind(rows, dim, seed, first_table_index)


class SequenceEmbeddings(nn.Module):
    """Behaviour embeddings, one row per step (not pooled); eager backend: one table each.

    Step ``t`` reads table ``t % num_tables`` (see :mod:`recstack.layout`).
    Input ``(batch, steps)`` ids; output ``(batch, steps, dim)``.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int):
        super().__init__()
        self.dim = dim
        self.tables = nn.ModuleList(
            nn.Embedding.from_pretrained(
                random_table(r, dim, seed, first_table_index + k), freeze=True)
            for k, r in enumerate(rows)
        )

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        if len(self.tables) == 1:
            return torch.embedding(self.tables[0].weight, sequence)
        batch, steps = sequence.shape
        out = sequence.new_empty((batch, steps, self.dim), dtype=self.tables[0].weight.dtype)
        stride = len(self.tables)
        for k, table in enumerate(self.tables):
            out[:, k::stride] = torch.embedding(table.weight, sequence[:, k::stride])
        return out

    def table_weights(self) -> list[torch.Tensor]:
        return [table.weight for table in self.tables]


class FusedSequenceEmbeddings(nn.Module):
    """Fused backend for behaviour sequences: every behaviour table's rows in one weight, and
    one gather for the whole sequence, each step's ids shifted by its table's first row.

    Input ``(batch, steps)`` ids; output ``(batch, steps, dim)``, as
    :class:`SequenceEmbeddings`.
    """

    def __init__(self, rows: tuple[int, ...], dim: int, seed: int, first_table_index: int):
        super().__init__()
        weight, bases = fused_tables(rows, dim, seed, first_table_index)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.rows = tuple(rows)
        self.register_buffer("row_bases", torch.tensor(bases, dtype=torch.int64),
                             persistent=False)
        self._step_bases: dict[int, torch.Tensor] = {}

    def _bases_of_steps(self, steps: int) -> torch.Tensor:
        """``(steps,)``: the first row of the table each step reads."""
        if torch.compiler.is_compiling():  # a constant of the graph; a cache would guard on it
            return self.row_bases[torch.arange(steps, device=self.row_bases.device)
                                  % len(self.rows)]
        bases = self._step_bases.get(steps)
        if bases is None or bases.device != self.row_bases.device:
            tables = torch.arange(steps, device=self.row_bases.device) % len(self.rows)
            bases = self.row_bases[tables]
            self._step_bases[steps] = bases
        return bases

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        if len(self.rows) == 1:
            return torch.embedding(self.weight, sequence)
        # int(): while torch.jit.trace records a graph, shapes are traced values, and one as a
        # cache key would miss and record the bases' computation into the graph.
        steps = int(sequence.shape[1])
        return torch.embedding(self.weight, sequence + self._bases_of_steps(steps))

    def table_weights(self) -> list[torch.Tensor]:
        return _table_views(self.weight, self.row_bases, self.rows)


def sequence_embeddings(rows: tuple[int, ...], dim: int, seed: int, first_table_index: int,
                        fused: bool = False) -> SequenceEmbeddings | FusedSequenceEmbeddings:
    """The behaviour tables of a model in the eager or the fused layout (same values)."""
    kind = FusedSequenceEmbeddings if fused else SequenceEmbeddings
    return kind(rows, dim, seed, first_table_index)
