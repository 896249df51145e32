"""Files users hand recstack: refused before they can exhaust time or memory, one line each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recstack.errors import RecstackError
from recstack.userfiles import MAX_FILE_BYTES, load_document, load_json, load_yaml

# Nine levels of nine aliases: 9^9 strings once expanded (PyYAML builds it in microseconds as
# shared lists; anything that walks it runs for minutes and gigabytes).
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize("text, message", [
    (ALIAS_BOMB, "expands to more than 100000 values"),
    ("[" * 100_000 + "]" * 100_000, "nested more than 32 levels deep"),
    ("a: &a [*a]\n", "a YAML alias refers to the value that holds it"),
    ("".join(f"a{i}: &a{i} [[[[[[[[[[{'*a' + str(i - 1) if i else 1}]]]]]]]]]]\n"
             for i in range(20)), "nested more than 32 levels deep"),
    ("a: [1,\n", r"not valid YAML \(line 2, column 1"),
])
def test_hostile_yaml_is_refused_quickly(text: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(RecstackError, match=message):
        load_yaml(text, "sweep.yaml")
    assert time.perf_counter() - start < 2


def test_deep_json_is_refused() -> None:
    with pytest.raises(RecstackError, match="spec.json: nested more than 32 levels deep"):
        load_json("[" * 100_000 + "]" * 100_000, "spec.json")


def test_plain_yaml_with_aliases_and_special_floats_loads() -> None:
    assert load_yaml("a: &x [1, 2]\nb: *x\nc: .inf\n", "f.yaml") == {
        "a": [1, 2], "b": [1, 2], "c": float("inf")}


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8 text"),
    (b"models: [rmc1]\x00\n", "holds NUL bytes"),
    (b"x" * (MAX_FILE_BYTES + 1), f"is too large; expected at most {MAX_FILE_BYTES} bytes"),
])
def test_files_that_are_not_small_text_are_refused_before_parsing(
        tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_bytes(content)
    with pytest.raises(RecstackError, match=message):
        load_document(path, "--sweep-file")


def test_a_folder_or_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecstackError, match="--targets: .* is a folder; expected a file"):
        load_document(tmp_path, "--targets")
    with pytest.raises(RecstackError, match="--targets: .* does not exist"):
        load_document(tmp_path / "no.yaml", "--targets")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}&*:,-'\"!| \n\tab1.%?<>#")), max_size=200))
def test_any_text_loads_or_is_one_line_error(text: str) -> None:
    try:
        load_yaml(text, "f.yaml")
    except RecstackError as error:
        assert "\n" not in str(error)
