"""How far a reduced-precision point's predictions are from fp32's on the same queries.

The reference is the eager fp32 model of the same spec and seed (the tables hold the values
the reduced tables were rounded or quantized from: :mod:`recstack.models.table_formats`),
run on the point's own batches, up to :data:`DEVIATION_SAMPLES` samples. It is built after
the point's model and its build measured, and freed before anything is timed; where it does
not fit in memory beside the point's model, the deviation is not measured (None) rather
than guessed.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from recstack.errors import RecstackError
from recstack.points import Point

DEVIATION_SAMPLES = 8192
"""Samples compared at most: the point's batches in order, at least one whole batch."""


@dataclass(frozen=True)
class OutputDeviation:
    """Absolute differences between the point's predictions and fp32's."""

    max_abs: float
    mean_abs: float
    samples: int


def compared_batches(batches: Any, most_samples: int = DEVIATION_SAMPLES) -> list[Any]:
    """The first batches of the point's set holding at most ``most_samples`` samples (at
    least one batch)."""
    chosen, samples = [], 0
    for index in range(len(batches)):
        batch = batches[index]
        if chosen and samples + batch.size > most_samples:
            break
        chosen.append(batch)
        samples += batch.size
    return chosen


def _predictions(model: Any, batches: list[Any], device: str) -> Any:
    import torch

    with torch.inference_mode():
        return torch.cat([model(batch.to(device)).float().cpu() for batch in batches])


def output_deviation(point: Point, model: Any, batches: Any) -> OutputDeviation | None:
    """The deviation of ``model`` (``point``'s, in its precision) from the fp32 model on
    ``batches``; None for an fp32 point, or where the fp32 model does not fit now."""
    if point.precision.is_reference:
        return None
    from recstack.admission import require_memory
    from recstack.models import build_model

    chosen = compared_batches(batches)
    predictions = _predictions(model, chosen, point.device)
    try:
        require_memory(point.spec)
    except RecstackError:
        return None
    reference = build_model(point.spec, seed=point.seed, device=point.device,
                            check_memory=False)
    expected = _predictions(reference, chosen, point.device)
    del reference
    gc.collect()
    difference = (predictions - expected).abs()
    return OutputDeviation(max_abs=float(difference.max()), mean_abs=float(difference.mean()),
                           samples=int(predictions.shape[0]))
