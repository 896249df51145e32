"""Rows about runs rather than points: the machine, the run, a design space's variants, and
the machine's measured ceilings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recstack.records.declare import Column, column, table


@dataclass(frozen=True, kw_only=True)
class Platform:
    """One distinct machine and software stack."""

    platform_id: str = column("VARCHAR", "digest of the platform description")
    description: str = column("VARCHAR", "the machine in one line")
    info: dict[str, Any] = column("JSON", "everything recstack read about the machine")


@dataclass(frozen=True, kw_only=True)
class Run:
    """One measuring command: what it was, where it ran, and whether it finished."""

    run_id: str = column("VARCHAR", "the run's name")
    started_at: datetime = column("TIMESTAMPTZ", "when the run was created")
    command: str = column("VARCHAR", "the command line that made it")
    recstack_version: str = column("VARCHAR", "recstack's version")
    git_revision: str | None = column("VARCHAR", "the checkout's commit, -dirty with changes")
    platform_id: str = column("VARCHAR", "the machine (platforms)")
    settings: dict[str, Any] = column("JSON", "the timing settings: a run resumes only with "
                                              "the same")
    planned_points: int | None = column("INTEGER", "points its last pass planned", "points",
                                        since=10, default=None)
    state: str | None = column("VARCHAR", "running, complete, interrupted or failed",
                               since=10, default=None)
    state_reason: str | None = column("VARCHAR", "why the pass stopped early", since=10,
                                      default=None)
    ended_at: datetime | None = column("TIMESTAMPTZ", "when the pass ended", since=10,
                                       default=None)
    in_flight: str | None = column("VARCHAR", "the point being measured (what a killed run "
                                              "was doing)", since=10, default=None)
    runner: str | None = column("VARCHAR", "host:pid of the process measuring it", since=10,
                                default=None)


@dataclass(frozen=True, kw_only=True)
class DesignVariant:
    """One model variant of a design-space run (its points are ordinary points)."""

    variant: str = column("VARCHAR", "the variant's model name", since=4)
    base_model: str = column("VARCHAR", "the canonical model it varies", since=4)
    variant_index: int = column("INTEGER", "its position in the design", since=4)
    design_seed: int = column("BIGINT", "the design's seed", since=4)
    sampler: str = column("VARCHAR", "how factor values were drawn", since=4)
    spec_digest: str = column("VARCHAR", "digest of the variant's spec", since=4)
    factors: dict[str, Any] = column("JSON", "the sampled factor values", since=4)


@dataclass(frozen=True, kw_only=True)
class Ceiling:
    """One measured ceiling of a machine (a bandwidth, a GEMM rate, a dispatch cost)."""

    platform_id: str = column("VARCHAR", "the machine", since=4)
    threads: int = column("INTEGER", "intra-op threads it was measured with", since=4)
    kind: str = column("VARCHAR", "bandwidth, gemm, gather or dispatch", since=4)
    shape: str = column("VARCHAR", "what was measured (sizes, footprint)", since=4)
    value: float = column("DOUBLE", "the median rate or cost", since=4)
    unit: str = column("VARCHAR", "the value's unit", since=4)
    p5: float = column("DOUBLE", "5th percentile of the repeats", since=4)
    p95: float = column("DOUBLE", "95th percentile of the repeats", since=4)
    repeats: int = column("INTEGER", "repeats measured", since=4)
    samples: list[float] = column("JSON", "every repeat's value", since=4)
    measured_at: datetime = column("TIMESTAMPTZ", "when", since=4)
    recstack_version: str = column("VARCHAR", "recstack's version", since=4)
    torch_version: str = column("VARCHAR", "torch's version", since=4)
    set_id: str = column("VARCHAR", "one measurement of the whole set", since=8)


@dataclass(frozen=True, kw_only=True)
class BackendChoice:
    """The backend a race chose for one model at one batch size on a machine (what ``auto``
    runs there), with every candidate's measured latency."""

    platform_id: str = column("VARCHAR", "the machine", since=12)
    threads: int = column("INTEGER", "intra-op threads the race ran with", since=12)
    set_id: str = column("VARCHAR", "one race of every model and batch size", since=12)
    model: str = column("VARCHAR", "the model's name (a scaled zoo model keeps its name)",
                        since=12)
    model_type: str = column("VARCHAR", "its model type (the choice for unraced models of "
                                        "that type)", since=12)
    row_scale: float = column("DOUBLE", "table rows relative to full size, as raced",
                              since=12)
    batch_size: int = column("INTEGER", "samples per batch", "samples", since=12)
    backend: str = column("VARCHAR", "the chosen backend", since=12)
    candidates: dict[str, Any] = column("JSON", "each raced backend's median latency in "
                                                "microseconds, or why it could not run",
                                        since=12)
    measured_at: datetime = column("TIMESTAMPTZ", "when", since=12)
    recstack_version: str = column("VARCHAR", "recstack's version", since=12)
    torch_version: str = column("VARCHAR", "torch's version", since=12)


PLATFORMS = table("platforms", Platform, primary_key=("platform_id",),
                  meaning="one row per distinct machine and software stack")
RUNS = table("runs", Run, primary_key=("run_id",),
             meaning="one row per measuring command, and whether it finished")
DESIGN_SPACE = table("design_space", DesignVariant,
                     key=(Column("run_id", "VARCHAR", "the design-space run", since=4),),
                     primary_key=("run_id", "variant"),
                     meaning="a design-space run's model variants")
CEILINGS = table("ceilings", Ceiling, primary_key=("platform_id", "threads", "set_id", "kind",
                                                    "shape"),
                 meaning="the machine's measured ceilings, every set kept (newest few)")
BACKEND_CHOICES = table("backend_choices", BackendChoice,
                        primary_key=("platform_id", "threads", "set_id", "model",
                                     "batch_size"),
                        meaning="the backend auto runs per model and batch size on a machine, "
                                "as raced there (newest few races kept)")
