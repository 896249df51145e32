"""Execution backends: how a point's model runs, and which one "auto" picks.

- ``eager``: per-table ``nn.EmbeddingBag`` lookups, dense layers op by op (the reference).
- ``fused``: every pooled table's rows in one weight and one gather-and-pool for all tables
  (and one gather for all behaviour tables of DIN/DIEN); built directly in that layout
  (:func:`recstack.models.build_model` with ``fused=True``), same values as eager.
- ``compile``: ``torch.compile`` (inductor) of the model in the layout of
  :data:`COMPILE_FUSED`. Compilation happens on the first calls: :func:`prepare_backend`
  runs them, outside any timed loop, and turns any failure into a one-line RecstackError.
- ``static``: the fused model traced and run by PyTorch's Static Runtime, its operators
  called from C++ with no Python between them (:mod:`recstack.static_runtime`; CPU only).
  Its graphs are made by :func:`prepare_backend`, one per batch signature, before any timing.

``auto`` is not a backend but a choice: the fastest correct backend of the model among eager,
fused and static at the point's batch size (the raced batch size nearest to it). The choice
is a measurement of the machine, like its ceilings: :mod:`recstack.backend_race` races the
backends here and stores the outcome per platform and thread count (``backend_choices``);
planning reads it as a :class:`BackendChoices`. Where no race of this machine and thread
count is stored, auto reads ``backend_choice.yaml``, the shipped fallback measured on the
machine named in it by ``benchmarks/backend_choice.py``; :func:`resolve_with_basis` says
which of the two chose. compile is measured by the benchmark too (the file's ``fastest``
says where it would win) but auto does not pick it: a compiled model's
operator profile has no aten operators in model parts, so the software level of an auto sweep
would lose its meaning, and every point pays its compilation before measuring. (A static
model keeps its operators and parts: its profiled graphs carry the part scopes.) Points
resolve ``auto`` when they are made, so what the store holds is the backend that ran; where
static is chosen but cannot run (on CUDA, or a torch without Static Runtime), auto runs fused,
the layout static runs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError
from recstack.precision import FP32, Precision, check_supported, unsupported_reason
from recstack.specs import ModelSpec

BACKENDS: tuple[str, ...] = ("eager", "fused", "compile", "static")
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
    """The shipped choice file: ``{"choices": {device: {model or type: backend}},
    "by_batch_size": {device: {model or type: {batch size: backend}}}, ...}``."""
    import yaml

    if not CHOICE_FILE.is_file():
        return {"choices": {}}
    return yaml.safe_load(CHOICE_FILE.read_text()) or {"choices": {}}


def nearest_measured(batch_size: int, measured: list[int]) -> int:
    """The measured batch size nearest to ``batch_size`` on a log scale (ties: the larger):
    costs per sample change with the batch's order of magnitude, not its difference."""
    return min(measured, key=lambda m: (abs(math.log(m / batch_size)), -m))


@dataclass(frozen=True)
class BackendChoices:
    """The backends a stored race chose on one machine at one thread count: rows of
    ``(model, model_type, batch_size, backend)``. Built by :meth:`from_frame` from rows of
    the ``backend_choices`` table of one race (:func:`recstack.backend_race.stored_choices`)."""

    set_id: str
    platform_id: str
    threads: int
    row_scale: float
    rows: tuple[tuple[str, str, int, str], ...]

    @classmethod
    def from_frame(cls, frame: Any) -> BackendChoices:
        if frame.empty or frame.set_id.nunique() != 1:
            raise ValueError("BackendChoices: expected the rows of one stored race")
        first = frame.iloc[0]
        rows = tuple((str(r.model), str(r.model_type), int(r.batch_size), str(r.backend))
                     for r in frame.itertuples(index=False))
        return cls(set_id=str(first.set_id), platform_id=str(first.platform_id),
                   threads=int(first.threads), row_scale=float(first.row_scale), rows=rows)

    @property
    def basis(self) -> str:
        return f"race {self.set_id}"

    def choice(self, spec: ModelSpec, batch_size: int | None = None) -> str | None:
        """The raced choice for ``spec`` (by model name, else by model type: its models'
        most frequent choice, ties to the simpler backend) at the raced batch size nearest
        ``batch_size`` (without one: the most frequent over batch sizes); None when neither
        the model nor its type was raced."""
        mine = [row for row in self.rows if row[0] == spec.name] or \
            [row for row in self.rows if row[1] == spec.model_type]
        if not mine:
            return None
        if batch_size is not None:
            nearest = nearest_measured(batch_size, sorted({row[2] for row in mine}))
            mine = [row for row in mine if row[2] == nearest]
        picked = [row[3] for row in mine]
        order = list(BACKENDS)
        return min(set(picked), key=lambda b: (-picked.count(b),
                                               order.index(b) if b in order else len(order)))


def resolve_backend(backend: str, spec: ModelSpec, device: str = "cpu",
                    batch_size: int | None = None,
                    choices: BackendChoices | None = None,
                    precision: Precision = FP32) -> str:
    """``backend`` itself, or for ``auto`` the chosen backend (:func:`resolve_with_basis`)."""
    return resolve_with_basis(backend, spec, device, batch_size, choices, precision)[0]


def resolve_with_basis(backend: str, spec: ModelSpec, device: str = "cpu",
                       batch_size: int | None = None,
                       choices: BackendChoices | None = None,
                       precision: Precision = FP32) -> tuple[str, str]:
    """(the backend, what chose it). An explicit backend is itself (``"as given"``). For
    ``auto`` on the CPU: the choice of ``choices``, a race stored for this machine and the
    point's thread count (``"race <set_id>"``; the caller passes only such a race), where it
    raced the model or its type; else the shipped file (``"shipped file"``), by model name,
    else model type, at the nearest batch size it measured, else the model's choice over
    all batch sizes; else the reference (eager) on devices or models never measured. Where
    static is chosen but cannot run, fused (the layout static runs, without the runtime).
    Where the chosen backend cannot run ``precision`` (:func:`recstack.precision.
    unsupported_reason`), fused, which runs every precision of its device: races and the
    shipped file measured fp32, so a reduced precision takes their choice where it can."""
    if backend != AUTO:
        return backend, "as given"
    chosen = choices.choice(spec, batch_size) if choices is not None and device == "cpu" \
        else None
    if chosen is not None:
        basis = choices.basis
    else:
        chosen, basis = _shipped_choice(spec, device, batch_size), "shipped file"
    if chosen == "static":
        from recstack.static_runtime import unavailable_reason

        if unavailable_reason(device) is not None:
            chosen = "fused"  # the layout static runs, without the runtime
    chosen = chosen if chosen in BACKENDS else REFERENCE
    if unsupported_reason(precision, chosen, device) is not None:
        chosen = "fused"
    return chosen, basis


def _shipped_choice(spec: ModelSpec, device: str, batch_size: int | None) -> str:
    kind = "cuda" if device.startswith("cuda") else device
    document = backend_choices()
    choices = document.get("choices", {}).get(kind, {})
    chosen = choices.get(spec.name) or choices.get(spec.model_type) or REFERENCE
    by_batch = document.get("by_batch_size", {}).get(kind, {})
    per_size = by_batch.get(spec.name) or by_batch.get(spec.model_type)
    if batch_size is not None and per_size:
        per_size = {int(size): name for size, name in per_size.items()}
        chosen = per_size[nearest_measured(batch_size, list(per_size))]
    return chosen


def build_for_backend(spec: ModelSpec, backend: str, seed: int = 0,
                      device: str = "cpu", precision: Precision = FP32) -> Any:
    """The model of ``spec`` in ``precision`` ready to run on ``backend`` (``auto`` resolved
    first). The compile and static backends need :func:`prepare_backend` on the batches
    before they run them (compilation, graphs). A precision the backend or device cannot
    run is refused before anything is built."""
    from recstack.models import build_model

    backend = resolve_backend(backend, spec, device, precision=precision)
    if backend not in BACKENDS:
        raise RecstackError(f"backend: {backend!r} is not allowed; expected one of "
                            f"{', '.join((*BACKENDS, AUTO))}")
    check_supported(precision, backend, device)
    if backend == "static":
        from recstack import static_runtime

        reason = static_runtime.unavailable_reason(device)
        if reason is not None:  # before building: a full-size model takes seconds and GBs
            raise RecstackError(f"backend static: {reason}")
    fused = backend in ("fused", "static") or (backend == "compile" and COMPILE_FUSED)
    model = build_model(spec, seed=seed, device=device, fused=fused, precision=precision)
    if backend == "compile":
        import torch

        model = torch.compile(model, dynamic=COMPILE_DYNAMIC)
    elif backend == "static":
        model = static_runtime.StaticRuntimeModel(model)
    return model


def prepare_backend(model: Any, backend: str, batches: list[Any], device: str = "cpu",
                    part_scopes: bool = False) -> float | None:
    """Whatever ``backend`` must do before ``model`` runs ``batches`` in a timed loop:
    compile (``compile``: a call on every batch) or make the Static Runtime graphs
    (``static``; with ``part_scopes``, also the graphs a profiled run uses). Returns the
    seconds it took, or None for backends with nothing to prepare. Any failure is one
    RecstackError line: the point fails with it, and the sweep goes on."""
    import time

    start = time.perf_counter()
    if backend == "compile":
        warm_up_compiled(model, batches, device)
    elif backend == "static":
        model.prepare(batches, part_scopes=part_scopes)
    else:
        return None
    return time.perf_counter() - start


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
                            f"{error_headline(error)}") from None


def error_headline(error: BaseException) -> str:
    """The first line of an error, with its type (inductor's errors are pages long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {first}"[:300]
