"""Traces as tables of accesses (CSV, CSV.gz, Parquet) read as untrusted input."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from recstack.errors import RecstackError
from recstack.trace_files import read_trace
from recstack.trace_tables import read_table_file, write_table_file

BAGS = [[[3, 1], [4], [1, 5, 9]], [[2], [6, 5], []]]  # 2 tables x 3 samples


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_written_bags_read_back(tmp_path: Path, name: str) -> None:
    path = write_table_file(tmp_path / name, BAGS)
    trace = read_trace(path)
    assert (trace.tables, trace.samples, trace.format) == (2, 3, "table")
    assert trace.offsets.tolist() == [0, 2, 3, 6, 7, 9, 9]
    assert trace.indices.tolist() == [3, 1, 4, 1, 5, 9, 2, 6, 5]
    assert trace.dense is None
    assert trace.digest == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    first = read_trace(path, max_samples=2)
    assert (first.tables, first.samples) == (2, 2)
    assert first.offsets.tolist() == [0, 2, 3, 4, 6]
    assert first.indices.tolist() == [3, 1, 4, 2, 6, 5]


def test_rows_in_any_order_keep_their_order_within_a_bag(tmp_path: Path) -> None:
    path = tmp_path / "shuffled.csv"
    path.write_text("id,sample,extra\n9,2,a\n3,0,b\n5,2,c\n1,0,d\n1,2,e\n")
    trace = read_table_file(path)
    assert (trace.tables, trace.samples) == (1, 3)  # no table column: one table
    assert trace.offsets.tolist() == [0, 2, 2, 5]  # sample 1 is an empty bag
    assert trace.indices.tolist() == [3, 1, 9, 5, 1]


def test_a_name_with_glob_characters_reads_that_file_only(tmp_path: Path) -> None:
    write_table_file(tmp_path / "t1.csv", [[[7]]])
    write_table_file(tmp_path / "tx.csv", [[[8]]])
    for name in ("t[1].csv", "t*.csv", "t?.parquet"):
        trace = read_trace(write_table_file(tmp_path / name, BAGS))
        assert trace.indices.tolist() == [3, 1, 4, 1, 5, 9, 2, 6, 5], name


def _refused(path: Path, text: str) -> None:
    with pytest.raises(RecstackError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert "\n" not in message and path.name in message and text in message, message


def test_malformed_tables_are_one_line_errors(tmp_path: Path) -> None:
    def csv(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    _refused(csv("noid.csv", "table,sample,ids\n0,0,1\n"),
             "no column 'id'; found 'table, sample, ids'")
    _refused(csv("nosample.csv", "id\n1\n"), "no column 'sample'")
    _refused(csv("float.csv", "sample,id\n0,1\n1,1.5\n"), "column 'id' holds '1.5'")
    _refused(csv("exp.csv", "sample,id\n0,1e3\n"), "column 'id' holds '1e3'")
    _refused(csv("word.csv", "table,sample,id\nx,0,1\n"), "column 'table' holds 'x'")
    _refused(csv("hole.csv", "sample,id\n0,\n"), "column 'id' holds an empty cell")
    _refused(csv("huge.csv", "sample,id\n0,99999999999999999999\n"),
             "holds '99999999999999999999'; expected integers")
    _refused(csv("negid.csv", "sample,id\n0,-4\n"), "column 'id' holds -4; expected non-neg")
    _refused(csv("negsample.csv", "sample,id\n-1,4\n"), "column 'sample' holds -1")
    _refused(csv("gap.csv", "table,sample,id\n0,0,1\n2,0,1\n3,0,1\n"),
             "tables must be numbered 0 to 3, every number used; no row has table 1")
    _refused(csv("nozero.csv", "table,sample,id\n1,0,1\n"), "no row has table 0")
    _refused(csv("far.csv", "sample,id\n1000000000000,1\n"), "more than 268435456 bags")
    _refused(csv("header.csv", "sample,id\n"), "holds no rows")
    _refused(csv("empty.csv", ""), "an empty file")
    good = write_table_file(tmp_path / "good.parquet", BAGS).read_bytes()
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(good[:len(good) // 2])
    _refused(damaged, "cannot be read as Parquet (")
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(b"sample,id\n" + b"0,1\n" * 5000)[:-40])
    _refused(cut, "cannot be read as CSV (")
    with pytest.raises(RecstackError, match="does not exist"):
        read_trace(tmp_path / "missing.parquet")


def test_a_parquet_column_of_floats_is_refused_not_rounded(tmp_path: Path) -> None:
    path = tmp_path / "float.parquet"
    frame = pd.DataFrame({"sample": [0, 1], "id": [1.0, 2.5]})
    connection = duckdb.connect()
    connection.from_df(frame).write_parquet(str(path))
    connection.close()
    _refused(path, "column 'id' holds '1.0'; expected integers")


def test_the_writer_refuses_ragged_bags_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same number of samples"):
        write_table_file(tmp_path / "x.csv", [[[1]], [[1], [2]]])
    with pytest.raises(ValueError, match="ends neither"):
        write_table_file(tmp_path / "x.json", BAGS)
