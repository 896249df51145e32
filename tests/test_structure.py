"""The shape of the code: modules of one job, and a CLI where no command reaches into
another command's private helpers (shared ones live in cli/options.py, cli/progress.py and
the library API)."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "recstack"
MOST_LINES = 420  # "about 400"


def test_no_module_is_over_about_400_lines() -> None:
    long = {str(path.relative_to(SOURCE)): count for path in SOURCE.rglob("*.py")
            if (count := len(path.read_text().splitlines())) > MOST_LINES}
    assert not long


def test_no_cli_module_imports_another_ones_private_names() -> None:
    found = []
    for path in (SOURCE / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "recstack.cli."):
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                if private:
                    found.append(f"{path.name}: {node.module} {private}")
    assert not found


def test_points_are_values_made_without_reading_anything(monkeypatch) -> None:  # noqa: ANN001
    """Making a Point opens no file (``auto`` is planning's to resolve)."""
    import builtins

    from recstack.points import Point
    from recstack.specs import resolve_spec

    spec = resolve_spec("rmc1").scaled(0.001)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a Point opened {args[0] if args else kwargs}")

    monkeypatch.setattr(builtins, "open", refuse)
    for backend in ("eager", "fused", "static", "compile"):
        Point(spec, 16, backend=backend).key()


def test_the_command_line_starts_without_torch() -> None:
    """Every command's start-up (option errors, --help, results, report) pays no torch
    import (about 0.8 s here): it is imported where a model or a batch is made."""
    import subprocess
    import sys

    probe = ("import sys, recstack.cli; "
             "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
