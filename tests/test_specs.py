"""ModelSpec: loading the DeepRecSys format as is, immutability, and every rejection."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from recstack.errors import RecstackError, SpecError
from recstack.specs import (
    ZOO_NAMES,
    ModelSpec,
    load_spec_file,
    resolve_spec,
    spec_from_config,
    zoo_spec,
)

DATA = Path(__file__).parent / "data"


def rmc1_config(**changes: object) -> dict[str, object]:
    config = json.loads((DATA / "deeprecsys_rm1.json").read_text())
    config.update(changes)
    return config


# ---- loading -------------------------------------------------------------------------------


def test_deeprecsys_json_loads_as_is() -> None:
    spec = load_spec_file(DATA / "deeprecsys_rm1.json")
    assert spec.name == "rm1"
    assert spec.model_type == "dlrm"
    assert spec.bottom_mlp == (128, 64, 32)
    assert spec.top_mlp == (256, 64, 1)
    assert spec.table_rows == (4_000_000,) * 8
    assert spec.embedding_dim == 32
    assert spec.pooling_factor == 80 and spec.pooling_fixed
    assert spec.interaction == "cat"
    assert spec.dense_features == 128


def test_yaml_with_lists_equals_the_json() -> None:
    assert load_spec_file(DATA / "rm1.yaml") == load_spec_file(DATA / "deeprecsys_rm1.json")


def test_deeprecsys_din_user_behavior_tables_is_the_sequence_length() -> None:
    spec = load_spec_file(DATA / "deeprecsys_din.json")
    assert spec.sequence_length == 250
    # DeepRecSys put the attention unit's hidden width in arch_mlp_bot; DIN has no bottom MLP.
    assert spec.attention_mlp == (1,)
    assert spec.bottom_mlp == ()
    assert spec.to_config()["arch_mlp_att"] == "1"
    assert "arch_mlp_bot" not in spec.to_config()


def test_deeprecsys_ncf_keeps_the_unused_bottom_mlp_and_says_so() -> None:
    spec = load_spec_file(DATA / "deeprecsys_ncf.json")
    assert spec.unused_keys() == ("arch_mlp_bot",)


def test_dien_defaults_follow_the_deeprecsys_layout() -> None:
    config = {"model_type": "dien", "arch_mlp_top": "200-80-2", "arch_sparse_feature_size": 32,
              "arch_embedding_size": "-".join(["1000"] * 43)}
    spec = spec_from_config(config)
    assert spec.sequence_length == 40  # one behaviour table per step
    assert spec.gru_hidden_size == 64  # DeepRecSys's default: its dien.json sets none
    assert spec.attention_mlp == (80, 40)
    assert spec.bottom_mlp == ()


def test_deeprecsys_dien_json_loads_as_deeprecsys_ran_it() -> None:
    """DeepRecSys's dien.json puts "512" in arch_mlp_bot, which its DIEN never reads, and
    sets no GRU width (its default is 64): neither becomes part of the model."""
    config = {"model_type": "dien", "arch_mlp_bot": "512", "arch_mlp_top": "200-80-2",
              "arch_sparse_feature_size": 32, "arch_embedding_size": "-".join(["1000"] * 43)}
    spec = spec_from_config(config)
    assert spec.gru_hidden_size == 64
    assert spec.attention_mlp == (80, 40)  # not a 512-wide attention unit
    assert spec.unused_keys() == ("arch_mlp_bot",)
    assert spec_from_config(spec.to_config()) == spec
    din = spec_from_config({**config, "model_type": "din"})
    assert din.attention_mlp == (512,)  # DeepRecSys's DIN does read it, as its attention


def test_mtwnd_tasks_first_width_is_the_towers_input() -> None:
    config = {"model_type": "mtwnd", "arch_mlp_bot": "512", "arch_mlp_top": "1024-512",
              "arch_mlp_tasks": "512-256-128", "arch_embedding_size": "1000-1000",
              "arch_sparse_feature_size": 32}
    assert spec_from_config(config).tower_widths == (256, 128, 1)
    with pytest.raises(SpecError, match="arch_mlp_tasks: '256-128' is not allowed; its first "
                                        "width is the towers' input and must equal the last "
                                        "arch_mlp_top width \\(512\\)"):
        spec_from_config({**config, "arch_mlp_tasks": "256-128"})


def test_activation_is_a_din_and_dien_key() -> None:
    din = {"model_type": "din", "arch_mlp_top": "8-2", "arch_embedding_size": "10-10-10-10",
           "arch_sparse_feature_size": 4}
    assert spec_from_config(din).activation is None  # ReLU, as DeepRecSys
    dice = spec_from_config({**din, "activation": "Dice"})
    assert dice.activation == "dice" and spec_from_config(dice.to_config()) == dice
    with pytest.raises(SpecError, match="activation: 'gelu' is not allowed; expected one of "
                                        "relu, prelu, dice"):
        spec_from_config({**din, "activation": "gelu"})
    assert spec_from_config(rmc1_config(activation="prelu")).unused_keys() == ("activation",)


def test_attention_widths_have_their_own_key() -> None:
    din = {"model_type": "din", "arch_mlp_top": "8-2", "arch_embedding_size": "10-10-10-10",
           "arch_sparse_feature_size": 4}
    own = spec_from_config({**din, "arch_mlp_att": "16-8"})
    assert own.attention_mlp == (16, 8) and own.bottom_mlp == ()
    assert spec_from_config(own.to_config()) == own
    deeprecsys = spec_from_config({**din, "arch_mlp_bot": "16-8"})
    assert deeprecsys == own
    assert spec_from_config({**din, "arch_mlp_bot": "16-8", "arch_mlp_att": "16-8"}) == own
    with pytest.raises(SpecError, match="arch_mlp_att: '16-4' is not allowed; must equal "
                                        "arch_mlp_bot"):
        spec_from_config({**din, "arch_mlp_bot": "16-8", "arch_mlp_att": "16-4"})
    with pytest.raises(SpecError, match="arch_mlp_att: '0-8' is not allowed"):
        spec_from_config({**din, "arch_mlp_att": "0-8"})
    with pytest.raises(SpecError, match="arch_mlp_bot: '16' is not allowed; din has no bottom "
                                        "MLP"):
        dataclasses.replace(own, bottom_mlp=(16,))
    with pytest.raises(SpecError, match="arch_mlp_att: None is not allowed; din needs"):
        dataclasses.replace(own, attention_mlp=())
    rmc1 = spec_from_config(rmc1_config(arch_mlp_att="8"))
    assert rmc1.unused_keys() == ("arch_mlp_att",)
    assert zoo_spec("din").attention_mlp == zoo_spec("dien").attention_mlp == (80, 40)


def test_mtwnd_defaults_to_two_tasks() -> None:
    config = {"model_type": "mtwnd", "arch_mlp_bot": "512", "arch_mlp_top": "1024-512",
              "arch_mlp_tasks": "512-256-128", "arch_embedding_size": "1000-1000",
              "arch_sparse_feature_size": 32}
    assert spec_from_config(config).num_tasks == 2


def test_zoo_has_the_eight_models_with_aliases() -> None:
    assert ZOO_NAMES == ("rmc1", "rmc2", "rmc3", "ncf", "wnd", "mtwnd", "din", "dien")
    for name in ZOO_NAMES:
        assert zoo_spec(name).name == name
    assert zoo_spec("rm1") == zoo_spec("rmc1")
    assert zoo_spec("dlrm_rm3") == zoo_spec("rmc3")
    assert zoo_spec("wide_and_deep") == zoo_spec("wnd")
    assert zoo_spec("RM2") == zoo_spec("rmc2")


def test_zoo_sizes_are_the_deeprecsys_ones() -> None:
    assert zoo_spec("rmc1").table_rows == (4_000_000,) * 8
    assert zoo_spec("rmc2").table_rows == (500_000,) * 32
    assert zoo_spec("rmc2").pooling_factor == 120
    assert zoo_spec("rmc3").bottom_mlp == (2560, 1024, 256, 32)
    assert zoo_spec("wnd").table_rows == (1_000_000,) * 27
    assert zoo_spec("mtwnd").table_rows == (500_000,) * 41 + (5_000_000,) * 2
    assert zoo_spec("ncf").table_rows == (140_000, 140_000, 28_000, 28_000)
    assert zoo_spec("din").sequence_length == 250
    assert zoo_spec("dien").gru_hidden_size == 64


def test_model_type_aliases() -> None:
    config = {"model_type": "wide_and_deep", "arch_mlp_bot": "13", "arch_mlp_top": "8-1",
              "arch_embedding_size": "100", "arch_sparse_feature_size": 4}
    assert spec_from_config(config).model_type == "wnd"


def test_resolve_spec_takes_names_and_files() -> None:
    assert resolve_spec("rm1") == zoo_spec("rmc1")
    assert resolve_spec(str(DATA / "rm1.yaml")).name == "rm1"


# ---- immutable, hashable, round trip -------------------------------------------------------


def test_spec_is_immutable_and_hashable() -> None:
    spec = zoo_spec("rmc1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.embedding_dim = 64  # type: ignore[misc]
    assert len({spec, zoo_spec("rm1"), zoo_spec("rmc2")}) == 2
    assert hash(spec) == hash(zoo_spec("rmc1"))


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_config_round_trip(name: str) -> None:
    spec = zoo_spec(name).scaled(0.5)
    again = spec_from_config(spec.to_config())
    assert again == spec
    assert again.digest() == spec.digest()


def test_scaling_changes_rows_not_the_published_sizes() -> None:
    spec = zoo_spec("rmc1").scaled(0.001)
    assert spec.table_rows == (4_000_000,) * 8
    assert spec.rows == (4_000,) * 8
    assert not spec.is_full_size
    assert zoo_spec("ncf").scaled(1e-9).rows == (1, 1, 1, 1)  # never fewer than one row


# ---- rejections: each names the field, the value and what is allowed -----------------------

REJECTIONS = [
    # (changes to the RM1 config, text the one-line message must contain)
    ({"arch_mlp_bott": "128-64"}, "unknown key; did you mean 'arch_mlp_bot'?"),
    ({"num_indices_per_lookups": 3}, "did you mean 'num_indices_per_lookup'?"),
    ({"arch_sparse_feature_size": "32"}, "arch_sparse_feature_size: '32' is not allowed; "
                                         "expected an integer"),
    ({"arch_sparse_feature_size": 32.5}, "arch_sparse_feature_size: 32.5 is not allowed"),
    ({"arch_sparse_feature_size": True}, "arch_sparse_feature_size: True is not allowed"),
    ({"num_indices_per_lookup_fixed": "yes"}, "num_indices_per_lookup_fixed: 'yes' is not "
                                              "allowed; expected true or false"),
    ({"arch_mlp_top": "256-x-1"}, "arch_mlp_top: '256-x-1' is not allowed; expected integers "
                                  "joined by '-'"),
    ({"arch_mlp_top": [256, "64"]}, "arch_mlp_top: [256, '64'] is not allowed"),
    ({"arch_embedding_size": "4000000-0"}, "arch_embedding_size: '4000000-0' is not allowed; "
                                           "every size must be a positive integer"),
    ({"arch_mlp_top": "-1"}, "arch_mlp_top: '-1' is not allowed; every width must be a "
                             "positive integer"),
    ({"arch_sparse_feature_size": 0}, "arch_sparse_feature_size: 0 is not allowed; must be a "
                                      "positive integer"),
    ({"num_indices_per_lookup": -3}, "num_indices_per_lookup: -3 is not allowed; must be a "
                                     "positive integer"),
    ({"row_scale": 0}, "row_scale: 0.0 is not allowed; must be a finite number greater than 0"),
    ({"arch_interaction_op": "sum"}, "arch_interaction_op: 'sum' is not allowed; expected one "
                                     "of cat, dot"),
    ({"model_type": "dlrn"}, "model_type: 'dlrn' is not allowed; expected one of dlrm, ncf, "
                             "wnd, mtwnd, din, dien (did you mean 'dlrm'?)"),
    ({"model_type": 3}, "model_type: 3 is not allowed"),
    ({"arch_interaction_op": "dot", "arch_mlp_bot": "128-16"}, "the 'dot' interaction needs the last bottom-MLP width "
                                     "to equal arch_sparse_feature_size (32)"),
    ({"arch_mlp_bot": "128"}, "arch_mlp_bot: '128' is not allowed; dlrm needs the dense input "
                              "width then at least one layer width"),
    # Structural limits: no number is infinite, and none reaches past what a tensor or the
    # store holds; names are printable text (they reach terminals, pages and figures).
    ({"row_scale": float("inf")}, "row_scale: inf is not allowed; must be a finite number"),
    ({"row_scale": float("nan")}, "row_scale: nan is not allowed; must be a finite number"),
    ({"row_scale": 1e9}, "gives tables of more than 1099511627776 rows"),
    ({"num_indices_per_lookup": 10**9}, "num_indices_per_lookup: 1000000000 is not allowed; "
                                        "expected a positive integer up to 1048576"),
    ({"arch_embedding_size": "-".join(["10"] * 5000)}, "expected at most 4096 sizes"),
    ({"arch_mlp_top": f"{2**21}-1"}, "each at most 1048576"),
    ({"model_name": "red\x1b[31m"}, "model_name: 'red\\x1b[31m' is not allowed; expected "
                                     "printable text of at most 128 characters"),
    ({"model_name": "x" * 50_000_000}, "(50000000 characters) is not allowed"),
]


@pytest.mark.parametrize("changes, message", REJECTIONS)
def test_rejections_name_field_value_and_allowed(changes: dict[str, object],
                                                 message: str) -> None:
    with pytest.raises(SpecError) as error:
        spec_from_config(rmc1_config(**changes), source="spec.json")
    text = str(error.value)
    assert message in text
    assert text.startswith("spec.json: ")
    assert "\n" not in text and len(text) < 400


@pytest.mark.parametrize("missing", ["model_type", "arch_mlp_top", "arch_embedding_size",
                                     "arch_sparse_feature_size"])
def test_missing_required_key(missing: str) -> None:
    config = rmc1_config()
    del config[missing]
    with pytest.raises(SpecError, match=f"{missing}: None is not allowed; missing"):
        spec_from_config(config)


def test_model_type_rules() -> None:
    ncf3 = {"model_type": "ncf", "arch_mlp_top": "8", "arch_embedding_size": "10-10-10",
            "arch_sparse_feature_size": 4}
    with pytest.raises(SpecError, match="ncf needs exactly 4 tables"):
        spec_from_config(ncf3)
    din3 = {"model_type": "din", "arch_mlp_top": "8-2", "arch_embedding_size": "10-10-10",
            "arch_sparse_feature_size": 4}
    with pytest.raises(SpecError, match="din needs at least 4 tables"):
        spec_from_config(din3)
    wnd_dot = {"model_type": "wnd", "arch_mlp_bot": "8", "arch_mlp_top": "8-1",
               "arch_embedding_size": "10", "arch_sparse_feature_size": 4,
               "arch_interaction_op": "dot"}
    with pytest.raises(SpecError, match="model_type wnd supports only 'cat'"):
        spec_from_config(wnd_dot)
    mtwnd = {"model_type": "mtwnd", "arch_mlp_bot": "8", "arch_mlp_top": "8",
             "arch_embedding_size": "10", "arch_sparse_feature_size": 4}
    with pytest.raises(SpecError, match="mtwnd needs the task tower widths"):
        spec_from_config(mtwnd)
    both = {"model_type": "din", "arch_mlp_top": "8-2", "arch_embedding_size": "10-10-10-10",
            "arch_sparse_feature_size": 4, "sequence_length": 5, "user_behavior_tables": 6}
    with pytest.raises(SpecError, match="must equal user_behavior_tables"):
        spec_from_config(both)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(SpecError, match="arch_sparse_feature_size: -1"):
        ModelSpec(name="x", model_type="dlrm", top_mlp=(1,), table_rows=(10,),
                  embedding_dim=-1, bottom_mlp=(4, 4))


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a mapping"):
        spec_from_config(["model_type", "dlrm"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name, text, message", [
    ("bad.json", '{"model_type": "dlrm",', "bad.json: not valid JSON (line 1"),
    ("bad.yaml", "model_type: [dlrm\n", "bad.yaml: not valid YAML (line"),
    ("spec.toml", "x = 1", "spec.toml: unknown spec file type '.toml'; expected .json, .yaml"),
])
def test_unreadable_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RecstackError) as error:
        load_spec_file(path)
    assert message in str(error.value)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(RecstackError, match="no such spec file"):
        load_spec_file(tmp_path / "nope.json")
    with pytest.raises(SpecError, match="model: 'rmc4' is not allowed; expected one of rmc1"):
        resolve_spec("rmc4")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("model_type: dlrm\narch_mlp_bot: 13-8\narch_mlp_top: 8-1\n"
                    "arch_embedding_size: 10\narch_sparse_feature_size: 0\n")
    with pytest.raises(SpecError, match="^mine.yaml: arch_sparse_feature_size: 0"):
        load_spec_file(path)
