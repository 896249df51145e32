"""The engine pool: starting the engine processes with the shared model and library,
knowing when each is ready, and stopping them (every wait bounded)."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from recstack.errors import RecstackError
from recstack.serving.engine import (
    FAILED,
    READY,
    REQUEST,
    STOP,
    EngineSpec,
    engine_main,
)
from recstack.worker import describe_exit

STOP_TIMEOUT_S = 10.0


@dataclass
class RunningEngine:
    spec: EngineSpec
    process: Any
    to_engine: Connection
    from_engine: Connection
    pid: int = 0


@dataclass
class EnginePool:
    """Engines started from one model and one library (both shared, not copied)."""

    engines: list[RunningEngine] = field(default_factory=list)

    @classmethod
    def start(cls, specs: list[EngineSpec], model: Any, library: Any,
              ready_timeout_s: float) -> EnginePool:
        """Spawns every engine and waits until each is ready (or raises, the pool closed):
        at most ``ready_timeout_s`` in all."""
        import torch.multiprocessing  # registers the reductions that share tensors

        # A serving point runs in a daemonic worker; its engines are its children, and die
        # with it (die_with_parent), so the daemon rule's purpose holds without the flag.
        multiprocessing.current_process().daemon = False
        context = torch.multiprocessing.get_context("spawn")
        pool = cls()
        try:
            for spec in specs:
                engine_in, to_engine = context.Pipe(duplex=False)
                from_engine, engine_out = context.Pipe(duplex=False)
                process = context.Process(target=engine_main, daemon=True, name=spec.name,
                                          args=(spec, model, library, engine_in, engine_out))
                process.start()
                engine_in.close()
                engine_out.close()
                pool.engines.append(RunningEngine(spec, process, to_engine, from_engine,
                                                  process.pid or 0))
            pool._await_ready(ready_timeout_s)
        except BaseException:
            pool.close()
            raise
        return pool

    def _await_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = {engine.from_engine: engine for engine in self.engines}
        sentinels = {engine.process.sentinel: engine for engine in self.engines}
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(engine.spec.name for engine in waiting.values())
                raise RecstackError(f"serving: {names} not ready after {timeout_s:g} s")
            for ready in wait([*waiting, *sentinels], timeout=left):
                if ready in sentinels and sentinels[ready].from_engine in waiting:
                    engine = sentinels[ready]
                    if engine.from_engine.poll():
                        continue  # its last words are waiting: read them first
                    raise RecstackError(f"serving: {engine.spec.name} "
                                        f"{describe_exit(engine.process.exitcode)} while "
                                        "starting")
                if ready in waiting:
                    engine = waiting.pop(ready)
                    try:
                        message = ready.recv_bytes()
                    except EOFError:
                        raise RecstackError(f"serving: {engine.spec.name} "
                                            f"{describe_exit(engine.process.exitcode)} "
                                            "while starting") from None
                    if message.startswith(FAILED):
                        reason = message[len(FAILED):].decode(errors="replace")
                        raise RecstackError(f"serving: {engine.spec.name} failed to start: "
                                            f"{reason}")
                    if message != READY:
                        raise RecstackError(f"serving: {engine.spec.name} said {message!r}")

    def close(self) -> None:
        """Stops every engine: asked, then waited for, then killed."""
        for engine in self.engines:
            try:
                engine.to_engine.send_bytes(REQUEST.pack(STOP, 0))
            except (OSError, ValueError):
                pass  # already gone
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for engine in self.engines:
            engine.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if engine.process.is_alive():
                engine.process.kill()
                engine.process.join(timeout=STOP_TIMEOUT_S)
            for connection in (engine.to_engine, engine.from_engine):
                connection.close()

    @property
    def pids(self) -> list[int]:
        return [engine.pid for engine in self.engines]

