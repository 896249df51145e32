"""Cross-stack correlation: how the models' algorithmic features relate to their bottlenecks.

Every analysis works on a table with one row per model variant (at one batch size, device,
thread count and backend: :func:`analysis_groups` splits a store's table that way) and
returns a DataFrame with a documented schema:

- :func:`correlation_matrix`: Pearson or Spearman r of every feature with every bottleneck,
  with p-values and a Benjamini-Hochberg decision over the whole matrix (scipy, statsmodels).
- :func:`regression_fits`: one ordinary least squares fit per bottleneck on standardized
  features, chosen by forward selection on adjusted R-squared with at most one feature per
  four variants (so small designs do not fit noise): standardized coefficients with p-values,
  R-squared, adjusted R-squared, and R-squared cross-validated by k-fold with the selection
  redone inside every fold (statsmodels, scikit-learn).
- :func:`importance_table`: a random forest per bottleneck, features ranked by their
  impurity-based importance (scikit-learn).
- :func:`dominance_table`: per bottleneck, the share of explained variance carried by its
  single strongest feature: adjusted R-squared of the best one-feature fit divided by that of
  the selected multi-feature fit (which starts from that feature, so the share is in (0, 1]). Giving the single feature all the
  variance it shares with others makes this an upper bound on its own part, so a share below
  ``DOMINANCE_THRESHOLD`` is strong evidence that no single component dominates.

Magnitudes spanning orders of magnitude (``features.LOG_FEATURES``) enter as log10(1 + x).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recstack.analysis.bottlenecks import GROUP_COLUMNS, bottleneck_columns
from recstack.errors import RecstackError
from recstack.features import FEATURES, LOG_FEATURES

METHODS: tuple[str, ...] = ("pearson", "spearman")
# The "algorithmic components" each regression is fitted on: the parts of a model's design.
# Totals and ratios of these (flops_total, parameter_bytes, bytes_per_flop) and presence flags
# are left out because they are functions of the components and would make the fits singular.
REGRESSION_FEATURES: tuple[str, ...] = (
    "flops_mlp", "flops_attention", "flops_recurrent", "flops_interaction", "gathered_bytes",
    "embedding_bytes", "num_tables", "pooling_factor", "embedding_dim", "mlp_depth",
    "widest_layer", "sequence_length", "num_tasks", "interaction_dot")
# Two features correlated beyond this (in the variants measured) carry the same information:
# the regression keeps the first of them in REGRESSION_FEATURES order.
COLLINEARITY_LIMIT = 0.95
# A feature "dominates" a bottleneck when it alone carries at least this share of the
# variance all components explain together.
DOMINANCE_THRESHOLD = 0.5
MIN_VARIANTS = 5
# Rows per coefficient a fit must keep (see max_features).
FEATURES_PER_VARIANT_DIVISOR = 4
FALSE_DISCOVERY_RATE = 0.05

CORRELATION_COLUMNS = [*GROUP_COLUMNS, "method", "feature", "bottleneck", "r", "p_value",
                       "significant", "n"]
COEFFICIENT_COLUMNS = [*GROUP_COLUMNS, "bottleneck", "feature", "coefficient", "std_error",
                       "p_value"]
FIT_COLUMNS = [*GROUP_COLUMNS, "bottleneck", "n", "features", "r2", "adj_r2", "cv_r2",
               "dropped_collinear"]
"""``features``: the features the fit chose, comma-separated, strongest first."""
IMPORTANCE_COLUMNS = [*GROUP_COLUMNS, "bottleneck", "feature", "importance", "rank"]
DOMINANCE_COLUMNS = [*GROUP_COLUMNS, "bottleneck", "strongest_feature", "strongest_r2",
                     "full_r2", "strongest_share", "dominated", "n"]


# ---- preparing the variables -----------------------------------------------------------------


def analysis_groups(table: pd.DataFrame) -> list[tuple[dict[str, object], pd.DataFrame]]:
    """The table split by batch size, device, threads and backend: correlations compare model
    variants, never one model's batch sizes with another's."""
    groups = []
    for key, frame in table.groupby(GROUP_COLUMNS, sort=True):
        groups.append((dict(zip(GROUP_COLUMNS, key)), frame.reset_index(drop=True)))
    return groups


def transformed_features(frame: pd.DataFrame, names: Sequence[str] | None = None
                         ) -> pd.DataFrame:
    """The numeric features (log10(1 + x) for LOG_FEATURES), without the constant ones."""
    names = list(names or FEATURES)
    data = frame[names].astype(float)
    for name in names:
        if name in LOG_FEATURES:
            data[name] = np.log10(1.0 + data[name])
    varying = [name for name in names if data[name].nunique(dropna=True) > 1]
    return data[varying]


def _require_variants(frame: pd.DataFrame, what: str) -> None:
    if len(frame) < MIN_VARIANTS:
        raise RecstackError(f"{what}: {len(frame)} model variants measured; at least "
                            f"{MIN_VARIANTS} are needed (use a larger design space)")


def _clean(x: pd.Series, y: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    keep = x.notna() & y.notna()
    return x[keep].to_numpy(float), y[keep].to_numpy(float)


# ---- correlation matrices --------------------------------------------------------------------


def correlation_matrix(frame: pd.DataFrame, bottlenecks: Sequence[str],
                       method: str = "spearman") -> pd.DataFrame:
    """r and p of every varying feature with every bottleneck over the variants of ``frame``
    (one group). Columns: CORRELATION_COLUMNS (group columns taken from the frame)."""
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    if method not in METHODS:
        raise RecstackError(f"--method: {method!r} is not allowed; expected one of "
                            f"{', '.join(METHODS)}")
    _require_variants(frame, "correlation")
    features = transformed_features(frame)
    rows = []
    for bottleneck in bottlenecks:
        target = frame[bottleneck].astype(float)
        for name in features.columns:
            x, y = _clean(features[name], target)
            if len(x) < 3 or np.ptp(y) == 0 or np.ptp(x) == 0:
                r, p = math.nan, math.nan
            else:
                test = stats.pearsonr(x, y) if method == "pearson" else stats.spearmanr(x, y)
                r, p = float(test.statistic), float(test.pvalue)
            rows.append({"method": method, "feature": name, "bottleneck": bottleneck,
                         "r": r, "p_value": p, "n": len(x)})
    table = pd.DataFrame(rows)
    table["significant"] = False
    tested = table.p_value.notna()
    if tested.any():
        table.loc[tested, "significant"] = multipletests(
            table.p_value[tested], alpha=FALSE_DISCOVERY_RATE, method="fdr_bh")[0]
    return _with_group(table, frame, CORRELATION_COLUMNS)


def _with_group(table: pd.DataFrame, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for name in GROUP_COLUMNS:
        table[name] = frame[name].iloc[0] if name in frame.columns and len(frame) else None
    return table.reindex(columns=columns)


# ---- regressions -----------------------------------------------------------------------------


def regression_design(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The standardized regression features of the variants, and those dropped as collinear
    with an earlier one (|r| > COLLINEARITY_LIMIT)."""
    data = transformed_features(frame, REGRESSION_FEATURES)
    kept: list[str] = []
    dropped: list[str] = []
    correlations = data.corr().abs()
    for name in data.columns:
        if any(correlations.loc[name, other] > COLLINEARITY_LIMIT for other in kept):
            dropped.append(name)
        else:
            kept.append(name)
    design = data[kept]
    return (design - design.mean()) / design.std(ddof=0), dropped


def max_features(variants: int) -> int:
    """How many features a fit on ``variants`` rows may use: about four rows per coefficient,
    so that small designs do not fit noise."""
    return max(1, (variants - 2) // FEATURES_PER_VARIANT_DIVISOR)


def _fit(x: pd.DataFrame, y: np.ndarray):  # -> statsmodels RegressionResults
    import statsmodels.api as sm

    return sm.OLS(y, sm.add_constant(x, has_constant="add")).fit()


def forward_selection(x: pd.DataFrame, y: np.ndarray, limit: int) -> list[str]:
    """Features chosen one at a time, each the one that raises adjusted R-squared most, while
    it rises and at most ``limit``. The first is the best single feature."""
    chosen: list[str] = []
    best = -math.inf
    while len(chosen) < limit:
        scores = {name: _fit(x[[*chosen, name]], y).rsquared_adj
                  for name in x.columns if name not in chosen}
        if not scores:
            break
        name = max(scores, key=scores.get)
        if scores[name] <= best:
            break
        chosen.append(name)
        best = scores[name]
    return chosen


def _cross_validated_r2(x: pd.DataFrame, y: np.ndarray, seed: int) -> float:
    """R-squared of held-out predictions, k-fold, with the feature selection redone inside
    every fold (selecting on all rows first would leak the held-out ones)."""
    import statsmodels.api as sm
    from sklearn.model_selection import KFold

    folds = min(5, len(y))
    if folds < 3:
        return math.nan
    predicted = np.empty_like(y)
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(x):
        chosen = forward_selection(x.iloc[train], y[train], max_features(len(train)))
        model = _fit(x.iloc[train][chosen], y[train])
        predicted[test] = model.predict(sm.add_constant(x.iloc[test][chosen],
                                                        has_constant="add"))
    # One R-squared over all held-out predictions: per-fold R-squared is undefined for folds
    # of one or two variants.
    residual = float(((y - predicted) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - residual / total if total > 0 else math.nan


def _standardized_target(frame: pd.DataFrame, bottleneck: str
                         ) -> tuple[pd.Series, np.ndarray] | None:
    target = frame[bottleneck].astype(float)
    keep = target.notna()
    y = target[keep].to_numpy()
    if len(y) < MIN_VARIANTS or np.ptp(y) == 0:
        return None
    return keep, (y - y.mean()) / y.std()


def _selections(frame: pd.DataFrame, bottlenecks: Sequence[str]
                ) -> Iterator[tuple[str, pd.DataFrame, np.ndarray, list[str]]]:
    """Per bottleneck with enough varying values: (bottleneck, standardized regression
    features of its variants, standardized bottleneck, features forward selection chose)."""
    design, _ = regression_design(frame)
    for bottleneck in bottlenecks:
        prepared = _standardized_target(frame, bottleneck)
        if prepared is None:
            continue
        keep, y = prepared
        x = design[keep.to_numpy()].reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small designs: statsmodels warns about kurtosis
            chosen = forward_selection(x, y, max_features(len(y)))
        if chosen:
            yield bottleneck, x, y, chosen


def regression_fits(frame: pd.DataFrame, bottlenecks: Sequence[str], seed: int = 0
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(coefficients, fits): per bottleneck, an OLS on the standardized regression features
    chosen by :func:`forward_selection`. Columns: COEFFICIENT_COLUMNS and FIT_COLUMNS."""
    _require_variants(frame, "regression")
    _, dropped = regression_design(frame)
    coefficients, fits = [], []
    for bottleneck, x, y, chosen in _selections(frame, bottlenecks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = _fit(x[chosen], y)
            cv_r2 = _cross_validated_r2(x, y, seed)
        for name in chosen:
            coefficients.append({"bottleneck": bottleneck, "feature": name,
                                 "coefficient": float(result.params[name]),
                                 "std_error": float(result.bse[name]),
                                 "p_value": float(result.pvalues[name])})
        fits.append({"bottleneck": bottleneck, "n": len(y), "features": ", ".join(chosen),
                     "r2": float(result.rsquared), "adj_r2": float(result.rsquared_adj),
                     "cv_r2": cv_r2, "dropped_collinear": ", ".join(dropped)})
    return (_with_group(pd.DataFrame(coefficients), frame, COEFFICIENT_COLUMNS),
            _with_group(pd.DataFrame(fits), frame, FIT_COLUMNS))


def dominance_table(frame: pd.DataFrame, bottlenecks: Sequence[str]) -> pd.DataFrame:
    """Per bottleneck, the strongest single feature and its share of the explained variance
    (see the module docstring). Columns: DOMINANCE_COLUMNS."""
    _require_variants(frame, "dominance")
    rows = []
    for bottleneck, x, y, chosen in _selections(frame, bottlenecks):
        strongest = chosen[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            single = _fit(x[[strongest]], y).rsquared_adj
            full = _fit(x[chosen], y).rsquared_adj
        share = min(1.0, max(0.0, single / full)) if full > 0 else math.nan
        rows.append({"bottleneck": bottleneck, "strongest_feature": strongest,
                     "strongest_r2": float(single), "full_r2": float(full),
                     "strongest_share": share,
                     "dominated": bool(share >= DOMINANCE_THRESHOLD) if share == share
                     else False,
                     "n": len(y)})
    return _with_group(pd.DataFrame(rows), frame, DOMINANCE_COLUMNS)


# ---- tree-based importance --------------------------------------------------------------------


def importance_table(frame: pd.DataFrame, bottlenecks: Sequence[str], seed: int = 0
                     ) -> pd.DataFrame:
    """Features ranked per bottleneck by a random forest's impurity-based importance (summing
    to 1 per bottleneck). Columns: IMPORTANCE_COLUMNS."""
    from sklearn.ensemble import RandomForestRegressor

    _require_variants(frame, "importance")
    features = transformed_features(frame)
    rows = []
    for bottleneck in bottlenecks:
        target = frame[bottleneck].astype(float)
        keep = target.notna()
        if keep.sum() < MIN_VARIANTS or target[keep].nunique() < 2:
            continue
        forest = RandomForestRegressor(n_estimators=300, min_samples_leaf=2,
                                       random_state=seed, n_jobs=1)
        forest.fit(features[keep].to_numpy(), target[keep].to_numpy())
        order = np.argsort(-forest.feature_importances_, kind="stable")
        for rank, index in enumerate(order, start=1):
            rows.append({"bottleneck": bottleneck, "feature": features.columns[index],
                         "importance": float(forest.feature_importances_[index]),
                         "rank": rank})
    return _with_group(pd.DataFrame(rows), frame, IMPORTANCE_COLUMNS)


# ---- everything, per group -------------------------------------------------------------------


@dataclass
class CorrelationResult:
    """All analyses of a bottleneck table, every group stacked (see each column list)."""

    correlations: pd.DataFrame
    coefficients: pd.DataFrame
    fits: pd.DataFrame
    importance: pd.DataFrame
    dominance: pd.DataFrame
    bottlenecks: list[str]
    notes: list[str] = field(default_factory=list)


def correlate(table: pd.DataFrame, seed: int = 0) -> CorrelationResult:
    """Runs every analysis on every group of a :func:`~recstack.analysis.bottlenecks.
    load_bottlenecks` table with enough variants; groups with too few are named in ``notes``."""
    bottlenecks = bottleneck_columns(table)
    if not bottlenecks:
        raise RecstackError("correlation: the runs read hold no measured bottlenecks (timing, "
                            "operator or hardware points)")
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in
                                            ("corr", "coef", "fit", "imp", "dom")}
    notes = []
    for group, frame in analysis_groups(table):
        label = ", ".join(f"{k} {v}" for k, v in group.items())
        if len(frame) < MIN_VARIANTS:
            notes.append(f"{label}: {len(frame)} variants, fewer than {MIN_VARIANTS}: not "
                         "analysed")
            continue
        present = [b for b in bottlenecks if frame[b].notna().sum() >= MIN_VARIANTS]
        if not present:
            notes.append(f"{label}: no bottleneck measured on {MIN_VARIANTS} variants or "
                         "more: not analysed")
            continue
        for method in METHODS:
            parts["corr"].append(correlation_matrix(frame, present, method))
        coefficients, fits = regression_fits(frame, present, seed)
        parts["coef"].append(coefficients)
        parts["fit"].append(fits)
        parts["imp"].append(importance_table(frame, present, seed))
        parts["dom"].append(dominance_table(frame, present))
    if not parts["corr"]:
        raise RecstackError("correlation: no batch size has at least "
                            f"{MIN_VARIANTS} model variants measured; " + "; ".join(notes))

    def stack(key: str, columns: list[str]) -> pd.DataFrame:
        frames = [f for f in parts[key] if not f.empty]
        return (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame(columns=columns))

    return CorrelationResult(
        correlations=stack("corr", CORRELATION_COLUMNS),
        coefficients=stack("coef", COEFFICIENT_COLUMNS),
        fits=stack("fit", FIT_COLUMNS),
        importance=stack("imp", IMPORTANCE_COLUMNS),
        dominance=stack("dom", DOMINANCE_COLUMNS),
        bottlenecks=bottlenecks, notes=notes)
