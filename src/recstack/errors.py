"""The one error type users see.

Library code raises these; only the CLI turns them into a one-line message and exit status 2.
"""

from __future__ import annotations


class RecstackError(Exception):
    """A problem the user can fix: bad input, a model that does not fit, a missing file.

    The message is a single line that says what was wrong and what is allowed.
    """


class SpecError(RecstackError):
    """A model spec that fails validation. Names the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str, source: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.source = source
        from recstack.text import shown

        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {shown(value)} is not allowed; {allowed}")

    def for_option(self, option: str | None = None) -> RecstackError:
        """The same error named after the command-line option the value came from
        (default: ``--`` and the field, dashed)."""
        from recstack.text import shown

        option = option or "--" + self.field.replace("_", "-")
        return RecstackError(f"{option}: {shown(self.value)} is not allowed; {self.allowed}")


class StoreError(RecstackError):
    """The results store cannot be read or written (a full disk, a read-only place, a file
    that is not a recstack store). Finished points stay in the store."""


class Interrupted(BaseException):
    """The user stopped recstack (Ctrl-C, or SIGTERM): raised by the CLI's signal handler.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it;
    a measuring command sets ``run_id`` and ``progress`` on its way out, so the one line the
    CLI prints can say where the run stopped."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.run_id: str | None = None
        self.progress: str | None = None
