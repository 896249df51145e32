"""Shared helpers: small scaled models and their inputs."""

from __future__ import annotations

import torch

from recstack.batch import Batch
from recstack.inputs import QuerySpec, generate_batches
from recstack.specs import ModelSpec, zoo_spec

# Rows small enough to build all eight models in milliseconds; every other size as published.
SMALL_SCALE = 1e-4


def small_spec(name: str) -> ModelSpec:
    return zoo_spec(name).scaled(SMALL_SCALE)


def one_batch(spec: ModelSpec, batch_size: int = 8, seed: int = 0) -> Batch:
    (batch,) = generate_batches(spec, QuerySpec(seed=seed), batch_size, 1)
    return batch


def outputs(model: object, batches: list[Batch]) -> list[torch.Tensor]:
    """``model`` on each batch, under inference mode as the timed loops run it."""
    with torch.inference_mode():
        return [model(batch) for batch in batches]
