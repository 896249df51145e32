"""Numbers from users: finite, in range, of the right kind."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recstack.errors import RecstackError, SpecError
from recstack.limits import SEED_MAX, check_int, check_number, check_scale


@pytest.mark.parametrize("value", [True, 1.0, "1", None, -1, SEED_MAX + 1, 10**30])
def test_check_int_refuses(value: object) -> None:
    with pytest.raises(SpecError, match="seed: .* is not allowed; expected an integer from 0"):
        check_int("seed", value, 0, SEED_MAX)


def test_check_int_takes_numpy_integers() -> None:
    assert check_int("seed", np.int64(7), 0, SEED_MAX) == 7


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_number_never_passes_a_non_finite_or_out_of_range_value(value: float) -> None:
    try:
        checked = check_number("min_seconds", value, 0.0, 3600.0)
    except SpecError as error:
        assert not (math.isfinite(value) and 0 <= value <= 3600)
        assert "min_seconds" in str(error) and "\n" not in str(error)
    else:
        assert math.isfinite(checked) and 0 <= checked <= 3600


@pytest.mark.parametrize("scale", [0, -1, float("nan"), float("inf"), "abc", [1], True])
def test_check_scale_refuses(scale: object) -> None:
    with pytest.raises(RecstackError, match="scale: .* is not allowed; expected a finite number"):
        check_scale(scale, "scale")
