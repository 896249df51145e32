"""The design space: seeded model variants around the canonical models.

A :class:`DesignSpace` (read from ``design_space.yaml`` or a user's copy) says which factors
vary, over which ranges, for which model families, and how they are sampled (Latin hypercube
or grid). :func:`generate_variants` turns it and a seed into :class:`Variant` objects, each
holding an ordinary :class:`~recstack.specs.ModelSpec`: a variant is run, stored and reported
like any model. The same space and seed give the same specs, on any machine.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from recstack.errors import RecstackError, SpecError
from recstack.footprint import row_scale_for_budget
from recstack.limits import SEED_MAX, check_int, check_number, is_number
from recstack.spec_format import MODEL_TYPES
from recstack.specs import ModelSpec, canonical_name, zoo_names, zoo_spec

SAMPLERS: tuple[str, ...] = ("lhs", "grid")
FACTOR_KINDS: tuple[str, ...] = ("ratio", "choice", "delta")
# The factors a variant can change, and what each means, in the order they are sampled.
FACTOR_NAMES: tuple[str, ...] = ("num_tables", "pooling_factor", "embedding_dim", "table_rows",
                                 "mlp_width", "mlp_depth", "interaction", "attention_width",
                                 "sequence_length", "gru_hidden_size", "num_tasks")
# Grid designs grow as levels ** factors: refuse what would take days to measure.
MAX_VARIANTS = 10_000


@dataclass(frozen=True)
class Factor:
    """One dimension of the design space."""

    name: str
    kind: str
    applies_to: tuple[str, ...]
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] = ()

    def value_at(self, u: float) -> Any:
        """The factor's value at position ``u`` in [0, 1) of its range."""
        if self.kind == "ratio":
            low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
            return low * (high / low) ** u
        index = min(int(u * len(self.values)), len(self.values) - 1)
        return self.values[index]

    def grid(self, levels: int) -> list[Any]:
        """Evenly spaced values over the range (every value, for choices and deltas)."""
        if self.kind != "ratio":
            return list(self.values)
        if levels == 1:
            return [self.value_at(0.5)]
        return [self.value_at(i / (levels - 1)) for i in range(levels)]


@dataclass(frozen=True)
class DesignSpace:
    """Which factors vary over which ranges, around which base models, sampled how."""

    factors: tuple[Factor, ...]
    models: tuple[str, ...]
    sampler: str = "lhs"
    variants_per_model: int = 3
    grid_levels: int = 2
    embedding_budget_mib: float = 256.0
    source: str = "design_space.yaml"

    def factors_for(self, model_type: str) -> tuple[Factor, ...]:
        return tuple(f for f in self.factors if model_type in f.applies_to)

    def replace(self, **changes: Any) -> DesignSpace:
        """A copy with some settings changed (validated like a file)."""
        space = dataclasses.replace(self, **changes)
        _check_settings(space)
        return space


@dataclass(frozen=True)
class Variant:
    """One model of the design space: its base model, the factor values drawn, its spec."""

    name: str
    base: str
    index: int
    factors: Mapping[str, Any]
    spec: ModelSpec


# ---- reading the space ---------------------------------------------------------------------


def default_design_space() -> DesignSpace:
    """The shipped design space (``recstack/design_space.yaml``)."""
    import yaml

    text = resources.files("recstack").joinpath("design_space.yaml").read_text()
    return _space_from_data(yaml.safe_load(text), "design_space.yaml")


def quick_design_space() -> DesignSpace:
    """A small space for tests and a first look: three DLRM-like bases, small tables."""
    return default_design_space().replace(models=("rmc1", "rmc2", "rmc3"),
                                          variants_per_model=4, embedding_budget_mib=8.0)


def load_design_space(path: str | Path) -> DesignSpace:
    """Reads a design-space YAML file; errors name the file and the field."""
    from recstack.userfiles import load_document

    return _space_from_data(load_document(path, "--design-file"), Path(path).name)


def _space_from_data(data: Any, source: str) -> DesignSpace:
    if not isinstance(data, dict):
        raise RecstackError(f"{source}: expected a mapping with keys sampler, models, factors")
    allowed = {"sampler", "variants_per_model", "grid_levels", "models",
               "embedding_budget_mib", "factors"}
    for key in data:
        if key not in allowed:
            raise SpecError(str(key), data[key], f"unknown key; allowed keys: "
                                                 f"{', '.join(sorted(allowed))}", source)
    raw_factors = data.get("factors")
    if not isinstance(raw_factors, dict) or not raw_factors:
        raise SpecError("factors", raw_factors, "expected a mapping of factor name to range",
                        source)
    factors = tuple(_factor(name, spec, source) for name, spec in raw_factors.items())
    models = data.get("models", list(zoo_names()))
    if not isinstance(models, list) or not models:
        raise SpecError("models", models, "expected a non-empty list of zoo model names", source)
    resolved = []
    for model in models:
        name = canonical_name(str(model))
        if name is None:
            raise SpecError("models", model, f"expected zoo names ({', '.join(zoo_names())})",
                            source)
        resolved.append(name)
    space = DesignSpace(
        factors=factors, models=tuple(resolved),
        sampler=data.get("sampler", "lhs"),
        variants_per_model=data.get("variants_per_model", 3),
        grid_levels=data.get("grid_levels", 2),
        embedding_budget_mib=data.get("embedding_budget_mib", 256.0),
        source=source)
    _check_settings(space)
    return space


def _factor(name: Any, spec: Any, source: str) -> Factor:
    if name not in FACTOR_NAMES:
        raise SpecError("factors", name, f"unknown factor; expected one of "
                                         f"{', '.join(FACTOR_NAMES)}", source)
    field = f"factors.{name}"
    if not isinstance(spec, dict):
        raise SpecError(field, spec, "expected a mapping with kind, applies_to and a range",
                        source)
    kind = spec.get("kind")
    if kind not in FACTOR_KINDS:
        raise SpecError(f"{field}.kind", kind, f"expected one of {', '.join(FACTOR_KINDS)}",
                        source)
    applies = spec.get("applies_to", list(MODEL_TYPES))
    if not isinstance(applies, list) or not applies or any(a not in MODEL_TYPES
                                                           for a in applies):
        raise SpecError(f"{field}.applies_to", applies,
                        f"expected a list of model families ({', '.join(MODEL_TYPES)})", source)
    if kind == "ratio":
        low, high = spec.get("low"), spec.get("high")
        for key, value in (("low", low), ("high", high)):
            if not is_number(value) or not math.isfinite(value) or value <= 0:
                raise SpecError(f"{field}.{key}", value, "expected a finite number greater "
                                "than 0", source)
        if high < low:
            raise SpecError(f"{field}.high", high, f"must be at least low ({low})", source)
        return Factor(name, kind, tuple(applies), low=float(low), high=float(high))
    values = spec.get("values")
    if not isinstance(values, list) or not values:
        raise SpecError(f"{field}.values", values, "expected a non-empty list", source)
    if name == "interaction" and any(v not in ("cat", "dot") for v in values):
        raise SpecError(f"{field}.values", values, "expected cat and/or dot", source)
    if name != "interaction" and any(isinstance(v, bool) or not isinstance(v, int)
                                     for v in values):
        raise SpecError(f"{field}.values", values, "expected integers", source)
    if kind == "choice" and name != "interaction" and any(v < 1 for v in values):
        raise SpecError(f"{field}.values", values, "expected integers >= 1", source)
    return Factor(name, kind, tuple(applies), values=tuple(values))


def _check_settings(space: DesignSpace) -> None:
    source = space.source
    if space.sampler not in SAMPLERS:
        raise SpecError("sampler", space.sampler, f"expected one of {', '.join(SAMPLERS)}",
                        source)
    try:
        for key in ("variants_per_model", "grid_levels"):
            check_int(key, getattr(space, key), 1, MAX_VARIANTS)
        check_number("embedding_budget_mib", space.embedding_budget_mib, 0.0, 2.0**40,
                      low_inclusive=False)
    except SpecError as error:
        raise SpecError(error.field, error.value, error.allowed, source) from None
    for model in space.models:
        if canonical_name(model) is None:
            raise SpecError("models", model, f"expected zoo names ({', '.join(zoo_names())})",
                            source)


# ---- sampling ------------------------------------------------------------------------------


def _unit_points(count: int, dimensions: int, seed: int, stream: int) -> np.ndarray:
    """``count`` Latin-hypercube points in [0, 1)^dimensions; one stream per base model, so
    adding a model to the space does not change the others' variants."""
    from scipy.stats import qmc

    if dimensions == 0:
        return np.zeros((count, 0))
    rng = np.random.default_rng([seed, stream])
    return qmc.LatinHypercube(d=dimensions, rng=rng).random(count)


def _draws(space: DesignSpace, factors: Sequence[Factor], seed: int,
           stream: int) -> list[dict[str, Any]]:
    if space.sampler == "grid":
        axes = [factor.grid(space.grid_levels) for factor in factors]
        combos = list(itertools.product(*axes)) if axes else [()]
        return [dict(zip((f.name for f in factors), combo)) for combo in combos]
    units = _unit_points(space.variants_per_model, len(factors), seed, stream)
    return [{f.name: f.value_at(float(u)) for f, u in zip(factors, row)} for row in units]


def design_size(space: DesignSpace) -> int:
    """How many variants the space has (before sampling)."""
    if space.sampler == "lhs":
        return space.variants_per_model * len(space.models)
    total = 0
    for model in space.models:
        total += math.prod(len(f.grid(space.grid_levels))
                           for f in space.factors_for(zoo_spec(model).model_type))
    return total


def generate_variants(space: DesignSpace, seed: int = 0) -> list[Variant]:
    """Every variant of ``space`` for ``seed``: the same inputs give the same specs."""
    check_int("seed", seed, 0, SEED_MAX)
    size = design_size(space)
    if size > MAX_VARIANTS:
        raise SpecError("grid_levels", space.grid_levels,
                        f"the grid has {size} variants (at most {MAX_VARIANTS}); use fewer "
                        "levels or factors, or the lhs sampler", space.source)
    variants = []
    for model in space.models:
        # One random stream per zoo model: a space's other models do not change its variants.
        stream = zoo_names().index(model)
        base = zoo_spec(model)
        factors = space.factors_for(base.model_type)
        for index, draw in enumerate(_draws(space, factors, seed, stream)):
            name = f"{model}-s{seed}-v{index:02d}"
            spec = apply_factors(base, draw, name, space.embedding_budget_mib)
            variants.append(Variant(name=name, base=model, index=index,
                                    factors=_rounded(draw), spec=spec))
    return variants


def _rounded(draw: Mapping[str, Any]) -> dict[str, Any]:
    """Factor values as stored: ratios to 4 significant digits (readable, still exact enough
    to tell variants apart)."""
    return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in draw.items()}


# ---- applying factors to a base spec ---------------------------------------------------------


def _scaled_width(width: int, ratio: float) -> int:
    return max(2, round(width * ratio))


def apply_factors(base: ModelSpec, draw: Mapping[str, Any], name: str,
                  embedding_budget_mib: float) -> ModelSpec:
    """The base spec with the drawn factor values, rows scaled to the embedding budget."""
    kind = base.model_type
    rows = list(base.table_rows)
    bottom, top, tasks = list(base.bottom_mlp), list(base.top_mlp), list(base.task_mlp)
    attention = list(base.attention_mlp)
    changes: dict[str, Any] = {"name": name}

    if "num_tables" in draw:
        count = max(1, round(len(rows) * draw["num_tables"]))
        rows = [rows[i % len(rows)] for i in range(count)]
    if "table_rows" in draw:
        rows = [max(2, round(r * draw["table_rows"])) for r in rows]
    if "pooling_factor" in draw:
        changes["pooling_factor"] = max(1, round(base.pooling_factor * draw["pooling_factor"]))
    dim = int(draw.get("embedding_dim", base.embedding_dim))
    changes["embedding_dim"] = dim

    # The top MLP's last width is the model's output for these families; for NCF and MT-WnD
    # it is a hidden width (the NeuMF layer and the task towers follow).
    output = top[-1:] if kind in ("dlrm", "wnd", "din", "dien") else []
    ratio = draw.get("mlp_width")
    if ratio is not None:
        top = [_scaled_width(w, ratio) for w in top[:len(top) - len(output)]] + output
        if kind == "dlrm":
            bottom = bottom[:1] + [_scaled_width(w, ratio) for w in bottom[1:]]
        if kind == "mtwnd":
            tasks = [_scaled_width(w, ratio) for w in tasks]
    depth = draw.get("mlp_depth")
    if depth:
        hidden = top[:len(top) - len(output)]
        if depth > 0:
            last = hidden[-1] if hidden else output[0]
            hidden = hidden + [last] * depth
        else:
            hidden = hidden[:max(1, len(hidden) + depth)]
        top = hidden + output
    if kind == "mtwnd" and tasks:
        tasks[0] = top[-1]  # the towers' input is the shared bottom's output (spec rule)
    if kind in ("din", "dien") and "attention_width" in draw:
        attention = [_scaled_width(w, draw["attention_width"]) for w in attention]
    interaction = draw.get("interaction", base.interaction)
    if kind == "dlrm" and interaction == "dot":
        bottom[-1] = dim  # the dot interaction needs the bottom MLP to end at the dim
    changes["interaction"] = interaction
    if "sequence_length" in draw and base.sequence_length is not None:
        changes["sequence_length"] = max(1, round(base.sequence_length *
                                                  draw["sequence_length"]))
    if "gru_hidden_size" in draw and base.gru_hidden_size is not None:
        changes["gru_hidden_size"] = _scaled_width(base.gru_hidden_size,
                                                   draw["gru_hidden_size"])
    if "num_tasks" in draw:
        changes["num_tasks"] = int(draw["num_tasks"])

    spec = dataclasses.replace(base, table_rows=tuple(rows), bottom_mlp=tuple(bottom),
                               top_mlp=tuple(top), task_mlp=tuple(tasks),
                               attention_mlp=tuple(attention), **changes)
    return _within_budget(spec, embedding_budget_mib)


def _within_budget(spec: ModelSpec, budget_mib: float) -> ModelSpec:
    """The spec with ``row_scale`` set so its embedding tables fit the budget."""
    scale = row_scale_for_budget(spec, budget_mib * 2**20, significant=3)
    if scale is not None:
        return spec.scaled(scale)
    raise SpecError("embedding_budget_mib", budget_mib,
                    f"{spec.name}: cannot fit its tables at one row each; raise the budget")


def variants_frame(variants: Sequence[Variant], space: DesignSpace, seed: int):  # -> DataFrame
    """The variants as rows of the store's ``design_space`` table (less ``run_id``)."""
    import json

    import pandas as pd

    return pd.DataFrame([{
        "variant": v.name, "base_model": v.base, "variant_index": v.index,
        "design_seed": seed, "sampler": space.sampler, "spec_digest": v.spec.digest(),
        "factors": json.dumps(dict(v.factors), sort_keys=True),
    } for v in variants])
