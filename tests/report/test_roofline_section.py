"""The roofline section says which stored ceilings judged a run, and how far from it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd

from recstack.report.roofline_section import DRIFT_WARNING_MINUTES, _ceilings_note


def _choice(offset: float, sets: int = 2) -> SimpleNamespace:
    return SimpleNamespace(threads=1, offset_minutes=offset, sets_stored=sets,
                           measured_from=pd.Timestamp("2026-11-25 04:41", tz="UTC"))


def test_note_names_the_set_and_its_distance_from_the_run() -> None:
    assert _ceilings_note("r1", _choice(0.0)) == (
        "run r1, 1 thread(s): ceilings measured 2026-11-25 04:41 UTC, during the run; "
        "nearest of 2 stored set(s)")
    assert "7 min after the run ended" in _ceilings_note("r1", _choice(7.2))
    assert "30 min before it began" in _ceilings_note("r1", _choice(-30.0))
    assert "newest set" in _ceilings_note("r1", _choice(math.nan))


def test_note_warns_when_the_ceilings_are_far_from_the_run() -> None:
    near = _ceilings_note("r1", _choice(DRIFT_WARNING_MINUTES))
    far = _ceilings_note("r1", _choice(-(DRIFT_WARNING_MINUTES + 1)))
    assert "drift" not in near
    assert "measure ceilings beside the run" in far
