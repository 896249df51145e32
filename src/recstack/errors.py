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
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {value!r} is not allowed; {allowed}")
