"""Points: what one measurement is. A sweep is a list of points; nothing else decides what gets
measured."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from recstack.backends import AUTO, BACKENDS, resolve_backend
from recstack.errors import SpecError
from recstack.inputs import QuerySpec
from recstack.limits import INT32_MAX, SEED_MAX, THREADS_MAX, check_int
from recstack.specs import ModelSpec

# Execution backends a point can run on (see recstack.backends); each gives the same outputs
# as "eager". BACKEND_CHOICES adds "auto", which a point resolves when it is made.
BACKEND_CHOICES: tuple[str, ...] = (*BACKENDS, AUTO)
__all__ = ["AUTO", "BACKENDS", "BACKEND_CHOICES", "COLLECTORS", "Point"]
# What a point measures: its collector. Timing and operator profiles of the same configuration
# are separate points, measured in separate workers: profiled runs never time anything.
COLLECTORS: tuple[str, ...] = ("timing", "operators", "hardware")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Point:
    """One thing to measure: a model spec at a batch size, on a device, with a number of
    intra-op threads and an execution backend, fed queries drawn as ``query`` says.

    ``backend="auto"`` is replaced, when the point is made, by the backend measured fastest
    for the model at that batch size (:func:`recstack.backends.resolve_backend`): a point
    always names the backend that runs, and its key and label say so."""

    spec: ModelSpec
    batch_size: int
    device: str = "cpu"
    threads: int = 1
    backend: str = "eager"
    query: QuerySpec = field(default_factory=QuerySpec)
    seed: int = 0
    collector: str = "timing"

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1, INT32_MAX)
        check_int("threads", self.threads, 1, THREADS_MAX)
        check_int("seed", self.seed, 0, SEED_MAX)
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise SpecError("device", self.device, "expected cpu, cuda or cuda:N")
        if self.backend == AUTO:
            object.__setattr__(self, "backend", resolve_backend(AUTO, self.spec, self.device,
                                                                self.batch_size))
        if self.backend not in BACKENDS:
            raise SpecError("backend", self.backend,
                            f"expected one of {', '.join(BACKEND_CHOICES)}")
        if self.collector not in COLLECTORS:
            raise SpecError("collector", self.collector,
                            f"expected one of {', '.join(COLLECTORS)}")

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
        }

    def config_key(self) -> str:
        """A stable digest of :meth:`configuration`: joins the levels measured of one
        configuration (its timing and its operator profile)."""
        return _digest(self.configuration())

    def key(self) -> str:
        """A stable digest of the configuration and the collector: the point's id in a run."""
        return _digest({**self.configuration(), "collector": self.collector})

    @property
    def label(self) -> str:
        scale = "" if self.spec.is_full_size else f"@{self.spec.row_scale:g}"
        what = "" if self.collector == "timing" else f" [{self.collector}]"
        return (f"{self.spec.name}{scale} b{self.batch_size} {self.device} "
                f"t{self.threads} {self.backend}{what}")


def _digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
