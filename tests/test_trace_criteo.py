"""Criteo click logs read as traces, as untrusted input."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from recstack.errors import RecstackError
from recstack.trace_criteo import read_criteo, write_criteo
from recstack.trace_files import read_trace

SAMPLES = 6


def _log(samples: int = SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    categorical = rng.integers(0, 1 << 32, (samples, 26))
    categorical[0, :3] = (0, 0xFFFFFFFF, 0x1234)
    return rng.integers(0, 2, samples), rng.integers(0, 5000, (samples, 13)), categorical


def _line(label: str = "1", dense: list[str] | None = None,
          categorical: list[str] | None = None) -> str:
    dense = dense if dense is not None else [str(n) for n in range(13)]
    categorical = categorical if categorical is not None else ["68fd1e64"] * 26
    return "\t".join([label, *dense, *categorical]) + "\n"


@pytest.mark.parametrize("name", ["day.tsv", "day.txt.gz"])
def test_a_written_log_reads_back_as_26_one_id_tables(tmp_path: Path, name: str) -> None:
    labels, dense, categorical = _log()
    path = write_criteo(tmp_path / name, labels, dense, categorical)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    trace = read_trace(path)
    assert (trace.tables, trace.samples, trace.format) == (26, SAMPLES, "criteo")
    assert trace.offsets.tolist() == list(range(26 * SAMPLES + 1))
    for table in range(26):
        assert trace.table_ids(table).tolist() == categorical[:, table].tolist()
    assert trace.dense.dtype == torch.float32 and tuple(trace.dense.shape) == (SAMPLES, 13)
    expected = torch.log(torch.tensor(dense, dtype=torch.float32) + 1)
    assert torch.allclose(trace.dense, expected)
    assert np.allclose(trace.dense.numpy(), np.log(dense + 1.0), rtol=1e-6)
    assert trace.labels.tolist() == labels.tolist()
    assert trace.digest == hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_max_samples_reads_only_the_first_lines(tmp_path: Path) -> None:
    labels, dense, categorical = _log()
    path = write_criteo(tmp_path / "day.tsv.gz", labels, dense, categorical)
    whole = path.read_bytes()
    path.write_bytes(whole + b"not gzip at all")  # never reached with max_samples
    trace = read_trace(path, max_samples=2)
    assert (trace.samples, tuple(trace.dense.shape)) == (2, (2, 13))
    assert trace.table_ids(5).tolist() == categorical[:2, 5].tolist()
    assert trace.offsets.tolist() == list(range(26 * 2 + 1))
    assert trace.digest == hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_missing_and_negative_values_read_as_dlrm_reads_them(tmp_path: Path) -> None:
    dense = ["", "-3", "7"] + ["0"] * 10
    categorical = ["", "A0", "ffffffffffffff", "7fffffffffffffff"] + ["1"] * 22
    path = tmp_path / "raw.tsv"
    path.write_text(_line("0", dense, categorical))
    trace = read_criteo(path)
    assert trace.dense[0, :3].tolist() == pytest.approx([0.0, 0.0, float(np.log(8.0))])
    assert [int(trace.table_ids(t)[0]) for t in range(4)] == \
        [0, 0xA0, 0xFFFFFFFFFFFFFF, (1 << 63) - 1]
    assert trace.labels.tolist() == [0.0]


def _refused(path: Path, text: str) -> None:
    with pytest.raises(RecstackError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert "\n" not in message and path.name in message and text in message, message


def test_malformed_logs_are_one_line_errors(tmp_path: Path) -> None:
    def written(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    good = _line()
    _refused(written("short.tsv", good * 2 + good.replace("\t", "", 1)),
             "line 3 has 39 fields; expected 40")
    _refused(written("long.tsv", good + good.replace("\n", "\t5\n")),
             "line 2 has 41 fields")
    _refused(written("blank.tsv", good + "\n" + good), "line 2 has 1 fields")
    _refused(written("dense.tsv", _line(dense=["1.5"] + ["0"] * 12)),
             "line 1, dense feature 1 (field 2): '1.5' is not an integer")
    _refused(written("word.tsv", good + _line(dense=["0"] * 12 + ["x"])),
             "line 2, dense feature 13 (field 14): 'x' is not an integer")
    _refused(written("hex.tsv", _line(categorical=["68fd1e64"] * 25 + ["zz"])),
             "line 1, categorical feature 26 (field 40): 'zz' is not hexadecimal")
    _refused(written("long-hex.tsv", _line(categorical=["1" * 17] * 26)),
             "is not hexadecimal (1 to 16 digits)")
    _refused(written("huge.tsv", _line(categorical=["8000000000000000"] * 26)),
             "categorical feature 1: '8000000000000000' is too large")
    _refused(written("label.tsv", good + _line(label="2")), "line 2: label '2' is not")
    _refused(written("nolabel.tsv", _line(label="")), "line 1: label '' is not")
    _refused(written("crlf.tsv", good.replace("\n", "\r\n")), "is not hexadecimal")
    _refused(written("empty.tsv", ""), "an empty file")
    _refused(written("empty.tsv.gz", gzip.compress(b"")), "an empty file")
    _refused(written("binary.tsv", b"\xff\xfe\x00" * 50), "not UTF-8 text")
    _refused(written("cut.tsv.gz", gzip.compress((good * 200).encode())[:-30]),
             "a truncated or damaged gzip file")
    _refused(written("fake.tsv.gz", b"\x1f\x8bnot really gzip"),
             "a truncated or damaged gzip file")
    with pytest.raises(RecstackError, match="does not exist"):
        read_trace(tmp_path / "missing.tsv")


def test_the_writer_refuses_what_criteo_cannot_hold(tmp_path: Path) -> None:
    labels, dense, categorical = _log()
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        write_criteo(tmp_path / "x.tsv", labels + 1, dense, categorical)
    with pytest.raises(ValueError, match="expected labels"):
        write_criteo(tmp_path / "x.tsv", labels, dense[:, :12], categorical)
