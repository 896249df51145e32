"""The software level: where inference time goes, by operator class and by model part.

Operator classes come from a data table (``operator_classes.yaml``), matched against the
names the profiler recorded; the part view uses the model's part scopes, so a GEMM inside the
attention unit is "fc" in the operator view and "attention" in the part view. Both views of a
point sum to its iteration wall time: operators plus ``overhead`` (time no operator covers).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from recstack.analysis.select import POINT_COLUMNS
from recstack.errors import RecstackError
from recstack.records.profile import plain_drift, profiler_overhead_of
from recstack.store import ResultStore

OVERHEAD = "overhead"
OTHER = "other"
SHARE_COLUMNS = [*POINT_COLUMNS, "view", "category", "time_us", "share"]


@dataclass(frozen=True)
class OperatorClasses:
    """Ordered (class, patterns) pairs; the first class with a matching pattern wins."""

    classes: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.classes] + [OTHER, OVERHEAD]

    def classify(self, operator: str) -> str:
        for name, patterns in self.classes:
            if any(fnmatch.fnmatchcase(operator, pattern) for pattern in patterns):
                return name
        return OTHER


def default_classes() -> OperatorClasses:
    import yaml

    text = resources.files("recstack.analysis").joinpath("operator_classes.yaml").read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        raise RecstackError("operator_classes.yaml: expected a mapping 'classes: {class: "
                            "[patterns]}'")
    return OperatorClasses(tuple((str(name), tuple(str(p) for p in patterns))
                                 for name, patterns in data["classes"].items()))


def load_operators(store: ResultStore, run_ids: list[str] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(operators, profiles) of the measured operator-profile points.

    operators: POINT_COLUMNS + part, op, calls, time_us (per iteration).
    profiles: POINT_COLUMNS + iterations, time_basis, wall_us, operator_us, uncovered_us,
    profiled_median_us, unprofiled_median_us, profiler_overhead, trace_path, ... (every
    declared column of ``profiles``).
    """
    from recstack.analysis.select import point_columns, run_filter, table_columns

    runs, parameters = run_filter(run_ids)
    where = f"pt.status = 'ok' AND pt.level = 'operators'{runs}"
    point = ", ".join(point_columns())
    operators = store.query(f"""
        SELECT {point}, {', '.join(table_columns(store, 'operators', 'o'))}
        FROM points pt JOIN operators o USING (run_id, point_key) WHERE {where}
    """, parameters)
    profiles = store.query(f"""
        SELECT {point}, {', '.join(table_columns(store, 'profiles', 'p'))}
        FROM points pt JOIN profiles p USING (run_id, point_key) WHERE {where}
    """, parameters)
    return operators, profiles


def breakdown(operators: pd.DataFrame, profiles: pd.DataFrame,
              classes: OperatorClasses | None = None) -> pd.DataFrame:
    """Time and share of every category of both views, per point. Columns SHARE_COLUMNS;
    ``view`` is ``operator`` (categories: classes, other, overhead) or ``part`` (categories:
    model parts, overhead). Shares of one point and view sum to 1."""
    classes = classes or default_classes()
    frames = []
    labelled = operators.assign(
        operator_class=[classes.classify(op) for op in operators.op])
    for view, column in (("operator", "operator_class"), ("part", "part")):
        grouped = (labelled.groupby([*POINT_COLUMNS, column], as_index=False)["time_us"].sum()
                   .rename(columns={column: "category"}))
        uncovered = profiles[POINT_COLUMNS].assign(
            category=OVERHEAD, time_us=profiles.uncovered_us.clip(lower=0.0))
        frame = pd.concat([grouped, uncovered], ignore_index=True).assign(view=view)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    totals = table.groupby(["run_id", "point_key", "view"])["time_us"].transform("sum")
    table["share"] = table.time_us / totals
    return table[SHARE_COLUMNS].sort_values(["model", "device", "batch_size", "view",
                                             "time_us"], ascending=[True, True, True, True,
                                                                    False]
                                            ).reset_index(drop=True)


def unclassified_operators(operators: pd.DataFrame,
                           classes: OperatorClasses | None = None) -> pd.DataFrame:
    """Operators the table does not classify (they count as "other"), with their time.
    Columns: op, points, time_us."""
    classes = classes or default_classes()
    unknown = operators[[classes.classify(op) == OTHER for op in operators.op]]
    return (unknown.groupby("op", as_index=False)
            .agg(points=("point_key", "nunique"), time_us=("time_us", "sum"))
            .sort_values("time_us", ascending=False).reset_index(drop=True))


def dominant(shares: pd.DataFrame, view: str = "operator",
             include_overhead: bool = False) -> pd.DataFrame:
    """Per point, the category with the largest share in ``view``. Columns: POINT_COLUMNS +
    category, share."""
    rows = shares[shares.view == view]
    if not include_overhead:
        rows = rows[rows.category != OVERHEAD]
    top = rows.loc[rows.groupby(["run_id", "point_key"])["share"].idxmax()]
    return top[[*POINT_COLUMNS, "category", "share"]].reset_index(drop=True)


def share_trend(shares: pd.DataFrame, view: str = "operator") -> pd.DataFrame:
    """How shares move with batch size: per model, device, threads, backend, precision and
    category, the share at the smallest and the largest batch measured. Columns: model,
    device, threads, backend, embedding_precision, dense_precision, category,
    smallest_batch, share_at_smallest, largest_batch, share_at_largest, change."""
    from recstack.analysis.systems import PRECISION_COLUMNS, with_precision

    rows = with_precision(shares[shares.view == view])
    keys = ["model", "device", "threads", "backend", *PRECISION_COLUMNS]
    pivot = rows.pivot_table(index=[*keys, "category"], columns="batch_size", values="share",
                             aggfunc="mean", fill_value=0.0)
    out = []
    for index, series in pivot.iterrows():
        batches = sorted(series.index)
        out.append({**dict(zip([*keys, "category"], index)),
                    "smallest_batch": batches[0], "share_at_smallest": series[batches[0]],
                    "largest_batch": batches[-1], "share_at_largest": series[batches[-1]],
                    "change": series[batches[-1]] - series[batches[0]]})
    return pd.DataFrame(out)


def profiler_overhead(profiles: pd.DataFrame) -> pd.DataFrame:
    """Per point, the profiler's overhead (profiled over plain median latency, minus 1) and
    how much of the wall time operators cover.

    The reference is always the profile worker's own plain iterations, run just before and
    just after the profiled ones (``unprofiled_median_us``, both sides pooled): never another
    worker's timing, measured minutes apart on another process's caches. Where the plain
    medians before and after disagree by more than
    :data:`recstack.records.profile.PLAIN_DRIFT_TOLERANCE` the machine drifted under the
    profile and the overhead is NaN, with the reason in ``overhead_note``. Rows stored before
    the plain-after iterations existed (no ``plain_after_median_us``) keep the worker's
    plain-before reference, unchecked (``overhead_note`` says so).
    Columns: POINT_COLUMNS + reference, reference_us, profiled_median_us, profiler_overhead,
    wall_us, operator_us, uncovered_us, coverage, plain_drift, overhead_note."""
    frame = profiles[[*POINT_COLUMNS, "profiled_median_us", "wall_us", "operator_us",
                      "uncovered_us"]].copy()
    missing = pd.Series(None, index=profiles.index, dtype=object)
    before = profiles.get("plain_before_median_us", missing)
    after = profiles.get("plain_after_median_us", missing)
    frame["reference"] = "same worker"
    frame["reference_us"] = profiles.unprofiled_median_us.astype(float)
    measured = [profiler_overhead_of(profiled, plain, early, late) for profiled, plain, early,
                late in zip(frame.profiled_median_us, frame.reference_us, before, after)]
    frame["profiler_overhead"] = [overhead for overhead, _ in measured]
    frame["coverage"] = frame.operator_us / frame.wall_us
    frame["plain_drift"] = [plain_drift(early, late) for early, late in zip(before, after)]
    frame["overhead_note"] = [
        note if note is not None or not pd.isna(drift)
        else "no drift check: plain iterations were timed only before the profiler"
        for (_, note), drift in zip(measured, frame.plain_drift)]
    return frame.reset_index(drop=True)
