"""Hostile input at the command line: every bad value is one line on stderr, exit status 2,
and nothing written. Property-based where the space of bad values is large (numeric options,
spec files, sweep files), one case per class elsewhere. Runs the CLI in this process (a
subprocess costs a second of imports per example) except where a signal or a disk is the
point."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from importlib import resources
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recstack.limits import INT32_MAX, SEED_MAX
from recstack.host import usable_cores
from recstack.paths import RUN_ID_PATTERN
from tests.test_userfiles import ALIAS_BOMB

BASE = ["--batch-sizes", "1", "--threads", "1", "--min-time", "0.01", "--row-scale", "0.001"]
EXAMPLES = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def cli(*args: str) -> tuple[int, str, str]:
    """``recstack ARGS`` in this process: (exit status, stdout, stderr)."""
    from recstack.cli import main

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["recstack", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = argv
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return code, out.getvalue(), err.getvalue()


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*"))


def assert_refused(result: tuple[int, str, str], directory: Path, text: str = "") -> str:
    """Exit status 2, one line on stderr (containing ``text``), nothing under
    ``directory``; returns the line."""
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and len(lines[0]) < 600
    assert text in lines[0], lines[0]
    assert files_under(directory) == []
    return lines[0]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder (the default store is results/recstack.duckdb under it)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def clear(folder: Path) -> None:
    for path in reversed(files_under(folder)):
        path.rmdir() if path.is_dir() else path.unlink()


# ---- numeric and named options ---------------------------------------------------------------

NOT_NUMBERS = st.sampled_from(["abc", "", "1,x", "0x10", "1e", "--", "nan", "inf"])
BAD_OPTIONS = st.one_of(
    st.tuples(st.just("--batch-sizes"), st.one_of(
        st.integers(max_value=0).map(str), st.integers(INT32_MAX + 1, 10**30).map(str),
        st.floats(0.1, 1e6).filter(lambda x: x != int(x)).map(str), NOT_NUMBERS)),
    st.tuples(st.just("--threads"), st.one_of(
        st.integers(max_value=0).map(str), st.integers(usable_cores() + 1, 10**20).map(str),
        NOT_NUMBERS)),
    st.tuples(st.just("--row-scale"), st.one_of(
        st.floats(max_value=0.0).map(str), st.sampled_from(["nan", "inf", "-inf", "1e300",
                                                            "1e9"]), NOT_NUMBERS)),
    st.tuples(st.just("--min-time"), st.one_of(
        st.floats(max_value=-1e-9).map(str), st.floats(3600.5, 1e300).map(str),
        st.sampled_from(["nan", "inf"]), NOT_NUMBERS)),
    st.tuples(st.just("--seed"), st.one_of(
        st.integers(max_value=-1).map(str), st.integers(SEED_MAX + 1, 10**40).map(str),
        NOT_NUMBERS)),
    st.tuples(st.just("--run-id"), st.one_of(
        st.sampled_from(["../../outside/RUNPWN", "/tmp/abs", "a/b", "..", ".x", "x" * 65]),
        # Any text a run id may not be ("0_" may: letters, digits, ".", "_", "-").
        st.text(min_size=1).filter(lambda t: not RUN_ID_PATTERN.fullmatch(t)
                                   and not t.startswith("-")))),
)


@EXAMPLES
@given(BAD_OPTIONS)
def test_a_bad_option_value_is_one_line_and_writes_nothing(work: Path,
                                                           bad: tuple[str, str]) -> None:
    option, value = bad
    args = ["sweep", "-m", "ncf", *BASE]
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    clear(work)
    assert_refused(cli(*args), work)


# ---- spec files ------------------------------------------------------------------------------

RMC1 = json.loads(resources.files("recstack.models.zoo").joinpath("rmc1.json").read_text())
BAD_SPEC_VALUES = st.one_of(
    st.tuples(st.sampled_from(["arch_sparse_feature_size", "num_indices_per_lookup"]),
              st.one_of(st.integers(max_value=0), st.integers(2**20 + 1, 10**30),
                        st.floats(allow_nan=True), st.text(), st.booleans(), st.none())),
    st.tuples(st.just("row_scale"), st.one_of(
        st.floats(max_value=0.0), st.sampled_from([float("nan"), float("inf"), 1e300]),
        st.text(), st.lists(st.integers(), max_size=3))),
    st.tuples(st.sampled_from(["arch_mlp_top", "arch_embedding_size", "arch_mlp_bot"]),
              st.one_of(st.text(alphabet="0123456789-x ,", min_size=1).map(str.strip).filter(
                  lambda t: not t.replace("-", "").isdigit() or t.startswith("-")
                  or "--" in t or t.endswith("-")),
                        st.just("1-" * 5000 + "1"), st.just(f"{2**41}-1"),
                        st.lists(st.floats(allow_nan=True), min_size=1, max_size=3))),
    st.tuples(st.just("model_name"), st.one_of(
        st.text(min_size=129, max_size=300), st.just("x\x1b[31m"), st.just("a\x00b"),
        st.just(""), st.integers(), st.just("x" * 100_000))),
    st.tuples(st.sampled_from(["model_type", "arch_interaction_op"]),
              st.text(max_size=20).filter(lambda t: t.strip().lower() not in (
                  "dlrm", "cat", "dot", "ncf", "wnd", "mtwnd", "din", "dien"))),
)


@EXAMPLES
@given(BAD_SPEC_VALUES, st.sampled_from(["json", "yaml"]))
def test_a_bad_spec_value_is_one_line(work: Path, tmp_path: Path, bad: tuple[str, object],
                                      syntax: str) -> None:
    key, value = bad
    config = {**RMC1, key: value}
    path = tmp_path / f"spec.{syntax}"
    path.write_text(json.dumps(config) if syntax == "json" else yaml.safe_dump(config))
    clear(work)
    line = assert_refused(cli("check", str(path)), work)
    assert f"spec.{syntax}: " in line


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400), st.sampled_from(["json", "yaml"]))
def test_any_bytes_as_a_spec_file_are_one_line(work: Path, tmp_path: Path, content: bytes,
                                               syntax: str) -> None:
    path = tmp_path / f"spec.{syntax}"
    path.write_bytes(content)
    clear(work)
    assert_refused(cli("check", str(path)), work)


# ---- sweep files -----------------------------------------------------------------------------

BAD_SWEEP_VALUES = st.one_of(
    st.tuples(st.just("seed"), st.one_of(st.integers(max_value=-1),
                                         st.integers(SEED_MAX + 1, 10**30), st.text(),
                                         st.floats(allow_nan=True), st.booleans())),
    st.tuples(st.just("scale"), st.one_of(st.floats(max_value=0.0), st.text(),
                                          st.sampled_from([float("nan"), float("inf"), 1e300]),
                                          st.lists(st.floats(), min_size=1, max_size=2))),
    st.tuples(st.sampled_from(["batch_sizes", "threads"]), st.one_of(
        st.lists(st.one_of(st.integers(max_value=0), st.integers(10**10, 10**30),
                           st.text(), st.floats()), min_size=1, max_size=3),
        st.integers(), st.just([]))),
    st.tuples(st.just("models"), st.one_of(st.just([]), st.just([{"a": 1}]),
                                           st.just(["nomodel"]), st.text())),
    st.tuples(st.just("query"), st.one_of(
        st.just({"distribution": "normal"}), st.just({"zipf_exponent": float("nan")}),
        st.just({"seed": -1}), st.just({"nope": 1}), st.just([1]))),
)


@EXAMPLES
@given(BAD_SWEEP_VALUES)
def test_a_bad_sweep_file_value_is_one_line_and_writes_nothing(
        work: Path, tmp_path: Path, bad: tuple[str, object]) -> None:
    key, value = bad
    config = {"models": ["ncf"], "batch_sizes": [1], "threads": [1], "scale": 0.001, key: value}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    clear(work)
    assert_refused(cli("sweep", "--sweep-file", str(path), "--min-time", "0.01"), work)


# ---- one case per class ------------------------------------------------------------------------


def test_hostile_files_are_refused_quickly(work: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({**RMC1, "model_name": "x" * 50_000_000}))
    binary = tmp_path / "targets.yaml"
    binary.write_bytes(bytes(range(256)))
    for args, text in ((["check", str(bomb)], "expands to more than 100000 values"),
                       (["sweep", "--sweep-file", str(bomb)], "expands to more than"),
                       (["check", str(deep)], "nested more than 32 levels deep"),
                       (["check", str(huge)], "is too large; expected at most 1048576"),
                       (["run", "-m", "ncf", *BASE, "--targets", str(binary)],
                        "not UTF-8 text")):
        start = time.perf_counter()
        assert_refused(cli(*args), work, text)
        assert time.perf_counter() - start < 10


@pytest.mark.parametrize("args, text", [
    (["locality", "rmc1", "--batches", "1000000000"], "--batches: 1000000000 batches of 256"),
    (["run", "-m", "ncf", *BASE, "--target", "ncf=nan"], "--target: 'ncf=nan' is not allowed"),
    (["run", "-m", "ncf", *BASE, "--target", "nomodel=5"],
     "'nomodel' is not a model of this run (ncf)"),
    (["sweep", "-m", "ncf", "--batch-sizes", "1", "--threads", "1000"],
     "--threads: 1000 is not allowed"),
    (["sweep", "-m", "ncf", *BASE, "--min-time", "1e9"], "--min-time: 1000000000.0 is not "
                                                         "allowed; expected seconds from 0"),
    (["sweep", "-m", "din", "--batch-sizes", "4096", "--threads", "1", "--row-scale", "0.001",
      "--sweep-file", "/nonexistent.yaml"], "--sweep-file: '/nonexistent.yaml' does not"),
    (["check", "rmc1", "--row-scale", "inf"], "--row-scale: inf is not allowed"),
    (["models", "--row-scale", "1e300"], "gives tables of more than 1099511627776 rows"),
    (["locality", "rmc1", "--row-scale", "nan"], "--row-scale: nan is not allowed"),
    (["sweep", "-m", "ncf", *BASE, "--min-time", "abc"], "Invalid value for '--min-time'"),
    (["sweep", "-m", "ncf", "--no-such-option"], "No such option: --no-such-option"),
    (["sweep", "-m", "ncf", *BASE, "--precision", "emb=int3"],
     "--precision: 'emb=int3' is not allowed; expected emb=E,dense=D with E one of"),
    (["sweep", "-m", "ncf", *BASE, "--precision", "fp32", "--precision", "dense=int4"],
     "--precision: 'dense=int4' is not allowed"),
    (["sweep", "-m", "ncf", *BASE, "--backend", "compile", "--precision", "dense=int8"],
     "--precision: 'emb=fp32,dense=int8' is not allowed with --backend compile on cpu; "
     "dense int8 does not run on the compile backend"),
    (["profile", "-m", "rmc1", *BASE[:4], "--precision", "emb=int9"], "--precision: "),
    (["hardware", "-m", "rmc1", "--precision", "emb=int8,dense=int8,emb=fp16"],
     "--precision: 'emb=int8,dense=int8,emb=fp16' is not allowed"),
    (["serve", "-m", "rmc1", "--precision", "int4"], "--precision: 'int4' is not allowed"),
    (["correlate", "--quick", "--precision", "emb=fp8"], "--precision: 'emb=fp8'"),
    (["run", "-m", "ncf", *BASE, "--precision", "emb=int8,dense=int8", "--backend", "compile"],
     "--precision: 'emb=int8,dense=int8' is not allowed with --backend compile"),
])
def test_refused_before_anything_starts(work: Path, args: list[str], text: str) -> None:
    assert_refused(cli(*args), work, text)


def test_a_long_behaviour_sequence_is_refused_by_memory_admission(work: Path,
                                                                   tmp_path: Path) -> None:
    din = json.loads(resources.files("recstack.models.zoo").joinpath("din.json").read_text())
    path = tmp_path / "din_long.json"
    path.write_text(json.dumps({**din, "sequence_length": 200_000}))
    assert_refused(cli("sweep", "-m", str(path), "--batch-sizes", "4096", "--threads", "1",
                       "--row-scale", "0.001"), work, "din at batch 4096: needs about")


def test_measured_counters_on_a_machine_without_them(work: Path) -> None:
    from recstack.doctor import probe_pmu

    if probe_pmu().available:
        pytest.skip("this machine has working hardware counters")
    assert_refused(cli("hardware", "-m", "ncf", "--mode", "measured", "--row-scale", "0.001",
                       "--batch-sizes", "1"), work, "--mode: 'measured' is not allowed here")


def test_destinations_that_cannot_be_written(work: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "afile").write_text("user data")
    (outside / "adir").mkdir()
    store = outside / "r.duckdb"
    with duckdb.connect(str(store)) as db:
        db.execute("CREATE TABLE customers (name VARCHAR)")
    before = files_under(outside)
    for args, text in (
            (["sweep", "-m", "ncf", *BASE, "--store", str(outside / "afile" / "s.duckdb")],
             "its folder cannot be created"),
            (["sweep", "-m", "ncf", *BASE, "--store", str(store)],
             "a DuckDB database that is not a recstack store (it holds 'customers')"),
            (["results", "--store", str(store)], "not a recstack store"),
            (["report", "--store", str(store)], "not a recstack store"),
            (["design", "--quick", "--write", str(outside / "afile" / "specs")],
             "afile' is a file, so nothing can be written under it")):
        assert_refused(cli(*args), work, text)
    assert files_under(outside) == before and (outside / "afile").read_text() == "user data"


@pytest.mark.slow
def test_report_and_export_destinations_are_checked_before_writing(work: Path,
                                                                    tmp_path: Path) -> None:
    store = tmp_path / "r.duckdb"
    code, _, err = cli("sweep", "-m", "ncf", *BASE, "--store", str(store))
    assert code == 0, err
    (tmp_path / "afile").write_text("user data")
    (tmp_path / "adir").mkdir()
    run_id = json.loads(cli("results", "--store", str(store), "--json")[1])[0]["run_id"]
    for args, text in (
            (["report", "--store", str(store), "--html", str(tmp_path / "adir")],
             "--html: "),
            (["report", "--store", str(store), "--markdown", str(tmp_path / "afile" / "x.md")],
             "afile' is a file"),
            (["results", "export", run_id, "--store", str(store), "--to",
              str(tmp_path / "afile")], "--to: ")):
        assert_refused(cli(*args), work, text)
    assert list((tmp_path / "adir").iterdir()) == []


# ---- interruption and a full disk, as users meet them ------------------------------------------


@pytest.mark.slow
def test_ctrl_c_prints_the_documented_line_and_the_run_says_it_was_interrupted(
        tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "recstack", "sweep", "-m", "ncf", "--row-scale", "0.001",
         "--batch-sizes", "1,2,4", "--threads", "1", "--min-time", "1.5", "--store", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while "[1/3]" not in (line := sweep.stdout.readline()):  # the first point is measured
        assert line and time.monotonic() < deadline, sweep.stderr.read()
    time.sleep(1.0)  # inside the second point's worker
    os.killpg(sweep.pid, signal.SIGINT)  # as the terminal sends Ctrl-C: to the whole group
    _, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("interrupted: run ") and "stopped at point 2 of 3" in lines[0]
    assert "rerun with --resume to continue the run" in lines[0]
    listing = json.loads(cli("results", "--store", str(store), "--json")[1])
    assert listing[0]["status"].startswith("interrupted after 1 of 3 points; in flight: ")


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(folder)], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_finished_points_are_kept(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "16m"):
        pytest.skip("cannot mount a small tmpfs here (needs root); the store's full-disk "
                    "handling is tested with a file-size limit in tests/test_store.py")
    try:
        store = disk / "s.duckdb"
        command = [sys.executable, "-m", "recstack", "sweep", "-m", "ncf", "--row-scale",
                   "0.001", "--threads", "1", "--min-time", "0.3", "--store", str(store)]
        first = subprocess.run([*command, "--batch-sizes", "1"], capture_output=True,
                               text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\xff" * max(0, free - 100_000))  # leave about 100 KB
        full = subprocess.run([*command, "--batch-sizes", "1,2,4,8,16,32"],
                              capture_output=True, text=True, timeout=300)
        lines = [line for line in full.stderr.splitlines() if line.strip()]
        assert full.returncode == 2 and len(lines) == 1, full.stderr
        assert "cannot write" in lines[0] and "--resume continues it" in lines[0]
        filler.unlink()
        listing = json.loads(cli("results", "--store", str(store), "--json")[1])
        assert listing[-1]["status"] == "complete: 1 of 1 points"
        assert "stopped after" in listing[0]["status"]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)


def test_a_hostile_store_prints_and_exports_as_text(work: Path, tmp_path: Path) -> None:
    """Names and run ids read back from a store someone else edited: the terminal gets no
    escape sequence or markup, exports land inside --to with safe names and defused cells."""
    from tests.report.test_hostile_names import hostile_store

    outside = tmp_path / "outside"
    store = hostile_store(tmp_path / "in", str(outside / "abs"))
    with duckdb.connect(str(store.path)) as db:
        db.execute("UPDATE points SET label = model")
        db.execute("UPDATE runs SET command = 'recstack [bold]run[/bold] \x1b[31mRED'")
    for args in (["results", "--store", str(store.path)],
                 ["results", "show", str(outside / "abs"), "--store", str(store.path)]):
        code, out, err = cli(*args)
        assert code == 0, err
        assert "\x1b" not in out and "\x00" not in out and "\\x1b[31mRED" in out
        assert "[bold]run[/bold]" in out or args[1] == "show"  # markup shown as text
    export = tmp_path / "export"
    code, _, err = cli("results", "export", str(outside / "abs"), "--store", str(store.path),
                       "--format", "csv", "--to", str(export))
    assert code == 0, err
    assert not outside.exists()
    names = [path.name for path in export.iterdir()]
    exported = [t for t in store.schema.tables if t.name == "platforms" or "run_id" in t.names]
    assert len(names) == len(exported) and all(name.startswith("tmp_") and "/" not in name
                                               for name in names)
    points = next(path for path in export.iterdir() if path.name.endswith("-points.csv"))
    text = points.read_text()
    assert "\x1b" not in text and "\x00" not in text and "\\x1b[31mRED" in text
