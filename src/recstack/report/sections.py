"""What a report section is, and what its builders read.

A builder is ``def my_section(context: ReportContext) -> Section``; builders live in
``report/level_sections.py`` (the three levels), ``report/run_sections.py`` (platform,
methodology, findings), ``report/correlation_section.py``, ``report/roofline_section.py``,
``report/cache_section.py``, ``report/serving_section.py``, ``report/fleet_section.py`` and
``report/precision_section.py``.
Builders render: the analyses compute (their view frames, :mod:`recstack.analysis.views`),
and a builder formats those frames into figures, tables and notes; it never runs SQL,
measures or recomputes.

Adding a section (as the cross-stack correlation and the roofline sections were):

1. write a builder in its own module under ``recstack/report/``: read what it needs from
   ``context`` (the frames already loaded, or ``context.store`` and ``context.run_ids``
   passed to an analysis function for anything else), make figures with
   :func:`figures_from` around the ``report/plots.py`` functions, tables with
   :func:`table_from_frame`; when its data is absent return ``not_measured(...)``, never an
   empty section (a level measured only on request, as serving is, returns None instead:
   reports of runs that never asked for it gain nothing);
2. add one line ``SectionSpec("my-id", my_section)`` to ``html.DEFAULT_SECTIONS`` (the page's
   order) at its place.

Builders run in list order on one shared context, so a builder may leave data for the ones
after it: the correlation section sets ``context.dominance`` (columns bottleneck,
strongest_feature, strongest_share), which the findings section (last) then checks.
"""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recstack.store import ResultStore
from recstack.text import MISSING

NOT_MEASURED = "not measured in this run"


# ---- what a section is -----------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A PNG image, embedded in the page as a data URI (the page needs no other file).
    ``name``: the file name it was written as, without suffix (what findings.yaml's
    ``figure`` names); ``id``: its anchor in the page (:func:`link_figures` sets it)."""

    title: str
    png: bytes
    caption: str = ""
    name: str = ""
    id: str = ""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Table:
    """Cells as text (formatted by the builder); ``row_classes`` marks rows to highlight
    (e.g. ``holds``, ``does-not-hold``, ``not-measured``, ``flag``), one entry per row.
    ``links``: per row, the figure its ``link_column`` cell links to (a figure's name, or
    its start, until :func:`link_figures` makes it that figure's id; empty for none).
    ``collapsed``: detail, folded away in the page and left out of the summary."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    row_classes: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    link_column: int = -1
    collapsed: bool = False


@dataclass
class Section:
    id: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headline: str | None = None
    measured: bool = True
    """False: the run has no data for this section; ``notes`` say how to measure it."""


def not_measured(id: str, title: str, how: str) -> Section:
    """The section of a level this run did not measure: said so, never left blank."""
    return Section(id=id, title=title, measured=False,
                   notes=[f"{title}: {NOT_MEASURED}. {how}"])


# ---- what builders read ----------------------------------------------------------------------


@dataclass
class ReportContext:
    """The stored results of the report's runs, loaded once for every section.

    runs: ``runs.run_details`` (one row per run: its columns, platform, status, levels).
    timings: ``systems.load_timings``; operators, profiles, shares:
    ``views.software_frames``; hardware: ``topdown.load_hardware``; serving,
    serving_tests: ``serving.load_serving`` and ``load_serving_tests`` (empty without
    serving points); point_platforms: ``fleet.load_point_platforms`` (every point with the
    machine that measured it).
    """

    store: ResultStore
    run_ids: list[str]
    runs: pd.DataFrame
    timings: pd.DataFrame
    operators: pd.DataFrame
    profiles: pd.DataFrame
    shares: pd.DataFrame
    hardware: pd.DataFrame
    targets: Any  # systems.LatencyTargets
    dominance: pd.DataFrame | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    serving: pd.DataFrame = field(default_factory=pd.DataFrame)
    serving_tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    point_platforms: pd.DataFrame = field(default_factory=pd.DataFrame)

    def measuring_platforms(self) -> list[str]:
        """The platforms that measured the runs' points (``fleet.platforms_of``)."""
        from recstack.analysis.fleet import platforms_of

        points = self.point_platforms
        return platforms_of(points[points.status == "ok"] if not points.empty else points)

    def run_label(self, run_id: str) -> str:
        return f"run {run_id}" if len(self.run_ids) > 1 else ""


def load_context(store: ResultStore, run_ids: list[str], targets: Any = None,
                 dominance: pd.DataFrame | None = None) -> ReportContext:
    from recstack.analysis.fleet import load_point_platforms
    from recstack.analysis.runs import run_details
    from recstack.analysis.serving import load_serving, load_serving_tests
    from recstack.analysis.systems import default_targets, load_timings
    from recstack.analysis.topdown import load_hardware
    from recstack.analysis.views import software_frames

    operators, profiles, shares = software_frames(store, run_ids)
    return ReportContext(
        store=store, run_ids=list(run_ids), runs=run_details(store, run_ids),
        timings=load_timings(store, run_ids), operators=operators, profiles=profiles,
        shares=shares, hardware=load_hardware(store, run_ids),
        targets=targets or default_targets(), dominance=dominance,
        serving=load_serving(store, run_ids), serving_tests=load_serving_tests(store, run_ids),
        point_platforms=load_point_platforms(store, run_ids))


# ---- helpers for builders ------------------------------------------------------------------


def figures_from(write: Callable[[Path], Path | list[Path]], caption: str = "",
                 label: str = "") -> list[Figure]:
    """Runs a figure writer of ``report/plots.py`` (given a directory, it writes PNGs there)
    in a temporary directory and returns the figures, titled by file name (and ``label``)."""
    with tempfile.TemporaryDirectory(prefix="recstack-report-") as directory:
        written = write(Path(directory))
        paths = [written] if isinstance(written, Path) else list(written)
        return [Figure(title=path.stem.replace("_", " ") + (f" ({label})" if label else ""),
                       png=path.read_bytes(), caption=caption, name=path.stem)
                for path in paths]


def link_figures(sections: list[Section]) -> None:
    """Gives every figure of ``sections`` a unique id (``fig-<name>``, numbered after the
    first of a name) and points each table link at the first figure whose name starts with
    it; a link to a figure the page lacks is dropped (its cell says so)."""
    used: set[str] = set()
    for section in sections:
        figures = []
        for figure in section.figures:
            base = "fig-" + "".join(c if c.isalnum() or c in "-_" else "-"
                                    for c in (figure.name or section.id))
            anchor, number = base, 1
            while anchor in used:
                number += 1
                anchor = f"{base}-{number}"
            used.add(anchor)
            figures.append(replace(figure, id=anchor))
        section.figures = figures
    present = [(f.name, f.id) for section in sections for f in section.figures]
    for section in sections:
        section.tables = [_linked(table, present) for table in section.tables]


def _linked(table: Table, present: list[tuple[str, str]]) -> Table:
    if not table.links:
        return table
    links, rows = [], []
    for wanted, row in zip(table.links, table.rows):
        found = next((anchor for name, anchor in present if wanted and name.startswith(wanted)),
                     "")
        links.append(found)
        if wanted and not found and 0 <= table.link_column < len(row):
            row = [*row[:table.link_column], "figure not in this report",
                   *row[table.link_column + 1:]]
        rows.append(row)
    return replace(table, links=links, rows=rows)


def grid_table(grid: pd.DataFrame, title: str, show: Callable[[dict[str, Any]], str],
               caption: str = "", keys: dict[str, str] | None = None) -> Table:
    """A table of a model x batch grid (``views.batch_grid``): its key columns (headers from
    ``keys``, default their names), then one column per batch size, cells by ``show`` (a
    cell's dict to text; MISSING where not measured)."""
    keys = keys or {}
    key_columns = [c for c in grid.columns if not isinstance(c, (int, np.integer))]
    batches = [c for c in grid.columns if isinstance(c, (int, np.integer))]
    rows = [[cell(row[c]) for c in key_columns]
            + [MISSING if row[b] is None or _missing(row[b]) else show(row[b]) for b in batches]
            for _, row in grid.iterrows()]
    return Table(title=title, columns=[keys.get(c, c) for c in key_columns]
                 + [f"b{b}" for b in batches], rows=rows, caption=caption)


def cell(value: Any, kind: str = "") -> str:
    """A table cell: ``ms``, ``rate``, ``pct``, ``+pct`` (signed), ``x`` (a ratio), ``num``;
    MISSING for a value not measured or not applicable (never a zero)."""
    if _missing(value):
        return MISSING
    if kind == "ms":
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"
    if kind == "rate":
        for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
            if value >= size:
                return f"{value / size:.3g}{unit}"
        return f"{value:.3g}"
    if kind == "pct":
        return f"{value:.0%}"
    if kind == "+pct":
        return f"{value:+.0%}"
    if kind == "x":
        return f"{value:.2g}x" if value < 10 else f"{value:.0f}x"
    if kind == "num":
        return f"{value:.3g}"
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return "yes" if value else "no"
    return str(value)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def table_from_frame(frame: pd.DataFrame, title: str, columns: dict[str, str],
                     kinds: dict[str, str] | None = None, caption: str = "",
                     row_classes: Iterable[str] | None = None) -> Table:
    """A table of ``frame``'s ``columns`` ({column: header}), cells formatted by ``kinds``
    ({column: kind of :func:`cell`})."""
    kinds = kinds or {}
    rows = [[cell(row[c], kinds.get(c, "")) for c in columns] for _, row in frame.iterrows()]
    return Table(title=title, columns=list(columns.values()), rows=rows, caption=caption,
                 row_classes=list(row_classes) if row_classes is not None else [])


def by_run(context: ReportContext, frame: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(label, rows) per run of ``frame``: one figure per run, so that two runs (two
    platforms) never share a line or a bar. The label is empty for a single run."""
    for run_id in context.run_ids:
        rows = frame[frame.run_id == run_id]
        if not rows.empty:
            yield context.run_label(run_id), rows


def by_run_and_platform(context: ReportContext, frame: pd.DataFrame
                        ) -> Iterator[tuple[str, pd.DataFrame]]:
    """:func:`by_run`, and within a run, where ``frame``'s points span several platforms
    (a run on a cluster), per platform too: two machines never share a line. As
    :func:`by_run` for the points of one platform."""
    from recstack.analysis.fleet import platforms_of

    platforms = platforms_of(frame)
    for label, rows in by_run(context, frame):
        if len(platforms) < 2:
            yield label, rows
            continue
        for platform in platforms:
            own = rows[rows.platform_id == platform]
            if not own.empty:
                yield ", ".join(part for part in (label, f"platform {platform}") if part), own


def by_precision(label: str, frame: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(label, rows) per precision of ``frame`` where its points span several (the label
    then names it: one figure per precision, so an int8 point never shares a line or a bar
    with an fp32 one); ``(label, frame)`` for the points of one precision."""
    from recstack.analysis.systems import precision_labels, precisions_of

    found = precisions_of(frame)
    if len(found) < 2:
        yield label, frame
        return
    labels = precision_labels(frame)
    for precision in found:
        yield ", ".join(part for part in (label, f"precision {precision}") if part), \
            frame[labels == precision]


def with_precision_label(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """``frame`` with a ``precision`` column (``Precision.label``) and the header to show it
    under, where its rows span several precisions; ``frame`` and no header otherwise (a
    report of one precision shows no precision column)."""
    from recstack.analysis.systems import precision_labels, precisions_of

    if len(precisions_of(frame)) < 2:
        return frame, {}
    return frame.assign(precision=precision_labels(frame)), {"precision": "precision"}


@dataclass(frozen=True)
class SectionSpec:
    id: str
    build: Callable[[ReportContext], Section | None]
    """None: the section does not apply to these runs and is left out of the page."""
