"""The hardware level: top-down fractions, IPC and miss rates per point, each with its source
(measured or simulated) so that no simulated figure is ever shown unlabelled."""

from __future__ import annotations

import pandas as pd

from recstack.store import ResultStore

HARDWARE_COLUMNS = ["run_id", "point_key", "model", "model_type", "row_scale", "batch_size",
                    "device", "threads", "backend", "source", "hierarchy", "instructions",
                    "ipc", "l1i_mpki", "l1d_mpki", "llc_mpki", "branch_mpki", "dtlb_mpki",
                    "itlb_mpki", "retiring", "bad_speculation", "frontend_bound",
                    "backend_bound", "multiplexing", "caveats"]
LEVEL1 = ["retiring", "bad_speculation", "frontend_bound", "backend_bound"]


def load_hardware(store: ResultStore, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Hardware points of the store (columns HARDWARE_COLUMNS), in the zoo's model order."""
    from recstack.analysis.systems import order_models

    where, parameters = "pt.status = 'ok' AND pt.collector = 'hardware'", []
    if run_ids:
        where += f" AND pt.run_id IN ({', '.join('?' * len(run_ids))})"
        parameters = list(run_ids)
    frame = store.query(f"""
        SELECT pt.run_id, pt.point_key, pt.model, pt.model_type, pt.row_scale, pt.batch_size,
               pt.device, pt.threads, pt.backend, h.* EXCLUDE (run_id, point_key, topdown, raw)
        FROM points pt JOIN hardware h USING (run_id, point_key) WHERE {where}
        ORDER BY pt.model, pt.batch_size
    """, parameters)
    return order_models(frame)[HARDWARE_COLUMNS]


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
