"""The serving level's findings (DeepRecSched's claims about tuning a deployment for
latency-bounded throughput), checked as the paper's are: findings.yaml names each rule by its
``check``, and a rule returns (status, measured, detail) from the serving points
(``Evidence.serving``: the frame ``analysis.serving.load_serving`` returns).

A model is *tuned* when its run measured its baseline and at least one other server
deployment (``recstack serve --tune``); a lone baseline says nothing about tuning. These
rules live apart from findings.py, which registers them (``findings.rules``), to keep each
module to one job and under its size.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from recstack.analysis.findings import DOES_NOT_HOLD, HOLDS, NOT_MEASURED, Evidence, Outcome
from recstack.text import MISSING

HOW = "`recstack serve --tune` measures the baseline and the tuner's deployments"


def _serving(evidence: Evidence) -> pd.DataFrame:
    return evidence.serving if evidence.serving is not None else pd.DataFrame()


def tuned_models(serving: pd.DataFrame) -> pd.DataFrame:
    """``tuned_vs_baseline``'s rows of the models tuned (see the module docstring), each
    named by ``name``: its model, with its run where the frame holds several runs."""
    from recstack.analysis.serving import tuned_vs_baseline

    table = tuned_vs_baseline(serving, tuned_only=True)
    several = table.run_id.nunique() > 1
    return table.assign(name=[f"{r.model} (run {r.run_id})" if several else r.model
                              for r in table.itertuples()])


def _beats(tuned: float, baseline: float) -> bool:
    """A valid rate beats none; none beats nothing."""
    if pd.isna(tuned):
        return False
    return pd.isna(baseline) or tuned > baseline


def _tuned_beats_baseline(evidence: Evidence, thresholds: dict[str, float]) -> Outcome:
    serving = _serving(evidence)
    if serving.empty:
        return NOT_MEASURED, MISSING, "no serving points"
    tuned = tuned_models(serving)
    if tuned.empty:
        return NOT_MEASURED, MISSING, f"no model tuned ({HOW})"
    measured, kept, beyond = [], [], 0
    for row in tuned.itertuples():
        ratio = f"{row.gain:.2f}x" if pd.notna(row.gain) else (
            "no valid rate" if pd.isna(row.tuned_qps) else "baseline met no rate")
        measured.append(f"{row.name} {ratio}")
        if not _beats(row.tuned_qps, row.baseline_qps):
            kept.append(f"{row.name} (baseline {row.baseline} best of {row.deployments})")
        elif pd.isna(row.baseline_invalid_qps) or row.tuned_qps > row.baseline_invalid_qps:
            beyond += 1
    wins = len(tuned) - len(kept)
    target = tuned.iloc[0]
    detail = (f"tuned over baseline latency-bounded QPS (p{target.percentile:g} bound) in "
              f"{wins} of {len(tuned)} models tuned")
    if kept:
        detail += "; not beaten: " + ", ".join(kept)
    if wins:
        detail += (f"; {beyond} of the {wins} gains pass the baseline's lowest INVALID rate "
                   "(the rest lie within its search's bracket)")
    return (HOLDS if not kept else DOES_NOT_HOLD), ", ".join(measured), detail


def _best_sub_batch_differs(evidence: Evidence, thresholds: dict[str, float]) -> Outcome:
    serving = _serving(evidence)
    if serving.empty:
        return NOT_MEASURED, MISSING, "no serving points"
    tuned = tuned_models(serving)
    tuned = tuned[tuned.tuned_qps.notna()]
    if len(tuned) < 2:
        return (NOT_MEASURED, MISSING, f"needs at least two tuned models with a valid rate "
                f"({len(tuned)} here; {HOW})")
    best, shown = {}, []
    for row in tuned.itertuples():
        # A split that beats the baseline by less than its search's bracket is a tie.
        clear = row.tuned_splits and (pd.isna(row.baseline_invalid_qps)
                                      or row.tuned_qps > row.baseline_invalid_qps)
        best[row.name] = f"sub-batch {row.tuned_sub_batch}" if clear else "whole requests"
        tie = "" if clear or not row.tuned_splits else \
            f" (sub-batch {row.tuned_sub_batch} within the baseline's bracket)"
        shown.append(f"{row.name}: {best[row.name]}{tie}")
    status = HOLDS if len(set(best.values())) > 1 else DOES_NOT_HOLD
    return (status, ", ".join(shown),
            f"the sub-batch size of each model's best deployment measured, over "
            f"{len(tuned)} tuned models ('whole requests': the baseline's no-split was best, "
            "or no split beat it by more than the search's bracket)")


def _gpu_offload_helps(evidence: Evidence, thresholds: dict[str, float]) -> Outcome:
    from recstack.analysis.serving import offload_gains

    serving = _serving(evidence)
    if serving.empty:
        return NOT_MEASURED, MISSING, "no serving points"
    if not serving.offload_threshold.notna().any():
        return (NOT_MEASURED, MISSING, "no request was offloaded to a GPU (needs a GPU engine:"
                " --offload-threshold, or --tune on a machine with a GPU)")
    gains = offload_gains(serving)
    if gains.empty:
        return (NOT_MEASURED, MISSING, "no offloading deployment was measured beside the same "
                "deployment without offload")
    measured, lost = [], []
    for row in gains.itertuples():
        ratio = f"{row.gain:.2f}x" if pd.notna(row.gain) else (
            "CPU met no rate" if pd.notna(row.offload_qps) else "no valid rate")
        measured.append(f"{row.model} {ratio} (>= {row.offload_threshold} items)")
        if not _beats(row.offload_qps, row.cpu_qps):
            lost.append(f"{row.model} {row.deployment}")
    detail = (f"the best offload threshold's latency-bounded QPS over the same deployment "
              f"without offload, in {len(gains) - len(lost)} of {len(gains)} deployments")
    if lost:
        detail += "; not raised: " + ", ".join(lost)
    return (HOLDS if not lost else DOES_NOT_HOLD), ", ".join(measured), detail


SERVING_RULES: dict[str, Callable[..., Outcome]] = {
    "tuned_beats_baseline": _tuned_beats_baseline,
    "best_sub_batch_differs": _best_sub_batch_differs,
    "gpu_offload_helps": _gpu_offload_helps,
}
