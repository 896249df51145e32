"""The correlation statistics on synthetic tables where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recstack.analysis.correlation import (DOMINANCE_THRESHOLD, correlate, correlation_matrix,
                                           dominance_table, forward_selection,
                                           importance_table, max_features, regression_fits,
                                           transformed_features)
from recstack.errors import RecstackError
from recstack.features import FEATURES, LOG_FEATURES

SPREAD_FEATURES = ["flops_mlp", "embedding_dim", "num_tables", "mlp_depth"]


def synthetic(n: int = 60, seed: int = 0, batch_size: int = 16) -> pd.DataFrame:
    """Independent standard-normal features (stored so that the analysis' log10(1 + x) gives
    them back) and bottlenecks built from them:

    - ``one``: gathered bytes alone, plus a little noise (one feature dominates);
    - ``four``: the sum of four features with equal weights (none dominates);
    - ``noise``: unrelated to every feature.
    """
    rng = np.random.default_rng(seed)
    z = {name: rng.standard_normal(n) for name in FEATURES}
    frame = pd.DataFrame({name: (10 ** (z[name] + 3) - 1 if name in LOG_FEATURES
                                 else z[name]) for name in FEATURES})
    frame["one"] = z["gathered_bytes"] + 0.05 * rng.standard_normal(n)
    frame["four"] = sum(z[name] for name in SPREAD_FEATURES) + 0.05 * rng.standard_normal(n)
    frame["noise"] = rng.standard_normal(n)
    return frame.assign(model=[f"v{i}" for i in range(n)], batch_size=batch_size,
                        device="cpu", threads=1, backend="eager")


def test_transformed_features_undo_the_storage_and_drop_constants() -> None:
    frame = synthetic().assign(num_tasks=1)
    features = transformed_features(frame)
    assert "num_tasks" not in features.columns
    assert np.allclose(features.gathered_bytes, np.log10(1 + frame.gathered_bytes))


def test_dominance_is_one_for_a_single_feature_and_low_for_four_equal_ones() -> None:
    table = dominance_table(synthetic(), ["one", "four"]).set_index("bottleneck")
    assert table.loc["one", "strongest_feature"] == "gathered_bytes"
    assert table.loc["one", "strongest_share"] > 0.95
    assert table.loc["one", "dominated"]
    # Four independent equal parts: the best one carries about a quarter.
    assert table.loc["four", "strongest_feature"] in SPREAD_FEATURES
    assert 0.1 < table.loc["four", "strongest_share"] < DOMINANCE_THRESHOLD
    assert not table.loc["four", "dominated"]
    assert table.loc["four", "full_r2"] > 0.95


def test_correlations_find_the_built_relations_with_significance() -> None:
    for method in ("pearson", "spearman"):
        table = correlation_matrix(synthetic(), ["one", "noise"], method).set_index(
            ["feature", "bottleneck"])
        assert table.loc[("gathered_bytes", "one"), "r"] > 0.95
        assert table.loc[("gathered_bytes", "one"), "significant"]
        # After the false-discovery control, noise correlates with nothing.
        assert not table.xs("noise", level="bottleneck").significant.any()
        assert (table.n == 60).all() and set(table.method) == {method}


def test_regression_recovers_equal_standardized_weights() -> None:
    coefficients, fits = regression_fits(synthetic(), ["four"])
    chosen = coefficients.set_index("feature").coefficient
    assert set(SPREAD_FEATURES) <= set(chosen.index)
    assert np.allclose(chosen[SPREAD_FEATURES], 0.5, atol=0.1)  # 1 / sqrt(4) of one SD
    fit = fits.iloc[0]
    assert fit.r2 > 0.95 and fit.cv_r2 > 0.9
    assert fit.features.split(", ")[0] in SPREAD_FEATURES


def test_forward_selection_stops_when_nothing_helps_and_at_the_limit() -> None:
    frame = synthetic()
    x = transformed_features(frame)
    x = (x - x.mean()) / x.std()
    y = frame.one.to_numpy()
    assert forward_selection(x, y, limit=1) == ["gathered_bytes"]
    assert len(forward_selection(x, frame.four.to_numpy(), limit=10)) >= 4
    assert max_features(12) == 2 and max_features(60) == 14 and max_features(3) == 1


def test_tree_importance_ranks_the_driving_feature_first() -> None:
    table = importance_table(synthetic(), ["one", "four"])
    one = table[table.bottleneck == "one"].set_index("rank")
    assert one.loc[1, "feature"] == "gathered_bytes" and one.loc[1, "importance"] > 0.5
    four = table[table.bottleneck == "four"].nsmallest(4, "rank")
    assert len(set(four.feature) & set(SPREAD_FEATURES)) >= 3
    assert np.isclose(table.groupby("bottleneck").importance.sum(), 1.0).all()


def test_correlate_analyses_each_group_and_notes_small_ones() -> None:
    table = pd.concat([synthetic(batch_size=1), synthetic(seed=1, batch_size=64),
                       synthetic(n=3, seed=2, batch_size=256)], ignore_index=True)
    table = table.rename(columns={"one": "share_embedding", "four": "latency_ms"}).drop(
        columns="noise")
    result = correlate(table)
    assert set(result.bottlenecks) == {"latency_ms", "share_embedding"}
    assert sorted(result.dominance.batch_size.unique()) == [1, 64]
    assert any("batch_size 256" in note and "3 variants" in note for note in result.notes)
    dominance = result.dominance.set_index(["batch_size", "bottleneck"])
    assert dominance.loc[(1, "share_embedding"), "dominated"]
    assert not dominance.loc[(64, "latency_ms"), "dominated"]


def test_too_few_variants_or_no_bottleneck_is_a_one_line_error() -> None:
    with pytest.raises(RecstackError, match="4 model variants measured; at least 5"):
        correlation_matrix(synthetic(n=4), ["one"])
    with pytest.raises(RecstackError, match="no measured bottlenecks"):
        correlate(synthetic().drop(columns=["one", "four", "noise"]))
    with pytest.raises(RecstackError, match="--method: 'kendall' is not allowed"):
        correlation_matrix(synthetic(), ["one"], "kendall")
