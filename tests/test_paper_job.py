"""The main job's plan: tiers chosen by the budget, stages and why they are skipped."""

from __future__ import annotations

import pytest

from recstack.errors import RecstackError
from recstack.paper_job import (
    TIERS,
    budget_seconds,
    characterization_points,
    hardware_pairs,
    plan_paper,
)
from recstack.specs import ZOO_NAMES, resolve_spec

LEVELS = ("timing", "operators", "hardware")
SPECS = [resolve_spec(name) for name in ZOO_NAMES]


def test_the_default_budget_fits_the_full_tier_with_every_stage() -> None:
    plan = plan_paper(SPECS, budget_seconds(None, False), LEVELS, "simulated", True, True)
    assert plan.tier.name == "full" and plan.estimate_s <= 30 * 60
    assert all(plan.runs(name) for name in ("ceilings", "backend race", "characterization",
                                            "hardware", "correlation"))
    assert plan.stage("characterization").points == 8 * 7 * 2 + 2 * 3  # + warm RMC1/RMC2


def test_a_smaller_budget_takes_a_smaller_tier() -> None:
    full = plan_paper(SPECS, 3600, LEVELS, "simulated", True, True)
    smaller = plan_paper(SPECS, full.estimate_s - 1, LEVELS, "simulated", True, True)
    assert smaller.tier.name != "full" and smaller.estimate_s <= full.estimate_s - 1


def test_quick_fits_five_minutes() -> None:
    plan = plan_paper(SPECS, budget_seconds(None, True), LEVELS, "simulated", False, True,
                      tier_name="quick")
    assert plan.tier.name == "quick" and plan.estimate_s <= 5 * 60
    assert "shipped" in plan.stage("backend race").skipped


def test_an_impossible_budget_keeps_the_quickest_tier_and_says_so() -> None:
    plan = plan_paper(SPECS, 60, LEVELS, "simulated", True, True)
    assert plan.tier is TIERS[-1] and "over the budget" in plan.notes[-1]


def test_stored_ceilings_and_race_are_not_measured_again() -> None:
    plan = plan_paper(SPECS, 1800, LEVELS, "simulated", False, False)
    assert plan.stage("ceilings").skipped == "stored for this machine"
    assert plan.stage("backend race").skipped == "stored for this machine"


def test_without_counters_or_valgrind_the_hardware_stage_says_why() -> None:
    plan = plan_paper(SPECS, 1800, LEVELS, None, False, False)
    assert "neither hardware counters nor valgrind" in plan.stage("hardware").skipped
    plan = plan_paper(SPECS, 1800, ("timing",), "simulated", False, False)
    assert plan.stage("hardware").skipped == "not among --levels"
    assert plan.stage("correlation").skipped == "needs the operators level"


def test_warm_points_are_the_embedding_dominated_models_at_small_batch() -> None:
    tier = TIERS[0]
    points = characterization_points(SPECS, tier, tier.batch_sizes, LEVELS)
    warm = {(spec.name, batch) for spec, batch, level, cache in points if cache == "warm"}
    assert warm == {(m, b) for m in ("rmc1", "rmc2") for b in (1, 4, 16)}
    assert all(level == "timing" for _, _, level, cache in points if cache == "warm")


def test_the_simulated_subset_serves_the_hardware_findings() -> None:
    tier = TIERS[0]
    pairs = {(spec.name, batch) for spec, batch in hardware_pairs(SPECS, tier, False, (1, 64))}
    assert {(name, 1) for name in ZOO_NAMES} <= pairs  # frontend bound at small batch?
    assert {("rmc1", 64), ("rmc2", 64)} <= pairs  # memory bound where embeddings dominate?
    assert len(pairs) == 10
    measured = hardware_pairs(SPECS, tier, True, (1, 64))
    assert len(measured) == 16


@pytest.mark.parametrize("minutes", [0, -5, 2000, float("nan"), True])
def test_a_bad_budget_is_refused(minutes: float) -> None:
    with pytest.raises(RecstackError, match="--budget"):
        budget_seconds(minutes, False)


def test_the_serving_level_adds_a_stage_within_twenty_minutes() -> None:
    levels = (*LEVELS, "serving")
    budget = budget_seconds(None, False, serving=True)
    assert budget == 20 * 60
    plan = plan_paper(SPECS, budget, levels, "simulated", True, True)
    serving = plan.stage("serving")
    assert plan.runs("serving") and "rmc1, rmc2" in serving.purpose
    assert serving.estimate_s > 0 and plan.estimate_s <= budget
    # The characterization measures no serving points; the stage is its own.
    assert all(level != "serving" for _, _, level, _ in
               characterization_points(SPECS, plan.tier, (1,), levels))


def test_without_the_serving_level_there_is_no_serving_stage() -> None:
    plan = plan_paper(SPECS, 1800, LEVELS, "simulated", True, True)
    assert plan.stage("serving").skipped == "not among --levels"
    only_ncf = plan_paper([resolve_spec("ncf")], 1800, (*LEVELS, "serving"), "simulated",
                          True, True)
    assert "none of rmc1, rmc2" in only_ncf.stage("serving").skipped
