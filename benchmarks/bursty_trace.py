"""A long trace unlike a stack-distance process, for ``benchmarks/trace_fit.py``: the shipped
samples' generator (:func:`recstack.sample_traces.access_stream`: Zipf popularity plus bursts
that repeat an id a log-uniform 1 to 512 accesses back) at 4 M ids in each of two tables
(2**22 rows with 30% reuse, 2**20 rows with 50%), one id per sample, in Meta's format. Run:

    .venv/bin/python benchmarks/bursty_trace.py /tmp/bursty.pt
    .venv/bin/python benchmarks/trace_fit.py /tmp/bursty.pt --out docs/results/traces/fit-bursty.json
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from recstack.sample_traces import access_stream

ACCESSES = 4_000_000
TABLES = ((1 << 22, 0.3), (1 << 20, 0.5))  # (rows, reuse probability)


def main(path: str) -> None:
    rng = np.random.default_rng(7)
    ids = [access_stream(rng, ACCESSES, rows, reuse) for rows, reuse in TABLES]
    lengths = torch.ones((len(TABLES), ACCESSES), dtype=torch.int64)
    offsets = torch.arange(len(TABLES) * ACCESSES + 1, dtype=torch.int64)
    torch.save((torch.from_numpy(np.concatenate(ids)), offsets, lengths), path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bursty.pt")
