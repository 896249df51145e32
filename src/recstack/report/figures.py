"""A run's figures as files: what ``recstack run``, ``profile`` and ``hardware`` leave beside
the store. Writing them is apart from printing the summaries (``cli/summaries.py``), so that
the library API writes the same files without a console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


def by_precision(directory: Path, frame: pd.DataFrame, precisions: list[str]
                 ) -> Iterator[tuple[Path, pd.DataFrame]]:
    """(folder, rows) per precision of ``precisions`` (the run's) that ``frame`` holds:
    ``directory`` itself for a run of one precision, else a folder per precision
    (``precision-emb-int8-dense-fp32``), so that no figure draws an int8 point beside an
    fp32 one."""
    from recstack.analysis.systems import precision_labels

    if len(precisions) < 2:
        yield directory, frame
        return
    labels = precision_labels(frame)
    for precision in precisions:
        if (labels == precision).any():
            yield directory / f"precision-{re.sub('[^A-Za-z0-9]+', '-', precision)}", \
                frame[labels == precision]


def write_run_figures(store: Any, run_id: str, directory: Path) -> list[Path]:
    """The figures of every level the run measured, written into ``directory``: systems
    (latency vs batch, speedup heatmap; cold vs warm where the run measured both),
    software (operator-class and model-part breakdowns), hardware (top-down) and serving
    (latency vs offered load; tuned vs baseline where the run tuned). The figures of a run
    of several precisions are per precision (:func:`by_precision`). Returns the paths
    written; none for a level the run did not measure."""
    from recstack.analysis.serving import load_serving, load_serving_tests
    from recstack.analysis.systems import load_timings
    from recstack.analysis.topdown import load_hardware
    from recstack.analysis.views import cache_comparison, software_frames
    from recstack.report.cache_plots import plot_cache_comparison
    from recstack.report.plots import plot_topdown, write_software_figures, write_systems_figures
    from recstack.report.serving_plots import write_serving_figures

    from recstack.analysis.systems import PRECISION_COLUMNS, precisions_of, with_precision

    directory = Path(directory)
    timings = load_timings(store, [run_id])
    shares = software_frames(store, [run_id])[2]
    hardware = load_hardware(store, [run_id])
    precisions = precisions_of(pd.concat(
        [with_precision(frame)[PRECISION_COLUMNS] for frame in (timings, shares, hardware)
         if not frame.empty] or [pd.DataFrame(columns=PRECISION_COLUMNS)]))
    written = []
    for folder, rows in by_precision(directory, timings, precisions):
        written += write_systems_figures(rows, folder)
    for folder, pairs in by_precision(directory, cache_comparison(timings), precisions):
        if not pairs.empty:
            written.append(plot_cache_comparison(pairs, folder / "cache_cold_vs_warm.png"))
    for folder, rows in by_precision(directory, shares, precisions):
        written += write_software_figures(rows, folder)
    for folder, rows in by_precision(directory, hardware, precisions):
        if not rows.empty:
            written.append(plot_topdown(rows, folder / "topdown.png"))
    written += write_serving_figures(load_serving(store, [run_id]),
                                     load_serving_tests(store, [run_id]), directory)
    return written
