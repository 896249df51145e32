"""Serving with a GPU engine: requests of at least the offload threshold run whole on the GPU,
the host-to-device copy inside their latency (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from recstack.errors import RecstackError
from recstack.executors import LocalExecutor
from recstack.levels import LevelOptions
from recstack.points import Point
from recstack.serving.config import ServingConfig
from recstack.serving.query_sizes import parse_query_sizes
from tests.conftest import small_spec

pytest.importorskip("mlperf_loadgen")


def _point() -> Point:
    config = ServingConfig(offered_qps=(50.0,), query_sizes=parse_query_sizes(
        "normal:48,16,96"), offload_threshold=48, min_duration_s=1.0, min_queries=100,
        library_requests=32, target_ms=100)
    return Point(small_spec("rmc1"), 16, threads=1, backend="fused", level="serving",
                 serving=config)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_large_requests_run_whole_on_the_gpu_engine():
    record = LocalExecutor(timeout_s=300).measure(_point(), None, LevelOptions())
    requests = record.requests
    assert record.summary.gpu_engine and requests.offloaded.any() and \
        (~requests.offloaded).any()
    assert (requests[requests.offloaded].sub_batches == 1).all()
    assert (requests[requests.offloaded]["items"] >= 48).all()
    assert record.tests.valid.iloc[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_an_offload_threshold_is_refused():
    with pytest.raises(RecstackError, match="needs a CUDA GPU"):
        LocalExecutor(timeout_s=120).measure(_point(), None, LevelOptions())
