"""The main job's plan: the whole paper on this machine within a time budget.

``recstack run`` answers the paper's findings at every level the machine allows, in stages:

1. ``ceilings``: the machine's ceilings (roofline, efficiency), when none are stored for this
   platform and thread count;
2. ``backend race``: the backends ``auto`` runs, raced on this machine
   (:mod:`recstack.backend_race`), when no race is stored for it;
3. ``characterization``: timing and operator profiles of the canonical models over batch
   sizes, every point cold (:mod:`recstack.working_set`), plus warm timing points of the
   embedding-dominated models at small batch (how much of their latency is memory);
4. ``hardware``: top-down and misses, measured where counters exist, else simulated with
   valgrind on a subset chosen for the findings (every model at its smallest batch: is it
   frontend bound; the embedding-dominated models at a larger batch: are they memory bound);
5. ``correlation``: a small design space of model variants, for the cross-stack finding;
6. ``serving`` (with ``--levels ...,serving``): beyond the paper, the embedding-dominated
   models served under MLPerf LoadGen's load, each deployment tuned against the baseline
   (:mod:`recstack.serving`), in the characterization run;

then the figures and the report. A :class:`Tier` says how much of each stage to measure; the
budget picks the richest tier whose estimate fits, and a stage that would overrun the time
left when its turn comes is skipped with a note. Estimates come from a cost model of a
point's parts (worker start, model build, generation, warm-up, timed seconds), calibrated on
a 2-core VM; the plan prints them before the first point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from recstack.errors import RecstackError
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec

WARM_MODELS: tuple[str, ...] = ("rmc1", "rmc2")
"""Embedding-dominated models: measured warm too at small batch."""
EMBEDDING_MODELS: tuple[str, ...] = ("rmc1", "rmc2")


@dataclass(frozen=True)
class Tier:
    """How much of each stage the main job measures."""

    name: str
    batch_sizes: tuple[int, ...]
    min_time: float
    warm_batch_sizes: tuple[int, ...]
    hardware_batch_sizes: tuple[int, ...]
    """Every model at the first; embedding-dominated models also at the others."""
    design_variants_per_model: int
    design_batch_sizes: tuple[int, ...]
    design_hardware: bool
    race: bool = True
    """Race the backends when none is stored (else auto uses the shipped file)."""
    ceilings: bool = True
    """Measure the ceilings when none are stored (else the efficiency section says how)."""
    hardware_models: tuple[str, ...] | None = None
    """The models of the simulated subset (None: every model)."""
    row_scale: float | None = None
    """Table rows of the models, unless --row-scale says (None: full size where it fits)."""
    serving_models: tuple[str, ...] = ("rmc1", "rmc2")
    """The models the serving stage tunes (those of the job among them)."""
    serving_min_duration: float = 2.0
    """LoadGen's minimum duration of each serving test, in seconds."""


TIERS: tuple[Tier, ...] = (
    Tier("full", (1, 4, 16, 64, 256, 1024, 4096), 1.0, (1, 4, 16), (1, 64), 2, (16,), False),
    Tier("reduced", (1, 16, 256, 4096), 0.5, (1, 16), (1, 64), 2, (16,), False),
    # What a 20-minute job with the serving level fits on a fresh 2-core machine: three
    # batch sizes, no ceilings (the efficiency section says how to measure them).
    Tier("lean", (1, 64, 1024), 0.5, (1,), (1, 64), 1, (16,), False, ceilings=False),
    # A tenth of the rows still leaves the large tables many times any LLC (cold holds),
    # and builds in a tenth of the time.
    Tier("quick", (1, 256), 0.25, (1,), (1,), 1, (16,), False, race=False,
         ceilings=False, hardware_models=("rmc1", "rmc3", "din"), row_scale=0.1,
         serving_models=("rmc1",), serving_min_duration=1.0),
)
TIER_NAMES = tuple(tier.name for tier in TIERS)
DEFAULT_BUDGET_MINUTES = 30.0
QUICK_BUDGET_MINUTES = 5.0
SERVING_BUDGET_MINUTES = 20.0
"""The default budget when the serving level is asked for: the paper's stages and the
serving stage together, about 20 minutes on a 2-core VM (the tiers shrink the paper's)."""

# The cost model (seconds), fitted by least squares to the points of a 2-core AMD EPYC VM's
# full and quick main jobs (150 points in 10.0 min, 50 at a tenth of the rows in 2.2 min):
# a worker forks from the forkserver and draws its batches in about 0.9 s, builds at about
# 3 GB/s of build memory, and an operator profile adds its plain, profiled and plain phases,
# the operator clock and its warm-up.
WORKER_START_S = 0.9
BUILD_BYTES_PER_S = 3.0e9
WARMUP_S = 0.25
PROFILE_EXTRA_S = 2.6
SIMULATED_POINT_S = 16.0
CEILINGS_S = 360.0
RACE_S_PER_MODEL_BATCH = 3.5
DESIGN_VARIANTS_MIN = 8
"""The fewest variants a design has, whatever the number of models: the correlation needs
at least five per batch size, and a few more keep one odd variant from deciding it."""
REMEASURED_SHARE = 0.1
"""Timing points expected to be measured again for stability."""
# A serving point: its worker and model as any point, then its engines (each a process
# importing torch, then warmed up) and its LoadGen tests (each the minimum duration plus the
# drain of what is queued at its end); a tune measures the baseline and a hill climb per
# split of the cores.
ENGINES_START_S = 4.0
SERVING_TESTS = 6
SERVING_TEST_OVERHEAD_S = 0.8
TUNED_DEPLOYMENTS = 7


@dataclass(frozen=True)
class Stage:
    """One stage of the main job, its estimate, and why it is skipped (None: it runs)."""

    name: str
    purpose: str
    estimate_s: float
    points: int = 0
    skipped: str | None = None


@dataclass(frozen=True)
class PaperPlan:
    """The main job's stages at one tier, within a budget."""

    tier: Tier
    budget_s: float
    stages: tuple[Stage, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def estimate_s(self) -> float:
        return sum(stage.estimate_s for stage in self.stages if stage.skipped is None)

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def runs(self, name: str) -> bool:
        return any(s.name == name and s.skipped is None for s in self.stages)


def point_seconds(spec: ModelSpec, level: str, min_time: float, hardware_mode: str = "simulated",
                  precision: Precision = FP32) -> float:
    """The estimated wall time of one point of ``spec`` at ``level`` in ``precision`` (worker
    included; a reduced-precision timing point also builds the fp32 model its predictions
    are compared with)."""
    from recstack.footprint import footprint

    build = footprint(spec, precision).build_memory_bytes / BUILD_BYTES_PER_S
    if level == "timing" and not precision.is_reference:
        build += footprint(spec).build_memory_bytes / BUILD_BYTES_PER_S
    if level == "hardware":
        return SIMULATED_POINT_S if hardware_mode == "simulated" else \
            WORKER_START_S + build + WARMUP_S + min_time
    if level == "operators":
        return WORKER_START_S + build + WARMUP_S + PROFILE_EXTRA_S
    return WORKER_START_S + build + WARMUP_S + min_time * (1 + REMEASURED_SHARE)


def serving_seconds(spec: ModelSpec, tier: Tier) -> float:
    """The estimated wall time of tuning ``spec``'s deployment at ``tier``."""
    from recstack.footprint import footprint

    build = footprint(spec).build_memory_bytes / BUILD_BYTES_PER_S
    point = (WORKER_START_S + build + ENGINES_START_S
             + SERVING_TESTS * (tier.serving_min_duration + SERVING_TEST_OVERHEAD_S))
    return TUNED_DEPLOYMENTS * point


def budget_seconds(budget_minutes: float | None, quick: bool, serving: bool = False) -> float:
    minutes = budget_minutes if budget_minutes is not None else (
        QUICK_BUDGET_MINUTES if quick else
        SERVING_BUDGET_MINUTES if serving else DEFAULT_BUDGET_MINUTES)
    if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) \
            or not 1 <= minutes <= 24 * 60:
        raise RecstackError(f"--budget: {minutes!r} is not allowed; expected minutes from 1 "
                            "to 1440")
    return float(minutes) * 60.0


def characterization_points(specs: Sequence[ModelSpec], tier: Tier, batch_sizes: Sequence[int],
                            levels: Sequence[str]) -> list[tuple[ModelSpec, int, str, str]]:
    """(spec, batch size, level, cache) of the characterization stage: every level but
    hardware at every batch size, cold; warm timing points of the embedding-dominated
    models at the tier's small batch sizes."""
    wanted = [level for level in levels if level not in ("hardware", "serving")]
    points = [(spec, batch, level, "cold") for spec in specs for batch in batch_sizes
              for level in wanted]
    if "timing" in wanted:
        points += [(spec, batch, "timing", "warm") for spec in specs
                   if spec.name in WARM_MODELS for batch in tier.warm_batch_sizes
                   if batch in batch_sizes]
    return points


def hardware_pairs(specs: Sequence[ModelSpec], tier: Tier, measured: bool,
                   batch_sizes: Sequence[int]) -> list[tuple[ModelSpec, int]]:
    """(spec, batch size) of the hardware stage: with counters, every characterized pair;
    simulated, every model at the tier's first hardware batch size and the
    embedding-dominated ones at the others too."""
    if measured:
        return [(spec, batch) for spec in specs for batch in batch_sizes]
    first, *others = tier.hardware_batch_sizes
    chosen = [spec for spec in specs
              if tier.hardware_models is None or spec.name in tier.hardware_models]
    return [(spec, batch) for spec in chosen for batch in (first, *others)
            if batch == first or spec.name in EMBEDDING_MODELS]


def plan_paper(specs: Sequence[ModelSpec], budget_s: float, levels: Sequence[str],
               hardware_mode: str | None, need_ceilings: bool, need_race: bool,
               tier_name: str | None = None, batch_sizes: Sequence[int] | None = None,
               scale_given: bool = False, precisions: Sequence[Precision] = (FP32,)
               ) -> PaperPlan:
    """The stages at the richest tier (or ``tier_name``) whose estimate fits ``budget_s``
    (the quickest tier, with a note, when none does). ``hardware_mode`` is None when the
    machine has neither counters nor valgrind; ``need_ceilings`` / ``need_race`` whether
    none are stored for this machine."""
    tiers = [tier for tier in TIERS if tier_name in (None, tier.name)]
    if not tiers:
        raise RecstackError(f"tier: {tier_name!r} is not allowed; expected one of "
                            f"{', '.join(TIER_NAMES)}")
    plans = [_stages(tier_specs(specs, tier, scale_given), tier, budget_s, levels,
                     hardware_mode, need_ceilings, need_race, batch_sizes, precisions)
             for tier in tiers]
    for plan in plans:
        if plan.estimate_s <= budget_s:
            return plan
    plan = plans[-1]
    note = (f"even the {plan.tier.name} tier is estimated at {plan.estimate_s / 60:.0f} min, "
            f"over the budget of {budget_s / 60:.0f} min: stages that would overrun when "
            "their turn comes are skipped")
    return PaperPlan(plan.tier, budget_s, plan.stages, (*plan.notes, note))


def tier_specs(specs: Sequence[ModelSpec], tier: Tier, scale_given: bool) -> list[ModelSpec]:
    """The specs at the tier's row scale (unless the user gave one), never larger."""
    if scale_given or tier.row_scale is None:
        return list(specs)
    return [spec.scaled(tier.row_scale) if tier.row_scale < spec.row_scale else spec
            for spec in specs]


def _stages(specs: Sequence[ModelSpec], tier: Tier, budget_s: float, levels: Sequence[str],
            hardware_mode: str | None, need_ceilings: bool, need_race: bool,
            batch_sizes: Sequence[int] | None,
            precisions: Sequence[Precision] = (FP32,)) -> PaperPlan:
    sizes = tuple(batch_sizes) if batch_sizes else tier.batch_sizes
    ceilings = need_ceilings and tier.ceilings
    stages = [Stage("ceilings", "the machine's ceilings: roofline and efficiency",
                    CEILINGS_S if ceilings else 0.0,
                    skipped=None if ceilings else ("stored for this machine" if not
                                                   need_ceilings else
                                                   f"not in the {tier.name} tier: `recstack "
                                                   "ceilings` measures them"))]
    race = need_race and tier.race
    stages.append(Stage(
        "backend race", "the backend auto runs for each model and batch size, on this machine",
        RACE_S_PER_MODEL_BATCH * len(specs) * 3 if race else 0.0,
        skipped=None if race else ("stored for this machine" if not need_race else
                                   f"not in the {tier.name} tier: auto uses the shipped "
                                   "choices")))
    points = characterization_points(specs, tier, sizes, levels)
    stages.append(Stage("characterization",
                        "systems and software levels (timing, operators), cold and warm",
                        sum(point_seconds(spec, level, tier.min_time, precision=precision)
                            for spec, _, level, _ in points for precision in precisions),
                        len(points) * len(precisions)))
    measured = hardware_mode == "measured"
    if "hardware" not in levels or hardware_mode is None:
        why = ("not among --levels" if "hardware" not in levels else
               "this machine has neither hardware counters nor valgrind")
        stages.append(Stage("hardware", "top-down and misses", 0.0, skipped=why))
    else:
        pairs = hardware_pairs(specs, tier, measured, sizes)
        stages.append(Stage("hardware", f"top-down and misses ({hardware_mode})",
                            sum(point_seconds(spec, "hardware", tier.min_time,
                                              hardware_mode, precision)
                                for spec, _ in pairs for precision in precisions),
                            len(pairs) * len(precisions)))
    stages.append(_design_stage(tier, levels, hardware_mode, len(specs)))
    stages.append(_serving_stage(specs, tier, levels))
    return PaperPlan(tier, budget_s, tuple(stages))


def serving_specs(specs: Sequence[ModelSpec], tier: Tier) -> list[ModelSpec]:
    """The job's models the serving stage tunes."""
    return [spec for spec in specs if spec.name in tier.serving_models]


def _serving_stage(specs: Sequence[ModelSpec], tier: Tier, levels: Sequence[str]) -> Stage:
    purpose = "latency-bounded throughput under LoadGen, tuned vs baseline"
    if "serving" not in levels:
        return Stage("serving", purpose, 0.0, skipped="not among --levels")
    chosen = serving_specs(specs, tier)
    if not chosen:
        return Stage("serving", purpose, 0.0,
                     skipped=f"none of {', '.join(tier.serving_models)} among the models")
    names = ", ".join(spec.name for spec in chosen)
    return Stage("serving", f"{purpose} ({names})",
                 sum(serving_seconds(spec, tier) for spec in chosen),
                 TUNED_DEPLOYMENTS * len(chosen))


def design_levels(tier: Tier, levels: Sequence[str], hardware_mode: str | None
                  ) -> tuple[str, ...]:
    chosen = [level for level in ("timing", "operators") if level in levels]
    if tier.design_hardware and "hardware" in levels and hardware_mode is not None:
        chosen.append("hardware")
    return tuple(chosen)


def design_variants_per_model(tier: Tier, models: int) -> int:
    """Variants per model of the correlation design: the tier's, or more so that the design
    has at least ``DESIGN_VARIANTS_MIN``."""
    return max(tier.design_variants_per_model, math.ceil(DESIGN_VARIANTS_MIN / max(models, 1)))


def _design_stage(tier: Tier, levels: Sequence[str], hardware_mode: str | None,
                  models: int) -> Stage:
    chosen = design_levels(tier, levels, hardware_mode)
    if "operators" not in chosen:
        return Stage("correlation", "features vs bottlenecks over model variants", 0.0,
                     skipped="needs the operators level")
    variants = design_variants_per_model(tier, models) * models
    count = variants * len(tier.design_batch_sizes)
    # Variants have tables of at most 256 MiB: they build in a fraction of a second.
    per_point = {"timing": WORKER_START_S + 0.3 + WARMUP_S + tier.min_time,
                 "operators": WORKER_START_S + 0.3 + WARMUP_S + PROFILE_EXTRA_S,
                 "hardware": (SIMULATED_POINT_S if hardware_mode == "simulated"
                              else WORKER_START_S + 0.3 + WARMUP_S + tier.min_time)}
    return Stage("correlation", f"features vs bottlenecks over {variants} model variants "
                                f"({', '.join(chosen)})",
                 count * sum(per_point[level] for level in chosen), count * len(chosen))
