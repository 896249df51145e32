"""`recstack serve` refuses bad load and deployment options with one line and exit status 2,
before anything is written."""

from __future__ import annotations

import pytest

from tests.cli.test_hostile_input import cli, files_under

SERVE = ["serve", "-m", "rmc1", "--row-scale", "0.0001"]


@pytest.mark.parametrize("args, option", [
    (["--qps", "0"], "--qps"), (["--qps", "-5"], "--qps"), (["--qps", "a,b"], "--qps"),
    (["--qps", "nan"], "--qps"), (["--target-ms", "0"], "--target-ms"),
    (["--target-ms", "-1"], "--target-ms"), (["--percentile", "0"], "--percentile"),
    (["--percentile", "100"], "--percentile"), (["--percentile", "150"], "--percentile"),
    (["--sub-batch", "0"], "--sub-batch"), (["--engines", "0"], "--engines"),
    (["--engines", "99"], "--engines"), (["--query-sizes", "normal:1"], "--query-sizes"),
    (["--query-sizes", "file:missing.txt"], "--query-sizes"),
    (["--scenario", "batch"], "--scenario"), (["--backend", "compile"], "--backend"),
    (["--offload-threshold", "64"], "--offload-threshold"),
])
def test_bad_serving_options_are_one_line_and_nothing_is_written(tmp_path, args, option):
    store = tmp_path / "s.duckdb"
    code, out, err = cli(*SERVE, "--store", str(store), *args)
    assert code == 2, err
    assert err.startswith(f"error: {option}") and err.count("\n") == 1, err
    assert files_under(tmp_path) == []


def test_a_malformed_quantile_file_names_its_line(tmp_path):
    sizes = tmp_path / "sizes.txt"
    sizes.write_text("10\n20\nlots\n")
    code, _, err = cli(*SERVE, "--store", str(tmp_path / "s.duckdb"), "--query-sizes",
                       f"file:{sizes}")
    assert code == 2 and "sizes.txt line 3" in err and "Traceback" not in err


def test_a_sweep_refuses_the_serving_level_and_says_where_it_is(tmp_path):
    code, _, err = cli("sweep", "-m", "rmc1", "--levels", "serving", "--batch-sizes", "1",
                       "--row-scale", "0.0001", "--store", str(tmp_path / "s.duckdb"))
    assert code == 2 and "recstack serve" in err and err.count("\n") == 1
    assert files_under(tmp_path) == []
