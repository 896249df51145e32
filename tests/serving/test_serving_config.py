"""The serving configuration: validated on creation, part of the point's key."""

from __future__ import annotations

import pytest

from recstack.errors import SpecError
from recstack.points import Point
from recstack.serving.config import ServingConfig, check_deployment
from recstack.serving.query_sizes import parse_query_sizes
from tests.conftest import small_spec


@pytest.mark.parametrize("field, value", [
    ("engines", 0), ("engines", 1.5), ("target_ms", 0), ("target_ms", -1),
    ("percentile", 0), ("percentile", 100), ("percentile", 101), ("scenario", "batch"),
    ("offered_qps", (0.0,)), ("offered_qps", (-5.0,)), ("library_requests", 0),
    ("min_duration_s", 0), ("offload_threshold", 0),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(SpecError) as error:
        ServingConfig(**{field: value})
    assert error.value.field in (field, "qps")


def test_offline_takes_one_rate_at_most():
    with pytest.raises(SpecError):
        ServingConfig(scenario="offline", offered_qps=(10.0, 20.0))


def test_query_count_is_enough_for_early_stopping():
    assert ServingConfig(percentile=95).query_count >= 90
    assert ServingConfig(percentile=99).query_count >= 460
    assert ServingConfig(min_queries=7).query_count == 7


def test_the_configuration_is_in_the_key_and_only_serving_points_have_one():
    spec = small_spec("rmc1")
    config = ServingConfig(query_sizes=parse_query_sizes("fixed:16"))
    first = Point(spec, 8, level="serving", serving=config)
    other = Point(spec, 8, level="serving", serving=ServingConfig(
        query_sizes=parse_query_sizes("fixed:16"), engines=2))
    assert first.key() != other.key()
    assert "serving" not in Point(spec, 8).configuration()
    with pytest.raises(SpecError):
        Point(spec, 8, serving=config)
    with pytest.raises(SpecError):
        Point(spec, 8, level="serving")
    assert "search" in first.label and "sub8" in first.label


def test_engines_must_fit_the_cores():
    check_deployment(2, 1, 2)
    with pytest.raises(Exception, match="--engines"):
        check_deployment(2, 2, 2)
    check_deployment(2, 2, 2, oversubscribe=True)
