"""A run's figures as files: what ``recstack run``, ``profile`` and ``hardware`` leave beside
the store. Writing them is apart from printing the summaries (``cli/summaries.py``), so that
the library API writes the same files without a console."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_run_figures(store: Any, run_id: str, directory: Path) -> list[Path]:
    """The figures of every level the run measured, written into ``directory``: systems
    (latency vs batch, speedup heatmap; cold vs warm where the run measured both),
    software (operator-class and model-part breakdowns), hardware (top-down) and serving
    (latency vs offered load; tuned vs baseline where the run tuned). Returns the paths
    written; none for a level the run did not measure."""
    from recstack.analysis.serving import load_serving, load_serving_tests
    from recstack.analysis.systems import load_timings
    from recstack.analysis.topdown import load_hardware
    from recstack.analysis.views import cache_comparison, software_frames
    from recstack.report.cache_plots import plot_cache_comparison
    from recstack.report.plots import plot_topdown, write_software_figures, write_systems_figures
    from recstack.report.serving_plots import write_serving_figures

    directory = Path(directory)
    timings = load_timings(store, [run_id])
    written = write_systems_figures(timings, directory)
    pairs = cache_comparison(timings)
    if not pairs.empty:
        written.append(plot_cache_comparison(pairs, directory / "cache_cold_vs_warm.png"))
    written += write_software_figures(software_frames(store, [run_id])[2], directory)
    hardware = load_hardware(store, [run_id])
    if not hardware.empty:
        written.append(plot_topdown(hardware, directory / "topdown.png"))
    written += write_serving_figures(load_serving(store, [run_id]),
                                     load_serving_tests(store, [run_id]), directory)
    return written
