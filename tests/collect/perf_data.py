"""The recorded perf and toplev outputs the perf tests parse (tests/data/perf)."""

from __future__ import annotations

from pathlib import Path

from recstack.collect.perf_parse import CounterReading

DATA = Path(__file__).resolve().parents[1] / "data" / "perf"


def fixture(name: str) -> str:
    return (DATA / name).read_text()


def by_event(readings: list[CounterReading]) -> dict[str, CounterReading]:
    return {r.event: r for r in readings if r.event}
