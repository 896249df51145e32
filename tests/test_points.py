"""Points: validation and identity."""

from __future__ import annotations

import pytest

from recstack.errors import SpecError
from recstack.inputs import QuerySpec
from recstack.points import Point
from tests.conftest import small_spec


def test_key_is_stable_and_distinguishes_every_field() -> None:
    spec = small_spec("rmc1")
    base = Point(spec, 16, threads=2)
    assert base.key() == Point(spec, 16, threads=2).key()
    variants = [Point(spec, 32, threads=2), Point(spec, 16, threads=1),
                Point(spec, 16, device="cuda", threads=2), Point(small_spec("rmc2"), 16, threads=2),
                Point(spec, 16, threads=2, query=QuerySpec(distribution="zipf")),
                Point(spec, 16, threads=2, seed=1), Point(spec.scaled(0.5), 16, threads=2)]
    assert len({base.key(), *(v.key() for v in variants)}) == len(variants) + 1
    assert base.label == "rmc1@0.0001 b16 cpu t2 eager"


@pytest.mark.parametrize("kwargs, field", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2, "threads": 0}, "threads"),
    ({"batch_size": 2, "device": "gpu"}, "device"),
    ({"batch_size": 2, "backend": "tensorrt"}, "backend"),
])
def test_invalid_points(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError, match=f"^{field}: "):
        Point(small_spec("rmc1"), **kwargs)  # type: ignore[arg-type]


def test_every_backend_is_a_point_and_auto_names_the_one_that_runs() -> None:
    from recstack.backends import resolve_backend
    from recstack.points import BACKEND_CHOICES, BACKENDS

    spec = small_spec("rmc1")
    assert set(BACKENDS) == {"eager", "fused", "compile", "static"} and "auto" in BACKEND_CHOICES
    keys = {Point(spec, 4, backend=backend).key() for backend in BACKENDS}
    assert len(keys) == len(BACKENDS)
    from recstack.sweep import plan_specs

    # A point is a value: auto is resolved while planning, never when a point is made.
    with pytest.raises(SpecError, match="^backend: 'auto'"):
        Point(spec, 4, backend="auto")
    auto = plan_specs([spec], [4], [1], ["cpu"], ["auto"]).points[0]
    chosen = resolve_backend("auto", spec, batch_size=4)
    assert auto.backend == chosen and auto.label.endswith(f" {chosen}")
    assert auto.key() == Point(spec, 4, backend=chosen).key()
