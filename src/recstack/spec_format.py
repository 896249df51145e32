"""The spec file format: DeepRecSys JSON config keys (and the same keys in YAML), parsed.

Files use the DeepRecSys keys as they are (``arch_mlp_bot: "128-64-32"``, rows per table
joined by ``-``), plus the keys DeepRecSys lacked (``arch_mlp_att``, ``num_tasks``,
``sequence_length``, ``gru_hidden_size``, ``row_scale``). In Python the fields of
:class:`~recstack.specs.ModelSpec` have descriptive names; the table :data:`SPEC_KEYS` below
is the single mapping between the two.

How each model type reads the keys:

- ``dlrm``: ``arch_mlp_bot`` is the dense input width then the bottom-MLP widths;
  ``arch_mlp_top`` the top-MLP widths (its input width follows from the interaction).
- ``ncf``: exactly 4 tables (GMF user, GMF item, MLP user, MLP item); ``arch_mlp_top`` is the
  MLP branch; ``arch_mlp_bot`` is accepted and unused (there are no dense features).
- ``wnd`` / ``mtwnd``: ``arch_mlp_bot`` is the single dense feature width; ``arch_mlp_top`` is
  the deep MLP (for ``mtwnd`` the shared bottom); ``arch_mlp_tasks`` is each task tower, its
  first width the towers' input (the shared bottom's last width), as DeepRecSys reads it.
  ``wide_cross_features: K`` adds the paper's cross-product transformations to the wide
  part (none by default, as DeepRecSys): cross ``k`` crosses sparse features ``k`` and
  ``k + 1`` (modulo the tables; a bag's first id stands for it), hashed into
  ``wide_cross_buckets`` rows (default: the largest table's rows), one weight per bucket.
- ``din`` / ``dien``: tables in the order user profile, behaviour table(s), candidate ad,
  context; ``arch_mlp_att`` is the hidden widths of the attention unit (default 80-40);
  ``sequence_length`` (DeepRecSys: ``user_behavior_tables``) is the number of behaviours per
  user. They have no bottom MLP. DeepRecSys's DIN reads its attention widths from
  ``arch_mlp_bot``, so for ``din`` ``arch_mlp_bot`` is read as ``arch_mlp_att``; its DIEN
  never reads ``arch_mlp_bot`` (its ``dien.json`` has ``"512"`` there), so for ``dien`` it is
  accepted and unused. ``gru_hidden_size`` (``dien``) defaults to 64, DeepRecSys's default
  (its ``dien.json`` does not set it). ``activation`` (``relu``, ``prelu``, ``dice``) is the
  hidden activation of their fully connected (over-arch) layers: ReLU by default, as
  DeepRecSys ran them; the papers use PReLU (DIN's baseline) and Dice (DIN's own).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recstack.errors import SpecError

MODEL_TYPES: tuple[str, ...] = ("dlrm", "ncf", "wnd", "mtwnd", "din", "dien")
MODEL_TYPE_ALIASES: dict[str, str] = {
    "wide_and_deep": "wnd",
    "wide-and-deep": "wnd",
    "multi_task_wnd": "mtwnd",
    "mt_wnd": "mtwnd",
    "mt-wnd": "mtwnd",
}
INTERACTIONS: tuple[str, ...] = ("cat", "dot")
ACTIVATIONS: tuple[str, ...] = ("relu", "prelu", "dice")
"""The hidden activation of DIN's and DIEN's fully connected layers: ReLU as DeepRecSys (the
default), or the papers' PReLU and Dice."""
ATTENTION_TYPES: tuple[str, ...] = ("din", "dien")

# The DIN and DIEN attention unit hidden widths when a file does not give them: those of the
# DIN authors' released code (80-40, sigmoid).
DEFAULT_ATTENTION_WIDTHS: tuple[int, ...] = (80, 40)
DEFAULT_MTWND_TASKS = 2
DEFAULT_DIEN_GRU_HIDDEN = 64
"""DeepRecSys's DIEN GRU width when its config gives none (its ``dien.json`` gives none)."""


# --------------------------------------------------------------------------------------------
# Parsing raw file values into typed values. Each parser raises SpecError naming the key.
# --------------------------------------------------------------------------------------------


def _parse_widths(key: str, value: Any) -> tuple[int, ...]:
    """``"128-64-32"``, ``128``, or ``[128, 64, 32]`` -> ``(128, 64, 32)``."""
    allowed = "expected integers joined by '-' (e.g. '128-64-32') or a list of integers"
    if isinstance(value, bool):
        raise SpecError(key, value, allowed)
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        parts = value.strip().split("-")
        # A leading '-' would split into an empty first part: a negative number.
        if any(not p.strip().isdigit() for p in parts):
            if value.strip().startswith("-") or "--" in value:
                raise SpecError(key, value, "every width must be a positive integer")
            raise SpecError(key, value, allowed)
        return tuple(int(p) for p in parts)
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    raise SpecError(key, value, allowed)


def _parse_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(key, value, "expected an integer")
    return value


def _parse_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(key, value, "expected true or false")
    return value


def _parse_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(key, value, "expected a number")
    return float(value)


def _parse_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(key, value, "expected a non-empty string")
    return value.strip()


def _parse_model_type(key: str, value: Any) -> str:
    allowed = f"expected one of {', '.join(MODEL_TYPES)}"
    if not isinstance(value, str):
        raise SpecError(key, value, allowed)
    canonical = MODEL_TYPE_ALIASES.get(value.strip().lower(), value.strip().lower())
    if canonical not in MODEL_TYPES:
        hint = difflib.get_close_matches(canonical, MODEL_TYPES, n=1)
        suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise SpecError(key, value, allowed + suffix)
    return canonical


def _parse_choice(allowed: tuple[str, ...]) -> Callable[[str, Any], str]:
    """A parser of one of ``allowed`` names, in any case."""
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in allowed:
            raise SpecError(key, value, f"expected one of {', '.join(allowed)}")
        return value.strip().lower()
    return parse


# --------------------------------------------------------------------------------------------
# The keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecKey:
    """One key of the spec file format and the ModelSpec field it fills."""

    key: str
    field: str
    parse: Callable[[str, Any], Any]
    write: Callable[[Any], Any]
    meaning: str


def dash(widths: tuple[int, ...]) -> str:
    """Widths as the file writes them: ``(128, 64)`` -> ``"128-64"``."""
    return "-".join(str(w) for w in widths)


def _same(value: Any) -> Any:
    return value


SPEC_KEYS: tuple[SpecKey, ...] = (
    SpecKey("model_name", "name", _parse_name, _same, "name of the model"),
    SpecKey("model_type", "model_type", _parse_model_type, _same, "model family"),
    SpecKey("arch_mlp_bot", "bottom_mlp", _parse_widths, dash, "bottom MLP / dense width"),
    SpecKey("arch_mlp_top", "top_mlp", _parse_widths, dash, "top (over-arch) MLP widths"),
    SpecKey("arch_mlp_tasks", "task_mlp", _parse_widths, dash, "per-task tower widths"),
    SpecKey("arch_mlp_att", "attention_mlp", _parse_widths, dash,
            "attention unit hidden widths (din, dien)"),
    SpecKey("arch_embedding_size", "table_rows", _parse_widths, dash, "rows per table"),
    SpecKey("arch_sparse_feature_size", "embedding_dim", _parse_int, _same, "embedding dim"),
    SpecKey("num_indices_per_lookup", "pooling_factor", _parse_int, _same, "lookups per bag"),
    SpecKey("num_indices_per_lookup_fixed", "pooling_fixed", _parse_bool, _same,
            "fixed (true) or variable (false) lookups per bag"),
    SpecKey("arch_interaction_op", "interaction", _parse_choice(INTERACTIONS), _same,
            "feature interaction"),
    SpecKey("user_behavior_tables", "sequence_length", _parse_int, _same,
            "DeepRecSys name of sequence_length"),
    SpecKey("sequence_length", "sequence_length", _parse_int, _same, "behaviours per user"),
    SpecKey("num_tasks", "num_tasks", _parse_int, _same, "number of tasks (mtwnd)"),
    SpecKey("gru_hidden_size", "gru_hidden_size", _parse_int, _same, "GRU hidden size (dien)"),
    SpecKey("wide_cross_features", "cross_features", _parse_int, _same,
            "cross-product features of the wide part (wnd, mtwnd)"),
    SpecKey("wide_cross_buckets", "cross_buckets", _parse_int, _same,
            "hash buckets (rows) of each cross-product feature"),
    SpecKey("activation", "activation", _parse_choice(ACTIVATIONS), _same,
            "hidden activation of the fully connected layers (din, dien): relu, prelu, dice"),
    SpecKey("row_scale", "row_scale", _parse_number, _same, "factor applied to table rows"),
)
KEYS_BY_NAME: dict[str, SpecKey] = {k.key: k for k in SPEC_KEYS}
WRITTEN_KEYS: tuple[SpecKey, ...] = tuple(k for k in SPEC_KEYS
                                          if k.key != "user_behavior_tables")
"""The keys a spec is written with: one per field (``sequence_length``, not its alias)."""
REQUIRED_KEYS: tuple[str, ...] = (
    "model_type",
    "arch_mlp_top",
    "arch_embedding_size",
    "arch_sparse_feature_size",
)


def key_of(field: str) -> str:
    """The file key for a ModelSpec field, so errors name what the user wrote."""
    for spec_key in WRITTEN_KEYS:
        if spec_key.field == field:
            return spec_key.key
    return field


# --------------------------------------------------------------------------------------------
# A file's mapping -> ModelSpec field values
# --------------------------------------------------------------------------------------------


def config_fields(config: Mapping[str, Any], default_name: str | None) -> dict[str, Any]:
    """The ModelSpec field values of a mapping of file keys, with the model type's defaults
    filled in; every key checked (unknown, missing, mistyped), the values not yet."""
    if not isinstance(config, Mapping):
        raise SpecError("spec", type(config).__name__, "expected a mapping of keys to values")
    for key in config:
        if key not in KEYS_BY_NAME:
            # A near miss is named alone: the whole list would not fit a one-line message.
            hint = difflib.get_close_matches(str(key), list(KEYS_BY_NAME), n=1)
            allowed = (f"did you mean {hint[0]!r}?" if hint
                       else f"allowed keys: {', '.join(KEYS_BY_NAME)}")
            raise SpecError("key", key, f"unknown key; {allowed}")
    for key in REQUIRED_KEYS:
        if key not in config:
            raise SpecError(key, None,
                            f"missing; this key is required ({KEYS_BY_NAME[key].meaning})")

    values: dict[str, Any] = {}
    for key, raw in config.items():
        spec_key = KEYS_BY_NAME[key]
        values[spec_key.field] = spec_key.parse(key, raw)

    if "sequence_length" in config and "user_behavior_tables" in config:
        a, b = config["sequence_length"], config["user_behavior_tables"]
        if a != b:
            raise SpecError("sequence_length", a,
                            f"must equal user_behavior_tables ({b}) when both are given")

    model_type = values["model_type"]
    if model_type == "din" and "bottom_mlp" in values:
        _bottom_as_attention(config, values)
    values.setdefault("name", default_name or model_type)
    _fill_type_defaults(model_type, values)
    return values


def _bottom_as_attention(config: Mapping[str, Any], values: dict[str, Any]) -> None:
    """A DIN file's ``arch_mlp_bot`` (DeepRecSys's place for DIN's attention widths) read as
    ``arch_mlp_att``."""
    widths = values.pop("bottom_mlp")
    given = values.setdefault("attention_mlp", widths)
    if given != widths:
        raise SpecError("arch_mlp_att", config["arch_mlp_att"],
                        f"must equal arch_mlp_bot ({config['arch_mlp_bot']!r}) when both are "
                        f"given ({values['model_type']} reads arch_mlp_bot as arch_mlp_att)")


def _fill_type_defaults(model_type: str, values: dict[str, Any]) -> None:
    """Defaults that depend on the model type (documented in the module docstring)."""
    if model_type == "mtwnd":
        values.setdefault("num_tasks", DEFAULT_MTWND_TASKS)
    if model_type in ATTENTION_TYPES:
        values.setdefault("attention_mlp", DEFAULT_ATTENTION_WIDTHS)
        # DeepRecSys's DIEN kept one table per behaviour step and gave no sequence length.
        behaviour_tables = len(values["table_rows"]) - 3
        values.setdefault("sequence_length", max(1, behaviour_tables))
    if model_type == "dien":
        values.setdefault("gru_hidden_size", DEFAULT_DIEN_GRU_HIDDEN)
