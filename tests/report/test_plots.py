"""Figures are written, whole, and show something."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pandas as pd

from recstack.report.plots import latency_series, write_systems_figures
from tests.analysis.test_systems import timing


def assert_not_blank(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 10_000
    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.05  # not a single colour


def test_cpu_only_figures(tmp_path: Path) -> None:
    timings = pd.DataFrame([timing(m, "cpu", t, b, b * 0.1 + 0.5)
                            for m in ("rmc1", "din") for t in (1, 2) for b in (1, 16, 256)])
    written = write_systems_figures(timings, tmp_path / "figures")
    assert [p.name for p in written] == ["latency_vs_batch.png", "speedup_heatmap.png"]
    for path in written:
        assert_not_blank(path)
    assert not list((tmp_path / "figures").glob("*.tmp*"))


def test_gpu_figures(tmp_path: Path) -> None:
    timings = pd.DataFrame([timing("rmc1", d, 1, b, b * (0.1 if d == "cpu" else 0.01) + 0.5)
                            for d in ("cpu", "cuda") for b in (1, 16, 256)])
    written = write_systems_figures(timings, tmp_path)
    assert len(written) == 2
    for path in written:
        assert_not_blank(path)


def test_no_timings_no_figures(tmp_path: Path) -> None:
    assert write_systems_figures(pd.DataFrame(), tmp_path) == []


def test_auto_backends_along_the_batch_axis_draw_one_line() -> None:
    def row(backend: str, batch: int, threads: int = 1) -> dict[str, object]:
        return {**timing("rmc2", "cpu", threads, batch, batch * 0.1 + 0.5), "backend": backend}

    # --backend auto: one backend per batch size, switching along the axis.
    auto = pd.DataFrame([row("static", 1), row("static", 16), row("eager", 256),
                         row("eager", 4096), row("fused", 4, threads=2)])
    assert [(label, list(line.batch_size)) for label, line in latency_series(auto)] == [
        ("cpu t1 static b1-16, eager b256-4096", [1, 16, 256, 4096]),
        ("cpu t2 fused", [4])]
    # A sweep comparing backends: one line per backend.
    compared = pd.DataFrame([row(b, size) for b in ("eager", "static") for size in (1, 16)])
    assert [label for label, _ in latency_series(compared)] == ["cpu t1", "cpu t1 static"]


def test_latency_figure_with_backends_switching(tmp_path: Path) -> None:
    timings = pd.DataFrame([{**timing("rmc1", "cpu", 1, b, b * 0.1 + 0.5),
                             "backend": "static" if b < 256 else "eager"}
                            for b in (1, 16, 256, 4096)])
    for path in write_systems_figures(timings, tmp_path):
        assert_not_blank(path)


def test_names_are_drawn_as_text_and_numbers_keep_their_mathtext() -> None:
    from recstack.report.plots import _plain_text, plt

    figure, axes = plt.subplots()
    axes.plot([1, 10, 100], [1, 10, 100])
    axes.set_yscale("log")  # its tick labels are mathtext: 10^0, 10^1 ...
    axes.set_title(r"$\frac{1}{0}$ \bad")
    axes.set_xticks([1, 100], ["$x$", "m\x1b[31m"])
    _plain_text(figure)
    figure.canvas.draw()  # a bad mathtext name would fail here
    assert not axes.title.get_parse_math()
    assert [label.get_text() for label in axes.get_xticklabels()] == ["$x$", "m\\x1b[31m"]
    assert not any(label.get_parse_math() for label in axes.get_xticklabels())
    numbers = [label for label in axes.get_yticklabels() if label.get_text()]
    assert numbers and all(label.get_parse_math() for label in numbers)
    assert any(label.get_text().startswith("$\\mathdefault") for label in numbers)
    plt.close(figure)
