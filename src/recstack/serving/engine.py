"""An inference engine: one process, pinned to its own cores, running the model on the
sub-batches the scheduler sends it.

Messages are raw bytes over a pipe, never pickled tensors: the scheduler sends a ticket and
a sub-batch id (``<qq``; ticket -1 stops the engine), the engine answers with the ticket and
when it started and finished (``<qqq``, ``time.perf_counter_ns``, one clock for every process
of a machine). The sub-batches themselves
are views of the shared :class:`~recstack.serving.library.SampleLibrary`, made before the
engine says it is ready; the model's tables are the serving process's shared tensors.

A GPU engine copies each request to the device inside its timed span (the host-to-device
copy is part of the latency, as the paper counts it) and synchronizes before it answers.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

STOP = -1
REQUEST = struct.Struct("<qq")
RESULT = struct.Struct("<qqq")
READY = b"ready"
FAILED = b"error:"
WARM_UP_CALLS = 3
"""Calls on each distinct sub-batch shape before the engine is ready."""


@dataclass(frozen=True)
class EngineSpec:
    """What one engine runs on: its cores, its intra-op threads, its device and backend."""

    index: int
    cores: tuple[int, ...]
    threads: int
    device: str = "cpu"
    backend: str = "fused"

    @property
    def name(self) -> str:
        where = self.device if self.device != "cpu" else \
            "cores " + ",".join(map(str, self.cores))
        return f"engine {self.index} ({where})"


def engine_main(engine: EngineSpec, model: Any, library: Any, receive: Connection,
                send: Connection) -> None:
    """The engine process: set up, warm up, say ready, then serve until told to stop."""
    from recstack.worker import die_with_parent

    die_with_parent()
    try:
        run = _set_up(engine, model, library)
    except BaseException as error:  # noqa: BLE001 - the reason goes back to the scheduler
        send.send_bytes(FAILED + f"{type(error).__name__}: {error}".encode()[:500])
        return
    send.send_bytes(READY)
    clock = time.perf_counter_ns
    unpack, pack = REQUEST.unpack, RESULT.pack
    while True:
        ticket, sub_batch = unpack(receive.recv_bytes())
        if ticket == STOP:
            return
        start = clock()
        run(sub_batch)
        send.send_bytes(pack(ticket, start, clock()))


def _set_up(engine: EngineSpec, model: Any, library: Any) -> Callable[[int], None]:
    """Pins the process, builds what the backend needs, makes every sub-batch's views,
    warms up each shape; returns ``run(sub_batch)``."""
    import torch

    if engine.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, engine.cores)
    torch.set_num_threads(engine.threads)
    batches = [library.batch(j) for j in range(len(library.group))]
    if model is None:  # the serving stack's own cost: no inference at all
        return lambda sub_batch: None
    shapes = {}
    for j, batch in enumerate(batches):
        shapes.setdefault((batch.size, batch.lookups), j)
    examples = [batches[j] for j in shapes.values()]
    if engine.backend == "static":
        from recstack.backends import prepare_backend
        from recstack.static_runtime import StaticRuntimeModel

        model = StaticRuntimeModel(model)
        prepare_backend(model, "static", examples)
    if engine.device != "cpu":
        model = model.to(engine.device)
    device = engine.device
    inference = torch.inference_mode

    if device == "cpu":
        def run(sub_batch: int) -> None:
            with inference():
                model(batches[sub_batch])
    else:
        synchronize = torch.cuda.synchronize

        def run(sub_batch: int) -> None:
            # The request's copy to the device and its predictions' copy back are part of
            # answering it.
            with inference():
                model(batches[sub_batch].to(device, non_blocking=False)).cpu()
            synchronize()

    for j in shapes.values():
        for _ in range(WARM_UP_CALLS):
            run(j)
    return run
