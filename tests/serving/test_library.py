"""The query sample library: requests cut into sub-batches ahead of the run, in shared
memory."""

from __future__ import annotations

import numpy as np

from recstack.inputs import QuerySpec
from recstack.layout import table_layout
from recstack.serving.library import build_library, split
from recstack.serving.query_sizes import parse_query_sizes
from recstack.trace_files import write_trace
from recstack.trace_queries import file_query
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


def test_trace_requests_read_the_trace_as_one_stream_across_sub_batch_sizes(tmp_path):
    spec = small_spec("rmc1")
    samples = 50  # fewer than the library's items: the stream wraps around
    # Sample s holds id s in every table, so an item's id names the sample it read.
    bags = [[[s] for s in range(samples)] for _ in spec.rows]
    query = file_query("trace", write_trace(tmp_path / "t.pt", bags))
    library = build_library(spec, query, parse_query_sizes("normal:40,10,64"), 24, 16)
    assert len(library.sets) > 1  # sub-batches of several sizes, drawn as one stream
    table = table_layout(spec).pooled.index(0)
    read = [library.batch(j).bag_indices[table].tolist()
            for request in range(library.requests) for j in library.sub_batches(request)]
    items = int(library.sizes.sum())
    assert [i for ids in read for i in ids] == [k % samples for k in range(items)]
