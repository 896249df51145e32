"""Paths built from names stay inside their folder; destinations are checked first; files are
written whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recstack.errors import RecstackError
from recstack.paths import (RUN_ID_PATTERN, check_file_destination, check_folder_destination,
                            check_run_id, file_part, inside, write_atomically)


@pytest.mark.parametrize("run_id", ["../../x/RUNPWN", "/tmp/abs", "a/b", "..", ".hidden",
                                    "a..b", "", "x" * 65, "run\x1b[31m", "run id"])
def test_unsafe_run_ids_are_refused(run_id: str) -> None:
    with pytest.raises(RecstackError, match="--run-id: .* is not allowed; expected 1 to 64"):
        check_run_id(run_id)


def test_generated_style_run_ids_pass() -> None:
    assert check_run_id("20261129-200451-34410a") == "20261129-200451-34410a"
    assert check_run_id("nightly_v1.2") == "nightly_v1.2"


@given(st.text())
def test_file_part_is_one_safe_name_and_keeps_names_apart(name: str) -> None:
    part = file_part(name)
    assert RUN_ID_PATTERN.fullmatch(part) and ".." not in part and "/" not in part
    assert file_part(name + "x") != part or name + "x" == part


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_inside_never_leaves_its_base(names: list[str]) -> None:
    base = Path("/srv/results/figures")
    path = inside(base, *names)
    assert os.path.normpath(path).startswith(str(base) + os.sep)


def test_destinations_are_checked_before_writing(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("user data")
    (tmp_path / "adir").mkdir()
    with pytest.raises(RecstackError, match="--html: .*adir' is a folder; expected a file"):
        check_file_destination(tmp_path / "adir", "--html")
    with pytest.raises(RecstackError, match="afile' is a file, so nothing can be written"):
        check_file_destination(tmp_path / "afile" / "page.html", "--html")
    with pytest.raises(RecstackError, match="--to: .*afile' is a file; expected a folder"):
        check_folder_destination(tmp_path / "afile", "--to")
    assert check_folder_destination(tmp_path / "new" / "deeper", "--to") \
        == tmp_path / "new" / "deeper"
    assert (tmp_path / "afile").read_text() == "user data"


def test_write_atomically_leaves_the_old_file_or_the_new_one(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    write_atomically(target, "old")
    with pytest.raises(TypeError):
        write_atomically(target, object())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
