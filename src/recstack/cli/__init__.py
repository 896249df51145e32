"""The command line: parses arguments, calls the library, renders what it returns.

Nothing here measures or computes; errors from the library (RecstackError) become one line on
stderr and exit status 2.
"""

from __future__ import annotations

import sys

from recstack.cli.app import app
from recstack.errors import RecstackError

# Registering the commands (each module adds its own to `app`).
from recstack.cli import ceilings, correlate, doctor, measure, report, results, zoo  # noqa: E402,F401


def main() -> None:
    """Console entry point: user errors are one line and exit status 2, never a traceback."""
    try:
        app()
    except RecstackError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: every finished point is in the store; rerun with --resume to "
              "continue the run", file=sys.stderr)
        sys.exit(130)


__all__ = ["app", "main"]
