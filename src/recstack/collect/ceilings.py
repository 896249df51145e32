"""Machine ceilings: what this machine can do at best, measured, per platform and thread count.

The roofline (:mod:`recstack.analysis.roofline`) divides each stage's work by these to get a
lower bound on its time. Kinds measured (``kind``, ``shape``, ``unit``):

- ``triad_dram`` (``"<working set> B"``, GB/s): STREAM triad ``a = b + s c`` over three
  float32 arrays totalling at least 4x the last-level cache (STREAM's rule); bytes counted as
  STREAM does (3 arrays, no write-allocate traffic).
- ``triad_cached``: the same with a working set of a quarter of the LLC.
- ``gather_dram`` (``"row <bytes> B"``, GB/s of rows read): ``embedding_bag`` sum pooling (as
  the models gather) of uniformly random rows from a table of at least 4x the LLC, for every
  row size the canonical models read.
- ``gather_cached``: the same from a table of a quarter of the LLC.
- ``gather_table`` (``"row <bytes> B, table <bytes> B, ids <n>"``, GB/s of rows read): the
  same gathers from *tables of a given size*, ``n`` distinct ids from each table per call,
  visited one table after another as a model visits its tables, over as many tables as fill
  the DRAM gather buffer, with fresh ids in every call (the ids of the calls in flight cover
  at least twice the LLC), so no row stays cached from one call to the next. What a table's
  size changes is how much of the address space the gathers range over (page-table reach: on
  the 2-core VM, 256 B rows gathered from 32 tables of 122 MiB in turn at 8.5 GB/s, from one
  4 GiB table at 3.8); what the run length ``n`` changes was measured there too (8 tables of
  512 MB: 4.3-4.5 GB/s at 82k ids per table, 5.2-5.4 at 2^20), so the canonical models'
  tables are measured at the run lengths their batches give them (``batch x pooling``, at
  least ``min_run_ids``), as the GEMMs are measured at each batch size's ``M``; a ladder of
  sizes at ``table_draws`` ids completes them, for every row size.
- ``gemm`` (``"MxKxN"``, GFLOP/s): ``F.linear`` (a product plus bias, as ``nn.Linear``) at every
  layer shape of the canonical models at the batch sizes 1 to 4096 (``M`` capped at
  ``gemm_max_m``; larger products are as fast as the cap's);
  ``gemm_large`` (``"NxNxN"``): a large square product.
- ``dispatch`` (``"add 1 float"``, microseconds per call): a tiny torch operator, the cost of
  going through the dispatcher once.
- ``cache`` (``"llc"``, bytes): the LLC size as the platform reports it; read, not measured.

Every kind is warmed up, then timed ``repeats`` times; each repeat runs enough calls to last
``min_seconds``. The median is the ceiling's value; p5, p95 and every sample are kept. Input
data (arrays, tables, ids) is made before any clock starts.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from recstack.errors import RecstackError

CEILING_COLUMNS = ["platform_id", "threads", "kind", "shape", "value", "unit", "p5", "p95",
                   "repeats", "samples", "measured_at", "recstack_version", "torch_version"]
# Used when the platform does not report its caches.
DEFAULT_LLC_BYTES = 32 << 20
MIN_DRAM_BYTES = 256 << 20
MAX_CALLS_PER_REPEAT = 20_000
MAX_IDS_PER_CALL = 1 << 22
"""A table-gather call visits at most this many ids (a group of tables); calls take the
groups in turn."""


@dataclass(frozen=True)
class CeilingSettings:
    """How much to measure. The defaults take about 5 minutes on the 2-core VM (most of it
    drawing the ids of the gathers by table size and run length);
    :meth:`quick` is for tests (tiny sizes: its bandwidths are not DRAM's)."""

    dram_bytes: int | None = None
    """Working set of the DRAM kinds; None: 4x the LLC, at least 256 MiB."""
    cached_bytes: int | None = None
    """Working set of the cached kinds; None: a quarter of the LLC."""
    repeats: int = 5
    min_seconds: float = 0.01
    """Each repeat runs enough calls to last this long."""
    models: tuple[str, ...] | None = None
    """Zoo models whose layer shapes and row sizes are measured; None: all eight."""
    batch_sizes: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096)
    gemm_max_m: int = 16384
    large_gemm: int = 2048
    gather_ids: int = 1 << 20
    """Ids gathered per call (in bags of ``bag_size``)."""
    bag_size: int = 20
    table_ladder: tuple[int, ...] = (16 << 20, 64 << 20, 256 << 20, 1 << 30, 4 << 30)
    """Table sizes of the ``gather_table`` kind besides the canonical models' own."""
    table_draws: int = 1 << 20
    """Ids per table and call of the ``gather_table`` ladder sizes (at most the table's rows)."""
    min_run_ids: int = 4096
    """Shortest run (ids per table per call) measured at the models' own tables; shorter
    runs are bounded at this one's rate (the bound rounds a run up to a measured one)."""
    max_run_ids: int = 1 << 22
    """Longest run measured (longer ones are measured at this length)."""

    @classmethod
    def quick(cls) -> CeilingSettings:
        return cls(dram_bytes=8 << 20, cached_bytes=1 << 20, repeats=3, min_seconds=0.002,
                   models=("rmc1",), batch_sizes=(1, 16), gemm_max_m=256, large_gemm=128,
                   gather_ids=4096, table_ladder=(1 << 20, 4 << 20), table_draws=1024,
                   min_run_ids=256, max_run_ids=4096)

    def __post_init__(self) -> None:
        for name in ("repeats", "gemm_max_m", "large_gemm", "gather_ids", "bag_size",
                     "table_draws", "min_run_ids", "max_run_ids"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecstackError(f"{name}: {value!r} is not allowed; expected an integer "
                                    ">= 1")
        for name in ("dram_bytes", "cached_bytes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 4096):
                raise RecstackError(f"{name}: {value!r} is not allowed; expected at least "
                                    "4096 bytes, or None for the default")
        if not self.min_seconds >= 0:
            raise RecstackError(f"min_seconds: {self.min_seconds!r} is not allowed; expected "
                                "a number >= 0")


@dataclass(frozen=True)
class Ceiling:
    """One measured ceiling: its median ``value`` with p5, p95 and the raw samples."""

    kind: str
    shape: str
    value: float
    unit: str
    p5: float
    p95: float
    repeats: int
    samples: tuple[float, ...]

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["samples"] = json.dumps(list(self.samples))
        return row


def summarize(kind: str, shape: str, unit: str, samples: list[float]) -> Ceiling:
    """Median, p5 and p95 of raw samples (pure)."""
    if not samples:
        raise ValueError(f"{kind} {shape}: no samples")
    values = np.asarray(samples, dtype=np.float64)
    p5, median, p95 = (float(v) for v in np.percentile(values, [5, 50, 95]))
    return Ceiling(kind=kind, shape=shape, value=median, unit=unit, p5=p5, p95=p95,
                   repeats=len(samples), samples=tuple(float(s) for s in samples))


def llc_bytes(platform: dict[str, Any]) -> int:
    """The largest data or unified cache the platform reports (DEFAULT_LLC_BYTES if none)."""
    sizes = [int(c["size_bytes"]) for c in platform.get("caches") or []
             if c.get("type") != "Instruction" and c.get("size_bytes")]
    return max(sizes) if sizes else DEFAULT_LLC_BYTES


def working_sets(settings: CeilingSettings, llc: int, available: int) -> tuple[int, int]:
    """(DRAM, cached) working-set bytes: 4x the LLC (at least 256 MiB) but at most a third
    of the available memory; a quarter of the LLC."""
    dram = settings.dram_bytes or min(max(4 * llc, MIN_DRAM_BYTES), available // 3)
    cached = settings.cached_bytes or max(4096, llc // 4)
    return int(dram), int(cached)


# The canonical models hold 2.5 to 4 GB of tables: random gathers over less would find their
# page-table entries (with huge pages, even their TLB entries) in the caches, and overstate
# what the models can reach.
MODEL_TABLE_BYTES = 4 << 30


def gather_working_set(settings: CeilingSettings, dram: int, available: int) -> int:
    """The random-gather table: as large as a canonical model's tables (at most a third of the
    available memory), unless the settings fix the DRAM working set (``--quick``)."""
    if settings.dram_bytes:
        return dram
    return int(max(dram, min(MODEL_TABLE_BYTES, available // 3)))


def triad_working_set(shape: str) -> int | None:
    """The bytes in a ``triad_dram`` shape (``"<n> B"``), None if it is not one."""
    match = re.fullmatch(r"(\d+) B", shape.strip())
    return int(match.group(1)) if match else None


# ---- timing ----------------------------------------------------------------------------------


def _repeat(call: Callable[[], Any], settings: CeilingSettings) -> list[float]:
    """Seconds per call of ``call``, one sample per repeat, after a warm-up call; each repeat
    runs as many calls as fill ``settings.min_seconds`` (from the median of three timed
    calls: on a busy machine one call can be descheduled for milliseconds)."""
    clock = time.perf_counter
    call()
    probes = []
    for _ in range(3):
        start = clock()
        call()
        probes.append(clock() - start)
    once = max(float(np.median(probes)), 1e-9)
    inner = min(MAX_CALLS_PER_REPEAT, max(1, math.ceil(settings.min_seconds / once)))
    samples = []
    for _ in range(settings.repeats):
        start = clock()
        for _ in range(inner):
            call()
        samples.append((clock() - start) / inner)
    return samples


def _rates(work: float, seconds: list[float], scale: float) -> list[float]:
    return [work / s / scale for s in seconds]


def measure_triad(working_set: int, settings: CeilingSettings, kind: str) -> Ceiling:
    import torch

    n = max(1, working_set // (3 * 4))
    a, b, c = (torch.full((n,), value, dtype=torch.float32) for value in (0.0, 1.0, 2.0))
    seconds = _repeat(lambda: torch.add(b, c, alpha=3.0, out=a), settings)
    del a, b, c
    return summarize(kind, f"{3 * n * 4} B", "GB/s", _rates(3 * n * 4, seconds, 1e9))


def gather_buffer(working_set: int) -> Any:
    """A flat float32 buffer of ``working_set`` bytes, written, in the memory the models'
    tables get (huge pages where the OS gives them): gathers from it reach what the models'
    own gathers could."""
    from recstack.models.embeddings import empty_table

    return empty_table(max(1, working_set // 4), 1).view(-1).fill_(0.5)


def measure_gathers(working_set: int, row_bytes: list[int], settings: CeilingSettings,
                    kind: str, seed: int = 0, buffer: Any = None) -> list[Ceiling]:
    """Random-row gathers with sum pooling from one table of ``working_set`` bytes (the
    first bytes of ``buffer`` when given, else a :func:`gather_buffer`), viewed with each row
    size."""
    import torch
    import torch.nn.functional as F

    buffer = gather_buffer(working_set) if buffer is None else buffer[:max(1, working_set // 4)]
    generator = torch.Generator().manual_seed(seed)
    ceilings = []
    for row in row_bytes:
        dim = max(1, row // 4)
        rows = buffer.numel() // dim
        table = buffer[:rows * dim].view(rows, dim)
        ids_count = max(settings.bag_size,
                        settings.gather_ids // settings.bag_size * settings.bag_size)
        ids = torch.randint(0, rows, (ids_count,), generator=generator)
        offsets = torch.arange(0, ids_count, settings.bag_size)
        seconds = _repeat(lambda: F.embedding_bag(ids, table, offsets, mode="sum"), settings)
        ceilings.append(summarize(kind, f"row {dim * 4} B", "GB/s",
                                  _rates(ids_count * dim * 4, seconds, 1e9)))
    del buffer
    return ceilings


def table_gather_shape(row_bytes: int, table_bytes: int, ids: int) -> str:
    return f"row {row_bytes} B, table {table_bytes} B, ids {ids}"


def parse_table_gather_shape(shape: str) -> tuple[int, int, int | None] | None:
    """``(row_bytes, table_bytes, ids)`` of a ``gather_table`` shape (``ids`` None in shapes
    stored before run lengths were measured), None if it is not one."""
    match = re.fullmatch(r"row (\d+) B, table (\d+) B(?:, ids (\d+))?", shape.strip())
    if not match:
        return None
    ids = match.group(3)
    return int(match.group(1)), int(match.group(2)), int(ids) if ids is not None else None


CACHE_LINE_BYTES = 64


def distinct_ids(generator: np.random.Generator, rows: int, count: int) -> np.ndarray:
    """``count`` distinct row ids in ``[0, rows)`` (``count <= rows``), in random order: a
    gather ceiling counts every id as a first read, so no id may repeat within a call."""
    if count * 4 >= rows:
        return generator.permutation(rows)[:count]
    while True:  # a few percent of the draws collide; redraw in the rare short case
        drawn = np.unique(generator.integers(0, rows, size=count + count // 4 + 16))
        if len(drawn) >= count:
            return generator.choice(drawn, size=count, replace=False)


def measure_table_gathers(buffer_bytes: int, points: list[tuple[int, int, int]], llc: int,
                          settings: CeilingSettings, seed: int = 0, buffer: Any = None
                          ) -> list[Ceiling]:
    """``gather_table`` ceilings at ``(row_bytes, table_bytes, ids)`` points: the buffer is
    cut into as many tables of that size as it holds; one call gathers ``ids`` distinct rows
    (at most the table's rows, in bags of ``bag_size``) from each table of a group in turn
    (a group holds at most ``MAX_IDS_PER_CALL`` ids: a call over hundreds of small tables
    took seconds), successive calls taking the groups in turn, then the next id set; the id
    sets together touch at least twice the LLC in cache lines, so what one call read is gone
    from the caches when its ids come round again. Each table keeps its own ids, drawn as
    before: drawing them is most of this kind's time now (105 s of a 126 s point at 4 B rows
    from 16 MB tables), but three cheaper ways to draw them (arrays shared between tables,
    shared and rotated, first distinct values in draw order) each gathered about 15% slower
    at one point of four to five checked (128 MB tables, 12k ids; three rounds each,
    alternated with the current way), unexplained, so none is used. Tables larger than the
    buffer are measured at the buffer's size (the shape says what was measured). ``buffer``:
    as in :func:`measure_gathers`."""
    import torch
    import torch.nn.functional as F

    buffer = (gather_buffer(buffer_bytes) if buffer is None
              else buffer[:max(1, buffer_bytes // 4)])
    generator = np.random.default_rng(seed)
    measured: dict[tuple[int, int, int], Ceiling] = {}
    for row, wanted, run in points:
        dim = max(1, row // 4)
        row = dim * 4
        rows = max(1, min(wanted, buffer.numel() * 4) // row)
        count = max(1, buffer.numel() // (rows * dim))
        bag = max(1, min(settings.bag_size, rows, run))
        draws = max(bag, min(run, rows) // bag * bag)
        if (row, rows * row, draws) in measured:
            continue
        tables = [buffer[i * rows * dim:(i + 1) * rows * dim].view(rows, dim)
                  for i in range(count)]
        # Equal groups of tables, one per call (a remainder smaller than a group is left
        # out), so that every call does the same work.
        per_group = min(count, max(1, MAX_IDS_PER_CALL // draws))
        starts = range(0, count - per_group + 1, per_group)
        # (Bounded by the buffer, so a small --quick buffer does not draw ids for a large LLC.)
        touched = min(2 * llc, 4 * buffer_bytes) // max(row, CACHE_LINE_BYTES)
        sets = max(1, math.ceil(touched / (count * draws)))
        ids = [[torch.from_numpy(distinct_ids(generator, rows, draws)) for _ in range(count)]
               for _ in range(sets)]
        offsets = torch.arange(0, draws, bag)
        turn = [0]

        def call() -> None:
            first = starts[turn[0] % len(starts)]
            id_set = ids[(turn[0] // len(starts)) % sets]
            for index in range(first, first + per_group):
                F.embedding_bag(id_set[index], tables[index], offsets, mode="sum")
            turn[0] += 1

        seconds = _repeat(call, settings)
        measured[(row, rows * row, draws)] = summarize(
            "gather_table", table_gather_shape(row, rows * row, draws), "GB/s",
            _rates(per_group * draws * row, seconds, 1e9))
        del tables, ids
    del buffer
    return list(measured.values())


def measure_gemm(m: int, k: int, n: int, settings: CeilingSettings, kind: str = "gemm",
                 shape: str | None = None) -> Ceiling:
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(m * 31 + k * 7 + n)
    x = torch.rand((m, k), generator=generator)
    weight = torch.rand((n, k), generator=generator)
    bias = torch.rand((n,), generator=generator)
    seconds = _repeat(lambda: F.linear(x, weight, bias), settings)
    return summarize(kind, shape or f"{m}x{k}x{n}", "GFLOP/s",
                     _rates(2.0 * m * k * n, seconds, 1e9))


def measure_dispatch(settings: CeilingSettings) -> Ceiling:
    import torch

    one = torch.ones(1)
    seconds = _repeat(lambda: torch.add(one, 1), settings)
    return summarize("dispatch", "add 1 float", "us", [s * 1e6 for s in seconds])


def gemm_shapes(settings: CeilingSettings) -> list[tuple[int, int, int]]:
    """The layer shapes to measure, ``M`` capped at ``gemm_max_m``."""
    from recstack.footprint import linear_gemm_shapes
    from recstack.specs import ZOO_NAMES, zoo_spec

    specs = [zoo_spec(name) for name in (settings.models or ZOO_NAMES)]
    shapes = linear_gemm_shapes(specs, settings.batch_sizes)
    return sorted({(min(m, settings.gemm_max_m), k, n) for m, k, n in shapes})


def table_gather_points(settings: CeilingSettings) -> list[tuple[int, int, int]]:
    """``(row_bytes, table_bytes, ids)`` of ``gather_table``: the models' own tables at the run
    lengths their batches give them (``settings.batch_sizes``; runs clamped to
    ``[min_run_ids, max_run_ids]``), and every row size the models read at every ladder size
    with ``table_draws`` ids."""
    from recstack.footprint import table_gather_runs
    from recstack.specs import ZOO_NAMES, zoo_spec

    specs = [zoo_spec(name) for name in (settings.models or ZOO_NAMES)]
    own = {(row, table, min(max(run, settings.min_run_ids), settings.max_run_ids))
           for row, table, run in table_gather_runs(specs, settings.batch_sizes)}
    ladder = {(row, size, settings.table_draws) for row in row_sizes(settings)
              for size in settings.table_ladder}
    return sorted(ladder | own)


def row_sizes(settings: CeilingSettings) -> list[int]:
    from recstack.footprint import gathered_row_bytes
    from recstack.specs import ZOO_NAMES, zoo_spec

    return gathered_row_bytes([zoo_spec(name) for name in (settings.models or ZOO_NAMES)])


def measure_ceilings(threads: int, platform: dict[str, Any],
                     settings: CeilingSettings | None = None,
                     available_bytes: int | None = None) -> list[Ceiling]:
    """Measures every kind at ``threads`` intra-op threads (set here, for this process)."""
    import torch

    from recstack.footprint import available_memory_bytes

    settings = settings or CeilingSettings()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise RecstackError(f"--threads: {threads!r} is not allowed; expected an integer >= 1")
    llc = llc_bytes(platform)
    available = available_memory_bytes() if available_bytes is None else available_bytes
    dram, cached = working_sets(settings, llc, available)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = row_sizes(settings)
    try:
        with torch.inference_mode():
            ceilings = [Ceiling("cache", "llc", float(llc), "bytes", float(llc), float(llc), 0,
                                ())]
            ceilings.append(measure_dispatch(settings))
            ceilings.append(measure_triad(dram, settings, "triad_dram"))
            ceilings.append(measure_triad(cached, settings, "triad_cached"))
            # One buffer (filling 4 GiB takes seconds) for the DRAM and the per-size gathers.
            gathered = gather_working_set(settings, dram, available)
            buffer = gather_buffer(gathered)
            ceilings += measure_gathers(gathered, rows, settings, "gather_dram", buffer=buffer)
            ceilings += measure_gathers(cached, rows, settings, "gather_cached")
            ceilings += measure_table_gathers(gathered, table_gather_points(settings), llc,
                                              settings, buffer=buffer)
            del buffer
            size = settings.large_gemm
            ceilings.append(measure_gemm(size, size, size, settings, "gemm_large"))
            ceilings += [measure_gemm(m, k, n, settings) for m, k, n in gemm_shapes(settings)]
    finally:
        torch.set_num_threads(previous)
    return ceilings


# ---- stored ceilings ---------------------------------------------------------------------------


def ceilings_frame(ceilings: list[Ceiling], platform_id: str, threads: int) -> pd.DataFrame:
    """Rows of the store's ``ceilings`` table (columns CEILING_COLUMNS)."""
    import torch

    from recstack import __version__

    now = datetime.now(timezone.utc)
    frame = pd.DataFrame([c.to_row() for c in ceilings])
    frame = frame.assign(platform_id=platform_id, threads=threads, measured_at=now,
                         recstack_version=__version__, torch_version=str(torch.__version__))
    return frame[CEILING_COLUMNS]


def covers(stored: pd.DataFrame, wanted_dram_bytes: int) -> bool:
    """Whether stored ceilings were measured with a DRAM working set at least half the wanted
    one (a ``--quick`` set is never reused for a full measurement)."""
    triad = stored[stored.kind == "triad_dram"]
    # Ceilings stored before gathers were measured per table size and run length are
    # measured again.
    runs = [parse_table_gather_shape(str(shape))
            for shape in stored[stored.kind == "gather_table"]["shape"]]
    if triad.empty or not any(run is not None and run[2] is not None for run in runs):
        return False
    size = triad_working_set(str(triad["shape"].iloc[0]))
    return size is not None and size >= wanted_dram_bytes // 2


def ensure_ceilings(store: Any, threads: int, refresh: bool = False,
                    settings: CeilingSettings | None = None,
                    available_bytes: int | None = None) -> tuple[pd.DataFrame, bool]:
    """This machine's ceilings at ``threads`` from ``store`` (a ResultStore), measured and
    stored first when absent, when the stored ones were measured smaller, or with
    ``refresh``. Returns (rows of the ``ceilings`` table, whether they were measured now)."""
    from recstack.footprint import available_memory_bytes
    from recstack.platform_info import collect_platform, describe_platform, platform_id

    settings = settings or CeilingSettings()
    platform = collect_platform()
    identity = platform_id(platform)
    available = available_memory_bytes() if available_bytes is None else available_bytes
    if not refresh:
        stored = store.load_ceilings(identity, threads)
        wanted, _ = working_sets(settings, llc_bytes(platform), available)
        if not stored.empty and covers(stored, wanted):
            return stored, False
    ceilings = measure_ceilings(threads, platform, settings, available)
    frame = ceilings_frame(ceilings, identity, threads)
    store.write_ceilings(frame, platform, describe_platform(platform))
    return store.load_ceilings(identity, threads), True
