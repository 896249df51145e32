"""The query sample library: requests cut into sub-batches ahead of the run, in shared
memory."""

from __future__ import annotations

import numpy as np

from recstack.inputs import QuerySpec
from recstack.serving.library import build_library, split
from recstack.serving.query_sizes import parse_query_sizes
from tests.conftest import small_spec


def test_split_is_deeprecsys_partition():
    assert split(100, 32) == [32, 32, 32, 4]
    assert split(64, 32) == [32, 32]
    assert split(5, 32) == [5]


def test_every_request_is_its_sub_batches():
    spec = small_spec("rmc1")
    library = build_library(spec, QuerySpec(seed=3), parse_query_sizes("normal:40,10,64"),
                            24, 16)
    assert library.requests == 24
    for request in range(24):
        parts = [library.batch(j).size for j in library.sub_batches(request)]
        assert parts == split(int(library.sizes[request]), 16)
    batch = library.batch(0)
    assert batch.dense.shape[0] == batch.size and batch.bag_offsets[0].shape == (batch.size,)


def test_offloaded_requests_stay_whole():
    spec = small_spec("rmc1")
    library = build_library(spec, QuerySpec(), parse_query_sizes("normal:40,10,64"), 32, 8,
                            offload_threshold=40)
    for request in range(32):
        whole = library.sizes[request] >= 40
        assert library.offloaded[request] == whole
        if whole:
            assert len(library.sub_batches(request)) == 1


def test_the_library_is_deterministic_and_moves_to_shared_memory():
    spec = small_spec("ncf")
    sizes = parse_query_sizes("fixed:20")
    first = build_library(spec, QuerySpec(seed=1), sizes, 8, 8)
    second = build_library(spec, QuerySpec(seed=1), sizes, 8, 8).share_memory()
    assert np.array_equal(first.sizes, second.sizes)
    for j in range(len(first.group)):
        assert first.batch(j).pooled_ids.equal(second.batch(j).pooled_ids)
    assert all(t.is_shared() for s in second.sets for t in s._tensors())
    assert second.nbytes == first.nbytes > 0
