"""Measuring one ceiling: how much to measure, the timing loop, and one kernel per kind.

Each kernel builds its input (arrays, tables, ids) before any clock starts, warms up, then
times ``repeats`` samples of enough calls to last ``min_seconds`` (:func:`summarize` keeps the
median, p5, p95 and every sample). What the kinds are, and which shapes are measured, is
:mod:`recstack.collect.ceilings`'s.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recstack.ceiling_shapes import CACHE_LINE_BYTES, table_gather_shape
from recstack.errors import RecstackError

MAX_CALLS_PER_REPEAT = 20_000
MAX_IDS_PER_CALL = 1 << 22
"""A table-gather call visits at most this many ids (a group of tables); calls take the
groups in turn."""


@dataclass(frozen=True)
class CeilingSettings:
    """How much to measure. The defaults took about 5 minutes on two cores before the
    per-precision kinds (most of it drawing the ids of the gathers by table size and run
    length, which those reuse; they add a bf16 and an int8 GEMM per layer shape and an int8
    and an int4 gather per table point);
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
    return summarize(kind, f"{3 * n * 4} B", "GB/s", _rates(3 * n * 4, seconds, 1e9))


def gather_buffer(working_set: int) -> Any:
    """A flat float32 buffer of ``working_set`` bytes, written, in the memory the models'
    tables get (huge pages where the OS gives them): gathers from it reach what the models'
    own gathers could."""
    from recstack.models.embeddings import empty_table

    return empty_table(max(1, working_set // 4), 1).view(-1).fill_(0.5)


def _pooling(precision: str) -> Callable[[Any, Any, Any], Any]:
    """``pool(ids, table, offsets)``: sum pooling of rows of a table stored in ``precision``,
    by the kernel the models call (``F.embedding_bag`` in fp32, as the fp32 ceilings have
    always been measured; torch's row-wise quantized kernels for int8 and int4)."""
    import torch.nn.functional as F

    if precision == "fp32":
        return lambda ids, table, offsets: F.embedding_bag(ids, table, offsets, mode="sum")
    from recstack.models.table_formats import pooled_lookup

    lookup = pooled_lookup(precision)
    return lambda ids, table, offsets: lookup(table, ids, offsets)


def _row_view(buffer: Any, precision: str) -> tuple[Any, int]:
    """``buffer`` as the elements rows of ``precision`` are made of, and their size in bytes:
    float32 values, or the bytes of quantized rows. (At the zoo's widths, multiples of 4, the
    buffer's float 0.5s read as a row's scale and bias are normal finite numbers: no
    denormal slow path.)"""
    import torch

    return (buffer, 4) if precision == "fp32" else (buffer.view(torch.uint8), 1)


def measure_gathers(working_set: int, row_bytes: list[int], settings: CeilingSettings,
                    kind: str, seed: int = 0, buffer: Any = None, precision: str = "fp32"
                    ) -> list[Ceiling]:
    """Random-row gathers with sum pooling from one table of ``working_set`` bytes (the
    first bytes of ``buffer`` when given, else a :func:`gather_buffer`), viewed with each row
    size; rows stored in ``precision`` (``row_bytes`` then its stored rows, scale and bias
    included) and pooled by its kernel."""
    import torch

    buffer = gather_buffer(working_set) if buffer is None else buffer[:max(1, working_set // 4)]
    elements, unit = _row_view(buffer, precision)
    pool = _pooling(precision)
    generator = torch.Generator().manual_seed(seed)
    ceilings = []
    for row in row_bytes:
        width = max(1, row // unit)
        row = width * unit
        rows = elements.numel() // width
        table = elements[:rows * width].view(rows, width)
        ids_count = max(settings.bag_size,
                        settings.gather_ids // settings.bag_size * settings.bag_size)
        ids = torch.randint(0, rows, (ids_count,), generator=generator)
        offsets = torch.arange(0, ids_count, settings.bag_size)
        seconds = _repeat(lambda: pool(ids, table, offsets), settings)
        ceilings.append(summarize(kind, f"row {row} B", "GB/s",
                                  _rates(ids_count * row, seconds, 1e9)))
    del buffer, elements
    return ceilings


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
                          settings: CeilingSettings, seed: int = 0, buffer: Any = None,
                          formats: tuple[str, ...] = ()) -> list[Ceiling]:
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
    as in :func:`measure_gathers`.

    ``formats`` (``int8``, ``int4``): at each point whose row width a format stores smaller
    (:meth:`recstack.precision.Precision.table_precision`), the same tables (as many, of as
    many rows: the same model's tables in that format) are gathered again in that format,
    with the same ids (drawing them is the cost), as kind ``gather_table_<format>`` with the
    stored row and table bytes in the shape."""
    import torch

    from recstack.ceiling_shapes import precision_kind
    from recstack.precision import Precision, row_bytes

    buffer = (gather_buffer(buffer_bytes) if buffer is None
              else buffer[:max(1, buffer_bytes // 4)])
    generator = np.random.default_rng(seed)
    measured: dict[tuple[str, int, int, int], Ceiling] = {}
    for row, wanted, run in points:
        dim = max(1, row // 4)
        row = dim * 4
        rows = max(1, min(wanted, buffer.numel() * 4) // row)
        count = max(1, buffer.numel() // (rows * dim))
        bag = max(1, min(settings.bag_size, rows, run))
        draws = max(bag, min(run, rows) // bag * bag)
        if ("fp32", row, rows * row, draws) in measured:
            continue
        stored = [(precision, row_bytes(precision, dim)) for precision in formats
                  if Precision(embedding=precision).table_precision(dim) == precision]
        # Equal groups of tables, one per call (a remainder smaller than a group is left
        # out), so that every call does the same work.
        per_group = min(count, max(1, MAX_IDS_PER_CALL // draws))
        starts = range(0, count - per_group + 1, per_group)
        # (Bounded by the buffer, so a small --quick buffer does not draw ids for a large LLC;
        # the narrowest row measured here sets how many rows fill the LLC's lines.)
        narrowest = min([row, *(size for _, size in stored)])
        touched = min(2 * llc, 4 * buffer_bytes) // max(narrowest, CACHE_LINE_BYTES)
        sets = max(1, math.ceil(touched / (count * draws)))
        ids = [[torch.from_numpy(distinct_ids(generator, rows, draws)) for _ in range(count)]
               for _ in range(sets)]
        offsets = torch.arange(0, draws, bag)
        for precision, size in [("fp32", row), *stored]:
            elements, unit = _row_view(buffer, precision)
            width = size // unit
            tables = [elements[i * rows * width:(i + 1) * rows * width].view(rows, width)
                      for i in range(count)]
            seconds = _repeat(_table_calls(tables, ids, offsets, starts, per_group,
                                           _pooling(precision)), settings)
            measured[(precision, size, rows * size, draws)] = summarize(
                precision_kind("gather_table", precision),
                table_gather_shape(size, rows * size, draws), "GB/s",
                _rates(per_group * draws * size, seconds, 1e9))
            del tables, elements
        del ids
    del buffer
    return list(measured.values())


def _table_calls(tables: list[Any], ids: list[list[Any]], offsets: Any, starts: range,
                 per_group: int, pool: Callable[[Any, Any, Any], Any]) -> Callable[[], None]:
    """One call of :func:`measure_table_gathers`: the next group of tables, each gathering
    its ids of the current set; after the last group, the next set."""
    turn = [0]

    def call() -> None:
        first = starts[turn[0] % len(starts)]
        id_set = ids[(turn[0] // len(starts)) % len(ids)]
        for index in range(first, first + per_group):
            pool(id_set[index], tables[index], offsets)
        turn[0] += 1

    return call


def measure_gemm(m: int, k: int, n: int, settings: CeilingSettings, kind: str = "gemm",
                 shape: str | None = None, dtype: str = "fp32") -> Ceiling:
    """A layer's product ``(m, k) x (k, n)`` plus bias in ``dtype``, as the models run it:
    ``F.linear`` on float32 or bfloat16 operands, or under ``int8`` the models' own
    dynamically quantized layer (:class:`recstack.models.layers.DynamicInt8Linear`: float32
    in and out, the input quantized in every call)."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(m * 31 + k * 7 + n)
    x = torch.rand((m, k), generator=generator)
    weight = torch.rand((n, k), generator=generator)
    bias = torch.rand((n,), generator=generator)
    if dtype == "int8":
        from recstack.models.layers import DynamicInt8Linear

        linear = torch.nn.utils.skip_init(torch.nn.Linear, k, n)
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        layer = DynamicInt8Linear(linear)
        seconds = _repeat(lambda: layer.forward(x), settings)
    else:
        if dtype == "bf16":
            x, weight, bias = (t.to(torch.bfloat16) for t in (x, weight, bias))
        seconds = _repeat(lambda: F.linear(x, weight, bias), settings)
    return summarize(kind, shape or f"{m}x{k}x{n}", "GFLOP/s",
                     _rates(2.0 * m * k * n, seconds, 1e9))


def measure_dispatch(settings: CeilingSettings) -> Ceiling:
    import torch

    one = torch.ones(1)
    seconds = _repeat(lambda: torch.add(one, 1), settings)
    return summarize("dispatch", "add 1 float", "us", [s * 1e6 for s in seconds])
