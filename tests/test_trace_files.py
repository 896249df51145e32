"""Trace files (Meta's embedding-lookup trace format), read as untrusted input."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import pytest
import torch

from recstack.errors import RecstackError
from recstack.trace_files import read_trace, write_trace

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
