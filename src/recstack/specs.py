"""Model specs: the DeepRecSys JSON config format (and the same keys in YAML), validated.

A :class:`ModelSpec` is immutable and hashable, and is validated completely before any tensor
exists. Files use the DeepRecSys keys as they are (``arch_mlp_bot: "128-64-32"``, rows per
table joined by ``-``), plus the keys DeepRecSys lacked (``num_tasks``, ``sequence_length``,
``gru_hidden_size``, ``row_scale``). In Python the fields have descriptive names; the table
``SPEC_KEYS`` below is the single mapping between the two.

How each model type reads the keys:

- ``dlrm``: ``arch_mlp_bot`` is the dense input width then the bottom-MLP widths;
  ``arch_mlp_top`` the top-MLP widths (its input width follows from the interaction).
- ``ncf``: exactly 4 tables (GMF user, GMF item, MLP user, MLP item); ``arch_mlp_top`` is the
  MLP branch; ``arch_mlp_bot`` is accepted and unused (there are no dense features).
- ``wnd`` / ``mtwnd``: ``arch_mlp_bot`` is the single dense feature width; ``arch_mlp_top`` is
  the deep MLP (for ``mtwnd`` the shared bottom); ``arch_mlp_tasks`` is each task tower.
- ``din`` / ``dien``: tables in the order user profile, behaviour table(s), candidate ad,
  context; ``arch_mlp_bot`` is the hidden widths of the attention unit; ``sequence_length``
  (DeepRecSys: ``user_behavior_tables``) is the number of behaviours per user.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError, SpecError
from recstack.limits import is_number
from recstack.text import has_control

MODEL_TYPES: tuple[str, ...] = ("dlrm", "ncf", "wnd", "mtwnd", "din", "dien")
MODEL_TYPE_ALIASES: dict[str, str] = {
    "wide_and_deep": "wnd",
    "wide-and-deep": "wnd",
    "multi_task_wnd": "mtwnd",
    "mt_wnd": "mtwnd",
    "mt-wnd": "mtwnd",
}
INTERACTIONS: tuple[str, ...] = ("cat", "dot")

# The DIN and DIEN attention unit hidden widths when a file does not give them: those of the
# DIN authors' released code (80-40, sigmoid).
DEFAULT_ATTENTION_WIDTHS: tuple[int, ...] = (80, 40)
DEFAULT_MTWND_TASKS = 2


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


# Structural limits of a spec, far beyond any published model; whether a model fits this
# machine is a question of memory, answered by recstack.admission before anything is built.
MAX_NAME_CHARS = 128
MAX_TABLES = 4096
MAX_ROWS = 2**40
MAX_WIDTH = 2**20
"""Units of one layer, embedding dimension, GRU hidden size."""
MAX_LAYERS = 64
MAX_LOOKUPS = 2**20
"""Lookups per bag, behaviours per user."""
MAX_TASKS = 256


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


def _parse_interaction(key: str, value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in INTERACTIONS:
        raise SpecError(key, value, f"expected one of {', '.join(INTERACTIONS)}")
    return value.strip().lower()


@dataclass(frozen=True)
class SpecKey:
    """One key of the spec file format and the ModelSpec field it fills."""

    key: str
    field: str
    parse: Callable[[str, Any], Any]
    write: Callable[[Any], Any]
    meaning: str


def _dash(widths: tuple[int, ...]) -> str:
    return "-".join(str(w) for w in widths)


def _same(value: Any) -> Any:
    return value


SPEC_KEYS: tuple[SpecKey, ...] = (
    SpecKey("model_name", "name", _parse_name, _same, "name of the model"),
    SpecKey("model_type", "model_type", _parse_model_type, _same, "model family"),
    SpecKey("arch_mlp_bot", "bottom_mlp", _parse_widths, _dash, "bottom MLP / dense width"),
    SpecKey("arch_mlp_top", "top_mlp", _parse_widths, _dash, "top (over-arch) MLP widths"),
    SpecKey("arch_mlp_tasks", "task_mlp", _parse_widths, _dash, "per-task tower widths"),
    SpecKey("arch_embedding_size", "table_rows", _parse_widths, _dash, "rows per table"),
    SpecKey("arch_sparse_feature_size", "embedding_dim", _parse_int, _same, "embedding dim"),
    SpecKey("num_indices_per_lookup", "pooling_factor", _parse_int, _same, "lookups per bag"),
    SpecKey("num_indices_per_lookup_fixed", "pooling_fixed", _parse_bool, _same,
            "fixed (true) or variable (false) lookups per bag"),
    SpecKey("arch_interaction_op", "interaction", _parse_interaction, _same,
            "feature interaction"),
    SpecKey("user_behavior_tables", "sequence_length", _parse_int, _same,
            "DeepRecSys name of sequence_length"),
    SpecKey("sequence_length", "sequence_length", _parse_int, _same, "behaviours per user"),
    SpecKey("num_tasks", "num_tasks", _parse_int, _same, "number of tasks (mtwnd)"),
    SpecKey("gru_hidden_size", "gru_hidden_size", _parse_int, _same, "GRU hidden size (dien)"),
    SpecKey("row_scale", "row_scale", _parse_number, _same, "factor applied to table rows"),
)
_KEYS_BY_NAME: dict[str, SpecKey] = {k.key: k for k in SPEC_KEYS}
REQUIRED_KEYS: tuple[str, ...] = (
    "model_type",
    "arch_mlp_top",
    "arch_embedding_size",
    "arch_sparse_feature_size",
)


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A validated, immutable description of one recommendation model.

    ``table_rows`` are the rows at full size; :attr:`rows` applies ``row_scale``.
    ``sequence_length`` and ``gru_hidden_size`` are ``None`` for models without behaviour
    sequences or recurrence.
    """

    name: str
    model_type: str
    top_mlp: tuple[int, ...]
    table_rows: tuple[int, ...]
    embedding_dim: int
    bottom_mlp: tuple[int, ...] = ()
    task_mlp: tuple[int, ...] = ()
    pooling_factor: int = 1
    pooling_fixed: bool = True
    interaction: str = "cat"
    num_tasks: int = 1
    sequence_length: int | None = None
    gru_hidden_size: int | None = None
    row_scale: float = 1.0

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived sizes -----------------------------------------------------------------

    @property
    def rows(self) -> tuple[int, ...]:
        """Rows per table after ``row_scale`` (at least one row each)."""
        if self.row_scale == 1.0:
            return self.table_rows
        return tuple(max(1, round(r * self.row_scale)) for r in self.table_rows)

    @property
    def num_tables(self) -> int:
        return len(self.table_rows)

    @property
    def dense_features(self) -> int:
        """Width of the dense (continuous) input; 0 for models without one."""
        if self.model_type in ("dlrm", "wnd", "mtwnd"):
            return self.bottom_mlp[0]
        return 0

    @property
    def is_full_size(self) -> bool:
        return self.row_scale == 1.0

    # ---- transformations ---------------------------------------------------------------

    def scaled(self, row_scale: float) -> ModelSpec:
        """The same model with table rows multiplied by ``row_scale`` (relative to full size)."""
        return dataclasses.replace(self, row_scale=float(row_scale))

    def to_config(self) -> dict[str, Any]:
        """The spec in the file format (DeepRecSys keys, dash-joined widths)."""
        config: dict[str, Any] = {}
        for spec_key in SPEC_KEYS:
            if spec_key.key == "user_behavior_tables":
                continue  # written as sequence_length
            value = getattr(self, spec_key.field)
            if value is None or value == ():
                continue
            config[spec_key.key] = spec_key.write(value)
        return config

    def digest(self) -> str:
        """A stable content hash (of :meth:`to_config`), for storing and comparing specs."""
        canonical = json.dumps(self.to_config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def unused_keys(self) -> tuple[str, ...]:
        """File keys that this model type accepts but does not use (to tell users)."""
        unused = []
        if self.model_type == "ncf" and self.bottom_mlp:
            unused.append("arch_mlp_bot")
        if self.model_type != "mtwnd" and self.task_mlp:
            unused.append("arch_mlp_tasks")
        if self.model_type != "mtwnd" and self.num_tasks != 1:
            unused.append("num_tasks")
        if self.model_type not in ("din", "dien") and self.sequence_length is not None:
            unused.append("sequence_length")
        if self.model_type != "dien" and self.gru_hidden_size is not None:
            unused.append("gru_hidden_size")
        return tuple(unused)


def _positive(field: str, value: int | float, high: int) -> None:
    if value <= 0:
        raise SpecError(field, value, "must be a positive integer")
    if value > high:
        raise SpecError(field, value, f"expected a positive integer up to {high}")


def _key_of(field: str) -> str:
    """The file key for a ModelSpec field, so errors name what the user wrote."""
    for spec_key in SPEC_KEYS:
        if spec_key.field == field and spec_key.key != "user_behavior_tables":
            return spec_key.key
    return field


def _validate(spec: ModelSpec) -> None:
    """Checks every value and every rule of the model type; raises SpecError on the first."""
    if spec.model_type not in MODEL_TYPES:
        raise SpecError("model_type", spec.model_type, f"expected one of {', '.join(MODEL_TYPES)}")
    if spec.interaction not in INTERACTIONS:
        raise SpecError("arch_interaction_op", spec.interaction,
                        f"expected one of {', '.join(INTERACTIONS)}")
    if has_control(spec.name) or len(spec.name) > MAX_NAME_CHARS:
        raise SpecError("model_name", spec.name, f"expected printable text of at most "
                                                 f"{MAX_NAME_CHARS} characters")
    for field in ("top_mlp", "table_rows", "bottom_mlp", "task_mlp"):
        widths = getattr(spec, field)
        if field in ("top_mlp", "table_rows") and not widths:
            raise SpecError(_key_of(field), _dash(widths), "must list at least one size")
        if any(w <= 0 for w in widths):
            raise SpecError(_key_of(field), _dash(widths), "every size must be a positive integer")
        count, largest = (MAX_TABLES, MAX_ROWS) if field == "table_rows" else \
            (MAX_LAYERS, MAX_WIDTH)
        if len(widths) > count or max(widths, default=0) > largest:
            raise SpecError(_key_of(field), _dash(widths), f"expected at most {count} sizes, "
                                                           f"each at most {largest}")
    for field, high in (("embedding_dim", MAX_WIDTH), ("pooling_factor", MAX_LOOKUPS),
                        ("num_tasks", MAX_TASKS)):
        _positive(_key_of(field), getattr(spec, field), high)
    for field, high in (("sequence_length", MAX_LOOKUPS), ("gru_hidden_size", MAX_WIDTH)):
        if getattr(spec, field) is not None:
            _positive(_key_of(field), getattr(spec, field), high)
    if not is_number(spec.row_scale) or not math.isfinite(spec.row_scale) \
            or not spec.row_scale > 0:
        raise SpecError("row_scale", spec.row_scale, "must be a finite number greater than 0")
    if max(spec.table_rows) * spec.row_scale > MAX_ROWS:
        raise SpecError("row_scale", spec.row_scale,
                        f"gives tables of more than {MAX_ROWS} rows; expected a smaller scale")

    kind = spec.model_type
    if spec.interaction == "dot" and kind != "dlrm":
        raise SpecError("arch_interaction_op", "dot",
                        f"model_type {kind} supports only 'cat' ('dot' is for dlrm)")
    if kind == "dlrm":
        if len(spec.bottom_mlp) < 2:
            raise SpecError("arch_mlp_bot", _dash(spec.bottom_mlp),
                            "dlrm needs the dense input width then at least one layer width "
                            "(e.g. '13-512-256-64')")
        if spec.interaction == "dot" and spec.bottom_mlp[-1] != spec.embedding_dim:
            raise SpecError("arch_mlp_bot", _dash(spec.bottom_mlp),
                            "the 'dot' interaction needs the last bottom-MLP width to equal "
                            f"arch_sparse_feature_size ({spec.embedding_dim})")
    elif kind == "ncf":
        if spec.num_tables != 4:
            raise SpecError("arch_embedding_size", _dash(spec.table_rows),
                            "ncf needs exactly 4 tables (GMF user, GMF item, MLP user, MLP item)")
    elif kind in ("wnd", "mtwnd"):
        if len(spec.bottom_mlp) != 1:
            raise SpecError("arch_mlp_bot", _dash(spec.bottom_mlp),
                            f"{kind} takes one number, the dense feature width (e.g. '512')")
        if kind == "mtwnd" and not spec.task_mlp:
            raise SpecError("arch_mlp_tasks", None,
                            "mtwnd needs the task tower widths (e.g. '512-256-128')")
    elif kind in ("din", "dien"):
        if spec.num_tables < 4:
            raise SpecError("arch_embedding_size", _dash(spec.table_rows),
                            f"{kind} needs at least 4 tables: user profile, behaviour table(s), "
                            "candidate ad, context")
        if not spec.bottom_mlp:
            raise SpecError("arch_mlp_bot", None,
                            f"{kind} needs the attention unit's hidden widths (e.g. '80-40')")
        if spec.sequence_length is None:
            raise SpecError("sequence_length", None, f"{kind} needs the behaviours per user")
        if kind == "dien" and spec.gru_hidden_size is None:
            raise SpecError("gru_hidden_size", None, "dien needs the GRU hidden size")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def spec_from_config(config: Mapping[str, Any], source: str | None = None,
                     default_name: str | None = None) -> ModelSpec:
    """Validates a mapping of file keys and builds the spec.

    Errors name ``source`` (a file name) when given.
    """
    try:
        return _spec_from_config(config, default_name)
    except SpecError as error:
        if source is None or error.source is not None:
            raise
        raise SpecError(error.field, error.value, error.allowed, source) from None


def _spec_from_config(config: Mapping[str, Any], default_name: str | None) -> ModelSpec:
    if not isinstance(config, Mapping):
        raise SpecError("spec", type(config).__name__, "expected a mapping of keys to values")
    for key in config:
        if key not in _KEYS_BY_NAME:
            hint = difflib.get_close_matches(str(key), list(_KEYS_BY_NAME), n=1)
            did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
            raise SpecError("key", key, f"unknown key; {did_you_mean}allowed keys: "
                                        f"{', '.join(_KEYS_BY_NAME)}")
    for key in REQUIRED_KEYS:
        if key not in config:
            raise SpecError(key, None, f"missing; this key is required ({_KEYS_BY_NAME[key].meaning})")

    values: dict[str, Any] = {}
    for key, raw in config.items():
        spec_key = _KEYS_BY_NAME[key]
        values[spec_key.field] = spec_key.parse(key, raw)

    if "sequence_length" in config and "user_behavior_tables" in config:
        a, b = config["sequence_length"], config["user_behavior_tables"]
        if a != b:
            raise SpecError("sequence_length", a,
                            f"must equal user_behavior_tables ({b}) when both are given")

    model_type = values["model_type"]
    values.setdefault("name", default_name or model_type)
    _fill_type_defaults(model_type, values)
    return ModelSpec(**values)


def _fill_type_defaults(model_type: str, values: dict[str, Any]) -> None:
    """Defaults that depend on the model type (documented in the module docstring)."""
    if model_type == "mtwnd":
        values.setdefault("num_tasks", DEFAULT_MTWND_TASKS)
    if model_type in ("din", "dien"):
        values.setdefault("bottom_mlp", DEFAULT_ATTENTION_WIDTHS)
        # DeepRecSys's DIEN kept one table per behaviour step and gave no sequence length.
        behaviour_tables = len(values["table_rows"]) - 3
        values.setdefault("sequence_length", max(1, behaviour_tables))
    if model_type == "dien":
        # The original DIEN's GRU is as wide as the behaviour embedding.
        values.setdefault("gru_hidden_size", values["embedding_dim"])


def load_spec_file(path: str | Path) -> ModelSpec:
    """Reads a JSON or YAML spec file; errors name the file."""
    path = Path(path)
    source = path.name
    if not path.is_file():
        raise RecstackError(f"{path}: no such spec file (and not a model name: "
                            f"{', '.join(zoo_names())})")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise RecstackError(f"{source}: unknown spec file type {suffix!r}; "
                            "expected .json, .yaml or .yml")
    from recstack.userfiles import load_document

    config = load_document(path, "spec file", "json" if suffix == ".json" else "yaml")
    return spec_from_config(config, source=source, default_name=path.stem)


# --------------------------------------------------------------------------------------------
# The zoo: the eight canonical models, shipped as data files
# --------------------------------------------------------------------------------------------

ZOO_NAMES: tuple[str, ...] = ("rmc1", "rmc2", "rmc3", "ncf", "wnd", "mtwnd", "din", "dien")
ZOO_ALIASES: dict[str, str] = {
    "rm1": "rmc1", "dlrm_rm1": "rmc1", "dlrm-rmc1": "rmc1", "dlrm_rmc1": "rmc1",
    "rm2": "rmc2", "dlrm_rm2": "rmc2", "dlrm-rmc2": "rmc2", "dlrm_rmc2": "rmc2",
    "rm3": "rmc3", "dlrm_rm3": "rmc3", "dlrm-rmc3": "rmc3", "dlrm_rmc3": "rmc3",
    "wide_and_deep": "wnd", "wide-and-deep": "wnd",
    "multi_task_wnd": "mtwnd", "mt-wnd": "mtwnd", "mt_wnd": "mtwnd",
}


def zoo_names() -> tuple[str, ...]:
    return ZOO_NAMES


def canonical_name(name: str) -> str | None:
    """The zoo name for a name or DeepRecSys alias, or None if it is not a zoo model."""
    lowered = name.strip().lower()
    lowered = ZOO_ALIASES.get(lowered, lowered)
    return lowered if lowered in ZOO_NAMES else None


def zoo_spec(name: str) -> ModelSpec:
    """The canonical spec of a zoo model, by name or alias, at full size."""
    canonical = canonical_name(name)
    if canonical is None:
        hint = difflib.get_close_matches(name.lower(), list(ZOO_NAMES) + list(ZOO_ALIASES), n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise SpecError("model", name, f"expected one of {', '.join(ZOO_NAMES)}{did_you_mean}")
    from importlib import resources

    text = resources.files("recstack.models.zoo").joinpath(f"{canonical}.json").read_text()
    return spec_from_config(json.loads(text), source=f"zoo/{canonical}.json")


def resolve_spec(name_or_path: str) -> ModelSpec:
    """A zoo model by name or alias, or a user's spec file by path."""
    if canonical_name(name_or_path) is not None:
        return zoo_spec(name_or_path)
    path = Path(name_or_path)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.exists():
        return load_spec_file(path)
    return zoo_spec(name_or_path)  # raises with the list of names
