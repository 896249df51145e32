"""Running a plan into the store: the run it measures into, each point through an executor,
each result (or failure) stored as it comes back, and whether the run finished.

Runs are resumable: points a run already holds as measured are skipped; failed points are
measured again. A point that fails or whose worker dies is stored as failed with its error,
and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from recstack.errors import Interrupted, RecstackError, StoreError
from recstack.executors import Executor, LocalExecutor
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
              attempts: int = 1) -> PointRow:
    """The ``points`` row of a point: what it was, what chose its backend (``basis``), the
    working set its batches formed (``cycled``), and how it ended after ``attempts``."""
    return PointRow(
        config_key=point.config_key(), level=point.level,
        method_version=point.method_version, label=point.label, model=point.spec.name,
        model_type=point.spec.model_type, spec_digest=point.spec.digest(),
        spec=point.spec.to_config(), row_scale=point.spec.row_scale,
        batch_size=point.batch_size, device=point.device, threads=point.threads,
        backend=point.backend, query=point.query.to_dict(), seed=point.seed, status=status,
        error=error, started_at=started, finished_at=datetime.now(UTC),
        backend_basis=basis,
        # A serving point's working set is its request library, not a cache state.
        cache_state=None if point.serving is not None else point.cache,
        working_set_bytes=None if cycled is None else cycled.working_set_bytes,
        llc_bytes=None if cycled is None else cycled.llc_bytes, attempts=attempts)


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
    index = 0
    try:
        for index, point in enumerate(plan.points):
            if point.key() in finished:
                outcome.skipped += 1
                notify(SweepEvent("skipped", point, index, total))
                continue
            store.mark_in_flight(run_id, point.label)
            notify(SweepEvent("start", point, index, total))
            event, _ = measure_and_store(store, run_id, settings, point, executor, options,
                                         outcome, index, total,
                                         plan.backend_basis.get(point.key()))
            notify(event)
    except StoreError as error:
        end_early(store, run_id, error, index, total)
        raise StoreError(f"{error}; run {run_id} stopped at point {index + 1} of {total}: once "
                         "the store can be written, --resume continues it") from None
    except BaseException as error:
        end_early(store, run_id, error, index, total)
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
                  index: int, total: int, basis: str | None = None
                  ) -> tuple[SweepEvent, Record | None]:
    """Measures the ``index``-th point of ``total`` and stores it (or its failure); returns
    what happened and the record (None when it failed)."""
    from recstack.collect.timing import point_cycled_set

    started = datetime.now(UTC)
    # A serving point's working set is its request library (stored with its record).
    cycled = None if point.serving is not None else point_cycled_set(point, settings, options)
    try:
        record, attempts = measure_steadily(point, settings, options, executor)
    except Exception as error:  # noqa: BLE001 - any failure of a point is its result
        message = one_line(error) if isinstance(error, RecstackError) \
            else one_line(f"{type(error).__name__}: {error}")
        store.record_point(run_id, point.key(), point_row(point, "failed", started, message,
                                                         basis, cycled))
        outcome.failed.append((point.label, message))
        return SweepEvent("failed", point, index, total, error=message), None
    store.record_point(run_id, point.key(),
                       point_row(point, "ok", started, None, basis, cycled, attempts), record)
    outcome.measured += 1
    stats = record.stats if isinstance(record, TimingRecord) else None
    if stats is not None and stats.warning:
        outcome.warnings.append(stats.warning)
    return SweepEvent("done", point, index, total,
                      median_ms=None if stats is None else stats.median_ms,
                      warning=None if stats is None else stats.warning,
                      detail=_served(record)), record


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
                     executor: Executor) -> tuple[Record, int]:
    """The point's record and how many workers measured it: an unstable timing point is
    measured again in fresh workers, up to ``settings.remeasure_attempts`` more times (pyperf's
    remedy: more processes rather than trusting one), stopping at the first steady one.
    The steadiest attempt (smallest p5-p95 spread) is kept; when every attempt was unstable
    it stays flagged, its warning naming each attempt's spread."""
    record = executor.measure(point, settings, options)
    if not isinstance(record, TimingRecord):
        return record, 1
    attempts = [record]
    budget = int(getattr(settings, "remeasure_attempts", 0))
    while attempts[-1].stats.unstable and len(attempts) <= budget:
        attempts.append(executor.measure(point, settings, options))
    kept = min(attempts, key=lambda attempt: attempt.stats.relative_spread)
    if kept.stats.unstable and len(attempts) > 1:
        spreads = ", ".join(f"{a.stats.relative_spread:.0%}" for a in attempts)
        warning = (f"{kept.stats.warning} (unstable in each of {len(attempts)} workers: "
                   f"p5-p95 spreads {spreads})")
        kept = dataclasses.replace(kept, stats=dataclasses.replace(kept.stats,
                                                                   warning=warning))
    return kept, len(attempts)
