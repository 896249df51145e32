"""Per-table reuse profiles learnt from embedding-access traces, and synthetic ids drawn from
them at any length and table size, so their LRU hit rate at every cache size follows the
trace's (:mod:`recstack.analysis.trace_fit` measures how well).

A :class:`TableProfile` holds what an LRU cache sees of a table's stream: the share of new
rows, the distribution of the reuses' stack distances (distinct rows between two accesses
to a row, as :mod:`recstack.analysis.stack_distance` counts them) and where first touches
land in the id space. Two fits: :func:`fit_table`, recstack's (every reuse however far
back, corrected for the trace's cut; distances 0..63 exact, then 8 log-spaced bins per
octave; a first-touch histogram), and :func:`fit_table_deeprecsys`, DeepRecSys's
(harvard-acc/DeepRecSys data_generator/trace_profile.py, reimplemented): a reuse is seen
only within the last ``window`` accesses, every distinct distance is a bin (their distances
count the reused row itself: theirs = ours + 1), first touches are uniform; and
:func:`generate_ids` with that profile is their trace_generator.py, whose stack starts as
a random permutation of the table. Profile files are JSON, read as untrusted input; many
DeepRecSys tables (up to ``window`` bins each) outgrow one file, which
:func:`write_profile` refuses before writing anything.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from recstack.analysis.stack_distance import COLD, as_numpy, previous_occurrence, stack_distances
from recstack.errors import RecstackError
from recstack.limits import is_integer
from recstack.paths import write_atomically
from recstack.text import shown

FORMAT = "recstack-reuse-profile"
VERSION = 1
METHODS = ("recstack", "deeprecsys")
MOST_WEIGHT = 16.0
"""The most a reuse seen at a distance few accesses could show is weighted up in a fit."""
EXACT_DISTANCES = 64
"""Distances below this get a bin each in recstack's fit; the short reuses set small caches."""
BINS_PER_OCTAVE = 8
FIRST_TOUCH_BINS = 256
DEEPRECSYS_WINDOW = 10000
"""DeepRecSys's default ``max_stack_distance``: accesses a reuse may look back."""
MAX_ROWS = 1 << 52  # keeps bin arithmetic (bin * rows) inside int64
MAX_GENERATED_ROWS = 1 << 33  # generation keeps a bitmap of touched rows: rows / 8 bytes
MOST_FILE_BYTES, MOST_VALUES = 64 << 20, 8_000_000  # a profile of Meta's 856 tables: ~6 MB
_CHUNK = 1 << 20  # accesses whose random numbers are drawn at once


@dataclass(frozen=True)
class TableProfile:
    """One table's reuse profile. ``cold_fraction``: the share of accesses that take a new
    row (recstack: the stream's own rate, the trace's first touches less those its cut
    explains; deeprecsys: no reuse within the window). ``distance_edges`` (increasing,
    ``k + 1`` ints) bound the reuse bins ``[edges[i], edges[i+1])``, ``distance_counts``
    (``k`` counts) the reuses in each; a drawn bin gives a uniform distance within it.
    ``first_touch``: probabilities of first touches over equal slices of the normalised id
    space (row / ``rows``). ``accesses``, ``unique_rows``: the trace's; ``rows``: the id
    space fitted on; ``method``: ``"recstack"`` or ``"deeprecsys"``, which also says how
    :func:`generate_ids` treats a distance the stack cannot hold yet."""

    cold_fraction: float
    distance_edges: tuple[int, ...]
    distance_counts: tuple[int, ...]
    first_touch: tuple[float, ...]
    accesses: int
    unique_rows: int
    rows: int
    method: str = "recstack"

    def __post_init__(self) -> None:
        _check_table({f.name: getattr(self, f.name) for f in fields(self)}, "TableProfile")

    def reuse_probabilities(self) -> np.ndarray:
        """``(bins,)`` probability of each reuse bin over all accesses (sums to 1 - cold)."""
        counts = np.asarray(self.distance_counts, dtype=np.float64)
        return counts * ((1.0 - self.cold_fraction) / max(counts.sum(), 1.0))


@dataclass(frozen=True)
class TraceProfile:
    """The profiles of a trace's tables; ``source``: the trace's name, ``source_digest``: a
    hash of its ids (see :func:`streams_digest`)."""

    source: str
    source_digest: str
    tables: tuple[TableProfile, ...]


# ---- fitting -----------------------------------------------------------------------------


def _stream(stream: Any, rows: int | None) -> tuple[np.ndarray, int]:
    array = as_numpy(stream)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise RecstackError(f"a stream to fit must be a non-empty 1-D array of integer ids, "
                            f"got shape {tuple(array.shape)} of {array.dtype}")
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if low < 0:
        raise RecstackError(f"a stream to fit holds id {low}; expected ids >= 0")
    rows = high + 1 if rows is None else rows
    if _bad_int(rows, 1) or rows <= high or rows > MAX_ROWS:
        raise RecstackError(f"rows {rows!r} is not allowed; expected an integer above the "
                            f"largest id {high}, at most {MAX_ROWS}")
    return array, int(rows)


def _binned(distances: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None,
            most: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Counts (``weights`` summed, rounded) of ``distances`` in ``edges``' bins, scaled down
    to sum to at most ``most`` when given, runs of empty bins merged into one."""
    sums = np.histogram(distances, bins=edges, weights=weights)[0]
    counts = np.rint(sums).astype(np.int64)
    if most and counts.sum() > most:  # the weights overshoot: no room left for new rows
        counts = np.floor(sums * (most / sums.sum())).astype(np.int64)
    keep = np.ones(counts.size, dtype=bool)
    keep[1:] = (counts[1:] != 0) | (counts[:-1] != 0)  # the first bin of an empty run stays
    return (tuple(int(e) for e in edges[np.append(keep, True)]),
            tuple(int(c) for c in counts[keep]))


def fit_table(stream: np.ndarray, rows: int | None = None) -> TableProfile:
    """recstack's profile of ``stream`` (``(n,)`` ids, numpy or torch; ``rows``: the table's
    size, default the largest id + 1): exact stack distances over the whole stream.

    A trace is cut out of a longer stream: a reuse at distance ``d`` shows as one only at
    accesses with more than ``d`` distinct rows before them in the trace, and as a first
    touch elsewhere. So each bin counts its reuses weighted by accesses over such accesses
    (at most :data:`MOST_WEIGHT`, which bounds the noise of the rare longest reuses), and
    ``cold_fraction`` is what remains: the stream's own rate of new rows, which
    :func:`generate_ids` cuts the same way."""
    stream, rows = _stream(stream, rows)
    distances = stack_distances(stream)
    cold = distances == COLD
    reuses = distances[~cold]
    before = np.cumsum(cold) - cold  # distinct rows before each access, never decreasing
    chances = stream.size - np.searchsorted(before, reuses, side="right")
    weights = stream.size / np.maximum(chances, stream.size / MOST_WEIGHT)
    largest = int(reuses.max()) if reuses.size else 0
    octaves = max(0.0, math.log2((largest + 1) / EXACT_DISTANCES))
    steps = np.arange(1, math.ceil(octaves * BINS_PER_OCTAVE) + 1)
    wide = np.round(EXACT_DISTANCES * 2.0 ** (steps / BINS_PER_OCTAVE)).astype(np.int64)
    edges = np.unique(np.concatenate([np.arange(EXACT_DISTANCES + 1), wide]))
    edges = np.append(edges[edges <= largest], largest + 1)  # the last bin ends at the largest
    edges_out, counts = _binned(reuses, edges, weights, most=stream.size)
    touches = np.bincount(stream[cold] * FIRST_TOUCH_BINS // rows, minlength=FIRST_TOUCH_BINS)
    return TableProfile(1.0 - sum(counts) / stream.size, edges_out, counts,
                        tuple((touches / touches.sum()).tolist()), int(stream.size),
                        int(np.count_nonzero(cold)), rows, "recstack")


def fit_table_deeprecsys(stream: np.ndarray, rows: int | None = None,
                         window: int = DEEPRECSYS_WINDOW) -> TableProfile:
    """DeepRecSys's profile of ``stream``: a reuse whose previous access is more than
    ``window`` accesses back counts as new; every distinct distance is a bin; first touches
    uniform."""
    stream, rows = _stream(stream, rows)
    if _bad_int(window, 1):
        raise RecstackError(f"window {window!r} is not allowed; expected an integer >= 1")
    previous = previous_occurrence(stream)
    distances = stack_distances(stream)
    seen = (previous >= 0) & (np.arange(stream.size) - previous <= window)
    reuses = distances[seen]
    values = np.unique(reuses)
    edges = np.unique(np.concatenate([values, values + 1])) if values.size else np.array([0, 1])
    edges_out, counts = _binned(reuses, edges)
    return TableProfile(float(1.0 - seen.mean()), edges_out, counts, (1.0,),
                        int(stream.size), int(np.count_nonzero(distances == COLD)), rows,
                        "deeprecsys")


def streams_digest(streams: list[np.ndarray]) -> str:
    """A SHA-256 of the tables' ids, to tie a profile to the trace it came from."""
    digest = hashlib.sha256()
    for stream in streams:
        digest.update(np.ascontiguousarray(as_numpy(stream), dtype="<i8").tobytes())
        digest.update(b"|")
    return digest.hexdigest()


# ---- generation --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    from recstack.collect.native import build_shared_library, find_compiler

    compiler = find_compiler("CC", ("cc", "gcc", "clang"), "C",
                             "synthetic traces compile a small LRU stack helper")
    flags = ["-shared", "-fPIC", "-O2", "-ffp-contract=off"]  # no FMA: equal ids everywhere
    library = ctypes.CDLL(str(build_shared_library("lru_generate.c", compiler, flags)))
    function = library.recstack_lru_generate
    function.argtypes = ([ctypes.c_int64] * 4 + [ctypes.c_void_p] * 2
                         + [ctypes.c_double, ctypes.c_int64] + [ctypes.c_void_p] * 3
                         + [ctypes.c_int64, ctypes.c_int] + [ctypes.c_void_p] * 3)
    function.restype = ctypes.c_int64
    return library


class _FirstTouches:
    """Rows never touched before, in order: a bin of the first-touch histogram (scaled to
    ``rows``), then a uniform row within it, rejected when already touched; full bins drop
    out, and when every bin with weight is full any untouched row is as likely. A bin over
    half full serves a shuffled list of its untouched rows instead, so rejections stay
    under one in two. Touched rows are bits of a bitmap (rows / 8 bytes)."""

    def __init__(self, weights: tuple[float, ...], rows: int, rng: np.random.Generator):
        count = len(weights)
        self.low = (np.arange(count + 1, dtype=np.int64) * rows + count - 1) // count
        self.size = np.diff(self.low)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.filled = np.zeros(count, dtype=np.int64)
        self.lists: dict[int, list[Any]] = {}  # bin -> [shuffled untouched rows, next]
        self.bits = np.zeros((rows + 7) // 8, dtype=np.uint8)
        self.rng, self.rows = rng, rows

    def take(self, wanted: int) -> np.ndarray:
        taken: list[np.ndarray] = []
        while wanted > 0 and int(self.filled.sum()) < self.rows:
            room = self.size - self.filled
            weights = np.where(room > 0, self.weights, 0.0)
            if weights.sum() <= 0:
                weights = room.astype(np.float64)
            cumulative = np.cumsum(weights)
            draws = int(min(1 << 22, wanted * 2.5 + 16))  # over half the draws are new
            picks = self.rng.random(draws) * cumulative[-1]  # rounding may not reach a 0 bin:
            bins = np.minimum(np.searchsorted(cumulative, picks, side="right"),
                              np.flatnonzero(weights)[-1])
            within = (self.rng.random(draws) * self.size[bins]).astype(np.int64)
            rows = self.low[bins] + np.minimum(within, self.size[bins] - 1)
            fresh = np.zeros(draws, dtype=bool)  # the first draw of a row not yet touched
            fresh[np.unique(rows, return_index=True)[1]] = True
            fresh &= ((self.bits[rows >> 3] >> (rows & 7).astype(np.uint8)) & 1) == 0
            listed = np.flatnonzero(np.isin(bins, list(self.lists)))
            fresh[listed] = False
            order = listed[np.argsort(bins[listed], kind="stable")]
            keys, firsts, sizes = np.unique(bins[order], return_index=True, return_counts=True)
            for index, first, size in zip(keys.tolist(), firsts.tolist(), sizes.tolist()):
                shuffled, at = self.lists[index]  # a listed bin's draws take its list
                mine = order[first:first + size][:shuffled.size - at]
                rows[mine], fresh[mine] = shuffled[at:at + mine.size], True
            chosen = np.flatnonzero(fresh)[:wanted]
            new, used = rows[chosen], np.bincount(bins[chosen], minlength=weights.size)
            for index in self.lists:
                self.lists[index][1] += int(used[index])
            marked = new[~np.isin(bins[chosen], list(self.lists))]
            np.bitwise_or.at(self.bits, marked >> 3, (1 << (marked & 7)).astype(np.uint8))
            self.filled += used
            for index in np.flatnonzero((self.filled * 2 > self.size) & (room > 0)).tolist():
                if index not in self.lists:  # rows of listed bins need no marks from here
                    low, high = int(self.low[index]), int(self.low[index + 1])
                    bits = np.unpackbits(self.bits[low >> 3:(high + 7) >> 3], bitorder="little")
                    untouched = low + np.flatnonzero(bits[low & 7:(low & 7) + high - low] == 0)
                    self.lists[index] = [self.rng.permutation(untouched), 0]
            taken.append(new)
            wanted -= new.size
        return np.concatenate(taken) if taken else np.empty(0, dtype=np.int64)


def generate_ids(profile: TableProfile, n: int, rows: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` int64 ids in ``[0, rows)``: one continuous LRU stream drawn from
    ``profile``, starting empty. Each access draws a first touch or a stack distance; a
    distance ``d`` the stack cannot hold yet (``d`` >= the distinct rows so far) is, for a
    recstack profile, a first touch (as a trace cut out of a longer stream shows it; see
    :func:`fit_table`), for a DeepRecSys profile redrawn among the feasible outcomes, as
    their generator does. A first touch takes a new row (see :class:`_FirstTouches`), or
    the least recently used row once all ``rows`` are touched; distance ``d`` takes the row
    at depth ``d`` of the LRU stack (0 = most recent) to the top. The random numbers come
    from ``rng`` and the stack runs in C (:file:`collect/lru_generate.c`), so equal ``rng``
    states give equal ids on every machine."""
    if _bad_int(n, 0) or n >= 1 << 31:
        raise RecstackError(f"n {n!r} is not allowed; expected an integer in [0, 2**31)")
    if _bad_int(rows, 1) or rows > MAX_GENERATED_ROWS:
        raise RecstackError(f"rows {rows!r} is not allowed; expected an integer in "
                            f"[1, {MAX_GENERATED_ROWS}]")
    function = _library().recstack_lru_generate
    out = np.zeros(n, dtype=np.int64)
    tree = np.zeros(n + 1, dtype=np.int32)
    state = np.zeros(2, dtype=np.int64)
    edges = np.asarray(profile.distance_edges, dtype=np.int64)
    cum = np.cumsum(profile.reuse_probabilities())
    touches = _FirstTouches(profile.first_touch, rows, rng)
    fresh = np.zeros(0, dtype=np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        u, v = rng.random(stop - start), rng.random(stop - start)
        at = start
        while at < stop:
            at = function(at, stop, n, rows, u[at - start:].ctypes.data,
                          v[at - start:].ctypes.data, profile.cold_fraction, cum.size,
                          edges.ctypes.data, cum.ctypes.data, fresh.ctypes.data, fresh.size,
                          int(profile.method == "deeprecsys"), state.ctypes.data,
                          tree.ctypes.data, out.ctypes.data)
            if at < stop:
                fresh = touches.take(int((stop - at) * profile.cold_fraction * 1.1) + 64)
                state[1] = 0
                if fresh.size == 0:  # the stack says rows remain untouched; never reached
                    raise RecstackError("the id generator ran out of untouched rows")
    return out


# ---- files -------------------------------------------------------------------------------


def _bad_int(value: Any, least: int) -> bool:
    return not is_integer(value) or value < least


def _ints(value: Any, least: int) -> bool:
    return isinstance(value, (list, tuple)) and all(not _bad_int(x, least) and x <= 1 << 62
                                                    for x in value)


def _check_table(values: dict[str, Any], where: str) -> None:
    """One-line RecstackError naming ``where`` and the field when a table's fields are not
    a profile; ``values`` maps field names to plain values."""
    def fail(field: str, allowed: str) -> RecstackError:
        return RecstackError(f"{where}.{field}: {shown(values.get(field))} is not allowed; "
                             f"expected {allowed}")

    for field in ("accesses", "unique_rows", "rows"):
        if _bad_int(values[field], 1) or values[field] > MAX_ROWS:
            raise fail(field, f"an integer in [1, {MAX_ROWS}]")
    if values["unique_rows"] > min(values["accesses"], values["rows"]):
        raise fail("unique_rows", "at most accesses and rows")
    if values["method"] not in METHODS:
        raise fail("method", f"one of {', '.join(METHODS)}")
    cold = values["cold_fraction"]
    if isinstance(cold, bool) or not isinstance(cold, (int, float)) or not 0 <= cold <= 1:
        raise fail("cold_fraction", "a number in [0, 1]")
    edges, counts = values["distance_edges"], values["distance_counts"]
    if not _ints(edges, 0) or len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise fail("distance_edges", "at least two strictly increasing integers >= 0")
    if not _ints(counts, 0) or len(counts) != len(edges) - 1:
        raise fail("distance_counts", "one integer >= 0 per bin between the edges")
    reuses = values["accesses"] * (1.0 - cold)
    if abs(sum(counts) - reuses) > 0.5 + 1e-9 * values["accesses"]:
        raise fail("distance_counts", f"reuse counts summing to accesses x (1 - "
                                      f"cold_fraction) = {reuses:.1f}")
    touch = values["first_touch"]
    if (not isinstance(touch, (list, tuple)) or not 1 <= len(touch) <= 1 << 16
            or any(isinstance(p, bool) or not isinstance(p, (int, float))
                   or not 0.0 <= p <= 1.0 for p in touch)
            or abs(math.fsum(touch) - 1.0) > 1e-6):
        raise fail("first_touch", "1 to 65536 probabilities in [0, 1] summing to 1")


def _table_document(table: TableProfile) -> dict[str, Any]:
    return {f.name: (list(value) if isinstance(value := getattr(table, f.name), tuple)
                     else value) for f in fields(table)}


def write_profile(path: str | Path, profile: TraceProfile) -> None:
    """``profile`` as a JSON file that :func:`read_profile` reads back; nothing is written
    when it would be too large to read."""
    document = {"format": FORMAT, "version": VERSION, "source": profile.source,
                "source_digest": profile.source_digest,
                "tables": [_table_document(table) for table in profile.tables]}
    text = json.dumps(document, separators=(",", ":")) + "\n"
    values = 6 + sum(len(t["distance_edges"]) + len(t["distance_counts"])
                     + len(t["first_touch"]) + 12 for t in document["tables"])
    if len(text.encode()) > MOST_FILE_BYTES or values > MOST_VALUES:
        raise RecstackError(f"{Path(path).name}: the profile would take {len(text)} bytes and "
                            f"{values} values, more than a profile file may hold "
                            f"({MOST_FILE_BYTES} bytes, {MOST_VALUES} values); write fewer "
                            "tables per file")
    write_atomically(Path(path), text)  # a whole file or none


def read_profile(path: str | Path, option: str = "--profile") -> TraceProfile:
    """The profile in ``path``, a file from outside: every field checked, one-line
    RecstackError naming the file and the field."""
    from recstack.userfiles import load_json, read_text

    name = Path(path).name
    data = load_json(read_text(path, option, MOST_FILE_BYTES), name, MOST_VALUES)
    if not isinstance(data, dict):
        raise RecstackError(f"{name}: expected a JSON object (a recstack reuse profile), "
                            f"got {type(data).__name__}")
    if data.get("format") != FORMAT or data.get("version") not in (VERSION,) \
            or isinstance(data.get("version"), bool):
        raise RecstackError(f"{name}: format, version: {shown(data.get('format'))}, "
                            f"{shown(data.get('version'))} is not allowed; expected "
                            f"{FORMAT!r}, {VERSION}")
    for field in ("source", "source_digest"):
        if not isinstance(data.get(field), str):
            raise RecstackError(f"{name}: {field}: expected a string")
    tables = data.get("tables")
    if not isinstance(tables, list) or not tables:
        raise RecstackError(f"{name}: tables: expected a non-empty list of table profiles")
    names = {f.name for f in fields(TableProfile)}
    profiles = []
    for index, table in enumerate(tables):
        where = f"{name}: tables[{index}]"
        if not isinstance(table, dict):
            raise RecstackError(f"{where}: expected an object")
        if set(table) != names:
            raise RecstackError(f"{where}: fields {shown(sorted(map(str, table)))} are not "
                                f"allowed; expected {', '.join(sorted(names))}")
        _check_table(table, where)
        profiles.append(TableProfile(**{key: tuple(value) if isinstance(value, list) else value
                                        for key, value in table.items()}))
    return TraceProfile(data["source"], data["source_digest"], tuple(profiles))
