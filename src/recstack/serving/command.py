"""``serve``: the serving level as one call (what ``api.serve`` and ``recstack serve`` run).

Every option is checked before anything starts (a one-line error naming the option), the
run is opened like any other (resumable), and the points go through the executor one at a
time (:func:`recstack.sweep.serving.run_serving`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recstack.errors import SpecError
from recstack.executors import Executor
from recstack.precision import FP32
from recstack.serving.config import DEFAULT_PERCENTILE, ServingConfig
from recstack.serving.query_sizes import (
    DEFAULT_QUERY_SIZES,
    QuerySizes,
    parse_query_sizes,
)
from recstack.store import DEFAULT_STORE, ResultStore

_OPTION_OF = {"qps": "--qps", "target_ms": "--target-ms", "percentile": "--percentile",
              "engines": "--engines", "scenario": "--scenario",
              "offload_threshold": "--offload-threshold", "min_duration_s": "--min-duration",
              "library_requests": "--library-requests", "min_queries": "--min-queries",
              "tolerance": "--tolerance", "max_tests": "--max-tests"}


def serving_config(scenario: str = "server", qps: Sequence[float] = (),
                   target_ms: float | None = None, percentile: float = DEFAULT_PERCENTILE,
                   query_sizes: str | QuerySizes = DEFAULT_QUERY_SIZES,
                   engines: int | None = None, offload_threshold: int | None = None,
                   min_duration: float = 5.0, library_requests: int = 256,
                   min_queries: int = 0, tolerance: float = 0.1, max_tests: int = 8
                   ) -> ServingConfig:
    """The load and deployment the options name (engines default to the usable cores), or a
    one-line error naming the option."""
    from recstack.host import usable_cores

    sizes = query_sizes if isinstance(query_sizes, QuerySizes) \
        else parse_query_sizes(query_sizes)
    try:
        return ServingConfig(
            scenario=scenario, engines=usable_cores() if engines is None else engines,
            offered_qps=tuple(qps), target_ms=25.0 if target_ms is None else target_ms,
            percentile=percentile, query_sizes=sizes, offload_threshold=offload_threshold,
            library_requests=library_requests, min_duration_s=min_duration,
            min_queries=min_queries, tolerance=tolerance, max_tests=max_tests)
    except SpecError as error:
        raise error.for_option(_OPTION_OF.get(error.field)) from None


def latency_targets(models: Sequence[str], target_ms: float | None,
                    targets_file: str | Path | None = None) -> dict[str, float]:
    """Each model's latency target: ``target_ms`` for all where given, else the targets
    file's (default: the shipped DeepRecSys medium targets)."""
    from recstack.analysis.systems import default_targets, load_targets
    from recstack.specs import canonical_name

    targets = load_targets(targets_file) if targets_file else default_targets()
    names = [canonical_name(name) or name for name in models]
    if target_ms is not None:
        return {name: float(target_ms) for name in names}
    return {name: targets.for_model(name) for name in names}


def plan_models(models: Sequence[str], store: str | Path = DEFAULT_STORE, threads: int = 1,
                sub_batch: int | None = None, tune: bool = False, backend: str = "auto",
                row_scale: float | None = None, seed: int = 0, distribution: str = "uniform",
                targets_file: str | Path | None = None, oversubscribe: bool = False,
                here: bool = True, precision: Any = None, query: Any = None,
                **load: Any) -> Any:
    """The serving plan of ``models`` (``load``: :func:`serving_config`'s options), every
    option checked: a :class:`~recstack.sweep.serving.ServingPlan`; ``auto`` reads the
    races stored for this machine only when the deployments are measured ``here``. The
    requests' ids are drawn as ``query`` says (a :class:`~recstack.inputs.QuerySpec`, e.g.
    a trace's from :func:`recstack.trace_queries.parse_queries`), by default from
    ``distribution`` with ``seed``."""
    from recstack.inputs import QuerySpec
    from recstack.specs import ZOO_NAMES
    from recstack.sweep.serving import plan_serving

    names = [n for name in (models or ["rmc1"]) for n in
             (ZOO_NAMES if name == "zoo" else [name])]
    config = serving_config(**load)
    try:
        query = query or QuerySpec(distribution=distribution, seed=seed)
    except SpecError as error:
        raise error.for_option() from None
    return plan_serving(names, config, latency_targets(names, load.get("target_ms"),
                                                        targets_file),
                        threads=threads, sub_batch=sub_batch, tune_deployment=tune,
                        backend=backend, row_scale=row_scale, query=query, seed=seed,
                        choices=_stored_choices(store, threads, tune) if here else {},
                        oversubscribe=oversubscribe, precision=precision or FP32)


def serve_models(models: Sequence[str], store: str | Path = DEFAULT_STORE,
                 resume: bool = False, run_id: str | None = None,
                 progress: Callable[[Any], None] | None = None,
                 executor: Executor | None = None, command: str = "recstack api",
                 on_start: Callable[[Any], None] | None = None, **options: Any) -> Any:
    """Measures each model served, or tunes its deployment (``options``:
    :func:`plan_models`'s); returns an ``api.RunResult`` whose outcome has ``tuned``."""
    from recstack import api
    from recstack.sweep import open_run
    from recstack.sweep.serving import run_serving

    plan = plan_models(models, store, here=api.measures_here(executor), **options)
    results = ResultStore(store)
    results.check_writable()
    settings = api.timing_settings()
    run = open_run(results, settings, command, resume, run_id)
    if on_start is not None:
        on_start(api.RunStart(run, results, len(plan.specs),
                              (*plan.notes, *getattr(executor, "notes", list)())))
    outcome = run_serving(plan, results, run, settings, progress=progress, executor=executor)
    result = api.RunResult(run_id=run, store=results, outcome=outcome, notes=plan.notes)
    api.write_figures(result)
    return result


def _stored_choices(store: str | Path, threads: int, tune: bool) -> dict[int, Any]:
    """The backend races stored for this machine at each thread count the run may use."""
    from recstack.backend_race import stored_choices_at
    from recstack.host import usable_cores

    return stored_choices_at(store, range(1, usable_cores() + 1) if tune else [threads])
