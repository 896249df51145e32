"""Small synthetic sample traces, one access pattern written in every trace format recstack
reads (``examples/traces`` holds them; ``python -m recstack.sample_traces DIR`` writes them
again, byte for byte).

They are made up, not measured: each table's ids come from a stream with temporal locality
(each access, with a table's reuse probability, repeats the id used a log-uniform number of
accesses earlier, up to :data:`REUSE_WINDOW`; otherwise it draws a fresh id from a bounded
Zipf law whose hot ids are scattered over the table), so a cache or a working-set analysis
finds in them what it finds in a real trace, in kind though not in measure. Every stream is
seeded from :data:`SEED`, and the writers leave no timestamp in their files.

- ``sample.pt.gz``: Meta's embedding-lookup format (:mod:`recstack.trace_files`), 4 tables
  of 2048 samples, bags of 1 to 8 ids, ids below 100,000;
- ``sample.csv`` and ``sample.parquet``: the same bags as tables of accesses
  (:mod:`recstack.trace_tables`);
- ``sample-criteo.tsv.gz``: 2048 Criteo-shaped click-log lines (:mod:`recstack.trace_criteo`):
  labels, 13 dense counts, 26 categorical columns of one id per sample from the same kind
  of stream, each id hashed to 32 bits as Criteo's are.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

SEED = 21
"""The seed of every stream (issue 21: real traces)."""
SAMPLES = 2048
TABLE_ROWS = (100_000, 40_000, 10_000, 2_000)
"""Rows of each of the four tables (ids are below them)."""
BAG_END = (0.62, 0.53, 0.45, 0.36)
"""Each table's chance that a bag ends after each id (geometric lengths cut at
:data:`MOST_IDS`: 1.6 to 2.7 ids on average, a long tail; the CSV stays about 200 KB)."""
MOST_IDS = 8
REUSE_PROBABILITY = (0.3, 0.4, 0.5, 0.6)
REUSE_WINDOW = 512
"""The most accesses back a reuse reaches."""
ZIPF_EXPONENT = 1.05
CRITEO_ROWS = tuple(round(10 ** (0.5 + 4.5 * j / 25)) for j in range(26))
"""Distinct values of each Criteo column: 3 to 100,000, log-spaced (Criteo's own run from
3 to about 10 million)."""
CRITEO_CLICK_RATE = 0.25
FILES = ("sample.pt.gz", "sample.csv", "sample.parquet", "sample-criteo.tsv.gz")

# Spawn-key tags keep the streams of each purpose in disjoint parts of the seed space.
_TABLE_IDS, _BAG_LENGTHS, _CRITEO_IDS, _CRITEO_DENSE, _CRITEO_LABELS = range(5)
_HASH_MULTIPLIER = 2654435761  # odd, so id -> id * m + c mod 2**32 is a bijection


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=key))


def access_stream(rng: np.random.Generator, accesses: int, rows: int, reuse: float) -> Any:
    """``accesses`` ids below ``rows`` ``(accesses,)`` int64, with temporal locality (see
    the module docstring)."""
    weights = np.arange(1, rows + 1, dtype=np.float64) ** -ZIPF_EXPONENT
    cdf = np.cumsum(weights) / weights.sum()
    ranks = np.minimum(np.searchsorted(cdf, rng.random(accesses), side="right"), rows - 1)
    stride = int(rng.integers(rows // 3, rows)) | 1
    while math.gcd(stride, rows) != 1:  # a bijection of the rows scatters the hot ids
        stride += 2
    ids = (ranks * stride + int(rng.integers(0, rows))) % rows
    reused = rng.random(accesses) < reuse
    distance = np.exp(rng.random(accesses) * math.log(REUSE_WINDOW)).astype(np.int64)
    for access in np.flatnonzero(reused):  # in order: a reuse of a reuse repeats its id
        if access:
            ids[access] = ids[access - min(int(distance[access]), access)]
    return ids.astype(np.int64)


def sample_bags() -> list[list[list[int]]]:
    """The sample access pattern: ``bags[table][sample]``, 4 tables x :data:`SAMPLES`."""
    bags = []
    for table, rows in enumerate(TABLE_ROWS):
        lengths = np.minimum(_rng(_BAG_LENGTHS, table).geometric(BAG_END[table], SAMPLES),
                             MOST_IDS)
        ids = access_stream(_rng(_TABLE_IDS, table), int(lengths.sum()), rows,
                            REUSE_PROBABILITY[table]).tolist()
        ends = np.cumsum(lengths).tolist()
        bags.append([ids[end - length:end] for end, length in zip(ends, lengths.tolist())])
    return bags


def sample_criteo() -> tuple[Any, Any, Any]:
    """(labels ``(SAMPLES,)``, dense ``(SAMPLES, 13)``, categorical ``(SAMPLES, 26)``) of
    the sample click log, categorical values hashed to 32 bits."""
    labels = (_rng(_CRITEO_LABELS).random(SAMPLES) < CRITEO_CLICK_RATE).astype(np.int64)
    dense_rng = _rng(_CRITEO_DENSE)
    scales = np.linspace(0.0, 4.0, 13)  # counts from about 1 to about 50 typical
    dense = np.floor(dense_rng.lognormal(scales, 1.0, (SAMPLES, 13))).astype(np.int64)
    columns = []
    for column, rows in enumerate(CRITEO_ROWS):
        ids = access_stream(_rng(_CRITEO_IDS, column), SAMPLES, rows, 0.3)
        columns.append((ids * _HASH_MULTIPLIER + column * 0x9E3779B9) % (1 << 32))
    return labels, dense, np.stack(columns, axis=1)


def write_sample_traces(directory: str | Path) -> list[Path]:
    """Writes the sample traces (:data:`FILES`) into ``directory`` (made if missing) and
    returns their paths; the same bytes every time."""
    from recstack.trace_criteo import write_criteo
    from recstack.trace_files import write_trace
    from recstack.trace_tables import write_table_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bags = sample_bags()
    torch_file, csv_file, parquet_file, criteo_file = (directory / name for name in FILES)
    return [write_trace(torch_file, bags, compress=True), write_table_file(csv_file, bags),
            write_table_file(parquet_file, bags), write_criteo(criteo_file, *sample_criteo())]


def main(argv: list[str] | None = None) -> int:
    """``python -m recstack.sample_traces DIR``: writes the sample traces into DIR."""
    parser = argparse.ArgumentParser(prog="python -m recstack.sample_traces",
                                     description="Write recstack's synthetic sample traces.")
    parser.add_argument("directory", help="where to write them (made if missing)")
    arguments = parser.parse_args(argv)
    for path in write_sample_traces(arguments.directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
