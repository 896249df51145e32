"""The report's sections about the runs themselves: the platform(s) and runs shown, the
methodology (settings, how steady the measurements were, what each level's figures come
from) and the paper's findings checked on the data. Each renders analysis frames."""

from __future__ import annotations

from dataclasses import replace

from recstack.report.sections import NOT_MEASURED, ReportContext, Section, table_from_frame


def platform_section(context: ReportContext) -> Section:
    from recstack.analysis.runs import method_versions, mixed_methods, platforms

    section = Section("platform", "Platform(s)")
    runs = context.runs
    section.tables.append(table_from_frame(
        runs.assign(started=runs.started_at.astype(str).str[:19],
                    levels=runs.levels.fillna("none")),
        "Runs in this report",
        {"run_id": "run", "started": "started (UTC)", "status": "status",
         "levels": "levels measured", "platform_id": "platform", "command": "command",
         "recstack_version": "recstack", "git_revision": "git revision"}))
    for run in runs[~runs.complete.astype(bool)].itertuples():
        section.notes.append(f"Run {run.run_id} did not finish ({run.status}): every "
                             "section shows only the points it measured.")
    machines = platforms(runs)
    section.tables.append(table_from_frame(
        machines, "Platforms",
        {"platform_id": "platform", "description": "description", "hostname": "host",
         "os": "OS", "python": "Python", "torch": "torch"}))
    if len(machines) > 1:
        section.notes.append("This report holds runs from several platforms: every figure "
                             "is drawn per run.")
    elsewhere = [p for p in context.measuring_platforms() if p not in set(machines.platform_id)]
    if elsewhere:
        section.notes.append("Points of these runs were also measured on platforms no run "
                             f"was started on (a run on a cluster): {', '.join(elsewhere)}; "
                             "the fleet section describes every platform.")
    for line in mixed_methods(method_versions(context.store, list(runs.run_id))):
        section.notes.append("These runs measured a level with different method versions, "
                             f"so its numbers may differ by method, not by machine: {line}.")
    return section


def methodology_section(context: ReportContext) -> Section:
    from recstack.analysis.runs import settings_by_run

    section = Section("methodology", "Methodology: what was measured, and how")
    settings = settings_by_run(context.runs)
    if not settings.empty:
        section.tables.append(table_from_frame(
            settings, "Timing settings per run",
            {"setting": "setting", **{run: run for run in settings.columns[1:]}},
            caption="Warm-up iterations are never timed; every iteration's latency is kept "
                    "(table samples); statistics are derived from those samples."))
    _query_table(context, section)
    _timing_notes(context, section)
    _profile_notes(context, section)
    _hardware_notes(context, section)
    return section


def _query_table(context: ReportContext, section: Section) -> None:
    """Where the query ids came from; shown when any point read a trace or a profile."""
    from recstack.analysis.runs import queries_by_run
    from recstack.inputs import FILE_DISTRIBUTIONS

    queries = queries_by_run(context.store, list(context.runs.run_id))
    if not queries.distribution.isin(FILE_DISTRIBUTIONS).any():
        return
    section.tables.append(table_from_frame(
        queries, "Queries: where the embedding ids came from",
        {"run_id": "run", "queries": "queries", "models": "models", "points": "points",
         "folded_fraction": "ids folded"}, {"folded_fraction": "pct"},
        caption="A trace's ids at or beyond a table's rows are folded in modulo the rows "
                "(the largest share over the models is shown); a profile's ids are "
                "generated within the rows."))


def _timing_notes(context: ReportContext, section: Section) -> None:
    from recstack.analysis.views import timing_quality, unstable_points

    quality = timing_quality(context.timings)
    if quality.empty:
        section.notes.append(f"Timing (systems level): {NOT_MEASURED}.")
        return
    q = quality.iloc[0]
    section.notes.append(
        f"Timing (systems level): {q.points:.0f} points; {q.min_iterations:.0f} to "
        f"{q.max_iterations:.0f} timed iterations per point (median "
        f"{q.median_iterations:.0f}); p5-p95 spread relative to the median: median "
        f"{q.spread_median:.0%}, largest {q.spread_max:.0%}; {q.unstable:.0f} point(s) "
        "flagged unstable.")
    section.notes.append(_basis_line(context))
    unstable = unstable_points(context.timings)
    if not unstable.empty:
        section.tables.append(table_from_frame(
            unstable, "Unstable points (p5-p95 spread over the threshold)",
            {"run_id": "run", "model": "model", "batch_size": "batch", "device": "device",
             "threads": "threads", "backend": "backend", "cache_state": "cache",
             "median_ms": "median ms", "spread": "p5-p95 / median", "cv": "CV"},
            {"median_ms": "ms", "spread": "pct", "cv": "pct"},
            row_classes=["flag"] * len(unstable)))


def _basis_line(context: ReportContext) -> str:
    """How the timing points' backends were chosen, and how many were measured again."""
    from recstack.analysis.views import measurement_basis

    b = measurement_basis(context.timings).iloc[0]
    chosen = [f"{count} {how}" for count, how in (
        (b.raced, "by a race on this platform"),
        (b.shipped, "by the shipped file (raced elsewhere)"),
        (b.as_given, "as given"), (b.unrecorded, "not recorded (stored before it was)"))
        if count]
    again = (f"{b.remeasured} point(s) were measured again after an unstable first "
             "measurement" if b.attempts_recorded else
             "Re-measuring was not recorded (stored before it was)")
    return (f"How the backends of the {b.points} timing points were chosen: "
            + ", ".join(chosen) + f". {again}; {b.unstable} remain flagged unstable.")


def _profile_notes(context: ReportContext, section: Section) -> None:
    from recstack.analysis.views import profile_quality

    quality = profile_quality(context.profiles)
    if quality.empty:
        section.notes.append(f"Operator profiles (software level): {NOT_MEASURED}.")
        return
    q = quality.iloc[0]
    section.notes.append(
        f"Operator profiles (software level): {q.points:.0f} points, profiled in their own "
        "workers (no reported latency comes from a profiled run); the profiler's overhead: "
        f"median {q.overhead_median:+.0%} (from {q.overhead_min:+.0%} to "
        f"{q.overhead_max:+.0%}); operators cover a median {q.coverage_median:.0%} of the "
        "iteration wall time (the rest is shown as overhead).")


def _hardware_notes(context: ReportContext, section: Section) -> None:
    from recstack.analysis.views import hardware_notes, hardware_summary

    if context.hardware.empty:
        section.notes.append(f"Hardware level: {NOT_MEASURED}.")
        return
    kinds = sorted(set(hardware_summary(context.hardware).kind))
    notes = hardware_notes(context.hardware)
    sources = notes[notes.kind == "source"].text
    section.notes.append(f"Hardware level: {', '.join(kinds)}; sources: "
                         + "; ".join(sources) + ".")
    section.notes += [f"Caveat: {text}" for text in notes[notes.kind == "caveat"].text]


def findings_section(context: ReportContext) -> Section:
    from recstack.analysis.findings import (Evidence, check_findings, default_findings,
                                            status_counts)

    findings = default_findings()
    table = check_findings(Evidence(timings=context.timings, shares=context.shares,
                                    hardware=context.hardware, dominance=context.dominance,
                                    targets=context.targets, serving=context.serving),
                           findings)
    if context.serving.empty:  # measured only on request: no rows where no run asked
        table = table[table.level != "serving"].reset_index(drop=True)
    section = Section("findings", "The paper's findings, checked on this data")
    shown = table.assign(figure_title=[name.replace("_", " ").replace("-", " ") if name else ""
                                       for name in table.figure])
    columns = {"statement": "finding", "paper": "paper", "status": "status",
               "measured": "measured here", "detail": "how it was decided",
               "figure_title": "figure"}
    section.tables.append(replace(
        table_from_frame(shown, "Findings", columns,
                         row_classes=[status.replace(" ", "-") for status in table.status]),
        links=list(table.figure), link_column=list(columns).index("figure_title")))
    counts = status_counts(table)
    section.headline = ", ".join(f"{count} {status}"
                                 for status, count in zip(counts.status, counts["count"]))
    section.notes.append("Thresholds (analysis/findings.yaml): " + ", ".join(
        f"{k} = {v:g}" for k, v in findings.thresholds.items()))
    section.notes.append("Each finding links the figure it rests on; a finding not measured "
                         "links none. Where a configuration was measured cold and warm, the "
                         "findings read its cold point.")
    platforms = context.measuring_platforms()
    if len(platforms) > 1:
        section.notes.append(f"These runs' points were measured on {len(platforms)} platforms: "
                             "the findings above pool them (a spread or a crossover may set "
                             "one machine's deployment against another's); the fleet section "
                             "checks them platform by platform.")
    return section
