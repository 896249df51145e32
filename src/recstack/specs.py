"""Model specs: :class:`ModelSpec`, validated, and where specs come from (a file, a mapping
of file keys, the zoo).

A :class:`ModelSpec` is immutable and hashable, and is validated completely before any tensor
exists. The file format (the DeepRecSys keys, and how each model type reads them) is
:mod:`recstack.spec_format`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError, SpecError
from recstack.limits import is_number
from recstack.spec_format import (ACTIVATIONS, ATTENTION_TYPES, INTERACTIONS, MODEL_TYPES,
                                  WRITTEN_KEYS, config_fields, dash, key_of)
from recstack.text import has_control

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


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A validated, immutable description of one recommendation model.

    ``table_rows`` are the rows at full size; :attr:`rows` applies ``row_scale``.
    ``attention_mlp`` is the attention unit's hidden widths (DIN and DIEN, which have no
    bottom MLP; empty for the others). ``sequence_length`` and ``gru_hidden_size`` are
    ``None`` for models without behaviour sequences or recurrence.
    """

    name: str
    model_type: str
    top_mlp: tuple[int, ...]
    table_rows: tuple[int, ...]
    embedding_dim: int
    bottom_mlp: tuple[int, ...] = ()
    task_mlp: tuple[int, ...] = ()
    attention_mlp: tuple[int, ...] = ()
    pooling_factor: int = 1
    pooling_fixed: bool = True
    interaction: str = "cat"
    num_tasks: int = 1
    sequence_length: int | None = None
    gru_hidden_size: int | None = None
    activation: str | None = None
    """DIN/DIEN over-arch hidden activation (``spec_format.ACTIVATIONS``); None: ReLU."""
    cross_features: int | None = None
    """WnD/MT-WnD cross-product features of the wide part; None: none (DeepRecSys)."""
    cross_buckets: int | None = None
    """Rows of each cross-product feature's hashed table; None: the largest table's rows."""
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
    def tower_widths(self) -> tuple[int, ...]:
        """Each MT-WnD task tower's layers after its input, the prediction layer last. As
        DeepRecSys reads ``arch_mlp_tasks``, its first width is the tower's input (the shared
        bottom's output, checked equal): ``512-256-128`` is 512 -> 256 -> 128; recstack
        adds the one-unit layer DeepRecSys's towers lack, so that each task predicts."""
        return (*self.task_mlp[1:], 1)

    @property
    def cross_pairs(self) -> tuple[tuple[int, int], ...]:
        """The tables each wide cross-product feature crosses: ``(k, k + 1)`` modulo the
        tables, for ``k`` below ``cross_features`` (none outside WnD and MT-WnD)."""
        if self.model_type not in ("wnd", "mtwnd") or not self.cross_features:
            return ()
        count = self.num_tables
        return tuple((k % count, (k + 1) % count) for k in range(self.cross_features))

    @property
    def cross_rows(self) -> tuple[int, ...]:
        """Rows of each cross-product feature's table after ``row_scale``."""
        buckets = self.cross_buckets or max(self.table_rows)
        scaled = buckets if self.row_scale == 1.0 else max(1, round(buckets * self.row_scale))
        return (scaled,) * len(self.cross_pairs)

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
        for spec_key in WRITTEN_KEYS:
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
        if self.model_type in ("ncf", "dien") and self.bottom_mlp:
            unused.append("arch_mlp_bot")
        if self.model_type != "mtwnd" and self.task_mlp:
            unused.append("arch_mlp_tasks")
        if self.model_type not in ATTENTION_TYPES and self.attention_mlp:
            unused.append("arch_mlp_att")
        if self.model_type != "mtwnd" and self.num_tasks != 1:
            unused.append("num_tasks")
        if self.model_type not in ATTENTION_TYPES and self.sequence_length is not None:
            unused.append("sequence_length")
        if self.model_type not in ATTENTION_TYPES and self.activation is not None:
            unused.append("activation")
        if self.model_type not in ("wnd", "mtwnd") and self.cross_features is not None:
            unused.append("wide_cross_features")
        if not self.cross_pairs and self.cross_buckets is not None:
            unused.append("wide_cross_buckets")
        if self.model_type != "dien" and self.gru_hidden_size is not None:
            unused.append("gru_hidden_size")
        return tuple(unused)


def _positive(field: str, value: int | float, high: int) -> None:
    if value <= 0:
        raise SpecError(field, value, "must be a positive integer")
    if value > high:
        raise SpecError(field, value, f"expected a positive integer up to {high}")


def _validate(spec: ModelSpec) -> None:
    """Checks every value and every rule of the model type; raises SpecError on the first."""
    if spec.model_type not in MODEL_TYPES:
        raise SpecError("model_type", spec.model_type, f"expected one of {', '.join(MODEL_TYPES)}")
    if spec.activation is not None and spec.activation not in ACTIVATIONS:
        raise SpecError("activation", spec.activation,
                        f"expected one of {', '.join(ACTIVATIONS)}")
    if spec.interaction not in INTERACTIONS:
        raise SpecError("arch_interaction_op", spec.interaction,
                        f"expected one of {', '.join(INTERACTIONS)}")
    if has_control(spec.name) or len(spec.name) > MAX_NAME_CHARS:
        raise SpecError("model_name", spec.name, f"expected printable text of at most "
                                                 f"{MAX_NAME_CHARS} characters")
    for field in ("top_mlp", "table_rows", "bottom_mlp", "task_mlp", "attention_mlp"):
        widths = getattr(spec, field)
        if field in ("top_mlp", "table_rows") and not widths:
            raise SpecError(key_of(field), dash(widths), "must list at least one size")
        if any(w <= 0 for w in widths):
            raise SpecError(key_of(field), dash(widths), "every size must be a positive integer")
        count, largest = (MAX_TABLES, MAX_ROWS) if field == "table_rows" else \
            (MAX_LAYERS, MAX_WIDTH)
        if len(widths) > count or max(widths, default=0) > largest:
            raise SpecError(key_of(field), dash(widths), f"expected at most {count} sizes, "
                                                           f"each at most {largest}")
    for field, high in (("embedding_dim", MAX_WIDTH), ("pooling_factor", MAX_LOOKUPS),
                        ("num_tasks", MAX_TASKS)):
        _positive(key_of(field), getattr(spec, field), high)
    for field, high in (("sequence_length", MAX_LOOKUPS), ("gru_hidden_size", MAX_WIDTH),
                        ("cross_features", MAX_TABLES), ("cross_buckets", MAX_ROWS)):
        if getattr(spec, field) is not None:
            _positive(key_of(field), getattr(spec, field), high)
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
            raise SpecError("arch_mlp_bot", dash(spec.bottom_mlp),
                            "dlrm needs the dense input width then at least one layer width "
                            "(e.g. '13-512-256-64')")
        if spec.interaction == "dot" and spec.bottom_mlp[-1] != spec.embedding_dim:
            raise SpecError("arch_mlp_bot", dash(spec.bottom_mlp),
                            "the 'dot' interaction needs the last bottom-MLP width to equal "
                            f"arch_sparse_feature_size ({spec.embedding_dim})")
    elif kind == "ncf":
        if spec.num_tables != 4:
            raise SpecError("arch_embedding_size", dash(spec.table_rows),
                            "ncf needs exactly 4 tables (GMF user, GMF item, MLP user, MLP item)")
    elif kind in ("wnd", "mtwnd"):
        if len(spec.bottom_mlp) != 1:
            raise SpecError("arch_mlp_bot", dash(spec.bottom_mlp),
                            f"{kind} takes one number, the dense feature width (e.g. '512')")
        if kind == "mtwnd" and not spec.task_mlp:
            raise SpecError("arch_mlp_tasks", None,
                            "mtwnd needs the task tower widths (e.g. '512-256-128')")
        if kind == "mtwnd" and spec.task_mlp[0] != spec.top_mlp[-1]:
            raise SpecError("arch_mlp_tasks", dash(spec.task_mlp),
                            "its first width is the towers' input and must equal the last "
                            f"arch_mlp_top width ({spec.top_mlp[-1]}), as DeepRecSys reads it")
    elif kind in ATTENTION_TYPES:
        if spec.num_tables < 4:
            raise SpecError("arch_embedding_size", dash(spec.table_rows),
                            f"{kind} needs at least 4 tables: user profile, behaviour table(s), "
                            "candidate ad, context")
        if spec.bottom_mlp and kind == "din":
            raise SpecError("arch_mlp_bot", dash(spec.bottom_mlp),
                            f"{kind} has no bottom MLP; its attention unit's hidden widths are "
                            "arch_mlp_att (attention_mlp)")
        if not spec.attention_mlp:
            raise SpecError("arch_mlp_att", None,
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
        return ModelSpec(**config_fields(config, default_name))
    except SpecError as error:
        if source is None or error.source is not None:
            raise
        raise SpecError(error.field, error.value, error.allowed, source) from None


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
