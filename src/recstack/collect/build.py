"""Build cost of a model (time, peak memory) and a sanity check of its forward pass."""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass

from recstack.errors import RecstackError
from recstack.specs import ModelSpec
from recstack.worker import WorkerCrashed, run_isolated


class BuildCheckFailed(RecstackError):
    """The build or the forward check could not run (not that it ran and gave bad output)."""


@dataclass(frozen=True)
class BuildCheck:
    """What building and running one model once showed."""

    name: str
    row_scale: float
    parameters: int
    model_bytes: int
    embedding_bytes: int
    build_seconds: float
    peak_memory_growth_bytes: int
    batch_sizes: tuple[int, ...]
    forward_ok: tuple[bool, ...]
    output_shapes: tuple[tuple[int, ...], ...]

    @property
    def build_seconds_per_gb(self) -> float:
        return self.build_seconds / max(self.embedding_bytes / 1e9, 1e-9)

    @property
    def peak_memory_ratio(self) -> float:
        """Growth of peak resident memory while building, over the model's bytes."""
        return self.peak_memory_growth_bytes / self.model_bytes

    def to_dict(self) -> dict[str, object]:
        record = asdict(self)
        record.update(build_seconds_per_gb=self.build_seconds_per_gb,
                      peak_memory_ratio=self.peak_memory_ratio)
        return record


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def check_build(spec: ModelSpec, batch_sizes: list[int], seed: int = 0) -> BuildCheck:
    """Builds ``spec`` and runs one forward per batch size on synthetic queries.

    Meant for a fresh process (see :func:`check_build_isolated`): the peak-memory reading is
    the process's high-water mark.
    """
    import torch

    from recstack.footprint import footprint
    from recstack.inputs import QuerySpec, generate_batches
    from recstack.models import build_model

    cost = footprint(spec)
    baseline = _peak_rss_bytes()
    start = time.perf_counter()
    model = build_model(spec, seed=seed)
    build_seconds = time.perf_counter() - start
    growth = _peak_rss_bytes() - baseline

    forward_ok, shapes = [], []
    for batch_size in batch_sizes:
        (batch,) = generate_batches(spec, QuerySpec(seed=seed), batch_size, 1)
        with torch.inference_mode():
            output = model(batch)
        shapes.append(tuple(output.shape))
        forward_ok.append(bool(output.shape[0] == batch_size
                               and torch.isfinite(output).all()
                               and ((output >= 0) & (output <= 1)).all()))
    return BuildCheck(
        name=spec.name, row_scale=spec.row_scale, parameters=cost.parameters,
        model_bytes=cost.model_bytes, embedding_bytes=cost.embedding_bytes,
        build_seconds=build_seconds, peak_memory_growth_bytes=growth,
        batch_sizes=tuple(batch_sizes), forward_ok=tuple(forward_ok),
        output_shapes=tuple(shapes),
    )


def check_build_isolated(spec: ModelSpec, batch_sizes: list[int], seed: int = 0) -> BuildCheck:
    """:func:`check_build` in a fresh process; a dead worker raises BuildCheckFailed."""
    try:
        return run_isolated(check_build, spec, batch_sizes, seed)
    except WorkerCrashed as crash:
        raise BuildCheckFailed(str(crash)) from None
