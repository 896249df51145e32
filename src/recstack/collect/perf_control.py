"""Switching a running ``perf stat`` on and off around the measured loop, through its
control fifos (``perf stat --control fifo:CTL,ACK -D -1``, see
:func:`recstack.collect.perf_events.perf_command`)."""

from __future__ import annotations

import errno
import os
import select
import stat as _stat
import time

from recstack.errors import RecstackError


class PerfControl:
    """Enable and disable a running ``perf stat --control fifo:CTL,ACK -D -1``.

    Both fifos are opened read-write and non-blocking (as perf opens them), so opening never
    waits for perf and a perf that is gone shows up as a missing ack, not a hang.
    ``enable()``/``disable()`` write ``enable\\n``/``disable\\n`` and wait up to ``timeout``
    seconds for perf's ``ack\\n`` (followed by a NUL byte in perf 6.1, which is skipped).
    """

    def __init__(self, control_fifo: str | os.PathLike[str], ack_fifo: str | os.PathLike[str],
                 timeout: float = 5.0):
        number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
        if not (number and timeout > 0):
            raise RecstackError(f"PerfControl: timeout {timeout!r} must be a number of seconds > 0")
        self.control_fifo = os.fspath(control_fifo)
        self.ack_fifo = os.fspath(ack_fifo)
        self.timeout = float(timeout)
        self._ctl: int | None = None
        self._ack: int | None = None
        self._buffer = b""

    def open(self) -> PerfControl:
        if self._ctl is not None:
            return self
        for path in (self.control_fifo, self.ack_fifo):
            try:
                mode = os.stat(path).st_mode
            except OSError as exc:
                raise RecstackError(f"perf control fifo {path}: {exc.strerror or exc}") from exc
            if not _stat.S_ISFIFO(mode):
                raise RecstackError(
                    f"perf control fifo {path} is not a fifo (make it with os.mkfifo)")
        flags = os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            self._ctl = os.open(self.control_fifo, flags)
            self._ack = os.open(self.ack_fifo, flags)
        except OSError as exc:
            self.close()
            raise RecstackError(f"cannot open perf control fifos: {exc.strerror or exc}") from exc
        return self

    def close(self) -> None:
        for name in ("_ctl", "_ack"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)
        self._buffer = b""

    def __enter__(self) -> PerfControl:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def enable(self) -> None:
        """Start counting; returns once perf acknowledged."""
        self._command("enable")

    def disable(self) -> None:
        """Stop counting; returns once perf acknowledged."""
        self._command("disable")

    def ping(self) -> None:
        """Check that perf is listening (recent perf, 6.1 included, acks ``ping``)."""
        self._command("ping")

    def _command(self, word: str) -> None:
        if self._ctl is None or self._ack is None:
            raise RecstackError("PerfControl is not open (use it as a context manager)")
        data = f"{word}\n".encode()
        try:
            written = os.write(self._ctl, data)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                raise RecstackError(f"perf control fifo {self.control_fifo} is full: "
                                    "perf is not reading it") from exc
            raise RecstackError(f"cannot write {word!r} to {self.control_fifo}: "
                                f"{exc.strerror or exc}") from exc
        if written != len(data):
            raise RecstackError(f"short write of {word!r} to {self.control_fifo}")
        self._wait_ack(word)

    def _wait_ack(self, word: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                # perf writes the C string "ack\n" including its NUL byte (seen with perf
                # 6.1), so the next line starts with b"\0"
                if line.strip(b"\0 \t\r") == b"ack":
                    return
                continue  # anything else is not ours; keep waiting for the ack
            left = deadline - time.monotonic()
            if left <= 0:
                raise RecstackError(
                    f"perf did not acknowledge {word!r} within {self.timeout:g} s "
                    f"on {self.ack_fifo}"
                )
            ready, _, _ = select.select([self._ack], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self._ack, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise RecstackError(f"cannot read {self.ack_fifo}: {exc.strerror or exc}") from exc
            self._buffer += chunk
