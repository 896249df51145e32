"""How well a reuse profile reproduces a trace: the LRU hit-rate curve of ids generated from
a profile fitted on one part of a stream against the curve of the part held out.

Both curves are taken from an empty cache (each stream's own stack distances), at the cache
sizes of :data:`FIT_SIZES` and a row size in bytes. :func:`evaluate_fit` fits recstack's
profile and DeepRecSys's (:mod:`recstack.reuse_profile`) on the same training part, so the
two methods meet the same held-out data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recstack.analysis.stack_distance import as_numpy, hit_rate_curve, stack_distances
from recstack.errors import RecstackError

FIT_SIZES = tuple(1 << shift for shift in range(20, 31))
"""Cache sizes compared, in bytes: 1 MiB, 2 MiB, ... 1 GiB."""
TARGET = 0.05
"""The largest absolute hit-rate error at any size that counts as a faithful fit."""
ERROR_COLUMNS = ["cache_bytes", "capacity_rows", "real_hit_rate", "synthetic_hit_rate", "error"]
""":func:`hit_rate_errors`' columns: cache size (bytes) and in rows of ``row_bytes``
(int), each stream's LRU hit rate there (float) and ``synthetic - real``."""
FIT_COLUMNS = ["method", *ERROR_COLUMNS]
""":func:`evaluate_fit`'s columns: ``method`` (``"recstack"`` or ``"deeprecsys"``), then
:data:`ERROR_COLUMNS`."""
SUMMARY_COLUMNS = ["method", "max_abs_error", "mean_abs_error", "within_target"]
""":func:`fit_summary`'s columns: the largest and mean absolute error over the sizes, and
whether the largest is under :data:`TARGET` (bool)."""


def _capacities(row_bytes: int, sizes: Sequence[int]) -> list[int]:
    if isinstance(row_bytes, bool) or not isinstance(row_bytes, (int, np.integer)) \
            or row_bytes < 1:
        raise RecstackError(f"row_bytes {row_bytes!r} is not allowed; expected an integer "
                            ">= 1 (bytes per embedding row)")
    return [int(size) // int(row_bytes) for size in sizes]


def _errors(real_distances: np.ndarray, synthetic_distances: np.ndarray, row_bytes: int,
            sizes: Sequence[int]) -> pd.DataFrame:
    capacities = _capacities(row_bytes, sizes)
    real = hit_rate_curve(real_distances, capacities).hit_rate.to_numpy()
    synthetic = hit_rate_curve(synthetic_distances, capacities).hit_rate.to_numpy()
    return pd.DataFrame({"cache_bytes": np.asarray(sizes, dtype=np.int64),
                         "capacity_rows": np.asarray(capacities, dtype=np.int64),
                         "real_hit_rate": real, "synthetic_hit_rate": synthetic,
                         "error": synthetic - real}, columns=ERROR_COLUMNS)


def hit_rate_errors(real: np.ndarray, synthetic: np.ndarray, row_bytes: int,
                    sizes: Sequence[int] = FIT_SIZES) -> pd.DataFrame:
    """The LRU hit rates of ``real`` and ``synthetic`` (``(n,)`` id streams, each from an
    empty cache) at each of ``sizes`` bytes of ``row_bytes`` rows; :data:`ERROR_COLUMNS`."""
    return _errors(stack_distances(real), stack_distances(synthetic), row_bytes, sizes)


def evaluate_fit(stream: np.ndarray, row_bytes: int, train_fraction: float = 0.5,
                 seed: int = 0, rows: int | None = None,
                 sizes: Sequence[int] = FIT_SIZES) -> pd.DataFrame:
    """Fits both methods on the first ``train_fraction`` of ``stream`` (``(n,)`` ids of one
    table), generates as many ids as the rest holds with each (``numpy`` generator seeded
    ``seed``, table of ``rows`` rows, default the largest id + 1) and compares hit-rate
    curves with the held-out rest: :data:`FIT_COLUMNS`, one row per (method, size)."""
    from recstack.reuse_profile import fit_table, fit_table_deeprecsys, generate_ids

    stream = as_numpy(stream)
    if stream.ndim != 1 or stream.size < 2:
        raise RecstackError(f"a stream to evaluate needs at least 2 ids in one dimension, got "
                            f"shape {tuple(stream.shape)}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, (int, float)) \
            or not 0 < train_fraction < 1:
        raise RecstackError(f"train_fraction {train_fraction!r} is not allowed; expected a "
                            "number strictly between 0 and 1")
    split = min(max(int(stream.size * train_fraction), 1), stream.size - 1)
    train, held_out = stream[:split], stream[split:]
    rows = int(stream.max()) + 1 if rows is None else rows
    real = stack_distances(held_out)
    frames = []
    for method, fit in (("recstack", fit_table), ("deeprecsys", fit_table_deeprecsys)):
        profile = fit(train, rows)
        synthetic = generate_ids(profile, held_out.size, rows, np.random.default_rng(seed))
        frame = _errors(real, stack_distances(synthetic), row_bytes, sizes)
        frames.append(frame.assign(method=method)[FIT_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def fit_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method of an :func:`evaluate_fit` frame: :data:`SUMMARY_COLUMNS`, methods in
    their order of appearance."""
    rows = []
    for method, group in frame.groupby("method", sort=False):
        errors = group["error"].abs()
        rows.append({"method": method, "max_abs_error": float(errors.max()),
                     "mean_abs_error": float(errors.mean()),
                     "within_target": bool(errors.max() < TARGET)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
