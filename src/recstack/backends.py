"""Execution backends: how a point's model runs, and which one "auto" picks.

- ``eager``: per-table ``nn.EmbeddingBag`` lookups, dense layers op by op (the reference).
- ``fused``: every pooled table's rows in one weight and one gather-and-pool for all tables
  (and one gather for all behaviour tables of DIN/DIEN); built directly in that layout
  (:func:`recstack.models.build_model` with ``fused=True``), same values as eager.
- ``compile``: ``torch.compile`` (inductor) of the model in the layout of
  :data:`COMPILE_FUSED`. Compilation happens on the first calls: :func:`warm_up_compiled`
  runs them, outside any timed loop, and turns any failure into a one-line RecstackError.

``auto`` is not a backend but a choice: the fastest correct backend of the model among eager
and fused, read from ``backend_choice.yaml``, a data file of measurements made on the machine
named in it by ``benchmarks/backend_choice.py``. compile is measured there too (the file's
``fastest`` says where it would win) but auto does not pick it: a compiled model's operator
profile has no aten operators in model parts, so the software level of an auto sweep would
lose its meaning, and every point pays its compilation before measuring. Points resolve
``auto`` when they are made, so what the store holds is the backend that ran.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError
from recstack.specs import ModelSpec

BACKENDS: tuple[str, ...] = ("eager", "fused", "compile")
AUTO = "auto"
CHOICE_FILE = Path(__file__).with_name("backend_choice.yaml")
REFERENCE = "eager"
COMPILE_FUSED = True
"""``compile`` compiles the fused layout (one embedding call for inductor to schedule)."""
COMPILE_DYNAMIC = False
"""Shapes are specialized (``dynamic=False``): a point has one batch size, and its batches'
lookup counts vary only without fixed pooling (then each distinct batch compiles once, in
warm-up). Dynamic shapes cost more per call at small batch (see docs/design.md)."""


@functools.lru_cache(maxsize=1)
def backend_choices() -> dict[str, Any]:
    """The shipped choice file: ``{"choices": {device: {model or type: backend}}, ...}``."""
    import yaml

    if not CHOICE_FILE.is_file():
        return {"choices": {}}
    return yaml.safe_load(CHOICE_FILE.read_text()) or {"choices": {}}


def resolve_backend(backend: str, spec: ModelSpec, device: str = "cpu") -> str:
    """``backend`` itself, or for ``auto`` the measured choice for ``spec``: by model name
    (a scaled zoo model keeps its name), else by model type, else the reference (eager) on
    devices or models that were never measured."""
    if backend != AUTO:
        return backend
    kind = "cuda" if device.startswith("cuda") else device
    choices = backend_choices().get("choices", {}).get(kind, {})
    chosen = choices.get(spec.name) or choices.get(spec.model_type) or REFERENCE
    return chosen if chosen in BACKENDS else REFERENCE


def build_for_backend(spec: ModelSpec, backend: str, seed: int = 0,
                      device: str = "cpu") -> Any:
    """The model of ``spec`` ready to run on ``backend`` (``auto`` resolved first). A compiled
    model compiles on its first calls: run :func:`warm_up_compiled` before timing it."""
    from recstack.models import build_model

    backend = resolve_backend(backend, spec, device)
    if backend not in BACKENDS:
        raise RecstackError(f"backend: {backend!r} is not allowed; expected one of "
                            f"{', '.join((*BACKENDS, AUTO))}")
    fused = backend == "fused" or (backend == "compile" and COMPILE_FUSED)
    model = build_model(spec, seed=seed, device=device, fused=fused)
    if backend == "compile":
        import torch

        model = torch.compile(model, dynamic=COMPILE_DYNAMIC)
    return model


def warm_up_compiled(model: Any, batches: list[Any], device: str = "cpu") -> None:
    """Calls ``model`` once on every batch under inference mode (as the timed loop runs it),
    so every compilation happens here. Any failure becomes one line: the point fails with it
    as its error, and the sweep goes on."""
    import torch

    try:
        with torch.inference_mode():
            for batch in batches:
                model(batch.to(device))
    except Exception as error:  # noqa: BLE001 - whatever inductor raises is the reason
        raise RecstackError(f"backend compile: torch.compile failed here: "
                            f"{compile_failure(error)}") from None


def compile_failure(error: BaseException) -> str:
    """The first line of a compile error, with its type (inductor's are pages long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {first}"[:300]
