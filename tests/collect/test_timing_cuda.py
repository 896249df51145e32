"""The CUDA path of the timing collector. Runs only where torch sees a CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from recstack.collect.timing import TimingSettings, measure_point
from recstack.models import build_model
from recstack.points import Point
from tests.conftest import one_batch, small_spec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU visible to torch on this machine")

QUICK = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.05,
                       min_iterations=5)


@pytest.mark.parametrize("name", ["rmc1", "din", "dien"])
def test_cuda_point_times_the_copy_separately(name: str) -> None:
    result = measure_point(Point(small_spec(name), batch_size=64, device="cuda"), QUICK)
    assert result.copy_ns is not None and len(result.copy_ns) == len(result.latency_ns)
    assert all(0 < copy < total for copy, total in zip(result.copy_ns, result.latency_ns))
    assert result.device_name == torch.cuda.get_device_name(0)


@pytest.mark.parametrize("name", ["rmc2", "ncf", "mtwnd", "dien"])
def test_cuda_and_cpu_outputs_agree(name: str) -> None:
    spec = small_spec(name)
    batch = one_batch(spec, batch_size=16)
    with torch.inference_mode():
        cpu = build_model(spec, seed=1)(batch)
        gpu = build_model(spec, seed=1, device="cuda")(batch.to("cuda")).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-5)
