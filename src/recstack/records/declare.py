"""How a stored record is declared: row classes whose fields are the table's columns.

A row class is a frozen dataclass whose every field is made with :func:`column`: its SQL
type, unit, one-line meaning and the schema version that added it. :func:`table` gathers one
or more row classes into a :class:`Table` (a table may be filled by several records: the
``points`` row says what was measured, the timing level adds how the model was built).
:class:`Schema` is the set of tables; the store builds its DDL, its inserts and the columns
an older store lacks from it, and the analysis loaders select by it. Adding a stored column
is one :func:`column` field on a row class plus the code that fills it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

# Columns every table of per-point results starts with: which run, which point.
POINT_KEY: tuple[str, ...] = ("run_id", "point_key")
_COLUMN = "recstack.column"


@dataclass(frozen=True)
class Column:
    """One stored column."""

    name: str
    sql_type: str
    meaning: str
    unit: str = ""
    since: int = 1
    """The store schema version that added the column."""

    @property
    def is_json(self) -> bool:
        return self.sql_type == "JSON"

    def ddl(self) -> str:
        return f"{self.name} {self.sql_type}"


def column(sql_type: str, meaning: str, unit: str = "", since: int = 1,
           default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is a stored column (its name is the field's name)."""
    metadata = {_COLUMN: (sql_type, meaning, unit, since)}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@functools.cache
def columns_of(row_class: type) -> tuple[Column, ...]:
    """The columns a row class declares, in field order (read once per class)."""
    found = []
    for item in dataclasses.fields(row_class):
        if _COLUMN not in item.metadata:
            raise TypeError(f"{row_class.__name__}.{item.name} is not declared with column()")
        sql_type, meaning, unit, since = item.metadata[_COLUMN]
        found.append(Column(item.name, sql_type, meaning, unit, since))
    return tuple(found)


def encode(value: Any, as_json: bool) -> Any:
    """A Python value as the store takes it: JSON columns get their text, NaN becomes NULL."""
    if as_json:
        return None if value is None else json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass(frozen=True)
class Table:
    """A stored table: its key columns, then the columns of each row class, in order."""

    name: str
    key: tuple[Column, ...]
    parts: tuple[type, ...]
    primary_key: tuple[str, ...] = ()
    meaning: str = ""

    @property
    def columns(self) -> tuple[Column, ...]:
        own = tuple(c for part in self.parts for c in columns_of(part))
        return self.key + own

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for candidate in self.columns:
            if candidate.name == name:
                return candidate
        raise KeyError(f"{self.name} has no column {name!r}")

    def ddl(self, name: str | None = None) -> str:
        lines = [c.ddl() for c in self.columns]
        if self.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {name or self.name} (\n    " + \
            ",\n    ".join(lines) + "\n)"

    def row_values(self, key: Mapping[str, Any], *rows: Any) -> dict[str, Any]:
        """One row of the table from its key values and instances of its row classes: the
        columns this table declares (an instance of a subclass carrying more columns than
        an older schema declares gives only the declared ones)."""
        values = {name: key[name] for name in (c.name for c in self.key) if name in key}
        for part in self.parts:
            row = next((r for r in rows if isinstance(r, part)), None)
            if row is None:
                continue
            for item in columns_of(part):
                values[item.name] = encode(getattr(row, item.name), item.is_json)
        return values

    def frame(self, key: Mapping[str, Any], rows: pd.DataFrame) -> pd.DataFrame:
        """Many rows of the table (a frame holding some of its columns) with the key values
        added; a column the table does not declare is an error, not silently dropped."""
        unknown = [name for name in rows.columns if name not in self.names]
        if unknown:
            raise ValueError(f"{self.name}: columns {unknown} are not declared")
        return rows.assign(**{name: key[name] for name in (c.name for c in self.key)})


def table(name: str, *parts: type, key: Iterable[Column] = (), primary_key: Iterable[str] = (),
          meaning: str = "") -> Table:
    return Table(name, tuple(key), parts, tuple(primary_key), meaning)


def point_key_columns() -> tuple[Column, ...]:
    return (Column("run_id", "VARCHAR", "the run that measured the point"),
            Column("point_key", "VARCHAR", "the point's digest within its run"))


@dataclass(frozen=True)
class Schema:
    """Every stored table, and what brings an older store to this one that a declaration
    cannot say (renames, data rewrites): ``rewrites[v]`` runs on a store of version ``v``
    before the columns that version ``v + 1`` added are added."""

    tables: tuple[Table, ...]
    rewrites: Mapping[int, tuple[str, ...]]
    oldest: int
    """The oldest version that can still be upgraded."""

    @functools.cached_property
    def version(self) -> int:
        declared = max(c.since for t in self.tables for c in t.columns)
        return max(declared, max(self.rewrites, default=0) + 1)

    def table(self, name: str) -> Table:
        for candidate in self.tables:
            if candidate.name == name:
                return candidate
        raise KeyError(f"no table {name!r}")

    def table_of(self, part: type) -> Table:
        """The table a row class fills (a subclass of a declared part fills its parent's)."""
        for candidate in self.tables:
            if part in candidate.parts:
                return candidate
        for candidate in self.tables:
            if any(issubclass(part, declared) for declared in candidate.parts):
                return candidate
        raise KeyError(f"{part.__name__} fills no table of this schema")

    def replacing(self, *parts: type) -> Schema:
        """This schema with each row class in place of the declared class it derives from:
        how a new column is added (a test declares one on a subclass)."""
        tables = []
        for declared in self.tables:
            new_parts = tuple(next((p for p in parts if issubclass(p, old)), old)
                              for old in declared.parts)
            tables.append(dataclasses.replace(declared, parts=new_parts))
        return dataclasses.replace(self, tables=tuple(tables))

    @functools.cached_property
    def ddl(self) -> str:
        """Every table's CREATE IF NOT EXISTS (run at each write: a new store gets them)."""
        return ";\n".join(t.ddl() for t in self.tables) + ";"

    def added_in(self, version: int) -> Iterator[tuple[Table, Column]]:
        """The columns that ``version`` added to existing tables."""
        for declared in self.tables:
            for item in declared.columns:
                if item.since == version:
                    yield declared, item
