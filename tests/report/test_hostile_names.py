"""Names from a store are data: the report writes only inside its folders, deletes nothing
it did not write, and shows every name as text in HTML, Markdown and figures."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from recstack.collect.timing import timing_stats
from recstack.errors import RecstackError
from recstack.records import TimingRecord
from recstack.report.html import (FIGURES_MANIFEST, build_report, default_report_paths,
                                  write_report)
from recstack.store import ResultStore
from tests import fill

MATHTEXT = r"$\frac{1}{0}$ \badcommand"
REMOTE_IMAGE = "![x](http://remote.invalid/x.png)"
TERMINAL = "\x1b[31mRED\x1b[0m\x00"


def record(store: ResultStore, run_id: str, model: str, batch: int, median_ms: float,
           seed: int) -> None:
    """A CPU timing point of ``model``: 50 log-normal latencies around ``median_ms``."""
    latency = median_ms * 1e6 * np.random.default_rng(seed).lognormal(0.0, 0.05, 50)
    samples = pd.DataFrame({"iteration": range(50), "latency_ns": latency.astype(np.int64)})
    store.record_point(run_id, f"{run_id}-{model}-{batch}", fill.point(
        config_key=f"{model}-{batch}", model=model, model_type="dlrm", row_scale=1.0,
        batch_size=batch, device="cpu", threads=1, backend="eager"),
        TimingRecord(samples, timing_stats(list(samples.latency_ns), batch)))


def hostile_store(directory: Path, run_id: str) -> ResultStore:
    """A store as someone could hand it over: model names with mathtext, Markdown and
    control characters, and a run id that is an absolute path (set behind recstack's back:
    recstack itself refuses such ids)."""
    store = ResultStore(directory / "results" / "r.duckdb")
    made = store.create_run("recstack run", {"min_seconds": 1.0}, {}, "p1", "machine")
    for seed, name in enumerate((MATHTEXT, REMOTE_IMAGE, TERMINAL, "rmc1")):
        for batch in (1, 16):
            record(store, made, name, batch, 1.0 + seed, seed * 10 + batch)
    with duckdb.connect(str(store.path)) as db:
        for table in ("runs", "points", "samples", "timing"):
            db.execute(f"UPDATE {table} SET run_id = ?", [run_id])
    return store


def tree(directory: Path) -> set[Path]:
    return {Path(root) / name for root, folders, files in os.walk(directory)
            for name in folders + files}


def test_a_hostile_store_reports_inside_its_folder_as_text(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "abs_figures").mkdir()
    (outside / "abs_figures" / "user.txt").write_text("mine")
    store = hostile_store(tmp_path / "work", str(outside / "abs"))
    before = tree(outside)
    report = build_report(store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no missing-glyph or mathtext complaint
        written = write_report(report, *default_report_paths(store, report.run_ids[0]))
    assert tree(outside) == before and (outside / "abs_figures" / "user.txt").read_text() == "mine"
    for path in written:
        assert path.parent == store.path.parent / "reports"
    page, summary = (path.read_text() for path in written)
    for text in (page, summary):
        assert "\x1b" not in text and "\x00" not in text
    assert "\\x1b[31mRED" in page and "\\\\x1b\\[31mRED" in summary  # shown, escaped
    assert "![x](http" not in summary and "\\!\\[x\\](http://remote.invalid/x.png)" in summary
    assert "data:image/png;base64," in page  # every figure drew, mathtext names as text


def test_a_figures_folder_recstack_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    store = hostile_store(tmp_path, "run-1")
    report = build_report(store)
    (tmp_path / "x_figures").mkdir()
    (tmp_path / "x_figures" / "notes.txt").write_text("mine")
    with pytest.raises(RecstackError, match="--markdown: .*x_figures' exists and was not "
                                            "written by recstack"):
        write_report(report, tmp_path / "x.html", tmp_path / "x.md")
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x.md").exists()
    assert sorted(p.name for p in (tmp_path / "x_figures").iterdir()) == ["notes.txt"]


def test_only_recstacks_own_figures_are_replaced(tmp_path: Path) -> None:
    store = hostile_store(tmp_path, "run-1")
    report = build_report(store)
    write_report(report, None, tmp_path / "x.md")
    folder = tmp_path / "x_figures"
    ours = set((folder / FIGURES_MANIFEST).read_text().split())
    assert ours and ours <= {p.name for p in folder.iterdir()}
    (folder / "notes.txt").write_text("mine")  # the user adds a file
    (folder / "systems-9.png").write_bytes(b"user's, named like ours")
    with (folder / FIGURES_MANIFEST).open("a") as manifest:
        manifest.write("gone-1.png\n../../escape.png\n")  # a stale entry, a hostile one
    (folder / "gone-1.png").write_bytes(b"stale")
    write_report(report, None, tmp_path / "x.md")
    names = {p.name for p in folder.iterdir()}
    assert {"notes.txt", "systems-9.png"} <= names and "gone-1.png" not in names
    assert (folder / "notes.txt").read_text() == "mine"
