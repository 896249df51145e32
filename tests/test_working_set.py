"""The query working set: a point's cache state decides how many distinct batches it cycles."""

from __future__ import annotations

import pytest

from recstack.errors import SpecError
from recstack.inputs import QuerySpec
from recstack.points import Point
from recstack.specs import resolve_spec
from recstack.working_set import (COLD_LLC_MULTIPLE, cycled_set, distinct_embedding_bytes,
                                  machine_llc_bytes)

LLC = 32 << 20


def test_cold_batches_touch_the_stated_multiple_of_the_llc() -> None:
    spec = resolve_spec("rmc2")  # 4 GB of tables: far beyond any multiple of 32 MiB
    cold = cycled_set(spec, QuerySpec(), 1, "cold", LLC)
    assert cold.reached and cold.target_bytes == COLD_LLC_MULTIPLE * LLC
    assert cold.working_set_bytes >= 4 * LLC
    # The fewest such batches: one fewer falls short.
    fewer = distinct_embedding_bytes(spec, QuerySpec(), 1, cold.batches - 1)
    assert fewer < 4 * LLC
    # A larger LLC needs more batches; a larger batch fewer.
    assert cycled_set(spec, QuerySpec(), 1, "cold", 4 * LLC).batches > cold.batches
    assert cycled_set(spec, QuerySpec(), 16, "cold", LLC).batches < cold.batches


def test_warm_cycles_a_few_batches_whose_rows_fit_the_cache() -> None:
    spec = resolve_spec("rmc1")
    warm = cycled_set(spec, QuerySpec(), 1, "warm", LLC, warm_batches=4)
    assert warm.batches == 4 and warm.target_bytes == 0
    assert warm.working_set_bytes < LLC
    assert cycled_set(spec, QuerySpec(), 1, "cold", LLC).batches > 100 * warm.batches


def test_tables_smaller_than_the_target_fall_short_and_say_so() -> None:
    spec = resolve_spec("rmc1").scaled(0.001)  # about 4 MB of tables
    cold = cycled_set(spec, QuerySpec(), 4, "cold", LLC)
    assert not cold.reached
    tables = sum(rows * spec.embedding_dim * 4 for rows in spec.rows)
    assert 0.9 * tables <= cold.working_set_bytes <= tables
    assert cold.llc_multiple < COLD_LLC_MULTIPLE


def test_the_input_memory_bound_caps_the_batches() -> None:
    spec = resolve_spec("rmc2")
    capped = cycled_set(spec, QuerySpec(), 1, "cold", LLC, max_input_bytes=64 << 10)
    from recstack.admission import input_bytes_per_batch

    assert capped.batches == (64 << 10) // input_bytes_per_batch(spec, 1)
    assert not capped.reached


def test_a_skewed_distribution_needs_more_batches_for_the_same_distinct_bytes() -> None:
    spec = resolve_spec("rmc1")
    uniform = cycled_set(spec, QuerySpec(), 4, "cold", LLC)
    zipf = cycled_set(spec, QuerySpec(distribution="zipf", zipf_exponent=0.8), 4, "cold", LLC)
    assert zipf.batches > uniform.batches


def test_cache_state_is_part_of_the_point() -> None:
    spec = resolve_spec("rmc1").scaled(0.001)
    cold, warm = Point(spec, 1), Point(spec, 1, cache="warm")
    assert cold.cache == "cold" and cold.key() != warm.key()
    assert cold.config_key() != warm.config_key()
    assert warm.label.endswith("warm")
    with pytest.raises(SpecError, match="cache"):
        Point(spec, 1, cache="lukewarm")


def test_the_machine_llc_is_read() -> None:
    assert machine_llc_bytes() >= 1 << 20


def test_a_quantized_point_cycles_more_batches_to_be_as_cold() -> None:
    """Distinct bytes are counted in the stored rows: int4 rows are a sixth of fp32's, so
    the cold set of an int4 point needs more batches to touch the same multiple of the LLC."""
    from recstack.precision import Precision
    from recstack.specs import zoo_spec

    spec, query = zoo_spec("rmc1"), QuerySpec()
    fp32 = cycled_set(spec, query, 64, "cold", 32 << 20)
    int4 = cycled_set(spec, query, 64, "cold", 32 << 20, precision=Precision("int4"))
    assert int4.batches > 3 * fp32.batches
    assert int4.reached and fp32.reached
