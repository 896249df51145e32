"""Records declared once: a new column is one declaration, through a fresh store and through
an older store upgraded in place; a store written by the previous release opens, upgrades
and reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from recstack.analysis.systems import load_timings
from recstack.errors import StoreError
from recstack.records import SCHEMA, TimingRecord, TimingStats, column
from recstack.store import ResultStore
from tests import fill

NEW_VERSION = SCHEMA.version + 1


@dataclass(frozen=True, kw_only=True)
class TimingStatsWithEnergy(TimingStats):
    """What a collector measuring energy would declare: one field."""

    energy_mj: float | None = column("DOUBLE", "energy per batch", "mJ", since=NEW_VERSION,
                                     default=None)


WITH_ENERGY = SCHEMA.replacing(TimingStatsWithEnergy)


def stats(**values: object) -> TimingStatsWithEnergy:
    base = {name: None for name in TimingStats.__dataclass_fields__}
    return TimingStatsWithEnergy(**{**base, "iterations": 3, "median_ms": 1.5,
                                    "throughput_per_s": 1.0, **values})


def record(energy: float | None) -> TimingRecord:
    samples = pd.DataFrame({"iteration": range(3), "latency_ns": [1_500_000] * 3})
    return TimingRecord(samples=samples, stats=stats(energy_mj=energy))


def measure_into(store: ResultStore, key: str, energy: float | None) -> str:
    run_id = store.create_run("test", {}, {}, "p", "machine")
    store.record_point(run_id, key, fill.point(label=key, model="rmc1", model_type="dlrm",
                                               row_scale=1.0, batch_size=1, device="cpu",
                                               threads=1, backend="eager"), record(energy))
    return run_id


def test_the_declaration_builds_the_table_and_the_version() -> None:
    timing = WITH_ENERGY.table("timing")
    assert timing.names[-1] == "energy_mj" and "energy_mj DOUBLE" in timing.ddl()
    assert timing.column("energy_mj").unit == "mJ"
    assert WITH_ENERGY.version == NEW_VERSION
    assert [c.name for _, c in WITH_ENERGY.added_in(NEW_VERSION)] == ["energy_mj"]
    assert "energy_mj" not in SCHEMA.table("timing").names  # the shipped schema is untouched


def test_a_new_column_round_trips_through_a_fresh_store(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "fresh.duckdb", schema=WITH_ENERGY)
    run_id = measure_into(store, "a", 42.5)
    loaded = load_timings(store, [run_id])
    assert loaded.energy_mj.tolist() == [42.5] and loaded.median_ms.tolist() == [1.5]


def test_a_new_column_upgrades_an_older_store_in_place(tmp_path: Path) -> None:
    path = tmp_path / "older.duckdb"
    old_run = measure_into(ResultStore(path), "a", None)  # written by today's schema
    store = ResultStore(path, schema=WITH_ENERGY)
    new_run = measure_into(store, "b", 7.0)
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT value FROM meta").fetchone()[0] == str(NEW_VERSION)
    loaded = load_timings(store, [old_run, new_run]).set_index("run_id")
    assert pd.isna(loaded.energy_mj[old_run]) and loaded.energy_mj[new_run] == 7.0
    # Today's recstack refuses the newer store rather than misreading it.
    with pytest.raises(StoreError, match=f"schema version {NEW_VERSION} was written by a newer"):
        ResultStore(path).runs()


def previous_release_store(tmp_path: Path) -> Path:
    """A store written by the previous release (schema 10: a sweep of RMC1 and DIN at two
    batch sizes, timing and operators), kept as DuckDB's export of it."""
    source = Path(__file__).parent / "data" / "store_v10"
    path = tmp_path / "v10.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute((source / "schema.sql").read_text())
        load = (source / "load.sql").read_text().replace("tests/data/store_v10", str(source))
        db.execute(load)
    return path


def test_a_store_of_the_previous_release_opens_upgrades_and_reports(tmp_path: Path) -> None:
    from recstack.analysis.breakdown import load_operators
    from recstack.report.html import build_report, render_html

    path = previous_release_store(tmp_path)
    store = ResultStore(path)
    runs = store.runs()
    assert len(runs) == 1 and runs.state.item() == "complete"
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA.version)
    timings = load_timings(store)
    assert sorted(set(timings.model)) == ["din", "rmc1"] and len(timings) == 4
    assert timings.method_version.isna().all()  # measured before methods were versioned
    operators, profiles = load_operators(store)
    assert len(profiles) == 4 and not operators.empty
    page = render_html(build_report(store))
    assert "rmc1" in page and "Systems level" in page
