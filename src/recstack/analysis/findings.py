"""The paper's findings, checked against what the store holds.

The findings and the thresholds that define "dominates", "often" and "a large spread" are
data (``findings.yaml``); each names a rule here that evaluates it from the frames the other
analyses return. Every finding gets a status:

- ``holds``: the measurements agree with the paper's statement;
- ``does not hold``: they were measured and disagree;
- ``not measured``: this data cannot say (no GPU run, no hardware level, model absent...).

:func:`check_findings` returns one row per finding, columns ``FINDING_COLUMNS``:
``id``, ``level`` (systems, software, hardware, cross-stack, serving), ``statement``,
``paper`` (the paper's number or wording), ``status``, ``measured`` (the number measured
here, as text, or :data:`recstack.text.MISSING`), ``detail`` (how it was decided, one
line), ``figure`` (the name of the report figure the finding rests on, from findings.yaml;
empty when not measured). Where a configuration was measured cold and warm, the rules
read its cold point. A model measured in several precisions is one variant per precision
to the rules that read a model's points as one curve or one vote (the deployment spread,
the CPU-to-GPU crossover, the stall at the smallest batch). The serving level's rules are in
:mod:`serving_findings`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import pandas as pd

from recstack.errors import RecstackError
from recstack.text import MISSING

HOLDS, DOES_NOT_HOLD, NOT_MEASURED = "holds", "does not hold", "not measured"
STATUSES = (HOLDS, DOES_NOT_HOLD, NOT_MEASURED)
FINDING_COLUMNS = ["id", "level", "statement", "paper", "status", "measured", "detail",
                   "figure"]
DOMINANCE_COLUMNS = ["bottleneck", "strongest_feature", "strongest_share"]
STALLS = ["bad_speculation", "frontend_bound", "backend_bound"]


@dataclass(frozen=True)
class Finding:
    id: str
    level: str
    statement: str
    paper: str
    check: str
    args: dict[str, Any] = field(default_factory=dict)
    figure: str = ""
    """The report figure it rests on: a figure's file name, or the start of one."""


@dataclass(frozen=True)
class Findings:
    """The findings to check and the thresholds the rules use (see findings.yaml)."""

    findings: tuple[Finding, ...]
    thresholds: dict[str, float]


@dataclass
class Evidence:
    """What the rules read: the frames of the other analyses (empty where not measured).

    timings: ``systems.load_timings`` (TIMING_COLUMNS); shares: ``breakdown.breakdown``
    (SHARE_COLUMNS); hardware: ``topdown.load_hardware`` (HARDWARE_COLUMNS); dominance:
    columns DOMINANCE_COLUMNS, one row per bottleneck (the correlation analysis), or None;
    serving: ``serving.load_serving`` (SERVING_COLUMNS), or None.
    """

    timings: pd.DataFrame
    shares: pd.DataFrame
    hardware: pd.DataFrame
    dominance: pd.DataFrame | None = None
    targets: Any = None  # systems.LatencyTargets; the defaults when None
    serving: pd.DataFrame | None = None


def default_findings() -> Findings:
    import yaml

    text = resources.files("recstack.analysis").joinpath("findings.yaml").read_text()
    data = yaml.safe_load(text)
    try:
        findings = tuple(Finding(id=str(f["id"]), level=str(f["level"]),
                                 statement=str(f["statement"]), paper=str(f["paper"]),
                                 check=str(f["check"]), args=dict(f.get("args") or {}),
                                 figure=str(f.get("figure") or ""))
                         for f in data["findings"])
        thresholds = {str(k): float(v) for k, v in data["thresholds"].items()}
    except (KeyError, TypeError, ValueError) as error:
        raise RecstackError(f"findings.yaml: malformed ({error}); expected findings (id, "
                            "level, statement, paper, check, args) and thresholds") from None
    every = rules()
    for finding in findings:
        if finding.check not in every:
            raise RecstackError(f"findings.yaml: {finding.id}: check {finding.check!r} is not "
                                f"allowed; expected one of {', '.join(every)}")
    return Findings(findings, thresholds)


def check_findings(evidence: Evidence, findings: Findings | None = None) -> pd.DataFrame:
    """Every finding with its status and measured number (columns FINDING_COLUMNS), judged
    as the paper measured: on cold points where a configuration has them, and on fp32
    points where a model has them."""
    from recstack.analysis.systems import prefer_cold, prefer_reference_precision

    def paper_setting(frame: pd.DataFrame) -> pd.DataFrame:  # cold, in fp32, where measured
        return prefer_reference_precision(prefer_cold(frame))

    findings = findings or default_findings()
    evidence = replace(evidence, timings=paper_setting(evidence.timings),
                       shares=paper_setting(evidence.shares),
                       hardware=paper_setting(evidence.hardware))
    rows, every = [], rules()
    for finding in findings.findings:
        status, measured, detail = every[finding.check](evidence, findings.thresholds,
                                                        **finding.args)
        rows.append({"id": finding.id, "level": finding.level, "statement": finding.statement,
                     "paper": finding.paper, "status": status, "measured": measured,
                     "detail": detail,
                     "figure": "" if status == NOT_MEASURED else finding.figure})
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def status_counts(table: pd.DataFrame) -> pd.DataFrame:
    """How many findings of :func:`check_findings`' table have each status: columns status,
    count, one row per status of STATUSES in that order."""
    counts = table.status.value_counts()
    return pd.DataFrame({"status": list(STATUSES),
                         "count": [int(counts.get(status, 0)) for status in STATUSES]})


def load_evidence(store: Any, run_ids: list[str] | None = None,
                  dominance: pd.DataFrame | None = None) -> Evidence:
    """The frames the rules read, from the store's runs ``run_ids`` (all runs when None)."""
    from recstack.analysis.serving import load_serving
    from recstack.analysis.systems import load_timings
    from recstack.analysis.topdown import load_hardware
    from recstack.analysis.views import software_frames

    _, _, shares = software_frames(store, run_ids)
    return Evidence(timings=load_timings(store, run_ids), shares=shares,
                    hardware=load_hardware(store, run_ids), dominance=dominance,
                    serving=load_serving(store, run_ids))


# ---- rules: (evidence, thresholds, **args) -> (status, measured, detail) --------------------

Outcome = tuple[str, str, str]


def _deployment_spread(evidence: Evidence, thresholds: dict[str, float]) -> Outcome:
    from recstack.analysis.systems import default_targets, deployment_spread

    timings = evidence.timings
    if timings.empty:
        return NOT_MEASURED, MISSING, "no timing points"
    targets = evidence.targets or default_targets()
    # Only deployments that meet the model's p95 target are choices a service could make;
    # without any, the spread over every measured deployment is shown instead.
    spread = deployment_spread(timings, targets)
    scope = "within the p95 latency targets"
    if spread.empty or spread.deployments.max() < 2:
        spread, scope = deployment_spread(timings), "over all deployments (none met targets)"
    spread = spread[spread.deployments >= 2]
    if spread.empty:
        return NOT_MEASURED, MISSING, "fewer than two deployments of any model"
    top = spread.loc[spread.ratio.idxmax()]
    status = HOLDS if top.ratio >= thresholds["deployment_spread_min"] else DOES_NOT_HOLD
    return (status, f"{top.ratio:.1f}x",
            f"{top.model}: best {top.best} over worst {top.worst}, {scope}; holds at >= "
            f"{thresholds['deployment_spread_min']:g}x")


def _crossover(evidence: Evidence, thresholds: dict[str, float]) -> Outcome:
    from recstack.analysis.systems import speedup_over_cpu

    timings = evidence.timings
    if timings.empty or not (timings.device != "cpu").any():
        return NOT_MEASURED, MISSING, "no GPU measured (needs CPU and GPU points of one model)"
    speedups = speedup_over_cpu(timings)
    speedups = speedups[speedups.device != "cpu"]
    if speedups.empty:
        return NOT_MEASURED, MISSING, "no model measured on both the CPU and a GPU"
    crossovers, failures = {}, []
    # A curve per model and precision: an fp16 model's batches never continue an fp32 one's.
    speedups = speedups.assign(model=_variant_names(speedups))
    for (model, device), group in speedups.groupby(["model", "device"], sort=False):
        group = group.sort_values("batch_size")
        first, last = group.iloc[0], group.iloc[-1]
        if not (first.speedup < 1 < last.speedup):
            failures.append(f"{model} on {device}: {first.speedup:.2g}x at b{first.batch_size}"
                            f", {last.speedup:.2g}x at b{last.batch_size}")
            continue
        winning = group[group.speedup > 1]
        crossovers[f"{model}/{device}"] = int(winning.batch_size.min())
    measured = ", ".join(f"{k}: b{v}" for k, v in crossovers.items()) or "no crossover"
    if failures:
        return DOES_NOT_HOLD, measured, "no CPU-to-GPU crossover: " + "; ".join(failures)
    if len(crossovers) >= 2 and len(set(crossovers.values())) == 1:
        return (DOES_NOT_HOLD, measured, "every model crosses over at the same batch size "
                "(on this batch grid)")
    return HOLDS, measured, "GPU over best CPU throughput; crossover = first batch the GPU wins"


def _dominant_points(shares: pd.DataFrame, view: str, threshold: float) -> pd.DataFrame:
    """Per point of ``view``: the largest category (overhead excluded), its share of the
    operator time, and whether that share reaches ``threshold``. Columns: run_id, point_key,
    model, batch_size, device, category, share, dominant."""
    columns = ["run_id", "point_key", "model", "batch_size", "device", "category", "share"]
    rows = _operator_shares(shares, view)
    if rows.empty:
        return pd.DataFrame(columns=[*columns, "dominant"])
    top = rows.loc[rows.groupby(["run_id", "point_key"])["share"].idxmax()][columns]
    return top.assign(dominant=top.share >= threshold).reset_index(drop=True)


def _operator_shares(shares: pd.DataFrame, view: str) -> pd.DataFrame:
    """The rows of ``view`` without the overhead, ``share`` now of the operator time."""
    from recstack.analysis.breakdown import OVERHEAD

    rows = shares[(shares.view == view) & (shares.category != OVERHEAD)]
    covered = rows.groupby(["run_id", "point_key"])["time_us"].transform("sum")
    return rows.assign(share=rows.time_us / covered)


def _dominates(evidence: Evidence, thresholds: dict[str, float], model: str, view: str,
               category: str) -> Outcome:
    shares = evidence.shares
    if shares.empty or model not in set(shares.model):
        return NOT_MEASURED, MISSING, f"no operator profile of {model}"
    threshold = thresholds["dominant_min_share"]
    top = _dominant_points(shares, view, threshold)
    top = top[top.model == model]
    rows = _operator_shares(shares[shares.model == model], view)
    own = rows[rows.category == category].share
    wins = int(((top.category == category) & top.dominant).sum())
    fraction = wins / len(top)
    share_text = f"{own.median():.0%}" if not own.empty else "0%"
    status = HOLDS if fraction >= thresholds["majority"] else DOES_NOT_HOLD
    others = top[top.category != category].category.value_counts()
    detail = (f"{category} ({view} view) dominates {wins} of {len(top)} points of {model} "
              f"(median share {share_text} of operator time; dominating = largest and >= "
              f"{threshold:.0%})")
    if not others.empty:
        detail += "; elsewhere " + ", ".join(f"{name} ({count})" for name, count in
                                            others.items())
    return status, f"{share_text} ({wins}/{len(top)} points)", detail


def _stalls(hardware: pd.DataFrame) -> pd.DataFrame:
    """Hardware points with a top-down level 1, and their largest stall category."""
    if hardware.empty or any(c not in hardware.columns for c in STALLS):
        return pd.DataFrame(columns=[*STALLS, "model", "batch_size", "source", "bottleneck"])
    rows = hardware.dropna(subset=STALLS)
    if rows.empty:
        return rows.assign(bottleneck=pd.Series(dtype=str))
    return rows.assign(bottleneck=rows[STALLS].astype(float).idxmax(axis=1))


def _sources(rows: pd.DataFrame) -> str:
    kinds = sorted({"simulated" if str(s).startswith("simulated") else "measured"
                    for s in rows.source})
    return "/".join(kinds)


def _variant_names(frame: pd.DataFrame) -> list[str]:
    """Each row's model, named with its precision where that is not fp32 ("rmc1
    emb=int8,dense=fp32"): one model in two precisions is two variants to every rule that
    reads a model's points as one curve or one vote."""
    from recstack.analysis.systems import precision_labels
    from recstack.precision import REFERENCE

    return [str(model) if label == REFERENCE else f"{model} {label}"
            for model, label in zip(frame.model, precision_labels(frame))]


def _frontend_small_batch(evidence: Evidence, thresholds: dict[str, float]) -> Outcome:
    rows = _stalls(evidence.hardware)
    if rows.empty:
        return NOT_MEASURED, MISSING, "no top-down points (hardware level not measured)"
    rows = rows.assign(model=_variant_names(rows))
    smallest = rows[rows.batch_size == rows.groupby("model").batch_size.transform("min")]
    per_model = smallest.groupby("model", sort=False).agg(
        batch_size=("batch_size", "first"), frontend=("frontend_bound", "mean"),
        bottleneck=("bottleneck", lambda b: b.value_counts().idxmax()))
    frontend = per_model[per_model.bottleneck == "frontend_bound"]
    fraction = len(frontend) / len(per_model)
    status = HOLDS if fraction >= thresholds["majority"] else DOES_NOT_HOLD
    return (status, f"{len(frontend)}/{len(per_model)} models ({_sources(smallest)})",
            "largest stall at each model's smallest batch: "
            + ", ".join(f"{m} b{r.batch_size} {r.bottleneck.replace('_', ' ')} "
                        f"(frontend {r.frontend:.0%})" for m, r in per_model.iterrows()))


def _backend_where_embeddings(evidence: Evidence, thresholds: dict[str, float]) -> Outcome:
    rows = _stalls(evidence.hardware)
    if rows.empty:
        return NOT_MEASURED, MISSING, "no top-down points (hardware level not measured)"
    if not evidence.shares.empty:
        top = _dominant_points(evidence.shares, "operator", thresholds["dominant_min_share"])
        wins = top.assign(win=(top.category == "embedding") & top.dominant).groupby(
            "model").win.mean()
        models = sorted(wins[wins >= thresholds["majority"]].index)
        basis = "embedding-dominated in this run's operator profiles"
    else:
        models = [f.args["model"] for f in default_findings().findings
                  if f.args.get("category") == "embedding"]
        basis = "the paper's embedding-dominated models (no operator profiles here)"
    rows = rows[rows.model.isin(models)]
    if not models or rows.empty:
        return (NOT_MEASURED, MISSING, "no hardware points of an embedding-dominated model "
                f"({basis}: {', '.join(models) or 'none'})")
    backend = rows[rows.bottleneck == "backend_bound"]
    fraction = len(backend) / len(rows)
    status = HOLDS if fraction >= thresholds["majority"] else DOES_NOT_HOLD
    return (status, f"{len(backend)}/{len(rows)} points, backend median "
                    f"{rows.backend_bound.median():.0%} ({_sources(rows)})",
            f"backend bound is the largest stall at {len(backend)} of {len(rows)} hardware "
            f"points of {', '.join(models)} ({basis})")


def _no_single_feature(evidence: Evidence, thresholds: dict[str, float]) -> Outcome:
    dominance = evidence.dominance
    if dominance is None or dominance.empty:
        return (NOT_MEASURED, MISSING,
                "no feature-bottleneck correlation (needs a design-space run)")
    missing = [c for c in DOMINANCE_COLUMNS if c not in dominance.columns]
    if missing:
        raise RecstackError(f"dominance: lacks columns {missing}; expected "
                            f"{', '.join(DOMINANCE_COLUMNS)}")
    limit = thresholds["single_feature_max_share"]
    top = dominance.loc[dominance.strongest_share.astype(float).idxmax()]
    single = dominance[dominance.strongest_share >= limit]
    status = DOES_NOT_HOLD if not single.empty else HOLDS
    detail = (f"largest share of explained variance carried by one feature: "
              f"{top.strongest_feature} for {top.bottleneck}; a feature dominates at >= "
              f"{limit:.0%}")
    if not single.empty:
        detail += "; dominated: " + ", ".join(f"{r.bottleneck} by {r.strongest_feature}"
                                              for r in single.itertuples())
    return status, f"{float(top.strongest_share):.0%} ({top.bottleneck})", detail


RULES: dict[str, Callable[..., Outcome]] = {
    "deployment_spread": _deployment_spread,
    "crossover": _crossover,
    "dominates": _dominates,
    "frontend_small_batch": _frontend_small_batch,
    "backend_where_embeddings": _backend_where_embeddings,
    "no_single_feature": _no_single_feature,
}


def rules() -> dict[str, Callable[..., Outcome]]:
    """Every rule by its ``check`` name: RULES and the serving level's
    (:mod:`recstack.analysis.serving_findings`, which imports this module's statuses)."""
    from recstack.analysis.serving_findings import SERVING_RULES

    return {**RULES, **SERVING_RULES}
