"""The backend race: the rule, the output check, storing and reusing races, and how ``auto``
reads them (only this machine's, only at the race's thread count; else the shipped file).
Tiny models and timings: nothing here asserts which backend is faster."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from recstack import api, backend_race
from recstack.backend_race import (RACE_COLUMNS, RaceSettings, ensure_backend_choices, pick,
                                   race_backends, stored_choices)
from recstack.backends import (BackendChoices, build_for_backend, resolve_backend,
                               resolve_with_basis)
from recstack.errors import RecstackError
from recstack.platform_info import collect_platform, platform_id
from recstack.specs import ZOO_NAMES, zoo_spec
from recstack.store import ResultStore
from recstack.sweep import plan_specs

TINY = RaceSettings(rounds=2, round_seconds=0.002, warmup_seconds=0.0, num_batches=2)
SCALE = 0.001


@pytest.fixture(scope="module")
def this_platform() -> str:
    return platform_id(collect_platform())


def race_frame(identity: str, threads: int, choices: dict[str, dict[int, str]],
               row_scale: float = SCALE) -> pd.DataFrame:
    """Rows of a race as race_backends returns them, with made-up medians."""
    rows = [{"platform_id": identity, "threads": threads, "model": model,
             "model_type": zoo_spec(model).model_type, "row_scale": row_scale,
             "batch_size": size, "backend": backend,
             "candidates": {"eager": 10.0, "fused": 9.0, "static": "no Static Runtime"},
             "measured_at": datetime.now(UTC), "recstack_version": "test",
             "torch_version": "test"}
            for model, sizes in choices.items() for size, backend in sizes.items()]
    return pd.DataFrame(rows)[RACE_COLUMNS]


def test_pick_needs_each_backend_to_beat_the_one_before_by_the_margin() -> None:
    assert pick({"eager": 100, "fused": 98, "static": 90}) == "static"
    assert pick({"eager": 100, "fused": 98, "static": 97.5}) == "eager"  # within 3%
    assert pick({"eager": 100, "fused": 50, "static": 49}) == "fused"  # static: not 3% better
    assert pick({"eager": 100, "static": 10}) == "static"  # fused disqualified
    with pytest.raises(RecstackError, match=r"^rounds: 0 is not allowed"):
        RaceSettings(rounds=0)


def test_a_race_is_stored_and_reused_unless_refreshed(tmp_path: Path,
                                                      this_platform: str) -> None:
    store = ResultStore(tmp_path / "r.duckdb")
    # In a spawned worker, as the command runs it.
    frame, raced = ensure_backend_choices(store, 1, ["rmc1", "ncf"], (1, 4), row_scale=SCALE,
                                          settings=TINY)
    assert raced and len(frame) == 4 and frame.set_id.nunique() == 1
    assert set(frame.platform_id) == {this_platform} and set(frame.row_scale) == {SCALE}
    assert set(frame.backend) <= set(backend_race.CANDIDATES)
    for candidates in frame.candidates:
        assert isinstance(candidates["eager"], float) and {"eager", "fused"} <= set(candidates)
    again, raced = ensure_backend_choices(store, 1, ["ncf"], (4,), row_scale=SCALE,
                                          settings=TINY, isolated=False)
    assert not raced and list(again.set_id.unique()) == list(frame.set_id.unique())
    # Not covered (another batch size), or refreshed: raced again, a new set.
    _, raced = ensure_backend_choices(store, 1, ["ncf"], (16,), row_scale=SCALE,
                                      settings=TINY, isolated=False)
    assert raced
    newest, raced = ensure_backend_choices(store, 1, ["ncf"], (16,), refresh=True,
                                           row_scale=SCALE, settings=TINY, isolated=False)
    assert raced and newest.set_id.iloc[0] not in set(frame.set_id)
    assert store.load_backend_choices(this_platform, 1, every_set=True).set_id.nunique() == 3


def test_a_backend_whose_outputs_differ_is_disqualified() -> None:
    def wrong_fused(spec: object, backend: str) -> object:
        # Other weights: a wrong layout or table would look like this.
        return build_for_backend(spec, backend, seed=1 if backend == "fused" else 0)

    frame = race_backends([zoo_spec("rmc1")], (2,), threads=1, row_scale=SCALE,
                          settings=TINY, platform_id="p", isolated=False, build=wrong_fused)
    (row,) = frame.itertuples(index=False)
    assert row.backend != "fused"
    assert row.candidates["fused"].startswith("outputs differ from eager's")
    assert isinstance(row.candidates["eager"], float)


def test_auto_reads_this_machines_race_at_its_thread_count(tmp_path: Path,
                                                          this_platform: str) -> None:
    path = tmp_path / "r.duckdb"
    store = ResultStore(path)
    # The shipped file picks static or fused for rmc1; the race here picks eager.
    raced = {"rmc1": {1: "eager", 256: "fused"}}
    set_id = store.write_backend_choices(race_frame(this_platform, 1, raced), {}, "here")
    store.write_backend_choices(race_frame(this_platform, 2, {"rmc1": {1: "static"}}), {},
                                "here")
    choices = stored_choices(store, None, 1)
    assert isinstance(choices, BackendChoices) and choices.basis == f"race {set_id}"
    spec = zoo_spec("rmc1").scaled(SCALE)
    assert resolve_with_basis("auto", spec, batch_size=2, choices=choices) == (
        "eager", f"race {set_id}")
    assert resolve_backend("auto", spec, batch_size=100, choices=choices) == "fused"
    assert resolve_with_basis("fused", spec, choices=choices) == ("fused", "as given")
    # By model type where the model was not raced; the shipped file where neither was.
    assert resolve_with_basis("auto", zoo_spec("rmc2"), batch_size=1,
                              choices=choices)[1] == f"race {set_id}"
    assert resolve_with_basis("auto", zoo_spec("ncf"), batch_size=1,
                              choices=choices)[1] == "shipped file"
    planned = api.plan(["rmc1"], batch_sizes=[1, 256], threads=[1], devices=["cpu"],
                       row_scale=SCALE, store=path, levels=("timing", "hardware"),
                       hardware_mode="simulated")
    by_level = {(p.batch_size, p.level): (p.backend, planned.backend_basis[p.key()])
                for p in planned.points}
    assert by_level[(1, "timing")] == ("eager", f"race {set_id}")
    assert by_level[(256, "timing")] == ("fused", f"race {set_id}")
    assert by_level[(1, "hardware")] == ("eager", "as given")
    assert f"auto: backends raced on this machine (race {set_id}, t1)" in planned.notes


def test_races_of_other_machines_or_thread_counts_are_never_used(
        tmp_path: Path, this_platform: str) -> None:
    path = tmp_path / "r.duckdb"
    store = ResultStore(path)
    store.write_backend_choices(race_frame("another-machine", 1, {"rmc1": {1: "eager"}}), {},
                                "elsewhere")
    store.write_backend_choices(race_frame(this_platform, 2, {"rmc1": {1: "eager"}}), {},
                                "here")
    assert stored_choices(store, None, 1) is None
    spec = zoo_spec("rmc1").scaled(SCALE)
    shipped = resolve_backend("auto", spec, batch_size=1)
    planned = api.plan(["rmc1"], batch_sizes=[1], threads=[1], devices=["cpu"],
                       row_scale=SCALE, store=path)
    (point,) = planned.points
    assert (point.backend, planned.backend_basis[point.key()]) == (shipped, "shipped file")
    assert any(note.startswith("auto: no race stored for this machine and 1 thread: the "
                               "shipped choices (measured on ") for note in planned.notes)
    # A race handed over for the wrong thread count is not read either.
    at_two = stored_choices(store, None, 2)
    assert at_two is not None and at_two.threads == 2
    planned = plan_specs([spec], [1], [1], ["cpu"], ["auto"], backend_choices={1: at_two})
    assert set(planned.backend_basis.values()) == {"shipped file"}
    # No store (or none yet): the shipped file too.
    planned = api.plan(["rmc1"], batch_sizes=[1], threads=[1], devices=["cpu"],
                       row_scale=SCALE, store=tmp_path / "none.duckdb")
    assert set(planned.backend_basis.values()) == {"shipped file"}


def test_the_command_shows_a_stored_race_and_refuses_bad_options(
        tmp_path: Path, this_platform: str) -> None:
    path = tmp_path / "r.duckdb"
    store = ResultStore(path)
    zoo = {name: {1: "fused", 16: "eager"} for name in ZOO_NAMES}
    set_id = store.write_backend_choices(race_frame(this_platform, 1, zoo, 0.01), {}, "here")

    def recstack(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "recstack", "backends", "--store",
                               str(path), "--threads", "1", *args], capture_output=True,
                              text=True, timeout=120, check=False)

    shown = recstack("--batch-sizes", "1,16")
    assert shown.returncode == 0, shown.stderr
    assert f"reused: race {set_id} at 1 thread(s)" in shown.stdout
    assert "dien" in shown.stdout and "fused" in shown.stdout
    as_json = json.loads(recstack("--batch-sizes", "1,16", "--json").stdout)
    assert not as_json["raced"] and len(as_json["choices"]) == 2 * len(ZOO_NAMES)
    refused = recstack("--row-scale", "-1")
    assert refused.returncode == 2 and refused.stderr.startswith("error: --row-scale: '-1'")
    assert len(refused.stderr.strip().splitlines()) == 1
    with pytest.raises(RecstackError, match=r"^--threads: 0 is not allowed"):
        api.backends(path, threads=0)
