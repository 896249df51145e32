"""The chunked build's peak memory: a quantized table is made without a full fp32 copy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recstack.footprint import BUILD_MEMORY_FACTOR, REDUCED_FILL_THREADS, chunk_overhead_bytes
from recstack.host import usable_cores
from recstack.precision import row_bytes

ROWS, DIM = 4_000_000, 32  # 512 MB in fp32: a full fp32 copy could not hide under the bound

_CHILD = """
import json, sys
from recstack.models.embeddings import random_table

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(l.split()[1]) * 1024 for l in lines if l.startswith(key + ":"))

with open("/proc/self/clear_refs", "w") as reset:  # the peak (VmHWM) starts again from here
    reset.write("5")
before = status("VmRSS")
table = random_table({rows}, {dim}, 0, 0, sys.argv[1])
print(json.dumps({{"growth": status("VmHWM") - before,
                   "bytes": table.numel() * table.element_size()}}))
"""


def _clear_refs_works() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _clear_refs_works(), reason="resetting the peak resident memory "
                    "needs a writable /proc/self/clear_refs (Linux)")
@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_peak_memory_is_the_quantized_table_and_the_fill_chunks(precision: str) -> None:
    """Peak growth at most 1.2x the quantized bytes plus, per fill thread, one generator
    chunk and its converted rows (``footprint.chunk_overhead_bytes``)."""
    done = subprocess.run([sys.executable, "-c", _CHILD.format(rows=ROWS, dim=DIM), precision],
                          capture_output=True, text=True, timeout=300, check=True)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    quantized = ROWS * row_bytes(precision, DIM)
    assert measured["bytes"] == quantized
    threads = min(usable_cores(), REDUCED_FILL_THREADS)
    bound = BUILD_MEMORY_FACTOR * quantized + chunk_overhead_bytes(DIM, precision, threads)
    assert measured["growth"] <= bound, (measured, bound)
    assert bound < ROWS * DIM * 4  # the bound itself excludes a full fp32 copy
