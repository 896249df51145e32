"""Bottlenecks per model and configuration, gathered from every level of a store, joined with
the models' features: the table the cross-stack correlation works on.

One row per (model, batch size, device, threads, backend) measured; where a configuration
was measured cold and warm, its cold points (``systems.prefer_cold``). Bottleneck columns are
present only when their level was measured in the runs read:

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
from recstack.analysis.systems import load_timings, prefer_cold
from recstack.analysis.topdown import load_hardware
from recstack.errors import RecstackError
from recstack.features import FEATURE_COLUMNS, feature_table
from recstack.records.hardware import RATES, TOPDOWN_LEVEL1
from recstack.specs import spec_from_config
from recstack.store import ResultStore

GROUP_COLUMNS = ["batch_size", "device", "threads", "backend"]
KEY_COLUMNS = ["model", *GROUP_COLUMNS]
HARDWARE_BOTTLENECKS = (*TOPDOWN_LEVEL1, *RATES)


def load_specs(store: ResultStore, run_ids: list[str] | None = None) -> pd.DataFrame:
    """The features of every model measured, one row per model name, from the spec its
    timing or operator points ran (the hardware level's only where it has no other: a
    design measured at the hardware level alone, on the tables simulation scaled).
    Columns: ``FEATURE_COLUMNS``."""
    where, parameters = "status = 'ok'", []
    if run_ids:
        where += f" AND run_id IN ({', '.join('?' * len(run_ids))})"
        parameters = list(run_ids)
    rows = store.query(f"SELECT DISTINCT model, spec, level = 'hardware' AS simulated_scale "
                       f"FROM points WHERE {where} AND level IN ('timing', 'operators', "
                       f"'hardware') ORDER BY model, simulated_scale", parameters)
    rows = rows[~rows.simulated_scale | ~rows.model.isin(rows.model[~rows.simulated_scale])]
    if rows.model.duplicated().any():
        name = rows.model[rows.model.duplicated()].iloc[0]
        raise RecstackError(f"model {name!r}: the runs read hold two different specs under "
                            "this name; pass --run for one run at a time")
    specs = [spec_from_config(json.loads(text), source=f"stored spec of {model}")
             for model, text in zip(rows.model, rows.spec)]
    return feature_table(specs)


def load_bottlenecks(store: ResultStore, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Every level's bottlenecks per measured configuration (see the module docstring),
    joined with the model's features. Columns: ``KEY_COLUMNS``, the bottlenecks, then
    ``FEATURE_COLUMNS`` (less ``model``)."""
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
    if not frames:
        return pd.DataFrame(columns=KEY_COLUMNS + FEATURE_COLUMNS[1:])
    table = frames[0]
    for frame in frames[1:]:
        table = table.merge(frame, on=KEY_COLUMNS, how="outer")
    features = load_specs(store, run_ids)
    table = table.merge(features, on="model", how="left")
    return table.sort_values(KEY_COLUMNS).reset_index(drop=True)


def bottleneck_columns(table: pd.DataFrame) -> list[str]:
    """The bottleneck columns present in a :func:`load_bottlenecks` table, with at least one
    value."""
    names = ["latency_ms", "throughput_per_s",
             *sorted(c for c in table.columns if c.startswith("share_")),
             *HARDWARE_BOTTLENECKS]
    return [name for name in names if name in table.columns and table[name].notna().any()]
