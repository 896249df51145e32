"""How many candidate items a user request carries: the query-size distribution.

A serving request ranks N candidate items for one user; N varies from request to request.
The distributions are DeepRecSys's (its load generator's ``--batch_size_distribution``), with
its parameters and its clipping to ``[1, maximum]``:

- ``fixed:N``;
- ``normal:MEAN,SCALE,MAX``: numpy's normal with location MEAN and scale SCALE (DeepRecSys
  names this parameter ``var_mini_batch_size`` but passes it to numpy as the standard
  deviation; so do we), rounded down and clipped;
- ``lognormal:MU,SIGMA,MAX``: numpy's lognormal, whose parameters are the mean and standard
  deviation of the underlying normal (of log N), as DeepRecSys passes them;
- ``file:PATH``: a quantile file, one request size per line, each line equally likely (as
  MLPerf DLRM and DeepRecSys read theirs); its largest value is the maximum.

The file is untrusted input: at most :data:`MAX_QUANTILE_LINES` lines of positive integers
(a trailing ``.0`` accepted, as DeepRecSys writes floats), each at most
:data:`MAX_REQUEST_ITEMS`; blank lines and ``#`` comments skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recstack.errors import RecstackError
from recstack.text import shown

KINDS = ("fixed", "normal", "lognormal", "file")
MAX_REQUEST_ITEMS = 1 << 16
"""The most items one request may carry (DeepRecSys's default maximum is 1024)."""
MAX_QUANTILE_LINES = 100_000
MAX_QUANTILE_BYTES = 1 << 20
DEFAULT_QUERY_SIZES = "normal:165,16,1024"
"""DeepRecSys's ``run_DeepRecSys.sh`` defaults: mean 165, scale 16, maximum 1024."""
_SYNTAX = ("expected fixed:N, normal:MEAN,SCALE,MAX, lognormal:MU,SIGMA,MAX or "
           "file:PATH (one request size per line)")


@dataclass(frozen=True)
class QuerySizes:
    """A query-size distribution (see the module docstring); ``values`` holds a quantile
    file's sizes (read once, when the option is parsed)."""

    kind: str
    parameters: tuple[float, ...] = ()
    maximum: int = 1
    values: tuple[int, ...] = ()
    source: str = ""
    """A quantile file's name, for labels (its contents are ``values``)."""

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``(count,)`` int64 request sizes in ``[1, maximum]``."""
        if self.kind == "fixed":
            drawn = np.full(count, self.parameters[0])
        elif self.kind == "normal":
            drawn = rng.normal(self.parameters[0], self.parameters[1], count)
        elif self.kind == "lognormal":
            drawn = rng.lognormal(self.parameters[0], self.parameters[1], count)
        else:
            drawn = np.asarray(self.values)[rng.integers(0, len(self.values), count)]
        return np.clip(np.floor(drawn), 1, self.maximum).astype(np.int64)

    def describe(self) -> str:
        if self.kind == "file":
            return f"file:{self.source} ({len(self.values)} sizes, max {self.maximum})"
        return f"{self.kind}:{','.join(f'{p:g}' for p in self.parameters)}" + \
            ("" if self.kind == "fixed" else f",{self.maximum}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "parameters": list(self.parameters),
                                "maximum": self.maximum}
        if self.kind == "file":
            # The sizes themselves decide what runs; the file name is only a label.
            data["values_digest"] = _digest(self.values)
            data["source"] = self.source
        return data


def _digest(values: tuple[int, ...]) -> str:
    import hashlib

    return hashlib.sha256(np.asarray(values, dtype=np.int64).tobytes()).hexdigest()[:16]


def _problem(text: str, why: str) -> RecstackError:
    return RecstackError(f"--query-sizes: {shown(text)} is not allowed; {why}")


def _number(text: str, word: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise _problem(text, f"{word!r} is not a number; {_SYNTAX}") from None
    if not math.isfinite(value):
        raise _problem(text, f"{word!r} is not finite; {_SYNTAX}")
    return value


def _size(text: str, value: float, what: str) -> int:
    if value != int(value) or not 1 <= value <= MAX_REQUEST_ITEMS:
        raise _problem(text, f"{what} must be an integer from 1 to {MAX_REQUEST_ITEMS}")
    return int(value)


def parse_query_sizes(text: str) -> QuerySizes:
    """The distribution an option's text names (see the module docstring); a one-line
    RecstackError naming the text and what is allowed otherwise."""
    if not isinstance(text, str) or ":" not in text:
        raise _problem(str(text), _SYNTAX)
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise _problem(text, _SYNTAX)
    if kind == "file":
        return read_quantile_file(rest.strip())
    words = [word.strip() for word in rest.split(",")]
    numbers = [_number(text, word) for word in words]
    if kind == "fixed":
        if len(numbers) != 1:
            raise _problem(text, "fixed takes one size, e.g. fixed:64")
        size = _size(text, numbers[0], "the size")
        return QuerySizes("fixed", (float(size),), size)
    if len(numbers) != 3:
        raise _problem(text, f"{kind} takes three numbers; {_SYNTAX}")
    location, scale, maximum = numbers
    if not scale > 0:
        raise _problem(text, "the scale (second number) must be greater than 0")
    if kind == "normal" and not 0 < location <= MAX_REQUEST_ITEMS:
        raise _problem(text, f"the mean must be greater than 0 and at most "
                             f"{MAX_REQUEST_ITEMS}")
    if kind == "lognormal" and not (-50 < location < math.log(MAX_REQUEST_ITEMS) + 10
                                    and scale < 20):
        raise _problem(text, "lognormal's MU and SIGMA are those of log N (numpy's "
                             f"lognormal), e.g. lognormal:5,0.5,1024; MU below "
                             f"{math.log(MAX_REQUEST_ITEMS) + 10:.0f}, SIGMA below 20")
    return QuerySizes(kind, (location, scale), _size(text, maximum, "the maximum"))


def read_quantile_file(name: str) -> QuerySizes:
    """A quantile file's sizes (untrusted: bounded, plain integers only)."""
    option = "--query-sizes"
    path = Path(name)
    if not name or not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise RecstackError(f"{option}: {shown(name)} {what}; expected file:PATH of a "
                            "quantile file (one request size per line)")
    if path.stat().st_size > MAX_QUANTILE_BYTES:
        raise RecstackError(f"{option}: {path.name} is larger than {MAX_QUANTILE_BYTES} "
                            "bytes; expected a quantile file of request sizes")
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecstackError(f"{option}: {path.name} cannot be read as UTF-8 text "
                            f"({type(error).__name__}); expected one request size per "
                            "line") from None
    values: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.split("#", 1)[0].strip()
        if not word:
            continue
        try:
            value = float(word)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value != int(value) \
                or not 1 <= value <= MAX_REQUEST_ITEMS:
            raise RecstackError(f"{option}: {path.name} line {number}: {shown(word[:40])} "
                                f"is not allowed; expected an integer request size from 1 "
                                f"to {MAX_REQUEST_ITEMS}")
        values.append(int(value))
        if len(values) > MAX_QUANTILE_LINES:
            raise RecstackError(f"{option}: {path.name} has more than "
                                f"{MAX_QUANTILE_LINES} sizes; expected a quantile file")
    if not values:
        raise RecstackError(f"{option}: {path.name} holds no request sizes; expected one "
                            "integer per line")
    return QuerySizes("file", (), max(values), tuple(values), source=path.name)
