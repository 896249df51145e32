"""The design space: seeded, reproducible variants that are ordinary, valid specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recstack.designspace import (default_design_space, design_size, generate_variants,
                                  load_design_space, quick_design_space, variants_frame)
from recstack.errors import RecstackError, SpecError
from recstack.footprint import footprint
from recstack.specs import spec_from_config


def test_the_same_seed_gives_the_same_specs_and_another_seed_other_specs() -> None:
    space = default_design_space()
    first = generate_variants(space, seed=7)
    again = generate_variants(space, seed=7)
    other = generate_variants(space, seed=8)
    assert [v.spec for v in first] == [v.spec for v in again]
    assert [v.spec.digest() for v in first] == [v.spec.digest() for v in again]
    assert [v.spec for v in first] != [v.spec for v in other]


def test_adding_a_base_model_does_not_change_the_others_variants() -> None:
    space = default_design_space()
    alone = generate_variants(space.replace(models=("rmc3",)), seed=1)
    together = generate_variants(space.replace(models=("rmc1", "rmc3")), seed=1)
    assert [v.spec for v in alone] == [v.spec for v in together if v.base == "rmc3"]


def test_every_variant_is_a_valid_spec_within_the_embedding_budget() -> None:
    space = default_design_space()
    variants = generate_variants(space, seed=0)
    assert len(variants) == design_size(space) == 8 * space.variants_per_model
    assert len({v.name for v in variants}) == len(variants)
    for variant in variants:
        # A variant round-trips through the spec file format like any model.
        assert spec_from_config(variant.spec.to_config()) == variant.spec
        assert footprint(variant.spec).embedding_bytes <= space.embedding_budget_mib * 2**20
        assert variant.spec.model_type == spec_from_config(
            {"model_type": variant.spec.model_type, **variant.spec.to_config()}).model_type


def test_factors_change_what_they_apply_to_and_nothing_else() -> None:
    variants = generate_variants(default_design_space(), seed=3)
    by_base: dict[str, list] = {}
    for variant in variants:
        by_base.setdefault(variant.base, []).append(variant)
    # NCF keeps its four tables; only DLRM variants draw an interaction.
    assert all(v.spec.num_tables == 4 for v in by_base["ncf"])
    assert all("interaction" not in v.factors for v in variants if v.base != "rmc1"
               and v.spec.model_type != "dlrm")
    # DIEN keeps its recurrence, DIN its attention, with drawn lengths.
    assert all(v.spec.gru_hidden_size for v in by_base["dien"])
    assert all(v.spec.sequence_length for v in by_base["din"])
    # The dot interaction gets a bottom MLP ending at the embedding dimension.
    for variant in variants:
        if variant.spec.interaction == "dot":
            assert variant.spec.bottom_mlp[-1] == variant.spec.embedding_dim
    # The output width of a DLRM stays 1 whatever the width and depth factors drew.
    assert all(v.spec.top_mlp[-1] == 1 for v in by_base["rmc1"])


def test_grid_sampler_takes_every_combination(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("""
sampler: grid
grid_levels: 3
models: [rmc1]
embedding_budget_mib: 8
factors:
  pooling_factor: {kind: ratio, low: 0.5, high: 2.0, applies_to: [dlrm]}
  interaction: {kind: choice, values: [cat, dot], applies_to: [dlrm]}
""")
    space = load_design_space(path)
    variants = generate_variants(space, seed=0)
    assert design_size(space) == len(variants) == 6
    assert sorted({v.spec.pooling_factor for v in variants}) == [40, 80, 160]
    assert {v.spec.interaction for v in variants} == {"cat", "dot"}


def test_quick_space_is_small() -> None:
    space = quick_design_space()
    variants = generate_variants(space)
    assert len(variants) == 12
    assert all(footprint(v.spec).embedding_bytes <= 8 * 2**20 for v in variants)


def test_variants_frame_matches_the_store_table() -> None:
    space = quick_design_space()
    variants = generate_variants(space, seed=2)
    frame = variants_frame(variants, space, 2)
    assert list(frame.columns) == ["variant", "base_model", "variant_index", "design_seed",
                                   "sampler", "spec_digest", "factors"]
    assert (frame.design_seed == 2).all()
    assert json.loads(frame.factors.iloc[0]) == dict(variants[0].factors)


@pytest.mark.parametrize("text, message", [
    ("factors: {wings: {kind: ratio, low: 1, high: 2}}", "factors: 'wings' is not allowed"),
    ("factors: {num_tables: {kind: cubic, low: 1, high: 2}}",
     "factors.num_tables.kind: 'cubic' is not allowed"),
    ("factors: {num_tables: {kind: ratio, low: 0, high: 2}}",
     "factors.num_tables.low: 0 is not allowed"),
    ("factors: {num_tables: {kind: ratio, low: 1, high: 2, applies_to: [gpt]}}",
     "factors.num_tables.applies_to"),
    ("factors: {interaction: {kind: choice, values: [cat, sum]}}",
     "factors.interaction.values"),
    ("sampler: sobol\nfactors: {num_tables: {kind: ratio, low: 1, high: 2}}",
     "sampler: 'sobol' is not allowed"),
    ("models: [gpt]\nfactors: {num_tables: {kind: ratio, low: 1, high: 2}}",
     "models: 'gpt' is not allowed"),
    ("variants: 3\nfactors: {num_tables: {kind: ratio, low: 1, high: 2}}",
     "variants: 3 is not allowed; unknown key"),
])
def test_bad_files_are_refused_naming_the_field(tmp_path: Path, text: str,
                                                message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_design_space(path)


def test_missing_file_and_bad_seed_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecstackError, match="--design-file: .* does not exist"):
        load_design_space(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match="seed: -1 is not allowed"):
        generate_variants(quick_design_space(), seed=-1)
