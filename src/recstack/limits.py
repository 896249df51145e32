"""The ranges every number from a user is checked against, before anything is created.

Two kinds of limit live here. Structural ones follow from what holds the value: the store's
columns (``INTEGER`` batch sizes and thread counts, ``BIGINT`` seeds), tensors' int64 ids,
and formats no real model comes near (a table of 2^40 rows). Limits of the machine (usable
cores, available memory) are applied where the plan is made (:mod:`recstack.sweep`,
:mod:`recstack.admission`). Every check names the field, the value and what is allowed, in
one line.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from recstack.errors import RecstackError, SpecError
from recstack.text import shown

INT32_MAX = 2**31 - 1
"""The store keeps batch sizes and thread counts as INTEGER."""
SEED_MAX = 2**63 - 1
"""The store keeps seeds as BIGINT (torch and numpy take any seed up to it)."""
THREADS_MAX = 4096
"""More intra-op threads than any machine recstack runs on has cores."""
SECONDS_MAX = 3600.0
"""The longest timed loop or warm-up of one point: an hour."""


def is_integer(value: Any) -> bool:
    """An integer (Python's or numpy's), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (int or float, Python's or numpy's), not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool)


def check_int(field: str, value: Any, low: int, high: int, what: str = "an integer") -> int:
    """``value`` as an int when it is an integer in ``[low, high]``, else a SpecError."""
    if not is_integer(value) or not low <= value <= high:
        raise SpecError(field, value, f"expected {what} from {low} to {high}")
    return int(value)


def check_number(field: str, value: Any, low: float, high: float,
                 low_inclusive: bool = True, what: str = "a number") -> float:
    """``value`` as a float when it is a finite number in the range (``low`` excluded
    unless ``low_inclusive``), else a SpecError. NaN and infinities never pass."""
    if not is_number(value) or not math.isfinite(value) or not value <= high \
            or not (value >= low if low_inclusive else value > low):
        bound = f"from {low:g}" if low_inclusive else f"greater than {low:g}"
        raise SpecError(field, value, f"expected {what} {bound} up to {high:g}")
    return float(value)


def check_scale(scale: object, option: str = "--row-scale") -> None:
    """A row scale must be a finite number greater than 0 (how large it may be is the
    spec's and memory's question); None is no scale."""
    if scale is not None and (not is_number(scale) or not math.isfinite(scale)
                              or not scale > 0):
        raise RecstackError(f"{option}: {shown(scale)} is not allowed; expected a finite "
                            "number greater than 0 (1 is full size)")
