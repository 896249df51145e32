"""Trace files (Meta's embedding-lookup trace format), read as untrusted input."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from recstack.errors import RecstackError
from recstack.trace_files import read_trace, trace_format, write_trace

BAGS = [[[3, 1], [4], [1, 5, 9]], [[2], [6, 5], []]]  # 2 tables x 3 samples


@pytest.mark.parametrize("compress", [False, True])
def test_a_written_trace_reads_back_table_by_table(tmp_path: Path, compress: bool) -> None:
    trace = read_trace(write_trace(tmp_path / "t.pt", BAGS, compress=compress))
    assert (trace.tables, trace.samples) == (2, 3)
    assert trace.table_ids(0).tolist() == [3, 1, 4, 1, 5, 9]
    assert trace.table_offsets(0).tolist() == [0, 2, 3]
    assert trace.table_ids(1).tolist() == [2, 6, 5]
    assert trace.table_offsets(1).tolist() == [0, 1, 3]


class Payload:
    """Unpickling this would run code: a trace loader must refuse it unrun."""

    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/recstack-pwned",))


def _saved(tmp_path: Path, value: object, name: str = "bad.pt") -> Path:
    path = tmp_path / name
    torch.save(value, path)
    return path


def _refused(path: Path, text: str) -> None:
    with pytest.raises(RecstackError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert "\n" not in message and path.name in message and text in message, message


def test_hostile_and_malformed_traces_are_one_line_errors(tmp_path: Path) -> None:
    good = write_trace(tmp_path / "good.pt", BAGS)
    indices, offsets, lengths = torch.load(good, weights_only=True)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps((Payload(), offsets, lengths)))
    _refused(evil, "not a trace of plain tensors")
    assert not Path("/tmp/recstack-pwned").exists()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    _refused(truncated, "not a trace of plain tensors")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(gzip.compress(good.read_bytes())[:40])
    _refused(damaged, "truncated or damaged gzip")
    _refused(_saved(tmp_path, {"indices": indices}), "expected a tuple of three tensors")
    _refused(_saved(tmp_path, (indices.float(), offsets, lengths)),
             "indices must be a 1-D integer tensor")
    _refused(_saved(tmp_path, (indices, offsets[:-1], lengths)), "offsets has 6 values")
    _refused(_saved(tmp_path, (indices, offsets.flip(0), lengths)), "offsets must rise")
    _refused(_saved(tmp_path, (indices, offsets, lengths + 1)), "lengths differ")
    _refused(_saved(tmp_path, (indices - 4, offsets, lengths)), "ids must be non-negative")
    with pytest.raises(RecstackError, match="does not exist"):
        read_trace(tmp_path / "missing.pt")


def _one_line_error(call: Callable[[], object], name: str, text: str) -> None:
    with pytest.raises(RecstackError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and name in message and text in message, message


@pytest.mark.parametrize("name", ["t.pt", "t.pth", "t.pt.gz", "T.PTH.GZ"])
def test_the_format_follows_the_name(tmp_path: Path, name: str) -> None:
    path = write_trace(tmp_path / name, BAGS, compress=name.lower().endswith(".gz"))
    assert trace_format(path) == "torch"
    trace = read_trace(path)
    assert (trace.format, trace.dense, trace.labels) == ("torch", None, None)
    assert trace.table_ids(1).tolist() == [2, 6, 5]


def test_every_suffix_names_a_format() -> None:
    assert [trace_format(f"x{ending}") for ending in (".tsv", ".txt.gz", ".csv", ".csv.gz",
                                                      ".Parquet")] == \
        ["criteo", "criteo", "table", "table", "table"]


@pytest.mark.parametrize("name", ["t.json", "t.pt.bz2", "t.gz", "t", "t.parquet.gz"])
def test_an_unknown_name_is_a_one_line_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"anything")
    _one_line_error(lambda: read_trace(path), name, ".pt, .pth, .pt.gz")
    _one_line_error(lambda: read_trace(path), name, ".parquet")


def test_the_digest_is_of_the_file_as_stored(tmp_path: Path) -> None:
    plain = write_trace(tmp_path / "t.pt", BAGS)
    packed = write_trace(tmp_path / "t.pt.gz", BAGS, compress=True)
    for path in (plain, packed):
        assert read_trace(path).digest == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert read_trace(plain).digest != read_trace(packed).digest
    assert read_trace(plain, max_samples=1).digest == read_trace(plain).digest


def test_a_compressed_trace_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    first = write_trace(tmp_path / "a.pt.gz", BAGS, compress=True).read_bytes()
    assert write_trace(tmp_path / "b.pt.gz", BAGS, compress=True).read_bytes() == first


def test_max_samples_keeps_the_first_samples(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "t.pt", BAGS)
    trace = read_trace(path, max_samples=2)
    assert (trace.tables, trace.samples) == (2, 2)
    assert trace.table_ids(0).tolist() == [3, 1, 4]
    assert trace.table_offsets(0).tolist() == [0, 2]
    assert trace.table_ids(1).tolist() == [2, 6, 5]
    assert trace.offsets.tolist() == [0, 2, 3, 4, 6]
    assert read_trace(path, max_samples=1).indices.tolist() == [3, 1, 2]
    whole = read_trace(path, max_samples=99)
    assert whole.samples == 3 and whole.indices.tolist() == read_trace(path).indices.tolist()
    for bad in (0, -1, 1.5, True):
        _one_line_error(lambda bad=bad: read_trace(path, "--queries", max_samples=bad),
                        "--queries", "max_samples")
