"""The serving level's views: each deployment's latency-bounded throughput, every LoadGen
test's latency against the offered rate, the knee of that curve, the tuned deployment
against the baseline, the deployment table the report shows and GPU offload against the
same deployment without it. Loaders read the store once; views are pure functions of
frames (the report and the serving findings render them).

The baseline of a model in a run is the naive deployment DeepRecSched compares against: the
most single-threaded engines, requests never split (a sub-batch of at least the largest
request size), nothing offloaded. The tuned deployment is the one with the highest
latency-bounded throughput measured; on a tie, the baseline.
"""

from __future__ import annotations

import pandas as pd

from recstack.analysis.systems import order_models

# What identifies a serving deployment (its sub-batch is the point's batch size, its
# threads each engine's).
DEPLOYMENT = ["engines", "threads", "sub_batch", "offload_threshold"]
TUNED_COLUMNS = ["run_id", "model", "target_ms", "percentile", "baseline", "baseline_qps",
                 "tuned", "tuned_qps", "tuned_sub_batch", "tuned_splits", "gain",
                 "deployments", "baseline_key", "tuned_key", "baseline_invalid_qps"]
KNEE_FACTOR = 2.0
"""The knee: the last offered rate, going up from the lowest tested, before the first whose
tail latency exceeds this factor times the tail at the lowest rate (past it, queueing
dominates the latency)."""
SERVING_COLUMNS = ["run_id", "platform_id", "point_key", "label", "model", "row_scale",
                   "embedding_precision", "dense_precision",
                   "backend", "backend_basis", *DEPLOYMENT, "scenario", "splits",
                   "query_sizes", "mean_items", "max_items", "target_ms", "percentile",
                   "latency_bounded_qps", "lowest_invalid_qps", "capacity_qps", "converged",
                   "search_note", "tests", "peak_memory_bytes", "ready_memory_bytes",
                   "model_bytes", "library_bytes", "cores", "loadgen_version"]


def load_serving(store: object, run_ids: list[str] | None = None) -> pd.DataFrame:
    """One row per measured serving point (failed ones excluded): SERVING_COLUMNS
    (``platform_id``: the machine that measured it; the precisions: fp32 where a store made
    before them holds none)."""
    from recstack.analysis.select import measuring_platform, run_filter

    runs, parameters = run_filter(run_ids)
    if not _has_serving(store):
        return pd.DataFrame(columns=SERVING_COLUMNS)
    frame = store.query(f"""
        SELECT pt.run_id, {measuring_platform()}, pt.point_key, pt.label, pt.model,
               pt.row_scale, coalesce(pt.embedding_precision, 'fp32') AS embedding_precision,
               coalesce(pt.dense_precision, 'fp32') AS dense_precision, pt.backend,
               pt.backend_basis, s.engines, pt.threads,
               pt.batch_size AS sub_batch, s.offload_threshold, s.scenario, s.splits,
               s.query_sizes, s.mean_items, s.max_items, s.target_ms, s.percentile,
               s.latency_bounded_qps, s.lowest_invalid_qps, s.capacity_qps, s.converged,
               s.search_note, s.tests, s.peak_memory_bytes, s.ready_memory_bytes,
               s.model_bytes, s.library_bytes, s.cores, s.loadgen_version
        FROM points pt JOIN serving s USING (run_id, point_key) JOIN runs r USING (run_id)
        WHERE pt.status = 'ok'{runs}
        ORDER BY pt.model, s.engines, pt.threads, pt.batch_size
    """, parameters)  # type: ignore[attr-defined]
    return order_models(frame) if not frame.empty else frame


def load_serving_tests(store: object, run_ids: list[str] | None = None) -> pd.DataFrame:
    """One row per LoadGen test of a measured serving point: the point's model and
    deployment, then every declared column of ``serving_tests`` but the logs."""
    from recstack.analysis.select import run_filter, table_columns

    if not _has_serving(store):
        return pd.DataFrame()
    runs, parameters = run_filter(run_ids)
    columns = table_columns(store, "serving_tests", "t",
                            exclude=("loadgen_summary", "loadgen_detail"))
    frame = store.query(f"""
        SELECT pt.run_id, pt.point_key, pt.label, pt.model, s.engines, pt.threads,
               pt.batch_size AS sub_batch, s.offload_threshold, s.target_ms, s.percentile,
               s.max_items, {', '.join(columns)}
        FROM points pt JOIN serving s USING (run_id, point_key)
             JOIN serving_tests t USING (run_id, point_key)
        WHERE pt.status = 'ok'{runs}
        ORDER BY pt.model, pt.point_key, t.test
    """, parameters)  # type: ignore[attr-defined]
    return order_models(frame) if not frame.empty else frame


def _has_serving(store: object) -> bool:
    return bool(getattr(store, "path", None) and store.path.is_file())  # type: ignore


def deployment_label(row: pd.Series) -> str:
    """``2 engines x 1 thread, sub-batch 32`` (``whole requests`` when it never splits; a
    reduced precision named last, as ``, emb=int8,dense=fp32``)."""
    split = "whole requests" if row.sub_batch >= row.max_items else \
        f"sub-batch {int(row.sub_batch)}"
    offload = "" if pd.isna(row.offload_threshold) else \
        f", GPU >= {int(row.offload_threshold)} items"
    precision = ""
    if isinstance(row.get("embedding_precision"), str):  # the serving frame has them
        from recstack.precision import Precision

        chosen = Precision(row["embedding_precision"], row["dense_precision"])
        precision = "" if chosen.is_reference else f", {chosen.label}"
    return (f"{int(row.engines)} engine{'s' if row.engines != 1 else ''} x "
            f"{int(row.threads)} thread{'s' if row.threads != 1 else ''}, {split}{offload}"
            f"{precision}")


CURVE_COLUMNS = ["run_id", "model", "point_key", "deployment", "offered_qps",
                 "achieved_qps", "tail_ms", "valid", "target_ms", "percentile"]


def load_curves(tests: pd.DataFrame) -> pd.DataFrame:
    """Server tests only, one row per (point, offered rate): CURVE_COLUMNS, ``tail_ms``
    LoadGen's latency at the point's percentile where it logs that percentile, else the
    SUT's."""
    if tests.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    server = tests[tests.scenario == "server"].copy()
    column = {95.0: "p95_ms", 99.0: "p99_ms", 90.0: "p90_ms", 50.0: "p50_ms"}
    server["tail_ms"] = [
        getattr(row, column[row.percentile]) if row.percentile in column
        and pd.notna(getattr(row, column[row.percentile])) else row.sut_tail_ms
        for row in server.itertuples()]
    server["deployment"] = [deployment_label(row) for _, row in server.iterrows()]
    server = server.sort_values(["run_id", "point_key", "offered_qps"], kind="stable")
    return order_models(server[CURVE_COLUMNS]) if not server.empty else \
        server[CURVE_COLUMNS].reset_index(drop=True)


def knees(curves: pd.DataFrame) -> pd.DataFrame:
    """Per serving point: the knee of its latency curve (see KNEE_FACTOR) and the highest
    valid rate. Columns: run_id, model, point_key, deployment, knee_qps, knee_tail_ms,
    latency_bounded_qps."""
    rows = []
    for (run_id, model, key), curve in curves.groupby(["run_id", "model", "point_key"],
                                                      sort=False):
        curve = curve.sort_values("offered_qps")
        timed = curve.dropna(subset=["tail_ms"])
        calm = timed
        if not timed.empty:
            past = (timed.tail_ms > KNEE_FACTOR * timed.tail_ms.iloc[0]).to_numpy()
            calm = timed.iloc[:int(past.argmax())] if past.any() else timed
        valid = curve[curve.valid.fillna(False).astype(bool)]
        rows.append({"run_id": run_id, "model": model, "point_key": key,
                     "deployment": curve.deployment.iloc[0],
                     "knee_qps": calm.offered_qps.max() if not calm.empty else None,
                     "knee_tail_ms": calm.tail_ms.iloc[-1] if not calm.empty else None,
                     "latency_bounded_qps": valid.offered_qps.max() if not valid.empty
                     else None})
    return pd.DataFrame(rows, columns=["run_id", "model", "point_key", "deployment",
                                       "knee_qps", "knee_tail_ms", "latency_bounded_qps"])


def baseline_rows(serving: pd.DataFrame) -> pd.DataFrame:
    """Per (run, model): its baseline point (see the module docstring), where measured."""
    naive = serving[(serving.threads == 1) & (serving.sub_batch >= serving.max_items)
                    & serving.offload_threshold.isna() & (serving.scenario == "server")]
    if naive.empty:
        return naive
    most = naive.groupby(["run_id", "model"]).engines.transform("max")
    return naive[naive.engines == most].drop_duplicates(["run_id", "model"])


def tuned_vs_baseline(serving: pd.DataFrame, tuned_only: bool = False) -> pd.DataFrame:
    """Per (run, model) with a baseline: the baseline's and the best measured deployment's
    latency-bounded QPS and their ratio (None where the baseline met no rate). Columns
    TUNED_COLUMNS: the labels and point keys of both, the tuned sub-batch and whether it
    splits requests, the baseline's lowest INVALID rate (the top of its search's bracket)
    and how many server deployments of the model the run measured. ``tuned_only``: only
    the models tuned, whose run measured another deployment beside the baseline (a lone
    baseline says nothing about tuning)."""
    if serving.empty:
        return pd.DataFrame(columns=TUNED_COLUMNS)
    rows = []
    for _, base in baseline_rows(serving).iterrows():
        same = serving[(serving.run_id == base.run_id) & (serving.model == base.model)
                       & (serving.scenario == "server")]
        score = same.latency_bounded_qps.fillna(-1.0)
        best = same.loc[score.idxmax()]
        if score.max() <= (base.latency_bounded_qps if pd.notna(base.latency_bounded_qps)
                           else -1.0):
            best = base
        gain = best.latency_bounded_qps / base.latency_bounded_qps \
            if pd.notna(base.latency_bounded_qps) and base.latency_bounded_qps > 0 \
            and pd.notna(best.latency_bounded_qps) else None
        rows.append({"run_id": base.run_id, "model": base.model,
                     "target_ms": base.target_ms, "percentile": base.percentile,
                     "baseline": deployment_label(base),
                     "baseline_qps": base.latency_bounded_qps,
                     "tuned": deployment_label(best), "tuned_qps": best.latency_bounded_qps,
                     "tuned_sub_batch": int(best.sub_batch),
                     "tuned_splits": bool(best.sub_batch < best.max_items), "gain": gain,
                     "deployments": len(same), "baseline_key": base.point_key,
                     "tuned_key": best.point_key,
                     "baseline_invalid_qps": base.lowest_invalid_qps})
    table = order_models(pd.DataFrame(rows, columns=TUNED_COLUMNS))
    return table[table.deployments > 1].reset_index(drop=True) if tuned_only else table


DEPLOYMENT_COLUMNS = ["run_id", "model", "row_scale", "point_key", "deployment", "role",
                      "backend", "target_ms", "percentile", "latency_bounded_qps",
                      "lowest_invalid_qps", "capacity_qps", "tests", "converged",
                      "search_note", "knee_qps", "peak_memory_bytes", "model_bytes",
                      "memory_over_model"]


def deployment_table(serving: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """Per serving point, in ``serving``'s order: its deployment label, its role in the
    tuning (``baseline``, ``tuned``, ``baseline, tuned`` where tuning kept the baseline, else
    empty), what its search found, the knee of its latency curve (:func:`knees`) and its
    peak memory over the model's bytes (the engines share one copy of the tables: the ratio
    grows by the process's own footprint, not by a table copy per engine). Columns
    DEPLOYMENT_COLUMNS."""
    if serving.empty:
        return pd.DataFrame(columns=DEPLOYMENT_COLUMNS)
    roles: dict[tuple[str, str], list[str]] = {}
    for row in tuned_vs_baseline(serving).itertuples():
        roles.setdefault((row.run_id, row.baseline_key), []).append("baseline")
        if row.deployments > 1:  # a lone baseline was not tuned
            roles.setdefault((row.run_id, row.tuned_key), []).append("tuned")
    knee = knees(load_curves(tests))
    knee_of = dict(zip(zip(knee.run_id, knee.point_key), knee.knee_qps))
    frame = serving.assign(
        deployment=[deployment_label(row) for _, row in serving.iterrows()],
        role=[", ".join(roles.get((r.run_id, r.point_key), [])) for r in serving.itertuples()],
        knee_qps=[knee_of.get(key) for key in zip(serving.run_id, serving.point_key)],
        memory_over_model=serving.peak_memory_bytes.astype("Float64")
        / serving.model_bytes.astype("Float64"))
    return frame[DEPLOYMENT_COLUMNS].reset_index(drop=True)


OFFLOAD_COLUMNS = ["run_id", "model", "deployment", "cpu_qps", "offload_threshold",
                   "offload_qps", "gain", "thresholds"]


def offload_gains(serving: pd.DataFrame) -> pd.DataFrame:
    """Per deployment measured both without GPU offload and with it (same run, model,
    engines, threads, sub-batch): its latency-bounded QPS without, the best threshold's
    with, and their ratio (None where either met no rate). Columns OFFLOAD_COLUMNS;
    ``thresholds``: how many offload thresholds were measured."""
    server = serving[serving.scenario == "server"] if not serving.empty else serving
    offloaded = server[server.offload_threshold.notna()] if not server.empty else server
    if offloaded.empty:
        return pd.DataFrame(columns=OFFLOAD_COLUMNS)
    keys = ["run_id", "model", "engines", "threads", "sub_batch"]
    rows = []
    for key, group in offloaded.groupby(keys, sort=False):
        twin = server[(server[keys] == pd.Series(key, index=keys)).all(axis=1)
                      & server.offload_threshold.isna()]
        if twin.empty:
            continue
        cpu = twin.iloc[0]
        best = group.loc[group.latency_bounded_qps.fillna(-1.0).idxmax()]
        gain = best.latency_bounded_qps / cpu.latency_bounded_qps \
            if pd.notna(cpu.latency_bounded_qps) and cpu.latency_bounded_qps > 0 \
            and pd.notna(best.latency_bounded_qps) else None
        rows.append({"run_id": key[0], "model": key[1], "deployment": deployment_label(cpu),
                     "cpu_qps": cpu.latency_bounded_qps,
                     "offload_threshold": int(best.offload_threshold),
                     "offload_qps": best.latency_bounded_qps, "gain": gain,
                     "thresholds": len(group)})
    return order_models(pd.DataFrame(rows, columns=OFFLOAD_COLUMNS))


def best_deployments(serving: pd.DataFrame) -> pd.DataFrame:
    """Per (run, model): its server point with the highest latency-bounded QPS (ties: the
    first in ``serving``'s order), where any met a rate; ``serving``'s columns plus
    ``deployment``."""
    server = serving[serving.scenario == "server"] if not serving.empty else serving
    server = server[server.latency_bounded_qps.notna()] if not server.empty else server
    if server.empty:
        return server.assign(deployment=pd.Series(dtype=str))
    best = server.loc[server.groupby(["run_id", "model"], sort=False)
                      .latency_bounded_qps.idxmax()]
    best = best.assign(deployment=[deployment_label(row) for _, row in best.iterrows()])
    return order_models(best)
