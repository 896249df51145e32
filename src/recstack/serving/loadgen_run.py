"""Driving a serving run with MLPerf LoadGen (the ``mlcommons-loadgen`` package) and reading
its verdict from the logs it writes.

LoadGen owns the load: the arrival schedule (Poisson at the target QPS in the Server
scenario; everything at once Offline; one query after another SingleStream), the clock each
latency is measured with, and the verdict. recstack is the system under test: each LoadGen
sample is one request of the :class:`~recstack.serving.library.SampleLibrary` (the query
sample library, loaded before the test: LoadGen's load/unload callbacks have nothing to do).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError
from recstack.serving.config import ServingConfig

LOG_PREFIX = ":::MLLOG "
_SCENARIOS = {"server": "Server", "offline": "Offline", "singlestream": "SingleStream"}


def loadgen_module() -> Any:
    """``mlperf_loadgen``, or a one-line error saying how to install it."""
    try:
        import mlperf_loadgen
    except ImportError:
        raise RecstackError("serving needs MLPerf LoadGen: pip install mlcommons-loadgen "
                            "(bash scripts/dev.sh setup installs it)") from None
    return mlperf_loadgen


def loadgen_settings(config: ServingConfig, scenario: str, qps: float,
                  min_duration_s: float | None = None) -> Any:
    """LoadGen's TestSettings (performance mode) for one test of ``config`` in
    ``scenario`` at ``qps`` (server: the Poisson rate; offline: the expected rate, which
    sizes the one big query)."""
    lg = loadgen_module()
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, _SCENARIOS[scenario])
    settings.mode = lg.TestMode.PerformanceOnly
    duration = config.min_duration_s if min_duration_s is None else min_duration_s
    settings.min_duration_ms = int(duration * 1000)
    settings.min_query_count = config.query_count if scenario != "offline" else 1
    # Issuing stops here even when the minimum count is not reached (the run is then
    # INVALID for too few queries): a run at a rate far below capacity stays bounded.
    expected_s = config.query_count / qps
    settings.max_duration_ms = int(1000 * max(4 * duration, duration + 2 * expected_s))
    fraction = config.percentile / 100.0
    if scenario == "server":
        settings.server_target_qps = qps
        settings.server_target_latency_ns = int(config.target_ms * 1e6)
        settings.server_target_latency_percentile = fraction
    elif scenario == "offline":
        settings.offline_expected_qps = qps
    else:
        # LoadGen pre-generates min duration / expected latency queries and ends early
        # when they run out: expecting no more than a tenth of a millisecond is safe.
        settings.single_stream_expected_latency_ns = int(min(1e9 / qps, 1e5))
        settings.single_stream_target_latency_percentile = fraction
    return settings


@dataclass
class LoadGenRun:
    """What one LoadGen test left: its logs and the results it logged."""

    summary: str
    detail: str
    results: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def value(self, key: str) -> Any:
        return self.results.get(key)


def run_loadgen(settings: Any, library_size: int, issue: Any,
                flush: Any = None) -> LoadGenRun:
    """Runs one LoadGen test with ``settings`` (:func:`loadgen_settings`):
    ``issue(query_id, sample_index)`` is called for every sample LoadGen issues; the SUT
    answers through :func:`complete`. Returns LoadGen's logs."""
    lg = loadgen_module()

    def issue_queries(samples: Any) -> None:
        for sample in samples:
            issue(sample.id, sample.index)

    sut = lg.ConstructSUT(issue_queries, flush or (lambda: None))
    qsl = lg.ConstructQSL(library_size, library_size, lambda indices: None,
                          lambda indices: None)
    with tempfile.TemporaryDirectory(prefix="recstack-loadgen-") as folder:
        log = lg.LogSettings()
        log.log_output.outdir = folder
        log.log_output.copy_summary_to_stdout = False
        log.enable_trace = False
        start = time.perf_counter()
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        duration = time.perf_counter() - start
        summary = _read(Path(folder) / "mlperf_log_summary.txt")
        detail = _read(Path(folder) / "mlperf_log_detail.txt")
    results, errors = parse_detail(detail)
    return LoadGenRun(summary, detail, results, errors, duration)


def completer() -> Any:
    """``complete(query_ids)``: tells LoadGen these queries are answered (no response data:
    performance mode). LoadGen is looked up here, once, not at every completion."""
    lg = loadgen_module()
    done, response = lg.QuerySamplesComplete, lg.QuerySampleResponse

    def complete(query_ids: list[int]) -> None:
        done([response(query_id, 0, 0) for query_id in query_ids])

    return complete


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def parse_detail(detail: str) -> tuple[dict[str, Any], list[str]]:
    """The ``key: value`` of every ``:::MLLOG`` line (the last one of a key wins), and the
    messages LoadGen flagged as errors."""
    results: dict[str, Any] = {}
    errors: list[str] = []
    for line in detail.splitlines():
        if not line.startswith(LOG_PREFIX):
            continue
        try:
            entry = json.loads(line[len(LOG_PREFIX):])
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or "key" not in entry:
            continue
        results[str(entry["key"])] = entry.get("value")
        metadata = entry.get("metadata")
        if isinstance(metadata, dict) and metadata.get("is_error"):
            errors.append(f"{entry['key']}: {entry.get('value')}")
    return results, errors


@dataclass(frozen=True)
class Verdict:
    """LoadGen's judgement of one run."""

    valid: bool
    reasons: tuple[str, ...]
    latency_met: bool | None
    min_duration_met: bool | None
    min_queries_met: bool | None
    early_stopping_met: bool | None

    @property
    def text(self) -> str:
        return "VALID" if self.valid else "INVALID: " + "; ".join(self.reasons or ("unknown",))


def verdict(run: LoadGenRun, config: ServingConfig) -> Verdict:
    """Valid or not, and every reason LoadGen gave (latency bound, minimum duration, minimum
    queries, early stopping)."""
    value = run.value
    valid = value("result_validity") == "VALID"
    latency = _flag(value("result_perf_constraints_met"))
    duration = _flag(value("result_min_duration_met"))
    queries = _flag(value("result_min_queries_met"))
    early = _flag(value("early_stopping_met"))
    reasons: list[str] = []
    if latency is False:
        reasons.append(f"latency bound: p{config.percentile:g} over {config.target_ms:g} ms")
    if duration is False:
        reasons.append("minimum duration not met")
    if queries is False:
        reasons.append("minimum query count not met")
    if early is False:
        text = " ".join(str(value("early_stopping_result") or "").split())
        reasons.append(f"early stopping: {text}" if text else "early stopping not met")
    extra = str(value("result_invalid_reason") or "").strip()
    if extra and not valid:
        reasons.append(f"LoadGen: {extra}")
    if value("result_validity") is None:
        reasons.append("LoadGen logged no result")
    reasons.extend(f"LoadGen error: {error}" for error in run.errors)
    return Verdict(valid, tuple(reasons), latency, duration, queries, early)


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def percentile_ms(run: LoadGenRun, percentile: float) -> float | None:
    """LoadGen's latency at ``percentile`` (it logs 50, 90, 95, 97, 99 and 99.9), in ms."""
    value = run.value(f"result_{percentile:.2f}_percentile_latency_ns")
    return None if value is None else float(value) / 1e6
