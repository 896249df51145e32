"""The layers stay apart: the report renders what analysis computes (it runs no SQL), and
analysis reads only the store (it never imports the collectors, nor torch)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import recstack

PACKAGE = Path(recstack.__file__).parent
REPORT = sorted((PACKAGE / "report").rglob("*.py"))
ANALYSIS = sorted((PACKAGE / "analysis").rglob("*.py"))
# SQL as it is written in queries (upper case), not the English words in docstrings.
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER)\s|\b(FROM|JOIN|WHERE)\s+\w"
                 r"|\bGROUP BY\b|\bORDER BY\b")
DATABASE_CALLS = {"query", "execute", "executemany", "sql"}
FORBIDDEN_IMPORTS = ("recstack.collect", "torch")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _module(path: Path) -> str:
    """The dotted name a relative import is resolved against (``pkg.__init__`` for a
    package: one level up from it is the package itself)."""
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def database_calls(tree: ast.Module) -> list[str]:
    """Every ``x.query(...)``, ``x.execute(...)`` ... call, as ``line: attribute``."""
    return [f"{node.lineno}: .{node.func.attr}(" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in DATABASE_CALLS]


def sql_strings(tree: ast.Module) -> list[str]:
    """Every string constant (f-string parts included) that reads as SQL."""
    return [f"{node.lineno}: {node.value.strip()[:60]!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and SQL.search(node.value)]


def imported_modules(tree: ast.Module, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import anywhere in the module (inside functions too), with
    relative imports resolved against ``module``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[:-node.level]
                base = ".".join([*package, base] if base else package)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def forbidden(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in FORBIDDEN_IMPORTS)


def test_the_modules_are_found() -> None:
    assert PACKAGE / "report" / "html.py" in REPORT
    assert PACKAGE / "analysis" / "views.py" in ANALYSIS


@pytest.mark.parametrize("path", REPORT, ids=_name)
def test_report_code_runs_no_sql(path: Path) -> None:
    tree = _tree(path)
    assert database_calls(tree) == [], f"{_name(path)} calls the database; move the query " \
                                       "into recstack.analysis and call that"
    assert sql_strings(tree) == [], f"{_name(path)} holds SQL; move it into recstack.analysis"


@pytest.mark.parametrize("path", ANALYSIS, ids=_name)
def test_analysis_imports_neither_collectors_nor_torch(path: Path) -> None:
    imports = [f"{line}: {name}" for line, name in imported_modules(_tree(path), _module(path))
               if forbidden(name)]
    assert imports == [], f"{_name(path)} imports what measures; analysis reads the store only"


def test_the_checks_catch_what_they_look_for() -> None:
    code = ast.parse('''
def f(store):
    import torch
    from recstack.collect import timing
    from ..collect.ceilings import x
    return store.query(f"SELECT a FROM t WHERE b = {1}")
''')
    assert database_calls(code) == ["6: .query("]
    assert len(sql_strings(code)) == 1
    names = [name for _, name in imported_modules(code, "recstack.analysis.roofline")]
    assert [name for name in names if forbidden(name)] == [
        "torch", "recstack.collect", "recstack.collect.timing", "recstack.collect.ceilings",
        "recstack.collect.ceilings.x"]
    english = ast.parse('"""Select the rows from a table where the batch is large."""')
    assert sql_strings(english) == []
