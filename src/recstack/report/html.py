"""The report: one self-contained HTML page and a Markdown summary, rendered from the store.

The page embeds its figures as base64 PNGs and its style inline, loads nothing (a
Content-Security-Policy forbids scripts and remote content), and is rendered by jinja2 with
autoescaping on: every string from a spec, a file name or the platform reaches the page as
text, never as markup. Sections are listed in ``DEFAULT_SECTIONS`` below.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from recstack import __version__
from recstack.errors import RecstackError
from recstack.report.correlation_section import correlation_section
from recstack.report.roofline_section import roofline_section
from recstack.report.sections import (Section, SectionSpec, findings_section, hardware_section,
                                      load_context, methodology_section, platform_section,
                                      software_section, systems_section)
from recstack.store import ResultStore

# The levels whose newest run the default report adds when the anchor run lacks them.
LEVEL_COLLECTORS = ("timing", "operators", "hardware")


# The page, in order. Builders share one context: the correlation section leaves the
# dominance table on it for the findings section, which is last.
DEFAULT_SECTIONS: list[SectionSpec] = [
    SectionSpec("platform", platform_section),
    SectionSpec("systems", systems_section),
    SectionSpec("software", software_section),
    SectionSpec("hardware", hardware_section),
    SectionSpec("correlation", correlation_section),
    SectionSpec("roofline", roofline_section),
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


def _latest_characterization(store: ResultStore) -> str | None:
    """The newest run that is not a design-space run (whose variants are not the zoo), else
    the newest run: the correlation section finds design-space runs itself."""
    rows = store.query("""
        SELECT run_id FROM runs WHERE run_id NOT IN (SELECT run_id FROM design_space)
        ORDER BY started_at DESC LIMIT 1
    """)
    return rows.run_id.iloc[0] if not rows.empty else store.latest_run_id()


def default_run_ids(store: ResultStore, anchor: str | None = None) -> list[str]:
    """The anchor run (default: the latest that is not a design-space run), then for every
    level it did not measure, the newest such run of the store that did: a report of a
    timing run still shows a hardware run made separately."""
    anchor = anchor or _latest_characterization(store)
    if anchor is None:
        raise RecstackError(f"store: {store.path} holds no run; run `recstack run` first")
    if store.run_info(anchor) is None:
        raise RecstackError(f"--run: {anchor!r} is not in {store.path}; `recstack results` "
                            "lists the runs")
    newest = store.query("""
        SELECT pt.collector, pt.run_id, max(r.started_at) AS started
        FROM points pt JOIN runs r USING (run_id) WHERE pt.status = 'ok'
          AND pt.run_id NOT IN (SELECT run_id FROM design_space)
        GROUP BY pt.collector, pt.run_id ORDER BY started DESC
    """)
    chosen = [anchor]
    has = set(newest[newest.run_id == anchor].collector)
    for collector in LEVEL_COLLECTORS:
        if collector in has:
            continue
        runs = newest[newest.collector == collector].run_id
        if not runs.empty and runs.iloc[0] not in chosen:
            chosen.append(runs.iloc[0])
    return chosen


def build_report(store: ResultStore, run_ids: Sequence[str] | None = None,
                 sections: Sequence[SectionSpec] | None = None,
                 dominance: pd.DataFrame | None = None) -> Report:
    """Every section of the runs ``run_ids`` (default: :func:`default_run_ids`)."""
    if run_ids:
        for run_id in run_ids:
            if store.run_info(run_id) is None:
                raise RecstackError(f"--run: {run_id!r} is not in {store.path}; `recstack "
                                    "results` lists the runs")
        chosen = list(dict.fromkeys(run_ids))
    else:
        chosen = default_run_ids(store)
    context = load_context(store, chosen, dominance=dominance)
    built = [spec.build(context) for spec in (sections or DEFAULT_SECTIONS)]
    return Report(title="recstack report", store=str(store.path), run_ids=chosen,
                  sections=built)


def _environment(autoescape: bool):  # -> jinja2.Environment
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("recstack.report", "templates"),
        autoescape=autoescape, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True)
    environment.filters["md"] = markdown_text
    return environment


def markdown_text(value: object) -> str:
    """Text safe in a Markdown table cell or paragraph: HTML escaped (Markdown passes raw
    HTML through), pipes escaped, one line."""
    text = html.escape(str(value), quote=False)
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_html(report: Report) -> str:
    return _environment(autoescape=True).get_template("report.html.j2").render(report=report)


def render_markdown(report: Report, figure_links: Sequence[Sequence[str]] | None = None) -> str:
    """The summary; ``figure_links`` (per section, per figure: a path relative to the
    summary) embeds the figures as images, else they are listed by title."""
    return _environment(autoescape=False).get_template("report.md.j2").render(
        report=report, figure_links=figure_links)


def write_figures(report: Report, markdown_path: Path) -> list[list[str]]:
    """Writes every figure as a PNG in ``<summary stem>_figures/`` beside the summary
    (replacing the folder whole) and returns their links, per section and figure."""
    directory = markdown_path.with_name(markdown_path.stem + "_figures")
    staging = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    links = []
    for section in report.sections:
        names = [f"{section.id}-{index}.png" for index in range(1, len(section.figures) + 1)]
        for name, figure in zip(names, section.figures):
            (staging / name).write_bytes(figure.png)
        links.append([f"{directory.name}/{name}" for name in names])
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return links


def default_report_paths(store: ResultStore, run_id: str) -> tuple[Path, Path]:
    """Where a run's report goes by default: next to the store, in reports/."""
    directory = store.path.parent / "reports"
    return directory / f"{run_id}.html", directory / f"{run_id}.md"


def write_report(report: Report, html_path: Path | None, markdown_path: Path | None
                 ) -> list[Path]:
    """Writes the page and the summary with its figures' folder (each whole or absent);
    returns the paths written."""
    written = []
    for path, render in ((html_path, render_html), (markdown_path, render_markdown)):
        if path is None:
            continue
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        if render is render_markdown:
            text = render_markdown(report, write_figures(report, path))
        else:
            text = render(report)
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
        written.append(path)
    return written


def report_run(store: ResultStore, run_id: str) -> list[Path]:
    """The report of a run just measured (plus the newest runs of the levels it lacks), at
    the default paths: what ``recstack run`` ends with."""
    report = build_report(store, default_run_ids(store, run_id))
    return write_report(report, *default_report_paths(store, run_id))
