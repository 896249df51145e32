"""The row every point has, whatever its level: what was measured, and how it ended; and the
columns of it that the timing level fills (how the model was built)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recstack.records.declare import column, point_key_columns, table


@dataclass(frozen=True, kw_only=True)
class PointRow:
    """One measured (or failed) point of a run."""

    config_key: str = column("VARCHAR", "digest of what runs: joins the levels of one "
                                        "configuration", since=2)
    level: str = column("VARCHAR", "timing, operators or hardware", since=2)
    method_version: int | None = column(
        "INTEGER", "the version of the level's method of measuring (results of different "
                   "versions are not mixed silently)", since=11, default=None)
    label: str = column("VARCHAR", "the point in one line")
    model: str = column("VARCHAR", "the model's name")
    model_type: str = column("VARCHAR", "dlrm, ncf, wnd, mtwnd, din or dien")
    spec_digest: str = column("VARCHAR", "digest of the model spec")
    spec: dict[str, Any] = column("JSON", "the model spec as a config file")
    row_scale: float = column("DOUBLE", "table rows relative to full size")
    batch_size: int = column("INTEGER", "samples per batch", "samples")
    device: str = column("VARCHAR", "cpu, cuda or cuda:N")
    threads: int = column("INTEGER", "intra-op threads", "threads")
    backend: str = column("VARCHAR", "the execution backend that ran")
    backend_basis: str | None = column(
        "VARCHAR", "what chose the backend: 'as given', 'race SET_ID' (raced on this "
                   "platform), or 'shipped file' (the fallback measured elsewhere)", since=12,
        default=None)
    cache_state: str | None = column(
        "VARCHAR", "cold (the cycled batches touch more distinct embedding rows than a "
                   "stated multiple of the last-level cache) or warm (a few batches cycled)",
        since=12, default=None)
    working_set_bytes: int | None = column(
        "BIGINT", "expected distinct embedding bytes the cycled batches touch", "B",
        since=12, default=None)
    llc_bytes: int | None = column("BIGINT", "the last-level cache the working set was "
                                             "sized against", "B", since=12, default=None)
    query: dict[str, Any] = column("JSON", "how the query ids were drawn")
    seed: int = column("BIGINT", "seed of weights and queries")
    status: str = column("VARCHAR", "ok or failed")
    error: str | None = column("VARCHAR", "why it failed", default=None)
    started_at: datetime = column("TIMESTAMPTZ", "when its worker started")
    finished_at: datetime = column("TIMESTAMPTZ", "when its result came back")
    attempts: int | None = column("INTEGER", "workers that measured it (more than one when an "
                                             "unstable point was measured again)", since=12,
                                  default=None)
    platform_id: str | None = column(
        "VARCHAR", "the machine that measured the point (platforms); a run on a cluster "
                   "spans several", since=14, default=None)
    node: str | None = column("VARCHAR", "the cluster node that measured it (its Ray node "
                                         "id); none when measured where the run ran",
                              since=14, default=None)
    retried_after: str | None = column(
        "VARCHAR", "why an earlier attempt was lost (its node or worker died) and the point "
                   "measured again", since=14, default=None)
    embedding_precision: str | None = column(
        "VARCHAR", "how the embedding tables were stored: fp32, fp16, bf16, int8 or int4 "
                   "(row-wise; tables too narrow to gain stay fp32); none read as fp32",
        since=15, default=None)
    dense_precision: str | None = column(
        "VARCHAR", "the dense layers' precision: fp32, bf16 or int8 (dynamic); none read as "
                   "fp32", since=15, default=None)
    folded_fraction: float | None = column(
        "DOUBLE", "the share of a trace's ids at or beyond their table's rows, folded in "
                  "modulo the rows; none for queries not read from a trace", since=16,
        default=None)


@dataclass(frozen=True, kw_only=True)
class Build:
    """How a timing point's model and queries were made (not timed)."""

    build_seconds: float = column("DOUBLE", "building the model", "s")
    peak_memory_growth_bytes: int = column("BIGINT", "peak resident memory growth while "
                                                     "building", "B")
    input_bytes_per_batch: int = column("BIGINT", "memory of one query batch", "B")
    distinct_batches: int = column("INTEGER", "distinct batches cycled through the timed loop")
    threads_used: int = column("INTEGER", "intra-op threads torch reported")
    device_name: str = column("VARCHAR", "the device's name")
    warmup_iterations: int = column("INTEGER", "warm-up iterations before timing")
    compile_seconds: float | None = column("DOUBLE", "what the backend did before running: "
                                                     "compiling, tracing", "s", since=5,
                                           default=None)
    output_max_abs_deviation: float | None = column(
        "DOUBLE", "reduced precision: the largest absolute difference of a prediction from "
                  "the fp32 model's on the same queries (none in fp32, or where the fp32 "
                  "model did not fit beside the point's)", since=15, default=None)
    output_mean_abs_deviation: float | None = column(
        "DOUBLE", "reduced precision: the mean absolute difference of the predictions from "
                  "the fp32 model's", since=15, default=None)
    deviation_samples: int | None = column(
        "INTEGER", "samples the deviation compared", "samples", since=15, default=None)


POINTS = table("points", PointRow, Build, key=point_key_columns(),
               primary_key=("run_id", "point_key"),
               meaning="one row per measured or failed point of a run")
