"""The one valgrind probe the doctor and the simulation share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recstack import doctor
from recstack.collect import valgrind_probe
from recstack.collect.valgrind_probe import (callgrind_include_flags, explain_missing_header,
                                             probe_valgrind, valgrind_available)


def test_missing_valgrind_is_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(valgrind_probe.shutil, "which", lambda name: None)
    found = probe_valgrind()
    assert found.path is None and not found.runs
    assert found.problem == "valgrind is not installed (apt-get install valgrind)"
    assert valgrind_available() == (False, found.problem)
    assert callgrind_include_flags() == []


def test_header_in_valgrinds_own_prefix_is_found(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A valgrind built into its own prefix (/opt/valgrind/bin, /opt/valgrind/include).
    (tmp_path / "bin").mkdir()
    program = tmp_path / "bin" / "valgrind"
    program.write_text("#!/bin/sh\necho valgrind-3.99.0\n")
    program.chmod(0o755)
    (tmp_path / "include" / "valgrind").mkdir(parents=True)
    (tmp_path / "include" / "valgrind" / "callgrind.h").write_text("")
    monkeypatch.setattr(valgrind_probe.shutil, "which", lambda name: str(program))
    found = probe_valgrind()
    assert found.runs and found.version == "valgrind-3.99.0"
    assert found.header == tmp_path / "include" / "valgrind" / "callgrind.h"
    assert callgrind_include_flags() == ["-I", str(tmp_path / "include")]


def test_a_valgrind_that_fails_does_not_run(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "valgrind"
    program.write_text("#!/bin/sh\nexit 3\n")
    program.chmod(0o755)
    monkeypatch.setattr(valgrind_probe.shutil, "which", lambda name: str(program))
    ok, why = valgrind_available()
    assert not ok and why == f"valgrind at {program} does not run (exit status 3)"
    assert not doctor.probe_valgrind().available


def test_build_errors_about_the_header_are_explained() -> None:
    message = explain_missing_header(["x.c:1:10: fatal error: valgrind/callgrind.h: No such "
                                      "file or directory"])
    assert message is not None and "callgrind.h is missing" in message
    assert "apt-get install valgrind" in message
    assert explain_missing_header(["x.c:3: error: expected ';'"]) is None


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_doctor_and_simulation_agree_on_this_machine() -> None:
    found = probe_valgrind()
    capability = doctor.probe_valgrind()
    if capability.available:  # then the helper's build finds the header the doctor saw
        assert found.runs and found.header is not None
        assert capability.detail.startswith(found.version or "")
    elif found.runs and found.header is None:
        assert "callgrind.h is missing" in capability.detail
