"""The race that chooses ``auto``'s backend on this machine, and the store of its outcome.

For each model and batch size the candidates (:data:`CANDIDATES`: eager, fused, and static
where :func:`recstack.static_runtime.unavailable_reason` allows it; never compile, see
:mod:`recstack.backends`) run the same few query batches, generated before any clock starts.
Each candidate's outputs must equal eager's (``torch.allclose`` at :data:`RTOL` and
:data:`ATOL`, shapes equal too): a candidate that differs, or fails to build or prepare, is
disqualified and the reason kept. The qualified ones are timed in turns (``rounds`` rounds,
each giving every backend ``round_seconds`` of back-to-back calls timed one by one with
``perf_counter_ns``; the first backend of a round rotates), so that a load that comes and
goes on the machine falls on all alike; a backend's latency is the median over all its
calls. The choice (:func:`pick`): the lowest median, where each backend must beat the one
chosen before it (eager, then fused, then static) by :data:`MARGIN`, so that noise does not
choose the more complex backend.

Models race at a reduced row scale (``row_scale``, default 0.01, stored with the choice): the
backends differ in dispatch and fusion overhead (calls per operator, one gather-and-pool
against one per table, Python between operators), which does not depend on the tables' rows,
while building three backends of eight full-size models would take minutes and tens of GB.
The whole race runs in one fresh worker (:func:`recstack.worker.run_isolated`) at the
requested thread count, so the caller's process keeps its threads and memory.
``benchmarks/backend_choice.py`` uses the same pieces (with compile measured too) to write
the shipped fallback, ``backend_choice.yaml``.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from recstack.backends import (REFERENCE, BackendChoices, build_for_backend, error_headline,
                               prepare_backend)
from recstack.errors import RecstackError
from recstack.records import SCHEMA
from recstack.specs import ZOO_NAMES, ModelSpec

CANDIDATES: tuple[str, ...] = ("eager", "fused", "static")
"""What auto may pick, simplest first (the order :func:`pick` prefers on near ties)."""
MARGIN = 0.03
RTOL = 1e-4
ATOL = 1e-5
"""Tolerances of the output check: the backends compute the same sums in another order (one
pooled gather instead of one per table, Static Runtime's fused kernels), which moves float32
results by a few units in the last place; a wrong layout or table moves them by far more."""
DEFAULT_ROW_SCALE = 0.01
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 16, 256)
RACE_COLUMNS = [name for name in SCHEMA.table("backend_choices").names if name != "set_id"]
"""A race's rows: the declared table less the set id the store gives them."""
Builder = Callable[[ModelSpec, str], Any]


@dataclass(frozen=True)
class RaceSettings:
    """How long the race times each candidate (defaults: about 1.2 s per model and batch
    size for three candidates)."""

    rounds: int = 4
    round_seconds: float = 0.1
    warmup_seconds: float = 0.02
    num_batches: int = 4
    margin: float = MARGIN

    def __post_init__(self) -> None:
        for name in ("rounds", "num_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecstackError(f"{name}: {value!r} is not allowed; expected an integer "
                                    ">= 1")
        for name in ("round_seconds", "warmup_seconds", "margin"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise RecstackError(f"{name}: {value!r} is not allowed; expected a finite "
                                    "number >= 0")


# ---- the rule -------------------------------------------------------------------------------


def pick(scores: Mapping[str, float], order: Sequence[str] = CANDIDATES,
         margin: float = MARGIN) -> str:
    """The backend of ``order`` with the lowest score (a median, or a ratio to eager), where
    each must beat the one chosen before it by more than ``margin``; ``order[0]`` (the
    reference) is chosen unless another beats it. Backends without a score are not eligible."""
    chosen = order[0]
    for backend in order[1:]:
        score = scores.get(backend)
        if score is not None and (chosen not in scores
                                  or score < scores[chosen] * (1 - margin)):
            chosen = backend
    return chosen


def mismatch(outputs: Sequence[Any], expected: Sequence[Any]) -> str | None:
    """Why ``outputs`` are not the reference's ``expected`` (one per batch), or None."""
    import torch

    for output, reference in zip(outputs, expected, strict=True):
        if not isinstance(output, torch.Tensor) or output.shape != reference.shape:
            shape = getattr(output, "shape", type(output).__name__)
            return f"outputs differ from {REFERENCE}'s: shape {tuple(shape)} against " \
                   f"{tuple(reference.shape)}"
        if not torch.allclose(output.float(), reference.float(), rtol=RTOL, atol=ATOL):
            difference = (output.float() - reference.float()).abs().max().item()
            return (f"outputs differ from {REFERENCE}'s (max abs difference {difference:.3g}; "
                    f"allowed rtol {RTOL:g}, atol {ATOL:g})")
    return None


# ---- one batch size -----------------------------------------------------------------------


def time_in_turns(models: Mapping[str, Any], batches: Sequence[Any],
                  settings: RaceSettings) -> dict[str, list[int]]:
    """Nanoseconds of every timed call of each model, the models taking turns (round ``r``
    starts with the ``r``-th model), each turn cycling through ``batches``."""
    import torch

    names = list(models)
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    with torch.inference_mode():
        # Warm-up (allocator, caches): the output check already ran every batch once, so
        # a call or a few, not a pass, which costs seconds where one call takes 100 ms.
        for name in names:
            end = clock() + int(settings.warmup_seconds * 1e9)
            index = 0
            while True:
                models[name](batches[index % len(batches)])
                index += 1
                if clock() >= end:
                    break
        for round_index in range(settings.rounds):
            offset = round_index % len(names)
            for name in names[offset:] + names[:offset]:
                model, taken = models[name], samples[name]
                end = clock() + int(settings.round_seconds * 1e9)
                index = 0
                while True:
                    batch = batches[index % len(batches)]
                    start = clock()
                    model(batch)
                    stop = clock()
                    taken.append(stop - start)
                    index += 1
                    if stop >= end:
                        break
    return samples


def race_batch(models: Mapping[str, Any], batches: Sequence[Any],
               settings: RaceSettings | None = None,
               device: str = "cpu") -> dict[str, dict[str, Any]]:
    """Prepares, checks and times ``models`` (backend name -> model; the first is the
    reference) on ``batches``: ``{backend: {"median_us", "prepare_s", "calls"}}``, or
    ``{backend: {"error": why}}`` for a disqualified one."""
    import torch

    settings = settings or RaceSettings()
    reference = next(iter(models))
    with torch.inference_mode():
        expected = [models[reference](batch) for batch in batches]
    results: dict[str, dict[str, Any]] = {}
    qualified: dict[str, Any] = {}
    for name, model in models.items():
        try:
            seconds = prepare_backend(model, name, list(batches), device)
            if name == reference:
                reason = None
            else:
                with torch.inference_mode():
                    reason = mismatch([model(batch) for batch in batches], expected)
        except (RecstackError, RuntimeError, ValueError, TypeError) as error:
            if name == reference:
                raise
            reason = str(error) if isinstance(error, RecstackError) else error_headline(error)
        if reason is not None:
            results[name] = {"error": reason}
            continue
        qualified[name] = model
        results[name] = {"prepare_s": None if seconds is None else round(seconds, 3)}
    for name, values in time_in_turns(qualified, batches, settings).items():
        results[name].update(median_us=round(statistics.median(values) / 1e3, 2),
                             calls=len(values))
    return results


# ---- the race -------------------------------------------------------------------------------


def _build_candidates(spec: ModelSpec, build: Builder) -> tuple[dict[str, Any], dict[str, str]]:
    """The candidates' models of ``spec``, and why the others are not raced."""
    from recstack.static_runtime import unavailable_reason

    models: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for backend in CANDIDATES:
        why = unavailable_reason("cpu") if backend == "static" else None
        if why is not None:
            reasons[backend] = why
            continue
        try:
            models[backend] = build(spec, backend)
        except (RecstackError, RuntimeError) as error:
            if backend == REFERENCE:
                raise
            reasons[backend] = str(error) if isinstance(error, RecstackError) \
                else error_headline(error)
    return models, reasons


def race_specs(specs: Sequence[ModelSpec], batch_sizes: Sequence[int], threads: int,
               settings: RaceSettings, build: Builder | None = None) -> list[dict[str, Any]]:
    """The race in this process, at ``threads`` intra-op threads (restored after): one row
    per model and batch size (``model``, ``model_type``, ``row_scale``, ``batch_size``,
    ``backend``, ``candidates``)."""
    import torch

    from recstack.inputs import QuerySpec, generate_batches

    build = build or _build
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for spec in specs:
            models, reasons = _build_candidates(spec, build)
            for batch_size in batch_sizes:
                batches = generate_batches(spec, QuerySpec(), batch_size, settings.num_batches)
                results = race_batch(models, batches, settings)
                candidates: dict[str, Any] = dict(reasons)
                for name, result in results.items():
                    candidates[name] = result.get("median_us", result.get("error"))
                medians = {name: result["median_us"] for name, result in results.items()
                           if "median_us" in result}
                rows.append({"model": spec.name, "model_type": spec.model_type,
                             "row_scale": float(spec.row_scale), "batch_size": int(batch_size),
                             "backend": pick(medians, CANDIDATES, settings.margin),
                             "candidates": {name: candidates[name] for name in CANDIDATES
                                            if name in candidates}})
            del models
            gc.collect()  # the next model's tables reuse this one's memory
    finally:
        torch.set_num_threads(previous)
    return rows


def _build(spec: ModelSpec, backend: str) -> Any:
    return build_for_backend(spec, backend)


def race_backends(specs: Sequence[ModelSpec], batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                  threads: int = 1, row_scale: float | None = DEFAULT_ROW_SCALE,
                  settings: RaceSettings | None = None, platform_id: str | None = None,
                  isolated: bool = True, build: Builder | None = None) -> pd.DataFrame:
    """Races the candidates on every spec (at ``row_scale``; None keeps the specs' own) and
    batch size at ``threads`` threads, in one fresh worker (``isolated``; else in this
    process). ``build(spec, backend)`` makes a candidate's model (default
    :func:`recstack.backends.build_for_backend`; isolated, a module-level function).
    Returns rows of the ``backend_choices`` table without ``set_id`` (:data:`RACE_COLUMNS`)."""
    import torch

    from recstack import __version__
    from recstack.limits import check_scale
    from recstack.worker import run_isolated

    settings = settings or RaceSettings()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise RecstackError(f"--threads: {threads!r} is not allowed; expected an integer >= 1")
    if not batch_sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                              for b in batch_sizes):
        raise RecstackError(f"--batch-sizes: {list(batch_sizes)!r} is not allowed; expected "
                            "positive integers")
    if not specs:
        raise RecstackError("--model: nothing given; expected at least one model")
    check_scale(row_scale, "--row-scale")
    if row_scale is not None:
        specs = [spec.scaled(row_scale) for spec in specs]
    if platform_id is None:
        from recstack.platform_info import collect_platform
        from recstack.platform_info import platform_id as identify

        platform_id = identify(collect_platform())
    arguments = (list(specs), [int(b) for b in batch_sizes], threads, settings, build)
    rows = run_isolated(race_specs, *arguments) if isolated else race_specs(*arguments)
    frame = pd.DataFrame(rows).assign(
        platform_id=platform_id, threads=threads, measured_at=datetime.now(UTC),
        recstack_version=__version__, torch_version=str(torch.__version__))
    return frame[RACE_COLUMNS]


# ---- stored races ---------------------------------------------------------------------------


def covers(stored: pd.DataFrame, models: Sequence[str], batch_sizes: Sequence[int],
           row_scale: float) -> bool:
    """Whether a stored race has every model at every batch size, raced at ``row_scale``."""
    if stored.empty:
        return False
    raced = set(zip(stored.model, stored.batch_size.astype(int), strict=True))
    scales = stored.row_scale.astype(float)
    return ({(m, int(b)) for m in models for b in batch_sizes} <= raced
            and all(math.isclose(s, row_scale, rel_tol=1e-9) for s in scales))


def ensure_backend_choices(store: Any, threads: int, models: Sequence[str] = ZOO_NAMES,
                           batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                           refresh: bool = False, row_scale: float = DEFAULT_ROW_SCALE,
                           settings: RaceSettings | None = None,
                           isolated: bool = True) -> tuple[pd.DataFrame, bool]:
    """This machine's newest race at ``threads`` from ``store`` (a ResultStore) when it
    covers ``models`` (names or spec files) at ``batch_sizes`` and ``row_scale``; else (or
    with ``refresh``) a new race, stored first. Returns (rows of ``backend_choices`` of that
    race, whether it was raced now)."""
    from recstack.platform_info import collect_platform, describe_platform, platform_id
    from recstack.specs import resolve_spec

    specs = [resolve_spec(name) for name in models]
    platform = collect_platform()
    identity = platform_id(platform)
    if not refresh:
        stored = store.load_backend_choices(identity, threads)
        if covers(stored, [spec.name for spec in specs], batch_sizes, row_scale):
            return stored, False
    frame = race_backends(specs, batch_sizes, threads, row_scale, settings,
                          platform_id=identity, isolated=isolated)
    store.write_backend_choices(frame, platform, describe_platform(platform))
    return store.load_backend_choices(identity, threads), True


def stored_choices_at(store_path: Any, counts: Any) -> dict[int, BackendChoices | None]:
    """Per thread count in ``counts``, the newest race stored for this machine in the store
    at ``store_path`` (None for a count without one); nothing when the file does not exist."""
    from pathlib import Path

    from recstack.platform_info import collect_platform, platform_id
    from recstack.store import ResultStore

    if store_path is None or not Path(store_path).is_file():
        return {}
    identity = platform_id(collect_platform())
    store = ResultStore(store_path)
    return {count: stored_choices(store, identity, count) for count in counts}


def stored_choices(store: Any, platform_id: str | None, threads: int) -> BackendChoices | None:
    """The newest race stored for ``platform_id`` (None: this machine) at ``threads``, as
    ``auto`` reads it; None when there is none (auto then reads the shipped file)."""
    if platform_id is None:
        from recstack.platform_info import collect_platform
        from recstack.platform_info import platform_id as identify

        platform_id = identify(collect_platform())
    stored = store.load_backend_choices(platform_id, threads)
    return None if stored.empty else BackendChoices.from_frame(stored)
