"""The command line: parses arguments, calls the library, renders what it returns.

Nothing here measures or computes. Whatever goes wrong reaches the user as one line on
stderr: errors from the library (RecstackError) and bad options with exit status 2, a
file-system error (a full disk, a read-only folder) with exit status 2, an interruption
with exit status 130. Never a traceback, except for a bug.
"""

from __future__ import annotations

import errno
import signal
import sys
from typing import NoReturn

# Registering the commands (each module adds its own to `app`).
from recstack.cli import (  # noqa: F401
    backends,
    ceilings,
    correlate,
    doctor,
    fleet,
    measure,
    report,
    results,
    serve,
    traces,
    zoo,
)
from recstack.cli.app import app
from recstack.errors import Interrupted, RecstackError
from recstack.text import one_line

INTERRUPTED_STATUS = 130


def _fail(message: str, status: int = 2) -> NoReturn:
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(status)


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _interrupted(error: Interrupted) -> NoReturn:
    if error.run_id is not None:
        where = f" at {error.progress}" if error.progress else ""
        print(one_line(f"interrupted: run {error.run_id} stopped{where}; every finished point "
                       "is in the store; rerun with --resume to continue the run"),
              file=sys.stderr)
    else:
        print("interrupted: nothing was left half-written", file=sys.stderr)
    sys.exit(INTERRUPTED_STATUS)


def _os_error(error: OSError) -> str:
    where = f"{error.filename}: " if error.filename else ""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        reason += " (free some space and try again; finished results are kept)"
    return f"{where}{reason}"


def main() -> None:
    """Console entry point: one line and an exit status for whatever goes wrong."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer.exceptions import Abort

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        status = app(standalone_mode=False)
    except Interrupted as error:
        _interrupted(error)
    except RecstackError as error:
        _fail(str(error))
    except NoArgsIsHelpError as error:
        print(error.format_message())
        sys.exit(2)
    except ClickException as error:
        _fail(error.format_message(), error.exit_code)
    except Abort:
        _interrupted(Interrupted())
    except OSError as error:
        if error.errno == errno.EPIPE:  # the reader of our output went away (`| head`)
            sys.exit(1)
        _fail(_os_error(error))
    sys.exit(status if isinstance(status, int) else 0)


__all__ = ["app", "main"]
