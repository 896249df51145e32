"""The report's sections: each a builder that reads the stored results (through the
analyses) and returns a :class:`Section` of figures, tables and notes. Presentation only:
builders call analyses and figure functions, they never measure or recompute.

Adding a section (as the cross-stack correlation and the roofline sections were):

1. write a builder ``def my_section(context: ReportContext) -> Section`` (in its own module
   under ``recstack/report/``): read what it needs from ``context`` (the frames already loaded,
   or ``context.store`` and ``context.run_ids`` for anything else), make figures with
   :func:`figures_from` around the ``report/plots.py`` functions, tables with
   :func:`table_from_frame`; when its data is absent return ``not_measured(...)``, never an
   empty section;
2. add one line ``SectionSpec("my-id", my_section)`` to ``html.DEFAULT_SECTIONS`` (the page's
   order) at its place.

Builders run in list order on one shared context, so a builder may leave data for the ones
after it: the correlation section sets ``context.dominance`` (columns bottleneck,
strongest_feature, strongest_share), which the findings section (last) then checks.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recstack.store import ResultStore

NOT_MEASURED = "not measured in this run"


# ---- what a section is -----------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A PNG image, embedded in the page as a data URI (the page needs no other file)."""

    title: str
    png: bytes
    caption: str = ""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Table:
    """Cells as text (formatted by the builder); ``row_classes`` marks rows to highlight
    (e.g. ``holds``, ``does-not-hold``, ``not-measured``, ``flag``), one entry per row."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    row_classes: list[str] = field(default_factory=list)


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

    runs: one row per run (run_id, started_at, command, recstack_version, git_revision,
    platform_id, settings (JSON text), platform (description), platform_info (JSON text)).
    timings: ``systems.load_timings``; operators, profiles: ``breakdown.load_operators``;
    shares: ``breakdown.breakdown`` computed per run; hardware: ``topdown.load_hardware``.
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

    def run_label(self, run_id: str) -> str:
        return f"run {run_id}" if len(self.run_ids) > 1 else ""


def load_context(store: ResultStore, run_ids: list[str], targets: Any = None,
                 dominance: pd.DataFrame | None = None) -> ReportContext:
    from recstack.analysis.breakdown import breakdown, load_operators
    from recstack.analysis.systems import default_targets, load_timings, order_models
    from recstack.analysis.topdown import load_hardware

    from recstack.analysis.runs import runs_with_status

    runs = store.query(f"""
        SELECT r.run_id, r.started_at, r.command, r.recstack_version, r.git_revision,
               r.platform_id, r.settings, p.description AS platform, p.info AS platform_info
        FROM runs r LEFT JOIN platforms p USING (platform_id)
        WHERE r.run_id IN ({', '.join('?' * len(run_ids))}) ORDER BY r.started_at
    """, list(run_ids))
    states = runs_with_status(store.runs())[["run_id", "status", "complete"]]
    runs = runs.merge(states, on="run_id", how="left")
    operators, profiles = load_operators(store, run_ids)
    # One breakdown per run: a point's key is the same in every run that measured it.
    shares = [breakdown(operators[operators.run_id == run], profiles[profiles.run_id == run])
              for run in profiles.run_id.unique()]
    return ReportContext(
        store=store, run_ids=list(run_ids), runs=runs,
        timings=load_timings(store, run_ids), operators=operators, profiles=profiles,
        shares=order_models(pd.concat(shares, ignore_index=True)) if shares
        else pd.DataFrame(), hardware=load_hardware(store, run_ids),
        targets=targets or default_targets(), dominance=dominance)


# ---- helpers for builders ------------------------------------------------------------------


def figures_from(write: Callable[[Path], Path | list[Path]], caption: str = "",
                 label: str = "") -> list[Figure]:
    """Runs a figure writer of ``report/plots.py`` (given a directory, it writes PNGs there)
    in a temporary directory and returns the figures, titled by file name (and ``label``)."""
    with tempfile.TemporaryDirectory(prefix="recstack-report-") as directory:
        written = write(Path(directory))
        paths = [written] if isinstance(written, Path) else list(written)
        return [Figure(title=path.stem.replace("_", " ") + (f" ({label})" if label else ""),
                       png=path.read_bytes(), caption=caption) for path in paths]


def cell(value: Any, kind: str = "") -> str:
    """A table cell: ``ms``, ``rate``, ``pct``, ``x`` (a ratio), ``num``; "n/a" for missing
    values (never a zero)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "ms":
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"
    if kind == "rate":
        for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
            if value >= size:
                return f"{value / size:.3g}{unit}"
        return f"{value:.3g}"
    if kind == "pct":
        return f"{value:.0%}"
    if kind == "x":
        return f"{value:.2g}x" if value < 10 else f"{value:.0f}x"
    if kind == "num":
        return f"{value:.3g}"
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return "yes" if value else "no"
    return str(value)


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


def _source_kind(source: str) -> str:
    return "simulated" if str(source).startswith("simulated") else "measured"


# ---- the sections ----------------------------------------------------------------------------


def platform_section(context: ReportContext) -> Section:
    section = Section("platform", "Platform(s)")
    levels = _levels_by_run(context)
    section.tables.append(table_from_frame(
        context.runs.assign(started=context.runs.started_at.astype(str).str[:19],
                            levels=context.runs.run_id.map(levels).fillna("none")),
        "Runs in this report",
        {"run_id": "run", "started": "started (UTC)", "status": "status",
         "levels": "levels measured", "platform_id": "platform", "command": "command",
         "recstack_version": "recstack", "git_revision": "git revision"}))
    for run in context.runs[~context.runs.complete.astype(bool)].itertuples():
        section.notes.append(f"Run {run.run_id} did not finish ({run.status}): every "
                             "section shows only the points it measured.")
    platforms = context.runs.drop_duplicates("platform_id")
    rows = []
    for row in platforms.itertuples():
        info = json.loads(row.platform_info or "{}")
        rows.append([str(row.platform_id), str(row.platform or "unknown"),
                     str(info.get("hostname", "n/a")), str(info.get("os", "n/a")),
                     str(info.get("python", "n/a")), str(info.get("torch", "n/a"))])
    section.tables.append(Table("Platforms", ["platform", "description", "host", "OS",
                                              "Python", "torch"], rows))
    if len(platforms) > 1:
        section.notes.append("This report holds runs from several platforms: every figure "
                             "is drawn per run.")
    return section


def _levels_by_run(context: ReportContext) -> dict[str, str]:
    collectors = context.store.query(f"""
        SELECT run_id, string_agg(DISTINCT collector, ', ' ORDER BY collector) AS levels
        FROM points WHERE status = 'ok' AND run_id IN ({', '.join('?' * len(context.run_ids))})
        GROUP BY run_id
    """, list(context.run_ids))
    return dict(zip(collectors.run_id, collectors.levels))


def systems_section(context: ReportContext) -> Section:
    from recstack.analysis.systems import best_deployment, deployment_spread
    from recstack.report.plots import write_systems_figures

    title = "Systems level: latency, throughput and deployment"
    timings = context.timings
    if timings.empty:
        return not_measured("systems", title, "Measure it with `recstack run` (timing level).")
    section = Section("systems", title)
    for label, rows in by_run(context, timings):
        section.figures += figures_from(
            lambda directory, rows=rows: write_systems_figures(rows, directory),
            "Median latency per batch size (p5-p95 band shaded); speedup heatmap.", label)
    best = best_deployment(timings, context.targets)
    section.tables.append(table_from_frame(
        best, "Best deployment per model (highest throughput meeting the p95 target)",
        {"model": "model", "target_ms": "p95 target ms", "device": "device",
         "threads": "threads", "backend": "backend", "batch_size": "batch",
         "p95_ms": "p95 ms", "throughput_per_s": "samples/s", "meets_target": "meets target"},
        {"p95_ms": "ms", "throughput_per_s": "rate"}, f"targets: {context.targets.source}",
        ["" if meets else "flag" for meets in best.meets_target]))
    spread = deployment_spread(timings)
    within = deployment_spread(timings, context.targets).set_index("model").ratio
    spread = spread.assign(within=spread.model.map(within))
    section.tables.append(table_from_frame(
        spread, "Deployment choice: best over worst throughput",
        {"model": "model", "deployments": "deployments", "best": "best", "worst": "worst",
         "ratio": "best/worst", "within": "best/worst within target"},
        {"ratio": "x", "within": "x"}))
    if not spread.empty:
        top = spread.loc[spread.ratio.idxmax()]
        headline = (f"Deployment choice: the best configuration beats the worst by up to "
                    f"{top.ratio:.1f}x in throughput ({top.model}: {top.best} over "
                    f"{top.worst})")
        if within.notna().any():
            headline += (f"; within the latency targets by up to {within.max():.1f}x "
                         f"({within.idxmax()})")
        section.headline = headline + ". The paper reports up to 15x."
    if (timings.device == "cpu").all():
        section.notes.append("No GPU was measured: the heatmap shows the CPU's throughput "
                             "gain over its smallest batch instead of a GPU-over-CPU speedup.")
    return section


def software_section(context: ReportContext) -> Section:
    from recstack.analysis.breakdown import dominant, unclassified_operators
    from recstack.report.plots import write_software_figures

    title = "Software level: operator breakdown"
    if context.shares.empty:
        return not_measured("software", title, "Measure it with `recstack run` (operators "
                            "level) or `recstack profile`.")
    section = Section("software", title)
    tops = []
    for label, rows in by_run(context, context.shares):
        section.figures += figures_from(
            lambda directory, rows=rows: write_software_figures(rows, directory),
            "Share of inference time by operator class and by model part (profiled runs).",
            label)
        by_class = dominant(rows, "operator")
        by_part = dominant(rows, "part")[["point_key", "category", "share"]]
        tops.append(by_class.merge(by_part, on="point_key", suffixes=("", "_part")))
    top = pd.concat(tops, ignore_index=True)
    section.tables.append(table_from_frame(
        top, "Dominant operator class and model part per point",
        {"run_id": "run", "model": "model", "device": "device", "threads": "threads",
         "batch_size": "batch", "category": "top class", "share": "share",
         "category_part": "top part", "share_part": "share (part)"},
        {"share": "pct", "share_part": "pct"}))
    unknown = unclassified_operators(context.operators)
    if not unknown.empty:
        section.notes.append("Operators not in the class table (counted as 'other'): "
                             + ", ".join(unknown.op))
    return section


HARDWARE_RATES = {"ipc": "IPC", "l1i_mpki": "L1i MPKI", "l1d_mpki": "L1d MPKI",
                  "llc_mpki": "LLC MPKI", "branch_mpki": "branch MPKI",
                  "dtlb_mpki": "dTLB MPKI", "itlb_mpki": "iTLB MPKI"}
LEVEL1 = {"retiring": "retiring", "bad_speculation": "bad spec.",
          "frontend_bound": "frontend", "backend_bound": "backend"}


def hardware_section(context: ReportContext) -> Section:
    from recstack.report.plots import plot_topdown

    title = "Hardware level: top-down and miss rates"
    hardware = context.hardware
    if hardware.empty:
        return not_measured("hardware", title, "Measure it with `recstack hardware` or "
                            "`recstack run --levels timing,operators,hardware` (simulated "
                            "with valgrind where the CPU exposes no counters).")
    section = Section("hardware", title)
    hardware = hardware.assign(kind=hardware.source.map(_source_kind))
    for label, rows in by_run(context, hardware):
        for kind, group in rows.groupby("kind"):
            if group[list(LEVEL1)].notna().all(axis=1).any():
                name = f"{kind} {label}".strip()
                section.figures += figures_from(
                    lambda directory, group=group: plot_topdown(
                        group, directory / "topdown.png"),
                    f"Top-down level 1, {kind.upper()}: "
                    + "; ".join(sorted(set(group.source))), name)
    section.tables.append(table_from_frame(
        hardware, "Miss rates and top-down per point (each labelled measured or simulated)",
        {"model": "model", "row_scale": "rows x", "batch_size": "batch", "kind": "source",
         **HARDWARE_RATES, **LEVEL1},
        {**dict.fromkeys(HARDWARE_RATES, "num"), **dict.fromkeys(LEVEL1, "pct"),
         "row_scale": "num"},
        "n/a: not measured (never shown as zero).",
        ["simulated" if kind == "simulated" else "" for kind in hardware.kind]))
    for source in sorted(set(hardware.source)):
        section.notes.append(f"Source: {source}")
    return section


def methodology_section(context: ReportContext) -> Section:
    from recstack.analysis.breakdown import profiler_overhead

    section = Section("methodology", "Methodology: what was measured, and how")
    settings = {row.run_id: json.loads(row.settings or "{}") for row in context.runs.itertuples()}
    names = sorted({key for values in settings.values() for key in values})
    if names:
        section.tables.append(Table(
            "Timing settings per run", ["setting", *settings],
            [[name, *(cell(values.get(name)) for values in settings.values())]
             for name in names],
            "Warm-up iterations are never timed; every iteration's latency is kept (table "
            "samples); statistics are derived from those samples."))
    timings = context.timings
    if timings.empty:
        section.notes.append(f"Timing (systems level): {NOT_MEASURED}.")
    else:
        spread = (timings.p95_ms - timings.p5_ms) / timings.median_ms
        unstable = timings[timings.unstable.fillna(False).astype(bool)]
        section.notes.append(
            f"Timing (systems level): {len(timings)} points; {int(timings.iterations.min())} "
            f"to {int(timings.iterations.max())} timed iterations per point (median "
            f"{int(timings.iterations.median())}); p5-p95 spread relative to the median: "
            f"median {spread.median():.0%}, largest {spread.max():.0%}; "
            f"{len(unstable)} point(s) flagged unstable.")
        if not unstable.empty:
            section.tables.append(table_from_frame(
                unstable.assign(spread=(unstable.p95_ms - unstable.p5_ms)
                                / unstable.median_ms),
                "Unstable points (p5-p95 spread over the threshold)",
                {"run_id": "run", "model": "model", "device": "device", "threads": "threads",
                 "batch_size": "batch", "median_ms": "median ms", "spread": "p5-p95 / median",
                 "cv": "CV"}, {"median_ms": "ms", "spread": "pct", "cv": "pct"},
                row_classes=["flag"] * len(unstable)))
    if context.profiles.empty:
        section.notes.append(f"Operator profiles (software level): {NOT_MEASURED}.")
    else:
        overhead = profiler_overhead(context.profiles)
        section.notes.append(
            f"Operator profiles (software level): {len(overhead)} points, profiled in their "
            "own workers (no reported latency comes from a profiled run); the profiler's "
            f"overhead: median {overhead.profiler_overhead.median():+.0%} (from "
            f"{overhead.profiler_overhead.min():+.0%} to "
            f"{overhead.profiler_overhead.max():+.0%}); operators cover a median "
            f"{overhead.coverage.median():.0%} of the iteration wall time (the rest is shown "
            "as overhead).")
    if context.hardware.empty:
        section.notes.append(f"Hardware level: {NOT_MEASURED}.")
    else:
        kinds = sorted(set(context.hardware.source.map(_source_kind)))
        section.notes.append(f"Hardware level: {', '.join(kinds)}; sources: "
                             + "; ".join(sorted(set(context.hardware.source))) + ".")
        caveats = sorted({c for text in context.hardware.caveats
                          for c in json.loads(text or "[]")})
        for caveat in caveats:
            section.notes.append(f"Caveat: {caveat}")
    return section


def findings_section(context: ReportContext) -> Section:
    from recstack.analysis.findings import Evidence, check_findings, default_findings

    findings = default_findings()
    table = check_findings(Evidence(timings=context.timings, shares=context.shares,
                                    hardware=context.hardware, dominance=context.dominance,
                                    targets=context.targets), findings)
    section = Section("findings", "The paper's findings, checked on this data")
    section.tables.append(table_from_frame(
        table, "Findings", {"statement": "finding", "paper": "paper", "status": "status",
                            "measured": "measured here", "detail": "how it was decided"},
        row_classes=[status.replace(" ", "-") for status in table.status]))
    counts = table.status.value_counts()
    section.headline = ", ".join(f"{counts.get(s, 0)} {s}" for s in
                                 ("holds", "does not hold", "not measured"))
    section.notes.append("Thresholds (analysis/findings.yaml): " + ", ".join(
        f"{k} = {v:g}" for k, v in findings.thresholds.items()))
    return section


# ---- the order of the page -------------------------------------------------------------------


@dataclass(frozen=True)
class SectionSpec:
    id: str
    build: Callable[[ReportContext], Section]
