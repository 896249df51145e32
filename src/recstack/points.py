"""Points: what one measurement is. A sweep is a list of points; nothing else decides what gets
measured."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from recstack.backends import AUTO, BACKENDS
from recstack.errors import SpecError
from recstack.inputs import QuerySpec
from recstack.levels import LEVEL_NAMES, LEVELS
from recstack.limits import INT32_MAX, SEED_MAX, THREADS_MAX, check_int
from recstack.precision import FP32, Precision, check_supported
from recstack.serving.config import ServingConfig
from recstack.specs import ModelSpec
from recstack.working_set import DEFAULT_CACHE, check_cache_state

# Execution backends a point can run on (see recstack.backends); each gives the same outputs
# as "eager". BACKEND_CHOICES adds "auto", which planning resolves before a point is made.
BACKEND_CHOICES: tuple[str, ...] = (*BACKENDS, AUTO)
__all__ = ["BACKEND_CHOICES", "LEVEL_NAMES", "Point"]
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
_PLATFORM = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class Point:
    """One thing to measure: a model spec at a batch size, on a device, with a number of
    intra-op threads and an execution backend, in a numeric ``precision`` (tables and dense
    layers, :mod:`recstack.precision`), fed queries drawn as ``query`` says from a
    working set of the ``cache`` state (:mod:`recstack.working_set`: ``cold`` or ``warm``),
    at one level of the stack. A value: making one reads nothing and probes nothing.

    The backend is one that runs (``auto`` is resolved while planning, by
    :func:`recstack.backends.resolve_backend`): a point's key and label name it. Timing and
    operator profiles of one configuration are separate points, measured in separate
    workers: profiled runs never time anything."""

    spec: ModelSpec
    batch_size: int
    device: str = "cpu"
    threads: int = 1
    backend: str = "eager"
    query: QuerySpec = field(default_factory=QuerySpec)
    seed: int = 0
    level: str = "timing"
    cache: str = DEFAULT_CACHE
    serving: ServingConfig | None = None
    """The load and deployment of a ``serving`` point (its ``batch_size`` is the sub-batch
    size, its ``threads`` each engine's); None at every other level."""
    platform: str | None = None
    """The platform (a ``platform_info.platform_id``) the point must be measured on, where a
    cluster measures it on each of several; None: wherever it runs."""
    precision: Precision = FP32

    def __post_init__(self) -> None:
        check_cache_state(self.cache)
        check_int("batch_size", self.batch_size, 1, INT32_MAX)
        check_int("threads", self.threads, 1, THREADS_MAX)
        check_int("seed", self.seed, 0, SEED_MAX)
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise SpecError("device", self.device, "expected cpu, cuda or cuda:N")
        if self.backend == AUTO:
            raise SpecError("backend", self.backend, "a point runs one backend; resolve auto "
                            "while planning (recstack.backends.resolve_backend)")
        if self.backend not in BACKENDS:
            raise SpecError("backend", self.backend,
                            f"expected one of {', '.join(BACKEND_CHOICES)}")
        if self.level not in LEVELS:
            raise SpecError("level", self.level, f"expected one of {', '.join(LEVEL_NAMES)}")
        if self.platform is not None and not (isinstance(self.platform, str)
                                              and _PLATFORM.match(self.platform)):
            raise SpecError("platform", self.platform, "expected a platform id (16 hex "
                            "digits, as `recstack fleet` lists them)")
        if not isinstance(self.precision, Precision):
            raise SpecError("precision", self.precision, "expected a Precision")
        check_supported(self.precision, self.backend, self.device)
        if (self.level == "serving") != (self.serving is not None):
            raise SpecError("serving", self.serving, "a serving configuration is given to "
                            "serving points, and only to them")

    def configuration(self) -> dict[str, Any]:
        """What runs (model, inputs, deployment), without what measures it."""
        return {
            "spec": self.spec.to_config(),
            "batch_size": self.batch_size,
            "device": self.device,
            "threads": self.threads,
            "backend": self.backend,
            "query": self.query.to_dict(),
            "seed": self.seed,
            "cache": self.cache,
            # Only serving points carry it: every other point's key stays what it was.
            **({} if self.serving is None else {"serving": self.serving.to_dict()}),
            **({} if self.platform is None else {"platform": self.platform}),
            # Only reduced-precision points carry it: an fp32 point's key stays what it was.
            **({} if self.precision.is_reference else {"precision": self.precision.to_dict()}),
        }

    def config_key(self) -> str:
        """A stable digest of :meth:`configuration`: joins the levels measured of one
        configuration (its timing and its operator profile)."""
        return _digest(self.configuration())

    @property
    def method_version(self) -> int:
        return LEVELS[self.level].method_version

    def key(self) -> str:
        """A stable digest of the configuration, the level and its method version: the
        point's id in a run (a new method measures again what an old one measured)."""
        return _digest({**self.configuration(), "level": self.level,
                        "method_version": self.method_version})

    @property
    def label(self) -> str:
        scale = "" if self.spec.is_full_size else f"@{self.spec.row_scale:g}"
        what = "" if self.level == "timing" else f" [{self.level}]"
        if self.platform is not None:
            what += f" on {self.platform[:8]}"
        if self.serving is not None:
            config = self.serving
            load = "search" if config.searches else \
                ",".join(f"{q:g}" for q in config.offered_qps) + "qps" \
                if config.offered_qps else "measured"
            split = "whole" if self.batch_size >= config.query_sizes.maximum \
                else f"sub{self.batch_size}"
            offload = "" if config.offload_threshold is None \
                else f" gpu>={config.offload_threshold}"
            return (f"{self.spec.name}{scale} {config.scenario} {load} "
                    f"{config.engines}x{self.threads}t {split}{offload} {self.backend}"
                    f"{self.precision_label}{what}")
        warm = " warm" if self.cache == "warm" else ""
        return (f"{self.spec.name}{scale} b{self.batch_size} {self.device} "
                f"t{self.threads} {self.backend}{self.precision_label}{warm}{what}")

    @property
    def precision_label(self) -> str:
        """`` emb=int8,dense=fp32`` (with a leading space), or nothing in fp32."""
        return "" if self.precision.is_reference else f" {self.precision.label}"


def _digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
