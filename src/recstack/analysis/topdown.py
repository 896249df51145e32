"""The hardware level: top-down fractions, IPC and miss rates per point, each with its source
(measured or simulated) so that no simulated figure is ever shown unlabelled."""

from __future__ import annotations

import pandas as pd

from recstack.store import ResultStore

from recstack.records.hardware import TOPDOWN_LEVEL1

# The raw blobs stay in the store; every other declared column of ``hardware`` is loaded.
RAW_COLUMNS = ("topdown", "raw")
LEVEL1 = list(TOPDOWN_LEVEL1)


def load_hardware(store: ResultStore, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Hardware points of the store, in the zoo's model order. Columns: ``select.POINT_COLUMNS``, then
    every declared column of ``hardware`` but the raw blobs (``RAW_COLUMNS``)."""
    from recstack.analysis.select import point_columns, run_filter, table_columns
    from recstack.analysis.systems import order_models

    runs, parameters = run_filter(run_ids)
    selected = [*point_columns(), *table_columns(store, "hardware", "h", RAW_COLUMNS)]
    frame = store.query(f"""
        SELECT {', '.join(selected)}
        FROM points pt JOIN hardware h USING (run_id, point_key)
        WHERE pt.status = 'ok' AND pt.level = 'hardware'{runs}
        ORDER BY pt.model, pt.batch_size
    """, parameters)
    return order_models(frame)


def topdown_table(hardware: pd.DataFrame) -> pd.DataFrame:
    """Level-1 top-down fractions per point, long form. Columns: model, batch_size, source,
    category, fraction."""
    return hardware.melt(id_vars=["model", "batch_size", "source"], value_vars=LEVEL1,
                         var_name="category", value_name="fraction").dropna(
        subset=["fraction"]).reset_index(drop=True)


def dominant_bottleneck(hardware: pd.DataFrame) -> pd.DataFrame:
    """Per point, the largest level-1 category other than retiring. Columns: model,
    batch_size, source, bottleneck, fraction."""
    rows = []
    for row in hardware.itertuples():
        stalls = {name: getattr(row, name) for name in LEVEL1[1:]
                  if getattr(row, name) == getattr(row, name) and getattr(row, name) is not None}
        if not stalls:
            continue
        name = max(stalls, key=stalls.get)
        rows.append({"model": row.model, "batch_size": row.batch_size, "source": row.source,
                     "bottleneck": name, "fraction": stalls[name]})
    return pd.DataFrame(rows, columns=["model", "batch_size", "source", "bottleneck",
                                       "fraction"])
