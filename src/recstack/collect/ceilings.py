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
  size changes is how much of the address space the gathers range over (page-table reach:
  256 B rows gathered from 32 tables of 122 MiB in turn at 8.5 GB/s, from one 4 GiB table at
  3.8); what the run length ``n`` changes matters too (8 tables of
  512 MB: 4.3-4.5 GB/s at 82k ids per table, 5.2-5.4 at 2^20), so the canonical models'
  tables are measured at the run lengths their batches give them (``batch x pooling``, at
  least ``min_run_ids``), as the GEMMs are measured at each batch size's ``M``; a ladder of
  sizes at ``table_draws`` ids completes them, for every row size.
- ``gemm`` (``"MxKxN"``, GFLOP/s): ``F.linear`` (a product plus bias, as ``nn.Linear``) at every
  layer shape of the canonical models at the batch sizes 1 to 4096 (``M`` capped at
  ``gemm_max_m``; larger products are as fast as the cap's);
  ``gemm_large`` (``"NxNxN"``): a large square product.
- ``gemm_bf16``, ``gemm_large_bf16``: the same products on bfloat16 operands (a model's dense
  layers under ``dense=bf16``); ``gemm_int8``, ``gemm_large_int8``: the models' dynamically
  quantized layer (``quantized::linear_dynamic`` on a prepacked int8 weight, the float32 input
  quantized in every call, FLOPs counted as the float product's), at the shapes that run in
  int8 under ``dense=int8`` (DIEN's GRU stays fp32).
- ``gather_dram_int8``, ``gather_cached_int8``, ``gather_table_int8`` and the ``_int4`` kinds:
  the gathers above from tables stored row-wise quantized (torch's
  ``quantized::embedding_bag_byte_rowwise_offsets`` and ``..._4bit_...``), shapes in stored
  bytes (``row 40 B``: 32 values, scale and bias), at each row width the models store in that
  format; ``gather_table_<format>`` at every ``gather_table`` point of such a width, over the
  same tables in that format (as many, of as many rows) with the same ids.
- ``dispatch`` (``"add 1 float"``, microseconds per call): a tiny torch operator, the cost of
  going through the dispatcher once.
- ``cache`` (``"llc"``, bytes): the LLC size as the platform reports it; read, not measured.

Every kind is warmed up, then timed ``repeats`` times; each repeat runs enough calls to last
``min_seconds``. The median is the ceiling's value; p5, p95 and every sample are kept. Input
data (arrays, tables, ids) is made before any clock starts.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from recstack.ceiling_shapes import parse_table_gather_shape, precision_kind
from recstack.collect.ceiling_kernels import (Ceiling, CeilingSettings, gather_buffer,
                                              measure_dispatch, measure_gathers, measure_gemm,
                                              measure_table_gathers, measure_triad)
from recstack.errors import RecstackError

CEILING_COLUMNS = ["platform_id", "threads", "kind", "shape", "value", "unit", "p5", "p95",
                   "repeats", "samples", "measured_at", "recstack_version", "torch_version"]
# Used when the platform does not report its caches.
DEFAULT_LLC_BYTES = 32 << 20
MIN_DRAM_BYTES = 256 << 20
GEMM_PRECISIONS: tuple[str, ...] = ("bf16", "int8")
"""Dense precisions whose GEMMs are measured besides fp32's (``gemm_<p>``, ``gemm_large_<p>``)."""
GATHER_FORMATS: tuple[str, ...] = ("int8", "int4")
"""Table formats whose gathers are measured besides fp32's (fp16 and bf16 tables are bounded
at the fp32 gathers' rates, and the roofline says so)."""


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


# ---- what is measured -------------------------------------------------------------------------


def gemm_shapes(settings: CeilingSettings, dtype: str = "fp32") -> list[tuple[int, int, int]]:
    """The layer shapes to measure in ``dtype``, ``M`` capped at ``gemm_max_m``."""
    from recstack.batch_work import linear_gemm_shapes
    from recstack.specs import ZOO_NAMES, zoo_spec

    specs = [zoo_spec(name) for name in (settings.models or ZOO_NAMES)]
    shapes = linear_gemm_shapes(specs, settings.batch_sizes, dtype)
    return sorted({(min(m, settings.gemm_max_m), k, n) for m, k, n in shapes})


def table_gather_points(settings: CeilingSettings) -> list[tuple[int, int, int]]:
    """``(row_bytes, table_bytes, ids)`` of ``gather_table``: the models' own tables at the run
    lengths their batches give them (``settings.batch_sizes``; runs clamped to
    ``[min_run_ids, max_run_ids]``), and every row size the models read at every ladder size
    with ``table_draws`` ids."""
    from recstack.batch_work import table_gather_runs
    from recstack.specs import ZOO_NAMES, zoo_spec

    specs = [zoo_spec(name) for name in (settings.models or ZOO_NAMES)]
    own = {(row, table, min(max(run, settings.min_run_ids), settings.max_run_ids))
           for row, table, run in table_gather_runs(specs, settings.batch_sizes)}
    ladder = {(row, size, settings.table_draws) for row in row_sizes(settings)
              for size in settings.table_ladder}
    return sorted(ladder | own)


def row_sizes(settings: CeilingSettings) -> list[int]:
    from recstack.batch_work import gathered_row_bytes
    from recstack.specs import ZOO_NAMES, zoo_spec

    return gathered_row_bytes([zoo_spec(name) for name in (settings.models or ZOO_NAMES)])


def stored_row_sizes(settings: CeilingSettings, table_format: str) -> list[int]:
    """The stored row sizes (bytes) of the models' rows kept in ``table_format``: their fp32
    rows the format stores smaller (the others stay fp32 and are measured as such)."""
    from recstack.precision import Precision

    precision = Precision(embedding=table_format)
    return sorted({precision.table_row_bytes(row // 4) for row in row_sizes(settings)
                   if precision.table_precision(row // 4) == table_format})


def measure_ceilings(threads: int, platform: dict[str, Any],
                     settings: CeilingSettings | None = None,
                     available_bytes: int | None = None) -> list[Ceiling]:
    """Measures every kind at ``threads`` intra-op threads (set here, for this process)."""
    import torch

    from recstack.admission import available_memory_bytes

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
            for table_format in GATHER_FORMATS:
                stored = stored_row_sizes(settings, table_format)
                ceilings += measure_gathers(gathered, stored, settings,
                                            precision_kind("gather_dram", table_format),
                                            buffer=buffer, precision=table_format)
                ceilings += measure_gathers(cached, stored, settings,
                                            precision_kind("gather_cached", table_format),
                                            precision=table_format)
            ceilings += measure_table_gathers(gathered, table_gather_points(settings), llc,
                                              settings, buffer=buffer, formats=GATHER_FORMATS)
            del buffer
            size = settings.large_gemm
            for dtype in ("fp32", *GEMM_PRECISIONS):
                ceilings.append(measure_gemm(size, size, size, settings,
                                             precision_kind("gemm_large", dtype), dtype=dtype))
                ceilings += [measure_gemm(m, k, n, settings, precision_kind("gemm", dtype),
                                          dtype=dtype)
                             for m, k, n in gemm_shapes(settings, dtype)]
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
    one (a ``--quick`` set is never reused for a full measurement) and hold every kind the
    roofline reads."""
    triad = stored[stored.kind == "triad_dram"]
    # Ceilings stored before GEMMs were measured per dense precision are measured again (the
    # roofline of older sets bounds reduced-precision points at fp32's ceilings, and says so).
    if not {precision_kind("gemm_large", d) for d in GEMM_PRECISIONS} <= set(stored.kind):
        return False
    # Ceilings stored before gathers were measured per table size and run length are
    # measured again.
    runs = [parse_table_gather_shape(str(shape))
            for shape in stored[stored.kind == "gather_table"]["shape"]]
    if triad.empty or not any(run is not None and run[2] is not None for run in runs):
        return False
    size = triad_working_set(str(triad["shape"].iloc[0]))
    return size is not None and size >= wanted_dram_bytes // 2


def stored_covering(store: Any, identity: str, platform: dict[str, Any], threads: int,
                    settings: CeilingSettings, available: int) -> pd.DataFrame | None:
    """The platform's newest stored ceilings at ``threads`` when they cover what
    ``settings`` would measure with ``available`` memory (:func:`covers`), else None."""
    stored = store.load_ceilings(identity, threads)
    wanted, _ = working_sets(settings, llc_bytes(platform), available)
    return stored if not stored.empty and covers(stored, wanted) else None


def ensure_ceilings(store: Any, threads: int, refresh: bool = False,
                    settings: CeilingSettings | None = None,
                    available_bytes: int | None = None) -> tuple[pd.DataFrame, bool]:
    """This machine's ceilings at ``threads`` from ``store`` (a ResultStore), measured and
    stored first when absent, when the stored ones were measured smaller, or with
    ``refresh``. Returns (rows of the ``ceilings`` table, whether they were measured now)."""
    from recstack.admission import available_memory_bytes
    from recstack.platform_info import collect_platform, describe_platform, platform_id

    settings = settings or CeilingSettings()
    platform = collect_platform()
    identity = platform_id(platform)
    available = available_memory_bytes() if available_bytes is None else available_bytes
    stored = None if refresh else \
        stored_covering(store, identity, platform, threads, settings, available)
    if stored is not None:
        return stored, False
    ceilings = measure_ceilings(threads, platform, settings, available)
    frame = ceilings_frame(ceilings, identity, threads)
    store.write_ceilings(frame, platform, describe_platform(platform))
    return store.load_ceilings(identity, threads), True


def ensure_fleet_ceilings(store: Any, executor: Any, threads: int | None, refresh: bool,
                          settings: CeilingSettings) -> tuple[pd.DataFrame, bool]:
    """The ceilings of each platform a cluster's ``executor`` measures on, at ``threads``
    (default: each node's every CPU), each measured alone on a node of its platform where
    the store holds none that cover it (or with ``refresh``), and stored by this process.
    Returns (every platform's rows, whether any were measured now)."""
    from recstack.admission import available_memory_bytes

    # Judged against the memory of this machine, as the plan's admission is.
    available = available_memory_bytes()
    frames, measured = [], False
    for machine in executor.machines():
        count = threads or int(machine.info.get("usable_cores") or 1)
        stored = None if refresh else stored_covering(
            store, machine.platform_id, machine.info, count, settings, available)
        if stored is not None:
            frames.append(stored)
            continue
        node, frame = executor.measure_ceilings(machine, count, settings)
        store.write_ceilings(frame, node.info, node.description)
        frames.append(store.load_ceilings(node.platform_id, count))
        measured = True
    return pd.concat(frames, ignore_index=True), measured
