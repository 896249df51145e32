"""Serving runs: every option checked before anything starts, then points measured one
deployment at a time: the deployments asked for, or the tuner's (DeepRecSched's hill climb,
:mod:`recstack.serving.tuner`), each tuner step a stored point read back by the next.

A serving point's ``batch_size`` is its sub-batch size and its ``threads`` each engine's
(:mod:`recstack.serving.config`). The baseline deployment is one single-threaded engine per
usable core, requests never split (a sub-batch of the largest request size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from recstack.admission import input_bytes_per_batch, require_point_memory
from recstack.backends import AUTO, BackendChoices, resolve_with_basis
from recstack.errors import RecstackError, SpecError
from recstack.executors import Executor, LocalExecutor
from recstack.host import usable_cores
from recstack.inputs import QuerySpec
from recstack.limits import INT32_MAX, THREADS_MAX, check_int
from recstack.points import Point
from recstack.precision import FP32, Precision, unsupported_reason
from recstack.serving.config import ServingConfig, check_deployment
from recstack.serving.tuner import Deployment, TuneResult, tune
from recstack.specs import ModelSpec, resolve_spec
from recstack.sweep.plan import available_devices, fit_spec
from recstack.sweep.run import SweepEvent, SweepOutcome, measure_and_store
from recstack.trace_queries import check_models, held_bytes, query_note

SERVING_BACKENDS = ("eager", "fused", "static")
"""Backends an engine runs: compile's per-shape graphs would recompile for every request
size a split leaves (its place is taken by fused, its layout without the compiler)."""
LIBRARY_BYTES_MAX = 256 << 20
"""The query sample library is cut to fewer requests rather than exceed this."""


@dataclass(frozen=True)
class ServingPlan:
    """What a serving run measures, every option checked."""

    specs: tuple[ModelSpec, ...]
    configs: dict[str, ServingConfig]
    """Per model name: the load (its target from the targets file unless given)."""
    threads: int
    sub_batch: int | None
    tune: bool
    backend: str
    query: QuerySpec
    seed: int
    cores: int
    choices: dict[int, BackendChoices | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    offload_thresholds: tuple[int, ...] = ()
    precision: Precision = FP32

    def point(self, spec: ModelSpec, deployment: Deployment) -> tuple[Point, str]:
        """The point of ``deployment`` for ``spec``, and what chose its backend."""
        config = replace(self.configs[spec.name], engines=deployment.engines,
                         offload_threshold=deployment.offload_threshold)
        backend, basis = resolve_with_basis(self.backend, spec, "cpu", deployment.sub_batch,
                                            self.choices.get(deployment.threads),
                                            self.precision)
        if backend not in SERVING_BACKENDS:
            backend, basis = "fused", f"{basis}; {backend} serves as fused"
        point = Point(spec, batch_size=deployment.sub_batch, threads=deployment.threads,
                      backend=backend, query=self.query, seed=self.seed, level="serving",
                      serving=config, precision=self.precision)
        return point, basis

    def given(self, spec: ModelSpec) -> Deployment:
        """The deployment the options name (the baseline's parts where they are silent)."""
        config = self.configs[spec.name]
        return Deployment(config.engines, self.threads,
                          self.sub_batch or config.query_sizes.maximum,
                          config.offload_threshold)


def plan_serving(models: Sequence[str], config: ServingConfig, targets_ms: dict[str, float],
                 threads: int = 1, sub_batch: int | None = None, tune_deployment: bool = False,
                 backend: str = AUTO, row_scale: float | None = None,
                 query: QuerySpec | None = None, seed: int = 0,
                 choices: dict[int, BackendChoices | None] | None = None,
                 oversubscribe: bool = False, available_bytes: int | None = None,
                 precision: Precision = FP32) -> ServingPlan:
    """Checks every option (one-line errors naming the option) and admits each model to
    memory, before anything runs. ``config.engines`` is the engine count asked for;
    ``targets_ms`` each model's latency target."""
    from recstack.admission import available_memory_bytes

    cores = usable_cores()
    check_int("--threads", threads, 1, THREADS_MAX)
    if sub_batch is not None:
        try:
            check_int("sub_batch", sub_batch, 1, INT32_MAX)
        except SpecError as error:
            raise error.for_option("--sub-batch") from None
    if backend != AUTO and backend not in SERVING_BACKENDS:
        raise RecstackError(f"--backend: {backend!r} is not allowed for serving; expected one "
                            f"of {', '.join((*SERVING_BACKENDS, AUTO))}")
    reason = unsupported_reason(precision, "fused" if backend == AUTO else backend)
    if reason is not None:
        raise RecstackError(f"--precision: {precision.label!r} is not allowed with --backend "
                            f"{backend}; {reason}")
    if not tune_deployment:
        check_deployment(config.engines, threads, cores, oversubscribe)
    if config.offload_threshold is not None and "cuda" not in available_devices():
        raise RecstackError(f"--offload-threshold: {config.offload_threshold} is not "
                            "allowed; this machine has no CUDA GPU to offload to")
    query = query or QuerySpec(seed=seed)
    check_models(models, query)
    available = available_memory_bytes() if available_bytes is None else available_bytes
    specs, configs, notes = [], {}, []
    maximum = config.query_sizes.maximum
    for name in models:
        spec, note = fit_spec(resolve_spec(name), row_scale, available, (maximum,),
                              (precision,))
        notes += [note] if note else []
        if query.source:  # which file, how it is cut, the share of ids folded
            notes.append(query_note(spec, query))
        per_item = input_bytes_per_batch(spec, 1, query)
        mean_items = max(1.0, _mean_items(config))
        fits = max(1, int(LIBRARY_BYTES_MAX // (per_item * mean_items)))
        requests = min(config.library_requests, fits)
        if requests < config.library_requests:
            notes.append(f"{spec.name}: a library of {requests} requests (not "
                         f"{config.library_requests}) keeps its inputs within "
                         f"{LIBRARY_BYTES_MAX >> 20} MiB")
        target = targets_ms.get(spec.name, config.target_ms)
        configs[spec.name] = replace(config, target_ms=target, library_requests=requests)
        require_point_memory(spec, maximum, f"{spec.name} serving", distinct_batches=1,
                             max_input_bytes=LIBRARY_BYTES_MAX, available_bytes=available,
                             precision=precision, source_bytes=held_bytes(query), query=query)
        specs.append(spec)
    offload = ()
    if tune_deployment and "cuda" in available_devices():
        offload = tuple(sorted({max(1, maximum // d) for d in (8, 4, 2)}))
    return ServingPlan(tuple(specs), configs, threads, sub_batch, tune_deployment, backend,
                       query, seed, cores, dict(choices or {}), tuple(notes), offload,
                       precision)


def _mean_items(config: ServingConfig) -> float:
    from recstack.serving.library import request_sizes

    return float(request_sizes(config.query_sizes, 256, 0).mean())


@dataclass
class ServingOutcome(SweepOutcome):
    tuned: dict[str, TuneResult] = field(default_factory=dict)


def run_serving(plan: ServingPlan, store: object, run_id: str, settings: object,
                progress: Callable[[SweepEvent], None] | None = None,
                executor: Executor | None = None) -> ServingOutcome:
    """Measures the plan's deployments (or tunes each model) into ``run_id``, one point at a
    time, each stored as it returns; a point the run holds already is read back instead
    (resume)."""
    from recstack.levels import LevelOptions

    notify = progress or (lambda event: None)
    executor = executor or LocalExecutor()
    outcome = ServingOutcome(run_id=run_id)
    options = LevelOptions()
    count = [0]

    def evaluate(spec: ModelSpec, deployment: Deployment, platform: str | None
                 ) -> float | None:
        point, basis = plan.point(spec, deployment)
        point = replace(point, platform=platform)
        index = count[0]
        count[0] += 1
        total = max(index + 1, len(plan.specs) * len(machines))
        stored = store.served_point(run_id, point.key())
        if stored is not None:
            outcome.skipped += 1
            notify(SweepEvent("skipped", point, index, total))
            return stored["latency_bounded_qps"]
        # The run's points before this pass (those read back among them), those this pass
        # measured, and this one.
        store.plan_at_least(run_id, before + outcome.measured + len(outcome.failed) + 1)
        record = measure_and_store(store, run_id, settings, point, executor, options,
                                   outcome, index, total, basis, notify)
        return None if record is None else record.summary.latency_bounded_qps

    machines = serving_machines(executor, plan.cores)
    # A pass may add serving points to a run holding others (the main job's serving stage).
    before = len(store.finished_point_keys(run_id))
    store.start_run_pass(run_id, before + len(plan.specs) * len(machines))
    try:
        for platform, cores in machines:
            for spec in plan.specs:
                name = spec.name if platform is None else f"{spec.name} on {platform}"
                if plan.tune:
                    outcome.tuned[name] = tune(
                        lambda d, spec=spec, platform=platform: evaluate(spec, d, platform),
                        cores, plan.configs[spec.name].query_sizes.maximum,
                        offload_thresholds=plan.offload_thresholds)
                else:
                    evaluate(spec, plan.given(spec), platform)
    except BaseException as error:
        from recstack.sweep.run import end_early

        end_early(store, run_id, error, count[0], max(count[0], len(plan.specs)))
        raise
    store.end_run(run_id, "complete")
    return outcome


def serving_machines(executor: Executor, cores: int) -> list[tuple[str | None, int]]:
    """Where deployments are measured, with the cores each has: this machine's; or on a
    cluster, each platform in turn (those chosen, else every one of its nodes), since a
    deployment is sized to one machine's cores."""
    if not getattr(executor, "remote", False):
        return [(None, cores)]
    covered = set(executor.covered)
    return [(machine.platform_id, int(machine.info.get("usable_cores") or cores))
            for machine in executor.machines()
            if not covered or machine.platform_id in covered]
