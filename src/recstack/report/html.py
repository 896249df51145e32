"""The report: one self-contained HTML page and a Markdown summary, rendered from the store.

The page embeds its figures as base64 PNGs and its style inline, loads nothing (a
Content-Security-Policy forbids scripts and remote content), and is rendered by jinja2 with
autoescaping on: every string from a spec, a file name or the platform reaches the page as
text, never as markup. Sections are listed in ``DEFAULT_SECTIONS`` below.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from recstack import __version__
from recstack.analysis.runs import default_run_ids
from recstack.errors import RecstackError
from recstack.paths import check_file_destination, file_part, write_atomically
from recstack.report.cache_section import cache_section
from recstack.report.correlation_section import correlation_section
from recstack.report.fleet_section import fleet_section
from recstack.report.level_sections import hardware_section, software_section, systems_section
from recstack.report.precision_section import precision_section
from recstack.report.roofline_section import roofline_section
from recstack.report.run_sections import findings_section, methodology_section, platform_section
from recstack.report.sections import Section, SectionSpec, link_figures, load_context
from recstack.report.serving_section import serving_section
from recstack.store import ResultStore
from recstack.text import markdown_text, printable, shown

__all__ = ["DEFAULT_SECTIONS", "FIGURES_MANIFEST", "Report", "build_report",
           "default_report_paths", "default_run_ids", "figures_folder", "markdown_text",
           "render_html", "render_markdown", "report_run", "write_figures", "write_report"]


# The page, in order. Builders share one context: the correlation section leaves the
# dominance table on it for the findings section, which is last.
DEFAULT_SECTIONS: list[SectionSpec] = [
    SectionSpec("platform", platform_section),
    SectionSpec("systems", systems_section),
    SectionSpec("fleet", fleet_section),  # only where the runs' points span several platforms
    SectionSpec("precision", precision_section),  # only where they span several precisions
    SectionSpec("cache", cache_section),
    SectionSpec("software", software_section),
    SectionSpec("hardware", hardware_section),
    SectionSpec("correlation", correlation_section),
    SectionSpec("roofline", roofline_section),
    SectionSpec("serving", serving_section),  # only where a run measured serving points
    SectionSpec("methodology", methodology_section),
    SectionSpec("findings", findings_section),
]


@dataclass
class Report:
    title: str
    store: str
    run_ids: list[str]
    sections: list[Section]
    generated_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    version: str = __version__


def build_report(store: ResultStore, run_ids: Sequence[str] | None = None,
                 sections: Sequence[SectionSpec] | None = None,
                 dominance: pd.DataFrame | None = None) -> Report:
    """Every section of the runs ``run_ids`` (default: :func:`analysis.runs.default_run_ids`:
    the latest run, plus the newest run of each level it did not measure)."""
    if run_ids:
        for run_id in run_ids:
            if store.run_info(run_id) is None:
                raise RecstackError(f"--run: {shown(run_id)} is not in {store.path}; `recstack "
                                    "results` lists the runs")
        chosen = list(dict.fromkeys(run_ids))
    else:
        chosen = default_run_ids(store)
    context = load_context(store, chosen, dominance=dominance)
    built = [section for spec in (sections or DEFAULT_SECTIONS)
             if (section := spec.build(context)) is not None]
    link_figures(built)
    return Report(title="recstack report", store=str(store.path), run_ids=chosen,
                  sections=built)


def _environment(autoescape: bool):  # -> jinja2.Environment
    import jinja2

    # Autoescape keeps markup out of the page; the finalizer shows control characters (NUL,
    # terminal escapes) as escapes. The Markdown template runs every value through `md`.
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("recstack.report", "templates"),
        autoescape=autoescape, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True,
        finalize=(lambda value: printable(value) if isinstance(value, str) else value))
    environment.filters["md"] = markdown_text
    return environment


def render_html(report: Report) -> str:
    return _environment(autoescape=True).get_template("report.html.j2").render(report=report)


def render_markdown(report: Report, figure_links: Sequence[Sequence[str]] | None = None) -> str:
    """The summary; ``figure_links`` (per section, per figure: a path relative to the
    summary) embeds the figures as images and links tables to them, else they are listed by
    title."""
    paths = {figure.id: link for section, links in zip(report.sections, figure_links or [])
             for figure, link in zip(section.figures, links) if figure.id}
    return _environment(autoescape=False).get_template("report.md.j2").render(
        report=report, figure_links=figure_links, figure_paths=paths)


FIGURES_MANIFEST = ".recstack-figures"
"""The list of files recstack wrote into a summary's figures folder: the only files it ever
replaces or removes there."""
_FIGURE_NAME = re.compile(r"[a-z_]+-[0-9]+\.png")


def figures_folder(markdown_path: Path) -> Path:
    """Where a summary's figures go: ``<summary stem>_figures/`` beside it."""
    return markdown_path.with_name(markdown_path.stem + "_figures")


def _figures_written_before(directory: Path) -> set[str]:
    """The figures recstack wrote into ``directory`` before (empty for a new folder); a
    folder recstack did not write is refused, so nothing of a user's is replaced."""
    if not os.path.lexists(directory):
        return set()
    manifest = directory / FIGURES_MANIFEST
    if directory.is_dir() and not directory.is_symlink():
        if manifest.is_file():
            names = manifest.read_text(encoding="utf-8", errors="replace").split()
            return {name for name in names if _FIGURE_NAME.fullmatch(name)}
        if not any(directory.iterdir()):
            return set()
    raise RecstackError(f"--markdown: {shown(str(directory))} exists and was not written by "
                        "recstack; choose another --markdown path or move that folder")


def write_figures(report: Report, markdown_path: Path) -> list[list[str]]:
    """Writes every figure as a PNG into the summary's figures folder and returns their
    links, per section and figure. Of what the folder holds, only the figures recstack
    wrote there before are replaced or removed."""
    directory = figures_folder(markdown_path)
    before = _figures_written_before(directory)
    links, written = [], []
    for section in report.sections:
        names = [f"{section.id}-{index}.png" for index in range(1, len(section.figures) + 1)]
        for name, figure in zip(names, section.figures):
            write_atomically(directory / name, figure.png)
        written += names
        links.append([f"{quote(directory.name)}/{name}" for name in names])
    for stale in before - set(written):
        if (directory / stale).is_file() and not (directory / stale).is_symlink():
            (directory / stale).unlink()
    write_atomically(directory / FIGURES_MANIFEST, "\n".join(written) + "\n")
    return links


def default_report_paths(store: ResultStore, run_id: str) -> tuple[Path, Path]:
    """Where a run's report goes by default: next to the store, in reports/, named after
    the run (a run id read from a store is made a safe file name first)."""
    directory = store.path.parent / "reports"
    name = file_part(run_id)
    return directory / f"{name}.html", directory / f"{name}.md"


def write_report(report: Report, html_path: Path | None, markdown_path: Path | None
                 ) -> list[Path]:
    """Writes the page and the summary with its figures' folder; every destination is
    checked before anything is written, and each file is written whole. Returns the paths
    written."""
    if html_path is not None:
        check_file_destination(Path(html_path), "--html")
    if markdown_path is not None:
        check_file_destination(Path(markdown_path), "--markdown")
        _figures_written_before(figures_folder(Path(markdown_path)))
    written = []
    if html_path is not None:
        written.append(write_atomically(Path(html_path), render_html(report)))
    if markdown_path is not None:
        links = write_figures(report, Path(markdown_path))
        written.append(write_atomically(Path(markdown_path), render_markdown(report, links)))
    return written


def report_run(store: ResultStore, run_id: str) -> list[Path]:
    """The report of a run just measured (plus the newest runs of the levels it lacks), at
    the default paths: what ``recstack run`` ends with."""
    report = build_report(store, default_run_ids(store, run_id))
    return write_report(report, *default_report_paths(store, run_id))
