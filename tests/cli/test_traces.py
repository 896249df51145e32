"""Traces at the command line: a sweep and the main job fed by a trace (the store and the
report name it and what was folded), `locality --trace`, and every bad trace refused in one
line with nothing written."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from recstack.store import ResultStore
from recstack.trace_files import write_trace
from tests.cli.test_hostile_input import assert_refused, cli, work  # noqa: F401

TINY = ["--batch-sizes", "4", "--threads", "1", "--min-time", "0.02", "--row-scale", "0.0001"]


def _trace(path: Path, tables: int = 8, samples: int = 32, high: int = 1000) -> Path:
    rng = np.random.default_rng(1)
    bags = [[rng.integers(0, high, size=int(rng.integers(1, 4))).tolist()
             for _ in range(samples)] for _ in range(tables)]
    return write_trace(path, bags)


@pytest.mark.slow
def test_a_sweep_on_a_trace_stores_the_folding_and_the_report_names_the_trace(
        tmp_path: Path) -> None:
    trace = _trace(tmp_path / "mine.pt")
    store = tmp_path / "r.duckdb"
    code, out, err = cli("sweep", "-m", "rmc1", *TINY, "--queries", f"trace:{trace}",
                         "--store", str(store), "--backend", "fused")
    assert code == 0, err
    assert "rmc1 reads trace mine.pt (32 samples, sequential" in out
    points = ResultStore(store).query("SELECT query, folded_fraction, status FROM points")
    assert list(points.status) == ["ok"]
    query = json.loads(points["query"][0])
    assert query["distribution"] == "trace" and query["source"] == str(trace)
    rows = 400  # RMC1's 4M rows x 1e-4: ids of up to 999 fold
    expected = np.mean([i >= rows for i in _all_ids(trace)])
    assert points.folded_fraction[0] == pytest.approx(expected)
    markdown = tmp_path / "r.md"
    code, _, err = cli("report", "--store", str(store), "--markdown", str(markdown),
                       "--html", str(tmp_path / "r.html"))
    assert code == 0, err
    text = markdown.read_text()
    assert "Queries: where the embedding ids came from" in text
    assert "trace mine.pt (" in text and f"{100 * expected:.0f}%" in text


def _all_ids(path: Path) -> list[int]:
    indices, _, _ = torch.load(path, weights_only=True)
    return indices.tolist()


@pytest.mark.slow
def test_the_main_job_runs_on_a_trace_and_its_report_names_it(tmp_path: Path) -> None:
    from recstack.main_job import run_main_job
    from recstack.trace_queries import file_query

    trace = _trace(tmp_path / "log.pt", tables=26)
    query = file_query("trace", trace, table_map=tuple(range(8)))
    result = run_main_job(["rmc1"], tmp_path / "r.duckdb", levels=("timing",), quick=True,
                          batch_sizes=[4], threads=[1], row_scale=1e-4, min_time=0.02,
                          query=query)
    stored = result.store.query("SELECT DISTINCT CAST(query AS VARCHAR) AS q FROM points "
                                "WHERE run_id = ?", [result.run_id])
    assert [json.loads(q)["source_digest"] for q in stored.q] == [query.source_digest]
    report = next(path for path in result.reports if path.suffix == ".md").read_text()
    assert f"trace log.pt ({query.source_digest[:8]}, tables 0..7 as the model's)" in report


def test_locality_of_a_trace_alone_and_on_a_model(tmp_path: Path) -> None:
    trace = _trace(tmp_path / "t.pt", tables=2, high=50)
    code, out, err = cli("locality", "--trace", str(trace), "--json", "--cache-sizes",
                         "1KiB,1MiB")
    assert code == 0, err
    tables = json.loads(out)
    assert [row["table"] for row in tables] == [0, 1]
    assert sum(row["accesses"] for row in tables) == len(_all_ids(trace))
    for row in tables:
        assert row["hit_rate_1MiB"] == pytest.approx(1 - row["unique_fraction"])  # all fit
        assert row["stack_distances"]["cold"] == pytest.approx(row["unique_fraction"])
        assert sum(row["stack_distances"].values()) == pytest.approx(1.0)
    code, out, err = cli("locality", "ncf", "--row-scale", "0.0001", "--trace", str(trace),
                         "--trace-tables", "0,1,0,1")
    assert code == 0, err
    assert "trace t.pt on ncf" in out and "% of ids folded" in out


def _malicious(path: Path) -> Path:
    class Boom:
        def __reduce__(self):  # runs only if unpickled without weights_only
            return (Path.touch, (path.parent / "pwned",))

    buffer = pickle.dumps((Boom(), Boom(), Boom()))
    path.write_bytes(buffer)
    return path


@pytest.mark.parametrize("make, text", [
    (lambda d: d / "missing.pt", "does not exist; expected a trace file"),
    (lambda d: _write(d / "cut.pt.gz", gzip.compress(_trace(d / "x.pt").read_bytes())[:-30]),
     "cut.pt.gz: a truncated or damaged gzip file"),
    (lambda d: _malicious(d / "evil.pt"), "not a trace of plain tensors"),
    (lambda d: _trace(d / "few.pt", tables=2), "few.pt: 2 tables for rmc1's 8; map them"),
    (lambda d: _raw(d / "neg.pt", [-3, 1]), "neg.pt: ids must be non-negative; found -3"),
    (lambda d: _write(d / "t.tsv", b"1\t2\n"), "t.tsv"),
    (lambda d: _write(d / "t.json", b"{}"), "t.json"),
])
def test_a_bad_trace_is_one_line_and_nothing_is_stored(tmp_path: Path, make, text: str) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = make(inputs)
    out = tmp_path / "out"
    out.mkdir()
    result = cli("sweep", "-m", "rmc1", *TINY, "--queries", f"trace:{path}", "--store",
                 str(out / "r.duckdb"))
    assert_refused(result, out, text)
    assert not (inputs / "pwned").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _raw(path: Path, ids: list[int]) -> Path:
    lengths = torch.tensor([[len(ids)]], dtype=torch.int64)
    torch.save((torch.tensor(ids), torch.tensor([0, len(ids)]), lengths), path)
    return path


@pytest.mark.parametrize("args, text", [
    (["--queries", "trace"], "--queries: 'trace' names no file; expected trace:FILE"),
    (["--trace-tables", "0,1"], "--trace-tables: only with --queries"),
    (["--queries", "uniform", "--trace-tables", "0"], "--trace-tables: only trace:FILE"),
    (["--queries", "trace:{trace}", "--trace-tables", "0,-1"],
     "--trace-tables: '0,-1' is not allowed"),
    (["--queries", "trace:{trace}", "--trace-order", "random"],
     "--trace-order: 'random' is not allowed"),
])
def test_bad_trace_options_are_one_line(tmp_path: Path, args: list[str], text: str) -> None:
    trace = _trace(tmp_path / "t.pt")
    out = tmp_path / "out"
    out.mkdir()
    args = [arg.format(trace=trace) for arg in args]
    assert_refused(cli("sweep", "-m", "rmc1", *TINY, *args, "--store",
                       str(out / "r.duckdb")), out, text)


@pytest.mark.slow
def test_serve_reads_a_trace_and_stores_where_its_ids_came_from(tmp_path: Path) -> None:
    trace = _trace(tmp_path / "mine.pt")
    store = tmp_path / "s.duckdb"
    code, out, err = cli("serve", "-m", "rmc1", "--row-scale", "0.0001", "--queries",
                         f"trace:{trace}", "--qps", "200", "--min-duration", "0.5",
                         "--query-sizes", "fixed:8", "--library-requests", "16",
                         "--backend", "fused", "--store", str(store))
    assert code == 0, err
    assert "rmc1 reads trace mine.pt (32 samples, sequential" in out
    points = ResultStore(store).query("SELECT query, folded_fraction, status FROM points")
    assert list(points.status) == ["ok"]
    query = json.loads(points["query"][0])
    assert query["distribution"] == "trace" and query["source"] == str(trace)
    expected = np.mean([i >= 400 for i in _all_ids(trace)])  # 400 rows: ids up to 999 fold
    assert points.folded_fraction[0] == pytest.approx(expected)


def test_serve_refuses_a_trace_of_fewer_tables_before_anything_is_written(
        tmp_path: Path) -> None:
    trace = _trace(tmp_path / "few.pt", tables=2)
    out = tmp_path / "out"
    out.mkdir()
    assert_refused(cli("serve", "-m", "rmc1", "--row-scale", "0.0001", "--queries",
                       f"trace:{trace}", "--store", str(out / "s.duckdb")), out,
                   "few.pt: 2 tables for rmc1's 8; map them")


@pytest.mark.slow
def test_fit_trace_writes_a_profile_that_a_sweep_generates_from(tmp_path: Path) -> None:
    trace = _trace(tmp_path / "t.pt", tables=2, samples=400, high=300)
    profile = tmp_path / "p.json"
    code, out, err = cli("fit-trace", str(trace), "--out", str(profile), "--json")
    assert code == 0, err
    fit = json.loads(out)["fit"]
    assert {(row["table"], row["method"]) for row in fit} == {
        (t, m) for t in (0, 1) for m in ("recstack", "deeprecsys")}
    assert all(0 <= row["max_abs_error"] <= 1 for row in fit)
    stored = json.loads(profile.read_text())
    assert stored["source"] == "t.pt" and len(stored["tables"]) == 2
    store = tmp_path / "r.duckdb"
    code, out, err = cli("sweep", "-m", "ncf", *TINY, "--queries", f"profile:{profile}",
                         "--trace-tables", "0,1,0,1", "--store", str(store),
                         "--backend", "fused")
    assert code == 0, err
    assert "ncf generated from profile p.json (tables 0-1,0-1)" in out
    points = ResultStore(store).query("SELECT CAST(query AS VARCHAR) AS q, status, "
                                      "folded_fraction FROM points")
    assert list(points.status) == ["ok"] and points.folded_fraction.isna().all()
    assert json.loads(points.q[0])["distribution"] == "profile"


@pytest.mark.parametrize("content, text", [
    ("{", "not valid JSON"),
    ('{"format": "recstack-reuse-profile", "version": 1}', "bad.json"),
    ("[]", "bad.json: expected a JSON object"),
])
def test_a_bad_profile_is_one_line_and_nothing_is_stored(tmp_path: Path, content: str,
                                                          text: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "out"
    out.mkdir()
    assert_refused(cli("sweep", "-m", "ncf", *TINY, "--queries", f"profile:{bad}", "--store",
                       str(out / "r.duckdb")), out, text)


def test_fit_trace_refuses_a_folder_as_its_output(tmp_path: Path) -> None:
    trace = _trace(tmp_path / "t.pt", tables=1)
    out = tmp_path / "out"
    out.mkdir()
    assert_refused(cli("fit-trace", str(trace), "--out", str(out)), out, "--out:")


def test_a_sweep_file_names_a_trace_relative_to_itself(tmp_path: Path) -> None:
    from recstack.errors import RecstackError
    from recstack.sweepfile import sweep_file_options

    folder = tmp_path / "study"
    folder.mkdir()
    trace = _trace(folder / "t.pt")
    sweep = folder / "sweep.yaml"
    sweep.write_text("models: [rmc1]\nquery: {distribution: trace, source: t.pt, "
                     "order: shuffled, seed: 3}\n")
    query = sweep_file_options(sweep)["query"]
    assert query.source == str(trace.resolve()) and query.order == "shuffled"
    assert query.seed == 3 and len(query.source_digest) == 16
    sweep.write_text("models: [rmc1]\nquery: {distribution: trace, source: t.pt, "
                     "zipf_exponent: 2}\n")
    with pytest.raises(RecstackError, match="query.zipf_exponent"):
        sweep_file_options(sweep)


def test_the_main_job_refuses_a_trace_that_does_not_fit_before_any_stage(
        tmp_path: Path) -> None:
    trace = _trace(tmp_path / "few.pt", tables=3)
    out = tmp_path / "out"
    out.mkdir()
    assert_refused(cli("run", "-m", "rmc1", "--quick", "--levels", "timing", "--queries",
                       f"trace:{trace}", "--store", str(out / "r.duckdb")), out,
                   "few.pt: 3 tables for rmc1's 8; map them with --trace-tables")


def test_trace_samples_need_a_trace(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert_refused(cli("sweep", "-m", "rmc1", *TINY, "--trace-samples", "10", "--store",
                       str(out / "r.duckdb")), out, "--trace-samples: only with --queries")


def test_a_sweep_of_models_of_every_table_count_on_one_short_trace(tmp_path: Path) -> None:
    trace = _trace(tmp_path / "t.pt", tables=3)
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = cli("sweep", "-m", "rmc1", "-m", "ncf", *TINY, "--queries",
                            f"trace:{trace}", "--trace-tables", "cycle", "--store",
                            str(out / "r.duckdb"), "--backend", "fused")
    assert code == 0, err
    assert "rmc1 reads trace t.pt" in stdout and "ncf reads trace t.pt" in stdout
