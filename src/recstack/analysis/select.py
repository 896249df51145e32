"""SELECT lists built from the declared records (:mod:`recstack.records`): a loader asks for
a table's columns by name, so a column declared once reaches every frame that loads its
table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from recstack.precision import REFERENCE

# A point's numeric precision (schema 15): its embedding tables' and its dense layers'.
PRECISION_COLUMNS: list[str] = ["embedding_precision", "dense_precision"]
# What identifies a measured point in every loaded frame (from ``points``).
POINT_COLUMNS: list[str] = ["run_id", "point_key", "model", "model_type", "row_scale",
                            "batch_size", "device", "threads", "backend", "cache_state",
                            *PRECISION_COLUMNS]
# Stores made before schema 12 left cache_state NULL: every point then cycled four batches,
# whose rows stay cached at small batch, so it reads as warm. Read here, in one place.
STORED_BEFORE_CACHE_STATE = "warm"
# Points stored before schema 15 ran in fp32 (the only precision there was).
STORED_BEFORE_PRECISION = REFERENCE
_READ_AS = {"cache_state": f"COALESCE({{alias}}.cache_state, '{STORED_BEFORE_CACHE_STATE}') "
                           "AS cache_state",
            **{name: f"COALESCE({{alias}}.{name}, '{STORED_BEFORE_PRECISION}') AS {name}"
               for name in PRECISION_COLUMNS}}


def measuring_platform(point: str = "pt", run: str = "r") -> str:
    """The machine that measured a point, as ``platform_id``: the point's own (a run on a
    cluster spans several), else its run's (points stored before they named their machine
    were all measured by their run's). Needs ``runs`` joined as ``run``."""
    return f"COALESCE({point}.platform_id, {run}.platform_id) AS platform_id"


def table_columns(store: object, table: str, alias: str, exclude: Iterable[str] = ()
                  ) -> list[str]:
    """``alias.column`` for every declared column of ``table`` but its key and ``exclude``."""
    declared = store.schema.table(table)  # type: ignore[attr-defined]
    skip = {c.name for c in declared.key} | set(exclude)
    return [f"{alias}.{name}" for name in declared.names if name not in skip]


def declared_names(store: object, table: str, exclude: Iterable[str] = ()) -> list[str]:
    return [name.split(".", 1)[1] for name in table_columns(store, table, "x", exclude)]


def point_columns(alias: str = "pt", names: Sequence[str] = POINT_COLUMNS) -> list[str]:
    """``alias.name`` per name (a column stored NULL before its schema, as ``cache_state``
    and the precision columns, read with its meaning then)."""
    return [_READ_AS[name].format(alias=alias) if name in _READ_AS else f"{alias}.{name}"
            for name in names]


def run_filter(run_ids: Sequence[str] | None, alias: str = "pt") -> tuple[str, list[object]]:
    """`` AND alias.run_id IN (...)`` with its parameters, or nothing for every run."""
    if not run_ids:
        return "", []
    return f" AND {alias}.run_id IN ({', '.join('?' * len(run_ids))})", list(run_ids)
