"""The build collector, in a fresh process."""

from __future__ import annotations

import pytest

from recstack.collect.build import BuildCheckFailed, check_build, check_build_isolated
from recstack.specs import zoo_spec
from recstack.worker import WorkerCrashed, run_isolated
from tests.conftest import small_spec


def test_check_build_in_process() -> None:
    result = check_build(small_spec("din"), [1, 16])
    assert result.forward_ok == (True, True)
    assert result.output_shapes == ((1, 2), (16, 2))
    assert result.build_seconds > 0


@pytest.mark.slow
def test_full_size_rmc1_builds_within_its_memory_budget() -> None:
    """RMC1 at full size (8 x 4,000,000 x 32, 4.1 GB) needs at most 1.2x its bytes to build."""
    result = check_build_isolated(zoo_spec("rmc1"), [1])
    assert result.row_scale == 1.0
    assert result.model_bytes > 4e9
    assert result.forward_ok == (True,)
    assert result.peak_memory_ratio <= 1.2


def _die() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def _fail() -> None:
    raise ValueError("inside the worker")


def test_a_dead_worker_is_reported_not_fatal() -> None:
    with pytest.raises(WorkerCrashed, match="died"):
        run_isolated(_die)


def test_worker_exceptions_come_back() -> None:
    with pytest.raises(ValueError, match="inside the worker"):
        run_isolated(_fail)


def test_build_check_failure_type() -> None:
    assert issubclass(BuildCheckFailed, Exception)
