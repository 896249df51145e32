"""scripts/device_check.sh: where no GPU is present, every CUDA step is skipped with the
reason and nothing is written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "scripts" / "device_check.sh"


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None,
                    reason="a GPU machine runs the script for real")
def test_without_a_gpu_the_cuda_steps_are_skipped_with_the_reason(tmp_path):
    out = tmp_path / "results"
    result = subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0
    assert "skipped: no NVIDIA GPU here" in result.stdout
    assert not out.exists()
