"""Memory admission counts the whole point: model, query batches and activations."""

from __future__ import annotations

import dataclasses

import pytest

from recstack.admission import (input_bytes_per_batch, memory_margin, point_memory,
                                require_point_memory, require_stream_memory, usable_memory)
from recstack.errors import RecstackError
from recstack.footprint import footprint
from recstack.specs import ZOO_NAMES
from tests.conftest import one_batch, small_spec


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_input_bytes_match_the_generated_batches(name: str) -> None:
    spec = small_spec(name)
    assert input_bytes_per_batch(spec, 8) == one_batch(spec, 8).nbytes


def test_the_estimate_holds_model_inputs_and_activations() -> None:
    spec = small_spec("din")
    small, large = point_memory(spec, 16), point_memory(spec, 4096)
    assert small.model == large.model == footprint(spec).build_memory_bytes
    assert large.inputs == (4 + 2) * input_bytes_per_batch(spec, 4096)  # 4 kept, 2 transient
    assert large.activations > 200 * small.activations
    # Batches beyond the input budget are not kept: one batch at least.
    huge = point_memory(spec, 4096, max_input_bytes=1)
    assert huge.inputs == (1 + 2) * input_bytes_per_batch(spec, 4096)


def test_a_margin_is_left_to_the_machine() -> None:
    assert memory_margin(24 * 10**9) == 24 * 10**8
    assert memory_margin(10**9) == 512 * 2**20
    assert usable_memory(10**8) == 0


def test_a_long_behaviour_sequence_is_refused_before_allocation() -> None:
    spec = dataclasses.replace(small_spec("din"), sequence_length=200_000)
    with pytest.raises(RecstackError, match=r"din at batch 4096: needs about .* GB \(model "
                                            r".*query batches.*shorter sequence_length"):
        require_point_memory(spec, 4096, "din at batch 4096", available_bytes=24 * 10**9)
    require_point_memory(spec, 1, "din at batch 1", available_bytes=24 * 10**9)


def test_a_locality_stream_that_cannot_fit_is_refused() -> None:
    with pytest.raises(RecstackError, match="--batches: 1000000000 batches of 256"):
        require_stream_memory(small_spec("rmc1"), 256, 10**9, "--batches",
                              available_bytes=24 * 10**9)
    require_stream_memory(small_spec("rmc1"), 256, 4, "--batches", available_bytes=24 * 10**9)
