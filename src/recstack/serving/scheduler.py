"""The scheduler: requests in, sub-batches out to idle engines, requests completed when their
last sub-batch returns (DeepRecSys's split of a query across cores, first come first served).

One thread owns every engine pipe: it waits on the engines' answers, their process
sentinels and a wake-up pipe that :meth:`Scheduler.issue` writes, always with a timeout. An
engine that dies, or that holds a sub-batch longer than ``stall_timeout_s``, fails the run:
every request in flight and every later one is completed at once (so LoadGen's test ends on
its own schedule, never waiting for an answer that cannot come) and :attr:`failure` says why.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait

import numpy as np

from recstack.serving.engine import REQUEST, RESULT
from recstack.serving.library import SampleLibrary
from recstack.serving.pool import EnginePool, RunningEngine
from recstack.worker import describe_exit

POLL_S = 0.25
"""The longest the scheduler waits before looking at its engines again."""


@dataclass
class _Request:
    query_id: int
    sample_index: int
    arrived_ns: int
    remaining: int
    order: int


@dataclass
class Served:
    """What the scheduler saw: per request and per sub-batch."""

    order: list[int] = field(default_factory=list)
    sample_index: list[int] = field(default_factory=list)
    arrived_ns: list[int] = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)
    service_ns: list[int] = field(default_factory=list)
    first_ns: int | None = None
    last_ns: int | None = None


class Scheduler:
    """Splits requests into the library's sub-batches and runs them on ``pool``'s engines;
    ``complete(query_ids)`` is called (from the scheduler's thread) as requests finish."""

    def __init__(self, pool: EnginePool, library: SampleLibrary,
                 complete: Callable[[list[int]], None], stall_timeout_s: float = 60.0):
        self.pool, self.library, self.complete = pool, library, complete
        self.stall_timeout_s = stall_timeout_s
        self.failure: str | None = None
        self.served = Served()
        self._inbox: collections.deque[tuple[int, int, int]] = collections.deque()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._stopping = False
        self._cpu = [e for e in pool.engines if e.spec.device == "cpu"]
        self._gpu = [e for e in pool.engines if e.spec.device != "cpu"]
        self._lock = threading.Lock()  # guards failure against issue()'s thread
        self._thread = threading.Thread(target=self._loop, name="recstack-scheduler",
                                        daemon=True)
        self._arrivals = 0

    def start(self) -> None:
        self._thread.start()

    def issue(self, query_id: int, sample_index: int) -> None:
        """A request arrived (any thread): queued for the scheduler's thread, or completed
        at once when the run has failed."""
        now = time.perf_counter_ns()
        with self._lock:
            queued = self.failure is None
            if queued:
                self._inbox.append((query_id, sample_index, now))
        if queued:
            os.write(self._wake_write, b"x")
        else:
            self.complete([query_id])

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=timeout_s)
        os.close(self._wake_read)
        os.close(self._wake_write)

    # ---- the scheduler's thread ------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as error:  # noqa: BLE001 - a dead scheduler fails the run
            self._fail(f"the scheduler failed: {type(error).__name__}: {error}")

    def _serve(self) -> None:
        answers = {engine.from_engine: engine for engine in self.pool.engines}
        sentinels = {engine.process.sentinel: engine for engine in self.pool.engines}
        waitables = [self._wake_read, *answers, *sentinels]
        self._tickets: dict[int, _Request] = {}
        self._busy: dict[int, tuple[RunningEngine, int]] = {}  # ticket of each busy engine
        self._idle_cpu = list(self._cpu)
        self._idle_gpu = list(self._gpu)
        self._pending_cpu: collections.deque[tuple[int, int]] = collections.deque()
        self._pending_gpu: collections.deque[tuple[int, int]] = collections.deque()
        self._next_ticket = 0
        unpack = RESULT.unpack
        while not self._stopping:
            ready = wait(waitables, timeout=POLL_S)
            finished: list[int] = []
            for source in ready:
                if source == self._wake_read:
                    self._take_arrivals()
                elif source in answers:
                    engine = answers[source]
                    try:
                        data = source.recv_bytes()
                    except (EOFError, OSError):
                        self._engine_died(engine)
                        return
                    ticket, start, end = unpack(data)
                    self._sub_batch_done(engine, ticket, start, end, finished)
                elif source in sentinels and not sentinels[source].from_engine.poll():
                    self._engine_died(sentinels[source])
                    return
            if finished:
                self.complete(finished)
            self._check_stalls()
            if self.failure is not None:
                return
            self._dispatch()

    def _take_arrivals(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass
        library = self.library
        while self._inbox:
            query_id, sample_index, arrived = self._inbox.popleft()
            parts = library.sub_batches(sample_index)
            offloaded = bool(library.offloaded[sample_index]) and bool(self._gpu)
            request = _Request(query_id, sample_index, arrived, len(parts), self._arrivals)
            self._arrivals += 1
            pending = self._pending_gpu if offloaded else self._pending_cpu
            for sub_batch in parts:
                ticket = self._next_ticket
                self._next_ticket += 1
                self._tickets[ticket] = request
                pending.append((ticket, sub_batch))

    def _dispatch(self) -> None:
        for idle, pending in ((self._idle_cpu, self._pending_cpu),
                              (self._idle_gpu, self._pending_gpu)):
            while idle and pending:
                engine = idle.pop()
                ticket, sub_batch = pending.popleft()
                self._busy[ticket] = (engine, time.monotonic_ns())
                engine.to_engine.send_bytes(REQUEST.pack(ticket, sub_batch))

    def _sub_batch_done(self, engine: RunningEngine, ticket: int, start: int, end: int,
                        finished: list[int]) -> None:
        now = time.perf_counter_ns()
        self._busy.pop(ticket, None)
        (self._idle_gpu if engine.spec.device != "cpu" else self._idle_cpu).append(engine)
        served = self.served
        served.service_ns.append(end - start)
        served.first_ns = start if served.first_ns is None else min(served.first_ns, start)
        served.last_ns = end if served.last_ns is None else max(served.last_ns, end)
        request = self._tickets.pop(ticket)
        request.remaining -= 1
        if request.remaining == 0:
            served.order.append(request.order)
            served.sample_index.append(request.sample_index)
            served.arrived_ns.append(request.arrived_ns)
            served.latency_ns.append(now - request.arrived_ns)
            finished.append(request.query_id)

    def _check_stalls(self) -> None:
        if not self._busy:
            return
        limit = int(self.stall_timeout_s * 1e9)
        now = time.monotonic_ns()
        for engine, since in self._busy.values():
            if now - since > limit:
                self._fail(f"{engine.spec.name} held a sub-batch for more than "
                           f"{self.stall_timeout_s:g} s")
                return

    def _engine_died(self, engine: RunningEngine) -> None:
        engine.process.join(timeout=1.0)
        self._fail(f"{engine.spec.name} (pid {engine.pid}) "
                   f"{describe_exit(engine.process.exitcode)} mid-run")

    def _fail(self, reason: str) -> None:
        """Records the first failure and completes every request still open (runs on the
        scheduler's thread, the only one that takes requests out of the inbox)."""
        with self._lock:
            if self.failure is None:
                self.failure = reason
            stranded = {query_id for query_id, _, _ in self._inbox}
            self._inbox.clear()
        stranded |= {request.query_id for request in getattr(self, "_tickets", {}).values()}
        if stranded:
            self.complete(sorted(stranded))


def latencies_frame(served: Served, library: SampleLibrary):
    """The served requests as rows of :class:`~recstack.records.serving.ServedRequest`."""
    import pandas as pd

    if not served.order:
        from recstack.records.declare import columns_of
        from recstack.records.serving import ServedRequest

        return pd.DataFrame(columns=[c.name for c in columns_of(ServedRequest)
                                     if c.name != "test"])
    index = np.asarray(served.sample_index, dtype=np.int64)
    arrived = np.asarray(served.arrived_ns, dtype=np.int64)
    order = np.argsort(np.asarray(served.order))
    frame = pd.DataFrame({
        "request": np.asarray(served.order)[order],
        "sample_index": index[order],
        "items": library.sizes[index][order],
        "sub_batches": np.diff(library.first)[index][order],
        "offloaded": library.offloaded[index][order],
        "issued_ms": (arrived[order] - arrived.min()) / 1e6,
        "latency_ms": np.asarray(served.latency_ns, dtype=np.float64)[order] / 1e6,
    })
    return frame
