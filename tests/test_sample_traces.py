"""The sample traces recstack makes, and the copies shipped in examples/traces."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from recstack.sample_traces import (
    FILES,
    SAMPLES,
    TABLE_ROWS,
    main,
    sample_bags,
    sample_criteo,
    write_sample_traces,
)
from recstack.trace_files import Trace, read_trace

SHIPPED = Path(__file__).resolve().parent.parent / "examples" / "traces"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("traces")
    assert [path.name for path in write_sample_traces(directory)] == list(FILES)
    return directory


def _bags(trace: Trace) -> list[list[list[int]]]:
    return [[trace.table_ids(table)[int(start):int(end)].tolist()
             for start, end in zip(trace.table_offsets(table).tolist(),
                                   trace.table_offsets(table).tolist()[1:] +
                                   [len(trace.table_ids(table))])]
            for table in range(trace.tables)]


def _digests(directory: Path) -> dict[str, str]:
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
            for name in FILES}


def test_the_pattern_has_the_promised_shape() -> None:
    bags = sample_bags()
    assert len(bags) == len(TABLE_ROWS) == 4
    for table, rows in zip(bags, TABLE_ROWS):
        assert len(table) == SAMPLES
        assert {len(bag) for bag in table} == set(range(1, 9))
        ids = [i for bag in table for i in bag]
        assert 0 <= min(ids) and max(ids) < rows
        assert len(set(ids)) < len(ids) / 2  # hot ids and reuse: far fewer distinct ids


def test_the_torch_csv_and_parquet_files_hold_the_same_bags(written: Path) -> None:
    expected = sample_bags()
    for name in ("sample.pt.gz", "sample.csv", "sample.parquet"):
        trace = read_trace(written / name)
        assert (trace.tables, trace.samples) == (4, SAMPLES), name
        assert _bags(trace) == expected, name


def test_the_criteo_file_holds_the_click_log(written: Path) -> None:
    labels, _, categorical = sample_criteo()
    trace = read_trace(written / "sample-criteo.tsv.gz")
    assert (trace.tables, trace.samples) == (26, SAMPLES)
    assert trace.labels.tolist() == labels.tolist()
    for table in (0, 13, 25):
        assert trace.table_ids(table).tolist() == categorical[:, table].tolist()
    assert int(categorical.max()) < 1 << 32


def test_the_files_are_the_same_bytes_every_time(written: Path, tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    assert _digests(tmp_path) == _digests(written)


def test_the_shipped_files_are_what_recstack_writes_now(written: Path) -> None:
    """Text compared as text, binary formats as the trace they hold (a newer zlib, torch or
    DuckDB may encode the same content in other bytes)."""
    assert sorted(path.name for path in SHIPPED.iterdir()) == sorted([*FILES, "README.md"])
    assert (SHIPPED / "sample.csv").read_bytes() == (written / "sample.csv").read_bytes()
    assert gzip.decompress((SHIPPED / "sample-criteo.tsv.gz").read_bytes()) == \
        gzip.decompress((written / "sample-criteo.tsv.gz").read_bytes())
    for name in ("sample.pt.gz", "sample.parquet"):
        shipped, fresh = read_trace(SHIPPED / name), read_trace(written / name)
        assert (shipped.tables, shipped.samples) == (fresh.tables, fresh.samples), name
        assert shipped.indices.tolist() == fresh.indices.tolist(), name
        assert shipped.offsets.tolist() == fresh.offsets.tolist(), name
    for path in SHIPPED.iterdir():
        assert path.stat().st_size < 210_000, path.name
