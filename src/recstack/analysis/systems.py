"""The systems level: latency and throughput against batch size, threads and device; the best
deployment under a latency target; speedups over the CPU; and the spread between the best and
the worst deployment choice (the paper's "up to 15x").

Every function takes the frame :func:`load_timings` returns and returns a DataFrame. A
configuration measured both cold and warm (``cache_state``) counts once, by its cold point
(:func:`prefer_cold`): cold is what a server sees; the pair is compared by
``views.cache_comparison``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from recstack.errors import RecstackError
from recstack.limits import is_number
from recstack.store import ResultStore
from recstack.text import shown

TIMING_COLUMNS = ["run_id", "platform_id", "model", "model_type", "row_scale", "batch_size",
                  "device", "threads", "backend", "cache_state", "iterations", "median_ms", "p5_ms", "p95_ms",
                  "p99_ms", "mean_ms", "cv", "throughput_per_s", "copy_median_ms", "unstable"]
DEPLOYMENT = ["device", "threads", "backend", "batch_size"]
# A point's numeric precision ('fp32' for points stored before it: select.py reads them so).
PRECISION_COLUMNS = ["embedding_precision", "dense_precision"]
# What a model is to every per-model view: an int8 model computes other outputs at another
# cost than its fp32 original, so the two are never one model's deployments.
VARIANT = ["model", *PRECISION_COLUMNS]
# What a configuration is, apart from its cache state: its cold and warm points share these.
# The measuring machine is part of it: a run on a cluster measures one configuration on
# several platforms, and a cold point of one never stands in for a warm point of another;
# so is the precision (an int8 point never stands in for an fp32 one).
CONFIGURATION = ["run_id", "model", "row_scale", "batch_size", "device", "threads", "backend",
                 "platform_id", *PRECISION_COLUMNS]
# How the points the timing level recorded were measured (schema 12; NULL in older stores).
MEASUREMENT_COLUMNS = ["working_set_bytes", "llc_bytes", "backend_basis", "attempts"]
# How far a reduced-precision point's predictions were from the fp32 model's (schema 15;
# NULL in fp32 and in older stores).
DEVIATION_COLUMNS = ["output_max_abs_deviation", "output_mean_abs_deviation",
                     "deviation_samples"]
POINT_ORDER = ["batch_size", "device", "threads", "backend", *PRECISION_COLUMNS,
               "cache_state"]


def load_timings(store: ResultStore, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Measured points with their statistics (failed points excluded): at least
    TIMING_COLUMNS (``platform_id``: the machine that measured the point, see
    ``select.measuring_platform``; ``cache_state`` 'warm' for points stored before it
    existed), then PRECISION_COLUMNS ('fp32' for points stored before them),
    MEASUREMENT_COLUMNS, DEVIATION_COLUMNS, every other declared column of ``timing``, the
    level's method version and ``platform`` (the measuring machine's description)."""
    from recstack.analysis.select import (
        measuring_platform,
        point_columns,
        run_filter,
        table_columns,
    )

    runs, parameters = run_filter(run_ids)
    point = [*TIMING_COLUMNS[2:10], *PRECISION_COLUMNS, *MEASUREMENT_COLUMNS,
             *DEVIATION_COLUMNS, "method_version"]
    selected = ["pt.run_id", measuring_platform(), *point_columns(names=point),
                *table_columns(store, "timing", "t"), "pl.description AS platform"]
    frame = store.query(f"""
        SELECT {', '.join(selected)}
        FROM points pt JOIN timing t USING (run_id, point_key) JOIN runs r USING (run_id)
        LEFT JOIN platforms pl ON pl.platform_id = COALESCE(pt.platform_id, r.platform_id)
        WHERE pt.status = 'ok'{runs}
        ORDER BY pt.model, pt.batch_size, pt.device, pt.threads, pt.backend
    """, parameters)
    return sort_points(frame)


def order_models(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the zoo's order of models (rmc1 ... dien), then other models by name."""
    from recstack.specs import ZOO_NAMES

    rank = {name: position for position, name in enumerate(ZOO_NAMES)}
    keys = frame.model.map(lambda name: (rank.get(name, len(rank)), name))
    return frame.iloc[sorted(range(len(frame)), key=lambda i: keys.iloc[i])].reset_index(
        drop=True)


def sort_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by model (the zoo's order), then batch size, device, threads, backend, precision
    (fp32 first, then narrower) and cache state (those of them ``frame`` has): the order of
    every table of points."""
    by = [c for c in POINT_ORDER if c in frame.columns]
    return order_models(frame.sort_values(by, kind="stable", key=precision_rank)
                        if by else frame)


def precision_rank(column: pd.Series) -> pd.Series:
    """A precision column as its rank (fp32 first, as recstack.precision lists them); any
    other column as it is."""
    from recstack.precision import DENSE_PRECISIONS, EMBEDDING_PRECISIONS

    order = {"embedding_precision": EMBEDDING_PRECISIONS,
             "dense_precision": DENSE_PRECISIONS}.get(str(column.name))
    if order is None:
        return column
    rank = {name: position for position, name in enumerate(order)}
    return column.map(lambda value: rank.get(value, len(rank)))


def with_precision(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with both PRECISION_COLUMNS, 'fp32' where it lacks one or a value is missing
    (a frame built without them, as a point stored before them reads)."""
    from recstack.precision import REFERENCE

    missing = {c: REFERENCE for c in PRECISION_COLUMNS if c not in frame.columns}
    frame = frame.assign(**missing) if missing else frame
    if frame[PRECISION_COLUMNS].isna().any().any():
        frame = frame.assign(**{c: frame[c].fillna(REFERENCE) for c in PRECISION_COLUMNS})
    return frame


def precision_labels(frame: pd.DataFrame) -> pd.Series:
    """Each row's precision as ``Precision.label`` ('fp32', or 'emb=int8,dense=fp32'); every
    row 'fp32' in a frame without PRECISION_COLUMNS."""
    frame = with_precision(frame)
    labels = {pair: precision_label(*pair) for pair in
              set(zip(frame.embedding_precision, frame.dense_precision))}
    return pd.Series([labels[pair] for pair in zip(frame.embedding_precision,
                                                   frame.dense_precision)],
                     index=frame.index, dtype=object)


def precision_label(embedding: object, dense: object) -> str:
    """``Precision.label`` of a stored pair (None read as fp32)."""
    from recstack.errors import SpecError
    from recstack.precision import REFERENCE, Precision

    embedding = REFERENCE if pd.isna(embedding) else embedding
    dense = REFERENCE if pd.isna(dense) else dense
    try:
        return Precision(str(embedding), str(dense)).label
    except SpecError:  # a value this version does not know: shown as it is, never dropped
        return f"emb={embedding},dense={dense}"


def precisions_of(frame: pd.DataFrame) -> list[str]:
    """The distinct precision labels of ``frame`` (:func:`precision_labels`), fp32 first,
    then by embedding and dense precision; ['fp32'] for a frame without the columns, []
    for an empty one."""
    if frame.empty:
        return []
    pairs = with_precision(frame)[PRECISION_COLUMNS].drop_duplicates()
    ordered = pairs.sort_values(PRECISION_COLUMNS, key=precision_rank, kind="stable")
    return list(dict.fromkeys(precision_labels(ordered)))


def prefer_cold(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the warm rows of configurations (CONFIGURATION, those of its
    columns ``frame`` has) that also have a cold row; a frame without ``cache_state``, or
    whose configurations have one state each (a store made before cache states, all warm),
    as it is."""
    if "cache_state" not in frame.columns or frame.empty:
        return frame
    key = [c for c in CONFIGURATION if c in frame.columns]
    cold = (frame.cache_state == "cold").to_numpy()
    configurations = pd.MultiIndex.from_frame(frame[key])
    return frame[cold | ~configurations.isin(configurations[cold])]


def prefer_reference_precision(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the reduced-precision rows of models it also has fp32 rows of (the
    paper's findings are about fp32 models); a frame without precision columns, or a model
    measured in reduced precision alone, as it is."""
    if frame.empty or not set(PRECISION_COLUMNS) <= set(frame.columns):
        return frame
    reference = ((frame.embedding_precision.fillna("fp32") == "fp32")
                 & (frame.dense_precision.fillna("fp32") == "fp32")).to_numpy()
    measured = set(frame.model[reference])
    return frame[reference | ~frame.model.isin(measured).to_numpy()]


def _require(timings: pd.DataFrame) -> None:
    missing = [c for c in TIMING_COLUMNS if c not in timings.columns]
    if missing:
        raise ValueError(f"timings frame lacks columns {missing}")


def latency_throughput(timings: pd.DataFrame) -> pd.DataFrame:
    """Per model, precision, device, threads, backend and batch size: median/p95/p99 latency
    (ms) and throughput (samples/s). Columns: model, embedding_precision, dense_precision,
    device, threads, backend, batch_size, median_ms, p95_ms, p99_ms, throughput_per_s, cv,
    unstable."""
    _require(timings)
    columns = [*VARIANT, *DEPLOYMENT, "median_ms", "p95_ms", "p99_ms", "throughput_per_s",
               "cv", "unstable"]
    return with_precision(prefer_cold(timings))[columns].sort_values(
        ["model", *DEPLOYMENT, *PRECISION_COLUMNS], key=precision_rank).reset_index(drop=True)


def speedup_over_cpu(timings: pd.DataFrame) -> pd.DataFrame:
    """Per model, precision, batch size and device: that device's best throughput (over
    threads and backends) over the CPU's best in the same precision. Columns: model,
    embedding_precision, dense_precision, batch_size, device, throughput_per_s,
    cpu_throughput_per_s, speedup."""
    _require(timings)
    best = (with_precision(prefer_cold(timings))
            .groupby([*VARIANT, "batch_size", "device"], as_index=False)["throughput_per_s"]
            .max())
    cpu = best[best.device == "cpu"][[*VARIANT, "batch_size", "throughput_per_s"]].rename(
        columns={"throughput_per_s": "cpu_throughput_per_s"})
    merged = best.merge(cpu, on=[*VARIANT, "batch_size"], how="inner")
    merged["speedup"] = merged.throughput_per_s / merged.cpu_throughput_per_s
    return order_models(merged.sort_values(["batch_size", "device", *PRECISION_COLUMNS],
                                           key=precision_rank))


def batching_gain(timings: pd.DataFrame) -> pd.DataFrame:
    """Per model, precision, device and batch size: best throughput over the best at the
    smallest batch measured (of that precision). Columns: model, embedding_precision,
    dense_precision, device, batch_size, throughput_per_s, gain."""
    _require(timings)
    best = (with_precision(prefer_cold(timings))
            .groupby([*VARIANT, "device", "batch_size"], as_index=False)["throughput_per_s"]
            .max())
    smallest = best.sort_values("batch_size").groupby([*VARIANT, "device"]).head(1)
    base = smallest[[*VARIANT, "device", "throughput_per_s"]].rename(
        columns={"throughput_per_s": "base"})
    merged = best.merge(base, on=[*VARIANT, "device"])
    merged["gain"] = merged.throughput_per_s / merged.base
    return order_models(merged.drop(columns="base").sort_values(
        ["device", "batch_size", *PRECISION_COLUMNS], key=precision_rank))


@dataclass(frozen=True)
class LatencyTargets:
    """p95 latency targets per model name, in ms, and where they came from."""

    targets_ms: dict[str, float]
    default_ms: float
    source: str

    def for_model(self, model: str) -> float:
        return self.targets_ms.get(model, self.default_ms)


def default_targets() -> LatencyTargets:
    import yaml

    text = resources.files("recstack.analysis").joinpath("latency_targets.yaml").read_text()
    return _targets_from_data(yaml.safe_load(text), "latency_targets.yaml")


def load_targets(path: str | Path) -> LatencyTargets:
    """A user's targets file (untrusted: read within recstack.userfiles' limits)."""
    from recstack.userfiles import load_document

    return _targets_from_data(load_document(path, "--targets"), Path(path).name)


def _targets_from_data(data: object, source: str) -> LatencyTargets:
    if not isinstance(data, dict) or not isinstance(data.get("targets_ms", {}), dict):
        raise RecstackError(f"{source}: expected keys targets_ms (model: ms), default_ms, "
                            "source")
    targets = {str(k): _positive_ms(source, str(k), v)
               for k, v in data.get("targets_ms", {}).items()}
    default = _positive_ms(source, "default_ms", data.get("default_ms", 25))
    return LatencyTargets(targets, default, str(data.get("source", source)))


def _positive_ms(source: str, field: str, value: object) -> float:
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise RecstackError(f"{source}: {field}: {shown(value)} is not allowed; expected a "
                            "finite number of milliseconds > 0")
    return float(value)


def with_overrides(targets: LatencyTargets, overrides: list[str],
                   models: Collection[str] | None = None) -> LatencyTargets:
    """Applies ``MODEL=MS`` overrides from the command line; with ``models`` (the run's),
    an override must name one of them (a zoo alias names its model)."""
    from recstack.specs import canonical_name

    updated = dict(targets.targets_ms)
    for item in overrides:
        model, _, value = item.partition("=")
        try:
            ms = float(value)
        except ValueError:
            ms = -1.0
        if not model or not math.isfinite(ms) or ms <= 0:
            raise RecstackError(f"--target: {shown(item)} is not allowed; expected MODEL=MS "
                                "with MS a finite number > 0 (e.g. rmc1=50)")
        model = canonical_name(model) or model
        if models is not None and model not in models:
            raise RecstackError(f"--target: {shown(item)} is not allowed; {shown(model)} is "
                                f"not a model of this run ({', '.join(sorted(models))})")
        updated[model] = ms
    source = targets.source + (" (with command-line overrides)" if overrides else "")
    return LatencyTargets(updated, targets.default_ms, source)


def _variants(timings: pd.DataFrame):  # -> Iterator[tuple[dict[str, object], DataFrame]]
    """(model and precision, its points) per model variant (VARIANT), cold points where a
    configuration has both, in model order then fp32 first."""
    points = with_precision(prefer_cold(timings))
    keys = points[VARIANT].drop_duplicates().sort_values(
        VARIANT, key=precision_rank, kind="stable")
    for key in keys.itertuples(index=False):
        chosen = (points.model == key.model) & (
            points.embedding_precision == key.embedding_precision) & (
            points.dense_precision == key.dense_precision)
        yield dict(zip(VARIANT, key)), points[chosen]


def best_deployment(timings: pd.DataFrame, targets: LatencyTargets) -> pd.DataFrame:
    """Per model and precision, the deployment with the highest throughput whose p95 latency
    meets the model's target; where none meets it, the one with the lowest p95
    (meets_target False). Columns: model, embedding_precision, dense_precision, target_ms,
    device, threads, backend, batch_size, p95_ms, throughput_per_s, meets_target."""
    _require(timings)
    rows = []
    for variant, group in _variants(timings):
        target = targets.for_model(str(variant["model"]))
        meeting = group[group.p95_ms <= target]
        if meeting.empty:
            choice, meets = group.loc[group.p95_ms.idxmin()], False
        else:
            choice, meets = meeting.loc[meeting.throughput_per_s.idxmax()], True
        rows.append({**variant, "target_ms": target,
                     **{c: choice[c] for c in DEPLOYMENT},
                     "p95_ms": choice.p95_ms, "throughput_per_s": choice.throughput_per_s,
                     "meets_target": meets})
    return order_models(pd.DataFrame(rows, columns=[*VARIANT, "target_ms", *DEPLOYMENT,
                                                    "p95_ms", "throughput_per_s",
                                                    "meets_target"]))


def _deployment_label(row: pd.Series) -> str:
    return f"{row.device} t{row.threads} {row.backend} b{row.batch_size}"


def deployment_spread(timings: pd.DataFrame, targets: LatencyTargets | None = None
                      ) -> pd.DataFrame:
    """Per model and precision, how much the best deployment choice beats the worst, in
    throughput (a precision is not a deployment choice: it changes what the model computes).

    With ``targets``, only deployments meeting the model's p95 target count (one that misses
    it is not a choice a service could make). Columns: model, embedding_precision,
    dense_precision, deployments, best, worst, best_throughput_per_s, worst_throughput_per_s,
    ratio, within_target.
    """
    _require(timings)
    rows = []
    for variant, group in _variants(timings):
        if targets is not None:
            group = group[group.p95_ms <= targets.for_model(str(variant["model"]))]
        if group.empty:
            continue
        best = group.loc[group.throughput_per_s.idxmax()]
        worst = group.loc[group.throughput_per_s.idxmin()]
        rows.append({**variant, "deployments": len(group),
                     "best": _deployment_label(best), "worst": _deployment_label(worst),
                     "best_throughput_per_s": best.throughput_per_s,
                     "worst_throughput_per_s": worst.throughput_per_s,
                     "ratio": best.throughput_per_s / worst.throughput_per_s,
                     "within_target": targets is not None})
    return order_models(pd.DataFrame(rows, columns=[
        *VARIANT, "deployments", "best", "worst", "best_throughput_per_s",
        "worst_throughput_per_s", "ratio", "within_target"]))
