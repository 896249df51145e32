"""Framework overhead at small batch: latency of a scaled-down model's forward, and the share
of it spent outside any operator (Python, module calls, dispatch between operators).

Not a test: it times things. Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/framework_overhead.py [--model rmc1]
        [--row-scale 0.01] [--batch-sizes 1,16] [--threads 2] [--backends eager,fused]

For each backend and batch size it prints the median unprofiled latency over many iterations
(with p5-p95); from the PyTorch profiler the share of each iteration's wall time that no
top-level operator covers ("outside operators", inflated by the profiler's own cost per
operator); and, for DLRM models, the median of the same operators replayed without Python
(TorchScript trace) with the share of the Python forward it does not account for (an
estimate of the time outside operators free of profiler cost; the interpreter's own
per-operator cost makes it a slight underestimate). The Python forward and the replay are
timed in alternating rounds (``--rounds``), and the share is the median over rounds of each
round's gap, with its range: this host's speed drifts by tens of percent within minutes,
and two medians taken minutes apart would compare two different machines.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from recstack.collect.operators import ITERATION_SCOPE, summarize_iterations
from recstack.inputs import QuerySpec, generate_batches
from recstack.specs import resolve_spec


def _build(spec, backend: str):  # noqa: ANN001, ANN202 - a script
    try:
        from recstack.backends import build_for_backend
    except ImportError:  # before execution backends existed: eager only
        from recstack.models import build_model

        return build_model(spec, seed=0)
    return build_for_backend(spec, backend, seed=0)


def traced_replay(model, batches):  # noqa: ANN001, ANN201
    """The same operators replayed by TorchScript's C++ interpreter (the model traced on the
    first batch: the forward without Python between operators), and its arguments per batch.
    Its gap to the Python forward estimates the time outside operators without the
    profiler's own per-operator cost (which inflates the profiled share)."""
    import warnings

    from recstack.batch import Batch

    class Flat(torch.nn.Module):
        def __init__(self, inner, lookups):  # noqa: ANN001
            super().__init__()
            self.inner = inner
            self.lookups = lookups

        def forward(self, dense, indices, offsets, pooled_ids,  # noqa: ANN001, ANN202
                    pooled_offsets):  # noqa: ANN001
            return self.inner(Batch(size=dense.shape[0], dense=dense, bag_indices=indices,
                                    bag_offsets=offsets, pooled_ids=pooled_ids,
                                    pooled_offsets=pooled_offsets, lookups=self.lookups))

    first = batches[0]
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(Flat(model, first.lookups), _arguments(first),
                                 check_trace=False)
    return traced, [_arguments(b) for b in batches]


def _arguments(batch):  # noqa: ANN001, ANN202
    return (batch.dense, batch.bag_indices, batch.bag_offsets, batch.pooled_ids,
            batch.pooled_offsets)


def _timed(call, inputs, iterations: int) -> list[float]:  # noqa: ANN001
    clock = time.perf_counter_ns
    samples = []
    for index in range(iterations):
        start = clock()
        call(inputs[index % len(inputs)])
        samples.append((clock() - start) / 1e3)
    return samples


def interleaved(model, batches, iterations: int, rounds: int):  # noqa: ANN001, ANN201
    """Python forward and (DLRM) replay timed in alternating rounds, so that the host's drift
    over the run moves both alike: (all Python samples us, replay medians per round us or
    None, Python medians per round us)."""
    replay = traced_replay(model, batches) if _replayable(model) else None
    per_round = max(1, iterations // rounds)
    python_samples, python_medians, replay_medians = [], [], []
    with torch.inference_mode():
        for index in range(max(50, iterations // 10)):
            model(batches[index % len(batches)])
            if replay is not None:
                replay[0](*replay[1][index % len(batches)])
        for _ in range(rounds):
            samples = _timed(model, batches, per_round)
            python_samples += samples
            python_medians.append(statistics.median(samples))
            if replay is not None:
                traced, arguments = replay
                replay_medians.append(statistics.median(
                    _timed(lambda args: traced(*args), arguments, per_round)))
    return python_samples, (replay_medians if replay is not None else None), python_medians


def _replayable(model) -> bool:  # noqa: ANN001
    # The trace bakes in the batch's lookup counts: only models whose counts never change
    # within a point (fixed pooling) replay every batch; DLRM is the one this benchmark is for.
    return getattr(getattr(model, "spec", None), "model_type", "") == "dlrm"


def profiled_outside_share(model, batches) -> float:  # noqa: ANN001
    """Share of profiled wall time outside top-level operators (inflated by the profiler)."""
    count = len(batches)
    with torch.inference_mode(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(batches[0])
        for index in range(50):
            with torch.profiler.record_function(ITERATION_SCOPE):
                model(batches[index % count])
    recorded = [e for e in prof.events() if e.name == ITERATION_SCOPE]
    rows, walls = summarize_iterations(recorded, on_cuda=False)
    covered = sum(row["time_us"] for row in rows)
    wall = statistics.fmean(walls)
    return (wall - covered) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rmc1")
    parser.add_argument("--row-scale", type=float, default=0.01)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="eager")
    parser.add_argument("--iterations", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = resolve_spec(args.model).scaled(args.row_scale)
    print(f"{spec.name}@{args.row_scale:g}, {args.threads} threads, torch {torch.__version__}, "
          f"{args.rounds} alternating rounds")
    print(f"{'backend':<8} {'batch':>5} {'median us':>10} {'p5-p95 us':>16} "
          f"{'outside ops (profiled)':>24} {'replayed us':>12} {'outside (replay)':>17} "
          f"{'rounds min-max':>15}")
    for backend in args.backends.split(","):
        model = _build(spec, backend)
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            batches = generate_batches(spec, QuerySpec(), batch_size, 4)
            samples, replays, medians = interleaved(model, batches, args.iterations,
                                                    args.rounds)
            outside = profiled_outside_share(model, batches)
            median = statistics.median(samples)
            p5, p95 = np.percentile(samples, [5, 95])
            line = (f"{backend:<8} {batch_size:>5} {median:>10.1f} {p5:>7.1f}-{p95:<8.1f} "
                    f"{outside:>24.1%}")
            if replays is not None:
                # Per round: the gap of that round's Python median to its replay median.
                shares = [(m - r) / m for m, r in zip(medians, replays)]
                line += (f" {statistics.median(replays):>12.1f} "
                         f"{statistics.median(shares):>17.1%} "
                         f"{min(shares):>6.1%}-{max(shares):<8.1%}")
            print(line)


if __name__ == "__main__":
    main()
