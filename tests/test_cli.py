"""The command line, run as users run it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recstack.backends import resolve_backend
from recstack.specs import zoo_spec

DATA = Path(__file__).parent / "data"


def recstack(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recstack", *args], capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert text in lines[0]


def test_models_table_lists_the_zoo() -> None:
    result = recstack("models")
    assert result.returncode == 0, result.stderr
    for name in ("rmc1", "rmc2", "rmc3", "ncf", "wnd", "mtwnd", "din", "dien"):
        assert name in result.stdout
    assert "4.10 GB" in result.stdout  # RMC1's embeddings


def test_models_json() -> None:
    result = recstack("models", "--json")
    assert result.returncode == 0, result.stderr
    models = {m["name"]: m for m in json.loads(result.stdout)}
    assert list(models) == ["rmc1", "rmc2", "rmc3", "ncf", "wnd", "mtwnd", "din", "dien"]
    assert models["rmc1"]["embedding_bytes"] == 8 * 4_000_000 * 32 * 4
    assert models["rmc3"]["flops_mlp"] == 6_406_656
    assert models["din"]["sequence_length"] == 250
    assert isinstance(models["ncf"]["fits"], bool)


def test_check_a_deeprecsys_file() -> None:
    result = recstack("check", str(DATA / "deeprecsys_ncf.json"))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "note: arch_mlp_bot is accepted but not used by model_type ncf" in result.stdout


def test_check_json_with_scale() -> None:
    result = recstack("check", "rmc1", "--row-scale", "0.5", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == [2_000_000] * 8


def test_check_rejects_a_bad_spec(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"model_type": "dlrm", "arch_mlp_bot": "13-8",
                                "arch_mlp_top": "8-1", "arch_embedding_size": "100",
                                "arch_sparse_feature_size": 8, "arch_intraction_op": "dot"}))
    assert_one_line_error(recstack("check", str(path)),
                          "mine.json: key: 'arch_intraction_op' is not allowed; unknown key; "
                          "did you mean 'arch_interaction_op'?")


@pytest.mark.parametrize("args, text", [
    (["check", "nosuch.yaml"], "nosuch.yaml: no such spec file"),
    (["check", "rmc5"], "model: 'rmc5' is not allowed; expected one of rmc1"),
    (["models", "--row-scale", "0"],
     "--row-scale: 0.0 is not allowed; expected a finite number greater"),
    (["run", "--batch-sizes", "1,x"], "--batch-sizes: '1,x' is not allowed"),
    (["results", "export", "nope", "--store", str(DATA / "missing.duckdb")], "does not exist"),
])
def test_bad_arguments(args: list[str], text: str) -> None:
    assert_one_line_error(recstack(*args), text)


@pytest.mark.parametrize("args, text", [
    (["sweep", "-m", "rmc1", "--device", "cuda"],
     "--device: 'cuda' is not allowed; this machine has no CUDA GPU"),
    (["sweep", "-m", "rmc1", "--batch-sizes", "0"], "--batch-sizes: '0' is not allowed"),
    (["run", "-m", "rmc9"], "model: 'rmc9' is not allowed; expected one of rmc1"),
    (["sweep", "-m", "ncf", "--threads", "two"], "--threads: 'two' is not allowed"),
    (["sweep", "-m", "ncf", "--min-time", "-1"], "--min-time: -1.0 is not allowed"),
    (["sweep", "-m", "ncf", "--distribution", "normal"], "--distribution: 'normal' is not "
                                                         "allowed; expected one of uniform"),
    (["sweep"], "--model: nothing given"),
    (["run", "-m", "ncf", "--budget", "0"], "--budget: 0.0 is not allowed; expected minutes"),
    (["sweep", "-m", "ncf", "--cache", "lukewarm"], "--cache: 'lukewarm' is not allowed; "
                                                    "expected one of cold, warm"),
    (["results", "--store", "/nonexistent/x.duckdb"], "does not exist"),
])
def test_bad_measurement_arguments(args: list[str], text: str) -> None:
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_one_line_error(recstack(*args), text)


@pytest.mark.slow
def test_main_job_runs_every_stage_then_results_and_export(tmp_path: Path) -> None:
    store = tmp_path / "results" / "r.duckdb"
    # Ceilings stored first (quick ones): the job measures them only where none are stored.
    assert recstack("ceilings", "--quick", "--threads", "1", "--store", str(store)
                    ).returncode == 0
    result = recstack("run", "-m", "rmc1", "-m", "din", "--row-scale", "0.001", "--batch-sizes",
                      "1,16", "--threads", "1", "--min-time", "0.05", "--store", str(store),
                      timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "plan (full): estimated" in out and "of a 30.0 min budget" in out
    assert "stage ceilings: skipped (stored for this machine)" in out
    for stage in ("backend race", "characterization", "hardware", "correlation"):
        assert f"stage {stage}: done" in out, out
    assert "auto: backends raced on this machine" in out
    assert "systems level: latency, throughput and deployment choice" in out
    assert "targets: DeepRecSys" in out
    assert "software level: dominant operator class and model part" in out
    assert "hardware level: top-down and miss rates" in out
    figures = {p.name for p in (store.parent / "figures").glob("*/*.png")}
    assert {"latency_vs_batch.png", "operator_breakdown.png", "part_breakdown.png",
            "speedup_heatmap.png", "cache_cold_vs_warm.png", "topdown.png"} <= figures
    assert any(name.startswith("correlation-") for name in figures)

    listing = recstack("results", "--store", str(store), "--json")
    assert listing.returncode == 0, listing.stderr
    runs = json.loads(listing.stdout)
    assert len(runs) == 2  # the characterization and the correlation design
    run = min(runs, key=lambda run: run["started_at"])  # the design run comes after it
    # timing and operators of 2 models x 2 batch sizes, RMC1 warm at both, 3 hardware points
    assert run["points_ok"] == 8 + 2 + 3 and run["points_failed"] == 0, runs
    assert "AMD" in run["platform"] or "Xeon" in run["platform"] or run["platform"]

    shown = recstack("results", "show", run["run_id"], "--store", str(store))
    assert shown.returncode == 0
    assert re.search(r"din@0\.001 b16 cpu t1 (eager|fused|static)\b", shown.stdout)
    assert re.search(r"rmc1@0\.001 b1 cpu t1 \w+ warm", shown.stdout)

    exported = recstack("results", "export", run["run_id"], "--store", str(store), "--format",
                        "csv", "--to", str(tmp_path / "csv"))
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "csv" / f"{run['run_id']}-points.csv").is_file()
    report = next((store.parent / "reports").glob(f"{run['run_id']}.md")).read_text()
    assert "Cache state: cold against warm" in report
    assert "| No single algorithmic feature" in report


@pytest.mark.slow
def test_profile_alone_with_traces(tmp_path: Path) -> None:
    store = tmp_path / "p.duckdb"
    result = recstack("profile", "-m", "dien", "--row-scale", "0.001", "--batch-sizes", "4",
                      "--threads", "1", "--trace", "--store", str(store))
    assert result.returncode == 0, result.stderr
    backend = resolve_backend("auto", zoo_spec("dien"), batch_size=4)  # profile's default
    assert f"dien@0.001 b4 cpu t1 {backend} [operators]: operators collected" in result.stdout
    assert "software level" in result.stdout and "recurrent" in result.stdout
    assert len(list((tmp_path / "traces").glob("*/*.json"))) == 1
    assert "profiler_start" not in result.stderr  # kineto's chatter is kept out


@pytest.mark.slow
def test_hardware_level_falls_back_to_simulation_and_says_so(tmp_path: Path) -> None:
    import shutil

    from tests.test_doctor import pmu_counts_here

    if shutil.which("valgrind") is None or pmu_counts_here():
        pytest.skip("needs valgrind and a machine without hardware counters")
    result = recstack("hardware", "-m", "ncf", "--row-scale", "0.001", "--batch-sizes", "2",
                      "--store", str(tmp_path / "h.duckdb"))
    assert result.returncode == 0, result.stderr
    assert "hardware level: simulated (no hardware counters" in result.stdout
    assert "source: simulated (valgrind callgrind, AVX2 code path)" in result.stdout
    assert "caveat: valgrind hides AVX-512" in result.stdout
    assert list((tmp_path / "figures").glob("*/topdown.png"))


def test_unknown_hierarchy_is_a_one_line_error() -> None:
    assert_one_line_error(recstack("hardware", "--hierarchy", "pentium4"),
                          "cache hierarchy 'pentium4' is unknown")


def test_locality_command() -> None:
    result = recstack("locality", "din", "--row-scale", "0.001", "--batches", "2", "--batch-size",
                      "8", "--distribution", "locality", "--reuse-probability", "0.8",
                      "--cache-sizes", "16KiB,1MiB", "--json")
    assert result.returncode == 0, result.stderr
    tables = {row["table"]: row for row in json.loads(result.stdout)}
    assert set(tables) == {0, 1, 2, 3}  # user, behaviour, candidate, context
    assert tables[1]["accesses"] == 2 * 8 * 250  # the behaviour sequence
    assert tables[1]["hit_rate_1MiB"] >= tables[1]["hit_rate_16KiB"]
    assert_one_line_error(recstack("locality", "din", "--cache-sizes", "12parsecs"),
                          "--cache-sizes: '12parsecs' is not allowed")
    assert_one_line_error(recstack("locality", "din", "--distribution", "normal"),
                          "--distribution: 'normal' is not allowed")


def _two_runs(path: Path) -> tuple[str, str]:
    from recstack.store import ResultStore
    from tests.analysis.test_compare import record

    store = ResultStore(path)
    a = store.create_run("a", {"min_seconds": 1.0}, {}, "pa", "machine <A>")
    b = store.create_run("b", {"min_seconds": 0.5}, {}, "pb", "machine B")
    for run, median, seed in ((a, 1.0, 1), (b, 1.3, 2)):
        record(store, run, "rmc1", 1, median, seed)
    record(store, a, "din", 1, 5.0, 3)
    return a, b


def test_compare_command(tmp_path: Path) -> None:
    store = tmp_path / "r.duckdb"
    a, b = _two_runs(store)
    result = recstack("compare", a, b, "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert "slower" in result.stdout and "1 of 1 matched points differ" in result.stdout
    assert "1 point(s) in A only: din b1 cpu t1" in result.stdout
    assert "warning: the runs were measured with different timing settings: min_seconds " \
           "1.0 vs 0.5" in result.stdout
    result = recstack("compare", a, b, "--store", str(store), "--json")
    assert result.returncode == 0, result.stderr
    points = json.loads(result.stdout)["points"]
    assert [p["change"] for p in points] == ["slower", "n/a"]
    assert "warning: the runs were measured with different" in result.stderr
    assert_one_line_error(recstack("compare", a, "nope", "--store", str(store)),
                          "run: 'nope' is not in")


def test_compare_runs_of_two_precisions(tmp_path: Path) -> None:
    """A in fp32, B in fp32 and int8 tables: only the fp32 points are matched; B's int8 point
    is listed as B's alone, named with its precision, and a warning says why."""
    from recstack.store import ResultStore
    from tests.analysis.test_compare import record

    store = ResultStore(tmp_path / "r.duckdb")
    a = store.create_run("a", {}, {}, "p", "machine")
    b = store.create_run("b", {}, {}, "p", "machine")
    record(store, a, "rmc1", 1, 1.0, seed=1)
    record(store, b, "rmc1", 1, 1.0, seed=2, embedding="fp32")
    record(store, b, "rmc1", 1, 0.5, seed=3, embedding="int8")
    result = recstack("compare", a, b, "--store", str(store.path))
    assert result.returncode == 0, result.stderr
    assert "precision" in result.stdout  # a column: the points span two precisions
    assert "0 of 1 matched points differ significantly" in result.stdout
    assert "1 point(s) in B only: rmc1 b1 cpu t1 emb=int8,dense=fp32" in result.stdout
    assert "different precisions (A: fp32; B: fp32, emb=int8,dense=fp32)" in \
        " ".join(result.stdout.split())


def test_compare_two_platforms_of_one_run(tmp_path: Path) -> None:
    from recstack.store import ResultStore
    from tests.analysis.test_compare import record

    store = ResultStore(tmp_path / "r.duckdb")
    run = store.create_run("fleet", {}, {}, "pa", "machine A")
    store.record_platform("pb", "machine B", {})
    record(store, run, "rmc1", 1, 1.0, seed=1, platform="pa")
    record(store, run, "rmc1", 1, 1.3, seed=2, platform="pb")
    result = recstack("compare", run, run, "--store", str(store.path), "--platform-a", "pa",
                      "--platform-b", "pb")
    assert result.returncode == 0, result.stderr
    assert f"A: {run} on machine A (pa)" in result.stdout
    assert f"B: {run} on machine B (pb)" in result.stdout
    assert "1 of 1 matched points differ significantly (1 slower" in result.stdout
    result = recstack("compare", run, run, "--store", str(store.path), "--json")
    assert result.returncode == 0, result.stderr
    points = json.loads(result.stdout)["points"]
    assert [(p["platform_a"], p["platform_b"]) for p in points] == [("pa", "pa"), ("pb", "pb")]
    assert "spans 2 platforms (pa, pb)" in result.stderr
    assert_one_line_error(recstack("compare", run, run, "--store", str(store.path),
                                   "--platform-b", "nope"),
                          f"--platform-b: 'nope' is not a platform of run {run}; its points "
                          "were measured on pa, pb")


def test_report_command(tmp_path: Path) -> None:
    store = tmp_path / "r.duckdb"
    a, _ = _two_runs(store)
    result = recstack("report", "--store", str(store), "--run", a, "--html",
                      str(tmp_path / "page.html"), "--markdown", str(tmp_path / "page.md"))
    assert result.returncode == 0, result.stderr
    assert f"report: {tmp_path / 'page.html'}" in result.stdout
    page = (tmp_path / "page.html").read_text()
    assert "machine &lt;A&gt;" in page and "not measured in this run" in page
    result = recstack("report", "--store", str(store))  # the latest run, at the default place
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in (tmp_path / "reports").iterdir())
    # The page, the summary and the summary's figures folder.
    kinds = sorted(Path(name).suffix or name.rsplit("_", 1)[-1] for name in written)
    assert kinds == [".html", ".md", "figures"]
    assert_one_line_error(recstack("report", "--store", str(store), "--run", "nope"),
                          "--run: 'nope' is not in")
