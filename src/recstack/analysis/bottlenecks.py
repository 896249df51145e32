"""Bottlenecks per model and configuration, gathered from every level of a store, joined with
the models' features: the table the cross-stack correlation works on.

One row per (model, batch size, device, threads, backend, precision) measured: a model
measured in several precisions (``recstack.precision``) is one variant per precision, each
with its own features (bytes follow the precision) and its own bottlenecks, never an average
of them. Where a configuration was measured cold and warm, its cold points
(``systems.prefer_cold``). Bottleneck columns are present only when their level was measured
in the runs read:

- systems: ``latency_ms`` (median), ``throughput_per_s``;
- software: ``share_<class>`` for every operator class of the operator view, and
  ``share_overhead`` (time no operator covers), each a fraction of the iteration;
- hardware: the level-1 top-down fractions and misses per kilo-instruction, with
  ``hardware_source`` (measured or simulated) and ``hardware_row_scale`` (simulated points may
  run on smaller tables than the other levels; the features are those of the other levels).
"""

from __future__ import annotations

import json

import pandas as pd

from recstack.analysis.breakdown import breakdown, load_operators
from recstack.analysis.systems import PRECISION_COLUMNS, load_timings, prefer_cold
from recstack.analysis.topdown import load_hardware
from recstack.errors import RecstackError
from recstack.features import FEATURE_COLUMNS, feature_table
from recstack.records.hardware import RATES, TOPDOWN_LEVEL1
from recstack.specs import spec_from_config
from recstack.store import ResultStore

GROUP_COLUMNS = ["batch_size", "device", "threads", "backend"]
KEY_COLUMNS = ["model", *GROUP_COLUMNS, *PRECISION_COLUMNS]
# What a feature row belongs to: a model in one precision.
VARIANT_COLUMNS = ["model", *PRECISION_COLUMNS]
HARDWARE_BOTTLENECKS = (*TOPDOWN_LEVEL1, *RATES)


def load_specs(store: ResultStore, run_ids: list[str] | None = None) -> pd.DataFrame:
    """The features of every model measured, one row per model name and precision, from the
    spec its timing or operator points ran (the hardware level's only where it has no
    other: a design measured at the hardware level alone, on the tables simulation scaled),
    in that precision. Columns: ``FEATURE_COLUMNS`` (its precision columns 'fp32' for points
    stored before them)."""
    from recstack.analysis.select import point_columns
    from recstack.precision import Precision

    where, parameters = "status = 'ok'", []
    if run_ids:
        where += f" AND run_id IN ({', '.join('?' * len(run_ids))})"
        parameters = list(run_ids)
    precision = ", ".join(point_columns("points", PRECISION_COLUMNS))
    rows = store.query(f"SELECT DISTINCT model, {precision}, spec, level = 'hardware' AS "
                       f"simulated_scale FROM points WHERE {where} AND level IN ('timing', "
                       f"'operators', 'hardware') ORDER BY model, simulated_scale", parameters)
    variants = pd.MultiIndex.from_frame(rows[VARIANT_COLUMNS])
    measured = variants[~rows.simulated_scale.to_numpy()]
    rows = rows[~rows.simulated_scale.to_numpy() | ~variants.isin(measured)]
    twice = rows.duplicated(VARIANT_COLUMNS)
    if twice.any():
        name = rows.model[twice].iloc[0]
        raise RecstackError(f"model {name!r}: the runs read hold two different specs under "
                            "this name; pass --run for one run at a time")
    specs = [(spec_from_config(json.loads(text), source=f"stored spec of {model}"),
              Precision(embedding, dense))
             for model, embedding, dense, text in zip(rows.model, rows.embedding_precision,
                                                      rows.dense_precision, rows.spec)]
    return feature_table(specs)


def load_bottlenecks(store: ResultStore, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Every level's bottlenecks per measured configuration (see the module docstring),
    joined with the features of the model in that precision. Columns: ``KEY_COLUMNS``, the
    bottlenecks, then ``FEATURE_COLUMNS`` (less ``model`` and the precision, in the key)."""
    frames = []
    timings = prefer_cold(load_timings(store, run_ids))
    if not timings.empty:
        frames.append(timings[[*KEY_COLUMNS, "median_ms", "throughput_per_s"]]
                      .rename(columns={"median_ms": "latency_ms"}))
    operators, profiles = load_operators(store, run_ids)
    if not profiles.empty:
        shares = prefer_cold(breakdown(operators, profiles))
        shares = shares[shares.view == "operator"]
        wide = (shares.pivot_table(index=KEY_COLUMNS, columns="category", values="share",
                                   aggfunc="mean", fill_value=0.0)
                .add_prefix("share_").reset_index())
        wide.columns.name = None
        frames.append(wide)
    hardware = prefer_cold(load_hardware(store, run_ids))
    if not hardware.empty:
        columns = [*KEY_COLUMNS, *HARDWARE_BOTTLENECKS, "source", "row_scale"]
        frames.append(hardware[columns].rename(columns={"source": "hardware_source",
                                                        "row_scale": "hardware_row_scale"}))
    features = [c for c in FEATURE_COLUMNS if c not in VARIANT_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=KEY_COLUMNS + features)
    table = frames[0]
    for frame in frames[1:]:
        table = table.merge(frame, on=KEY_COLUMNS, how="outer")
    table = table.merge(load_specs(store, run_ids), on=VARIANT_COLUMNS, how="left")
    return table.sort_values(KEY_COLUMNS).reset_index(drop=True)


def bottleneck_columns(table: pd.DataFrame) -> list[str]:
    """The bottleneck columns present in a :func:`load_bottlenecks` table, with at least one
    value."""
    names = ["latency_ms", "throughput_per_s",
             *sorted(c for c in table.columns if c.startswith("share_")),
             *HARDWARE_BOTTLENECKS]
    return [name for name in names if name in table.columns and table[name].notna().any()]
