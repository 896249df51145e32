"""Running a plan into the store: the run it measures into, each point through an executor,
each result (or failure) stored as it comes back, and whether the run finished.

Runs are resumable: points a run already holds as measured are skipped; failed points are
measured again. A point that fails or whose worker dies is stored as failed with its error,
and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from recstack.errors import Interrupted, RecstackError, StoreError
from recstack.executors import (Executor, LocalExecutor, Machine, Measured, PointLost,
                                measure_where)
from recstack.levels import LevelOptions
from recstack.points import Point
from recstack.records import PointRow, Record, TimingRecord
from recstack.store import ResultStore
from recstack.sweep.plan import SweepPlan
from recstack.text import one_line, shown
from recstack.working_set import CycledSet


def open_run(store: ResultStore, settings: object, command: str, resume: bool = False,
             run_id: str | None = None) -> str:
    """The run to measure into: a new one (with this machine's platform), or with ``resume``
    the given or latest run of the store, which must have used the same settings."""
    from recstack.paths import check_run_id
    from recstack.platform_info import collect_platform, describe_platform, platform_id

    if run_id is not None:
        check_run_id(run_id)
    if resume:
        run_id = run_id or store.latest_run_id()
        info = store.run_info(run_id) if run_id else None
        if info is None:
            which = f"run {shown(run_id)}" if run_id else "run"
            raise RecstackError(f"--resume: no {which} to resume in {store.path}")
        stored, wanted = json.loads(info["settings"]), settings.to_dict()
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted)
                             if stored.get(k) != wanted.get(k))
            raise RecstackError(f"--resume: run {run_id} was measured with other settings "
                                f"({', '.join(changed)}); resume with the same options or "
                                "start a new run")
        return run_id
    if run_id and store.run_info(run_id) is not None:
        raise RecstackError(f"--run-id: {run_id!r} already exists in {store.path}; add "
                            "--resume to continue it")
    platform = collect_platform()
    return store.create_run(command, settings.to_dict(), platform, platform_id(platform),
                            describe_platform(platform), run_id=run_id)


@dataclass(frozen=True)
class SweepEvent:
    """What happened to a point, for progress displays."""

    kind: str  # "skipped" | "start" | "done" | "failed"
    point: Point
    index: int
    total: int
    median_ms: float | None = None
    error: str | None = None
    warning: str | None = None
    detail: str | None = None
    """What a point found that a median does not say (a serving point's throughput)."""


@dataclass
class SweepOutcome:
    run_id: str
    measured: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def point_row(point: Point, status: str, started: datetime, error: str | None = None,
              basis: str | None = None, cycled: CycledSet | None = None,
              attempts: int = 1, machine: Machine | None = None,
              finished: datetime | None = None, retried_after: str | None = None,
              platform_id: str | None = None) -> PointRow:
    """The ``points`` row of a point: what it was, what chose its backend (``basis``), the
    working set its batches formed (``cycled``), the machine that measured it (``machine``,
    else the run's ``platform_id``), and how it ended after ``attempts``."""
    return PointRow(
        config_key=point.config_key(), level=point.level,
        method_version=point.method_version, label=point.label, model=point.spec.name,
        model_type=point.spec.model_type, spec_digest=point.spec.digest(),
        spec=point.spec.to_config(), row_scale=point.spec.row_scale,
        batch_size=point.batch_size, device=point.device, threads=point.threads,
        backend=point.backend, query=point.query.to_dict(), seed=point.seed, status=status,
        error=error, started_at=started, finished_at=finished or datetime.now(UTC),
        backend_basis=basis,
        # A serving point's working set is its request library, not a cache state.
        cache_state=None if point.serving is not None else point.cache,
        working_set_bytes=None if cycled is None else cycled.working_set_bytes,
        llc_bytes=None if cycled is None else cycled.llc_bytes, attempts=attempts,
        platform_id=machine.platform_id if machine is not None else platform_id,
        node=None if machine is None else machine.node, retried_after=retried_after,
        embedding_precision=point.precision.embedding, dense_precision=point.precision.dense,
        folded_fraction=_folded_fraction(point))


def _folded_fraction(point: Point) -> float | None:
    if point.query.distribution != "trace":
        return None
    from recstack.trace_queries import folded_fraction

    try:
        return folded_fraction(point.spec, point.query)
    except RecstackError:  # the point's own error says why its trace could not be read
        return None


@dataclass
class Recorder:
    """Stores what happens to the points of one pass of a run: each result or failure as it
    comes back (the one writer of the store), a point whose node was lost stored as failed
    and handed back to be measured again, up to the executor's ``retries``."""

    store: ResultStore
    run_id: str
    settings: object
    options: LevelOptions
    executor: Executor
    outcome: SweepOutcome
    total: int
    basis: dict[str, str] = field(default_factory=dict)
    seen_platforms: set[str] = field(default_factory=set)

    @property
    def retries(self) -> int:
        return int(getattr(self.executor, "retries", 0))

    @functools.cached_property
    def home_platform(self) -> str | None:
        info = self.store.run_info(self.run_id)
        return None if info is None else info.get("platform_id")

    def start(self, point: Point, index: int) -> SweepEvent:
        self.store.mark_in_flight(self.run_id, point.label)
        return SweepEvent("start", point, index, self.total)

    def settle(self, point: Point, index: int, started: datetime,
               attempt: Callable[[], tuple[Measured, int]], lost: list[str]
               ) -> tuple[SweepEvent, Record | None, bool]:
        """Stores the outcome of ``attempt`` (the point's measuring, run now or already
        finished): (what happened, the record or None, whether to measure it again).
        ``lost`` holds why earlier attempts were lost; a new loss is added to it."""
        basis = self.basis.get(point.key())
        try:
            measured, attempts = attempt()
        except PointLost as error:
            message = one_line(error)
            retry = len(lost) < self.retries
            shown_error = f"{message}; measuring it again" if retry else message
            self._store_failed(point, started, shown_error, basis, lost, not retry)
            lost.append(message)
            kind = "retry" if retry else "failed"
            return SweepEvent(kind, point, index, self.total, error=shown_error), None, retry
        except Exception as error:  # noqa: BLE001 - any failure of a point is its result
            message = one_line(error) if isinstance(error, RecstackError) \
                else one_line(f"{type(error).__name__}: {error}")
            self._store_failed(point, started, message, basis, lost, True,
                               getattr(error, "measured_on", None))
            return SweepEvent("failed", point, index, self.total, error=message), None, False
        return self._store_measured(point, index, started, measured, attempts, basis,
                                    lost), measured.record, False

    def _cycled(self, point: Point) -> CycledSet | None:
        from recstack.collect.timing import point_cycled_set

        # A serving point's working set is its request library (stored with its record).
        return None if point.serving is not None else \
            point_cycled_set(point, self.settings, self.options)

    def _store_failed(self, point: Point, started: datetime, message: str,
                      basis: str | None, lost: list[str], final: bool,
                      machine: Machine | None = None) -> None:
        """A failed attempt; ``machine``: the node it failed on, where one said so."""
        self._record_machine(machine)
        self.store.record_point(self.run_id, point.key(), point_row(
            point, "failed", started, message, basis, self._cycled(point),
            machine=machine, retried_after="; ".join(lost) or None,
            platform_id=self.home_platform))
        if final:
            self.outcome.failed.append((point.label, message))

    def _record_machine(self, machine: Machine | None) -> None:
        """Stores a node's platform the first time one of its points comes back."""
        if machine is not None and machine.platform_id not in self.seen_platforms:
            self.store.record_platform(machine.platform_id, machine.description, machine.info)
            self.seen_platforms.add(machine.platform_id)

    def _store_measured(self, point: Point, index: int, started: datetime,
                        measured: Measured, attempts: int, basis: str | None,
                        lost: list[str]) -> SweepEvent:
        machine, record = measured.machine, measured.record
        self._record_machine(machine)
        cycled = measured.cycled if measured.cycled is not None else self._cycled(point)
        self.store.record_point(self.run_id, point.key(), point_row(
            point, "ok", measured.began or started, None, basis, cycled, attempts, machine,
            measured.ended, "; ".join(lost) or None, self.home_platform), record)
        self.outcome.measured += 1
        stats = record.stats if isinstance(record, TimingRecord) else None
        if stats is not None and stats.warning:
            self.outcome.warnings.append(stats.warning)
        if lost:
            self.outcome.warnings.append(f"{point.label}: measured again after "
                                         f"{'; '.join(lost)}")
        return SweepEvent("done", point, index, self.total,
                          median_ms=None if stats is None else stats.median_ms,
                          warning=None if stats is None else stats.warning,
                          detail=_served(record))

    def measure(self, point: Point, index: int,
                notify: Callable[[SweepEvent], None]) -> Record | None:
        """Measures the point here and now (again, while its node is lost and retries
        remain), telling ``notify`` each start and how each attempt ended."""
        lost: list[str] = []
        while True:
            notify(self.start(point, index))
            started = datetime.now(UTC)
            event, record, again = self.settle(
                point, index, started,
                lambda: measure_steadily(point, self.settings, self.options, self.executor),
                lost)
            notify(event)
            if not again:
                return record

    def measure_concurrently(self, todo: list[tuple[int, Point]], parallel: int,
                             notify: Callable[[SweepEvent], None]) -> None:
        """Keeps up to ``parallel`` points of ``todo`` in flight on the executor (a
        cluster places them), storing each as it comes back, in this thread alone."""
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        waiting = deque((index, point, []) for index, point in todo)
        running: dict[Future, tuple[int, Point, list[str], datetime]] = {}
        pool = ThreadPoolExecutor(parallel, thread_name_prefix="recstack-point")
        try:
            while waiting or running:
                while waiting and len(running) < parallel:
                    index, point, lost = waiting.popleft()
                    notify(self.start(point, index))
                    future = pool.submit(measure_steadily, point, self.settings, self.options,
                                         self.executor)
                    running[future] = (index, point, lost, datetime.now(UTC))
                finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    index, point, lost, started = running.pop(future)
                    event, _, again = self.settle(point, index, started, future.result, lost)
                    notify(event)
                    if again:
                        waiting.append((index, point, lost))
        except BaseException:
            cancel = getattr(self.executor, "cancel", None)
            if cancel is not None:
                cancel()  # the points in flight stop, so no worker thread outlives the run
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def run_sweep(plan: SweepPlan, store: ResultStore, run_id: str, settings: object,
              progress: Callable[[SweepEvent], None] | None = None,
              executor: Executor | None = None,
              options: LevelOptions | None = None) -> SweepOutcome:
    """Measures every point of ``plan`` the run does not hold yet, through ``executor``
    (default: each point in a fresh local worker), storing each result as it comes back.
    ``options`` replace the plan's level options (e.g. a trace folder for profiles)."""
    notify = progress or (lambda event: None)
    executor = executor or LocalExecutor()
    options = options or plan.options
    outcome = SweepOutcome(run_id=run_id)
    finished = store.finished_point_keys(run_id)
    total = len(plan.points)
    # A pass may add points to a run (the main job's hardware stage): the run plans what it
    # holds already and what this pass adds.
    store.start_run_pass(run_id, len(finished | {point.key() for point in plan.points}))
    todo = []
    for index, point in enumerate(plan.points):
        if point.key() in finished:
            outcome.skipped += 1
            notify(SweepEvent("skipped", point, index, total))
        else:
            todo.append((index, point))
    recorder = Recorder(store, run_id, settings, options, executor, outcome, total,
                        dict(plan.backend_basis))
    parallel = min(int(getattr(executor, "parallelism", 1)), len(todo))
    position = {"index": 0}

    def follow(event: SweepEvent) -> None:
        position["index"] = event.index
        notify(event)

    try:
        if parallel > 1:
            recorder.measure_concurrently(todo, parallel, follow)
        else:
            for index, point in todo:
                recorder.measure(point, index, follow)
    except StoreError as error:
        index = position["index"]
        end_early(store, run_id, error, index, total)
        raise StoreError(f"{error}; run {run_id} stopped at point {index + 1} of {total}: once "
                         "the store can be written, --resume continues it") from None
    except BaseException as error:
        end_early(store, run_id, error, position["index"], total)
        raise
    store.end_run(run_id, "complete")
    return outcome


def end_early(store: ResultStore, run_id: str, error: BaseException, index: int,
               total: int) -> None:
    """Records why a pass stopped before its last point, where the store can still take
    it; an interruption learns where the run stopped, for the line the CLI prints."""
    interrupted = isinstance(error, (Interrupted, KeyboardInterrupt))
    try:
        store.end_run(run_id, "interrupted" if interrupted else "failed",
                      None if interrupted else one_line(error, 200))
    except RecstackError:
        pass  # the store is what failed (a full disk): the run reads as killed
    if isinstance(error, Interrupted):
        error.run_id, error.progress = run_id, f"point {index + 1} of {total}"


def measure_and_store(store: ResultStore, run_id: str, settings: object, point: Point,
                      executor: Executor, options: LevelOptions, outcome: SweepOutcome,
                      index: int, total: int, basis: str | None = None,
                      notify: Callable[[SweepEvent], None] | None = None
                      ) -> Record | None:
    """Measures the ``index``-th point of ``total`` and stores it (or its failure), telling
    ``notify`` its start and end; returns the record (None when it failed)."""
    recorder = Recorder(store, run_id, settings, options, executor, outcome, total,
                        {} if basis is None else {point.key(): basis})
    return recorder.measure(point, index, notify or (lambda event: None))


def _served(record: Record) -> str | None:
    """A serving point's result in a few words, for progress displays."""
    summary = getattr(record, "summary", None)
    if summary is None or not hasattr(summary, "latency_bounded_qps"):
        return None
    bound = f"p{summary.percentile:g} <= {summary.target_ms:g} ms"
    if summary.latency_bounded_qps is not None:
        return f"{summary.latency_bounded_qps:,.1f} QPS at {bound} ({summary.tests} tests)"
    capacity = "" if summary.capacity_qps is None else \
        f"; offline capacity {summary.capacity_qps:,.1f} QPS"
    return f"no valid rate at {bound}{capacity} ({summary.tests} tests)"


def measure_steadily(point: Point, settings: object, options: LevelOptions,
                     executor: Executor) -> tuple[Measured, int]:
    """The point's record (with where it was measured) and how many workers measured it:
    an unstable timing point is measured again in fresh workers, up to
    ``settings.remeasure_attempts`` more times (pyperf's remedy: more processes rather than
    trusting one), on the platform of the first, stopping at the first steady one.
    The steadiest attempt (smallest p5-p95 spread) is kept; when every attempt was unstable
    it stays flagged, its warning naming each attempt's spread."""
    first = measure_where(executor, point, settings, options)
    if not isinstance(first.record, TimingRecord):
        return first, 1
    if first.machine is not None and point.platform is None:
        # Attempts on another platform would measure another machine, not the point again.
        point = dataclasses.replace(point, platform=first.machine.platform_id)
    attempts = [first]
    budget = int(getattr(settings, "remeasure_attempts", 0))
    while attempts[-1].record.stats.unstable and len(attempts) <= budget:
        attempts.append(measure_where(executor, point, settings, options))
    kept = min(attempts, key=lambda attempt: attempt.record.stats.relative_spread)
    stats = kept.record.stats
    if stats.unstable and len(attempts) > 1:
        spreads = ", ".join(f"{a.record.stats.relative_spread:.0%}" for a in attempts)
        warning = (f"{stats.warning} (unstable in each of {len(attempts)} workers: "
                   f"p5-p95 spreads {spreads})")
        record = dataclasses.replace(kept.record,
                                     stats=dataclasses.replace(stats, warning=warning))
        kept = dataclasses.replace(kept, record=record)
    return kept, len(attempts)
