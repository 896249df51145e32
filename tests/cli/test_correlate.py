"""`recstack design` and `recstack correlate` as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from recstack.specs import load_spec_file
from tests.test_cli import assert_one_line_error, recstack

SMALL_DESIGN = """
sampler: lhs
variants_per_model: 6
models: [rmc1]
embedding_budget_mib: 1
factors:
  pooling_factor: {kind: ratio, low: 0.05, high: 1.0, applies_to: [dlrm]}
  mlp_width: {kind: ratio, low: 0.25, high: 2.0, applies_to: [dlrm]}
"""


def test_design_lists_variants_reproducibly_and_writes_runnable_specs(tmp_path: Path) -> None:
    first = recstack("design", "--quick", "--seed", "5", "--json")
    again = recstack("design", "--quick", "--seed", "5", "--json")
    assert first.returncode == 0, first.stderr
    variants = json.loads(first.stdout)
    assert variants == json.loads(again.stdout) and len(variants) == 12
    assert {"variant", "base", "factors", "spec", "features"} <= set(variants[0])
    written = recstack("design", "--quick", "--write", str(tmp_path / "specs"))
    assert written.returncode == 0, written.stderr
    files = sorted((tmp_path / "specs").glob("*.json"))
    assert len(files) == 12
    spec = load_spec_file(files[0])
    assert spec.name == files[0].stem
    checked = recstack("check", str(files[0]), "--json")
    assert checked.returncode == 0, checked.stderr


@pytest.mark.slow
def test_correlate_measures_stores_analyses_and_draws(tmp_path: Path) -> None:
    design = tmp_path / "design.yaml"
    design.write_text(SMALL_DESIGN)
    store = tmp_path / "store.duckdb"
    result = recstack("correlate", "--design-file", str(design), "--batch-sizes", "16",
                      "--levels", "operators", "--threads", "1", "--min-time", "0.05",
                      "--store", str(store), "--json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert {row["bottleneck"] for row in output["dominance"]} >= {"share_embedding",
                                                                  "share_fc"}
    for row in output["dominance"]:
        share = row["strongest_share"]  # null: the features explain no variance
        assert share is None or 0.0 <= share <= 1.0
    names = sorted(Path(p).name for p in output["figures"])
    assert names == ["correlation-dominance-b16-cpu-t1-eager.png",
                     "correlation-heatmap-b16-cpu-t1-eager.png",
                     "correlation-importance-b16-cpu-t1-eager.png"]
    assert all(Path(p).stat().st_size > 10_000 for p in output["figures"])
    with duckdb.connect(str(store), read_only=True) as db:
        design_rows = db.execute("SELECT count(*), min(sampler) FROM design_space").fetchone()
        points = db.execute("SELECT count(*) FROM points WHERE status = 'ok'").fetchone()
    assert design_rows == (6, "lhs") and points == (6,)


@pytest.mark.parametrize("args, text", [
    (["design", "--variants", "0"], "--variants: 0 is not allowed"),
    (["design", "--models", "rmc1,gpt"], "--models: 'gpt' is not allowed"),
    (["design", "--sampler", "sobol"], "--sampler: 'sobol' is not allowed"),
    (["design", "--seed", "-3"], "--seed: -3 is not allowed"),
    (["design", "--design-file", "absent.yaml"], "--design-file: 'absent.yaml' does not exist"),
    (["design", "--quick", "--design-file", "x.yaml"], "--quick: not allowed"),
    (["correlate", "--quick", "--batch-sizes", "0"], "--batch-sizes: '0' is not allowed"),
    (["correlate", "--quick", "--levels", "vibes"], "--levels: 'vibes' is not allowed"),
])
def test_bad_options_are_one_line_errors(args: list[str], text: str) -> None:
    assert_one_line_error(recstack(*args), text)
