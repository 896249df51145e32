"""Sweep files: a user's YAML or JSON file of sweep options, read as untrusted input into
:func:`recstack.sweep.plan_sweep` keyword arguments, every value checked and every error
naming the file and the key."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError, SpecError
from recstack.inputs import FILE_DISTRIBUTIONS, QuerySpec
from recstack.limits import INT32_MAX, SEED_MAX, THREADS_MAX, check_int, check_scale
from recstack.text import shown

SWEEP_FILE_KEYS = ("models", "batch_sizes", "threads", "devices", "backends", "levels", "row_scale",
                   "query", "seed", "oversubscribe", "precisions")


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """Reads a YAML or JSON sweep file into :func:`plan_sweep` keyword arguments."""
    from recstack.userfiles import load_document

    path = Path(path)
    data = load_document(path, "--sweep-file")
    try:
        return _sweep_options(data, path)
    except SpecError as error:
        if error.source is not None:
            raise
        raise SpecError(error.field, error.value, error.allowed, path.name) from None


def _sweep_options(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RecstackError(f"{path.name}: expected a mapping with keys "
                            f"{', '.join(SWEEP_FILE_KEYS)}")
    for key in data:
        if key not in SWEEP_FILE_KEYS:
            hint = difflib.get_close_matches(str(key), SWEEP_FILE_KEYS, n=1)
            did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
            raise RecstackError(f"{path.name}: key {shown(key)} is not allowed; {did_you_mean}"
                                f"allowed keys: {', '.join(SWEEP_FILE_KEYS)}")
    options: dict[str, Any] = {}
    for key in ("models", "batch_sizes", "threads", "devices", "backends", "levels"):
        if key in data:
            value = data[key]
            if not isinstance(value, list) or not value:
                raise SpecError(key, value, "expected a non-empty list")
            if key in ("batch_sizes", "threads"):
                high = INT32_MAX if key == "batch_sizes" else THREADS_MAX
                options[key] = [check_int(key, v, 1, high, "integers") for v in value]
            elif not all(isinstance(v, str) and v.strip() for v in value):
                raise SpecError(key, value, "expected a list of names")
            else:
                options[key] = value
    if "row_scale" in data:
        check_scale(data["row_scale"], f"{path.name}: row_scale")
        options["row_scale"] = data["row_scale"]
    if "seed" in data:
        options["seed"] = check_int("seed", data["seed"], 0, SEED_MAX)
    if "oversubscribe" in data:
        if not isinstance(data["oversubscribe"], bool):
            raise SpecError("oversubscribe", data["oversubscribe"], "expected true or false")
        options["oversubscribe"] = data["oversubscribe"]
    if "precisions" in data:
        from recstack.precision import Precision

        value = data["precisions"]
        if not isinstance(value, list) or not value or \
                not all(isinstance(v, str) for v in value):
            raise SpecError("precisions", value, "expected a non-empty list such as "
                                                 "[fp32, 'emb=int8,dense=fp32']")
        options["precisions"] = [Precision.parse(v) for v in value]
    if "query" in data:
        if not isinstance(data["query"], dict):
            raise SpecError("query", data["query"], "expected a mapping of QuerySpec fields")
        try:
            options["query"] = _query(data["query"], path)
        except TypeError as error:
            raise RecstackError(f"{path.name}: query: {error}") from None
    return options


def _query(fields: dict[str, Any], path: Path) -> QuerySpec:
    """The file's query; a trace or profile ``source`` is read relative to the sweep file's
    folder, and keyed to its content as ``--queries`` does."""
    if fields.get("distribution") not in FILE_DISTRIBUTIONS:
        return QuerySpec(**fields)
    from recstack.trace_queries import file_query

    allowed = {"distribution", "source", "seed", "table_map", "order", "samples"}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise SpecError(f"query.{unknown[0]}", fields[unknown[0]],
                        f"a {fields['distribution']} query takes {', '.join(sorted(allowed))}")
    source = fields.get("source")
    if not isinstance(source, str) or not source:
        raise SpecError("query.source", source, "expected the path of the trace or profile")
    table_map = fields.get("table_map", [])
    if not isinstance(table_map, list) and table_map != "cycle":
        raise SpecError("query.table_map", table_map, "expected a list of table numbers, "
                                                      "or cycle")
    # file_query's QuerySpec checks every other field before the file is read
    return file_query(fields["distribution"], path.parent / source, fields.get("seed", 0),
                      table_map if table_map == "cycle" else tuple(table_map),
                      fields.get("order", "sequential"), fields.get("samples", 0))


def sweep_file_options(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """A sweep file's options (``recstack.sweepfile``) with explicit ``overrides`` (those
    not None) in place of the file's."""
    options = load_sweep_file(path)
    options.update({key: value for key, value in overrides.items() if value})
    options.setdefault("backends", ["auto"])
    if "models" not in options:
        raise RecstackError("--model: nothing given; name models with --model or in the "
                            "sweep file")
    return options
