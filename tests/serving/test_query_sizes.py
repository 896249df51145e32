"""Request-size distributions: DeepRecSys's parameters and clipping; quantile files read as
untrusted input."""

from __future__ import annotations

import numpy as np
import pytest

from recstack.errors import RecstackError
from recstack.serving.query_sizes import MAX_REQUEST_ITEMS, parse_query_sizes


def _draw(text: str, count: int = 20_000) -> np.ndarray:
    return parse_query_sizes(text).sample(count, np.random.default_rng(0))


def test_fixed_gives_the_size():
    sizes = _draw("fixed:64", 100)
    assert (sizes == 64).all() and parse_query_sizes("fixed:64").maximum == 64


def test_normal_takes_deeprecsys_scale_as_standard_deviation_and_clips():
    sizes = _draw("normal:165,16,1024")
    assert abs(sizes.mean() - 164.5) < 1.0  # floor of N(165, 16): mean 164.5
    assert 14 < sizes.std() < 18
    clipped = _draw("normal:100,50,120")
    assert clipped.max() == 120 and clipped.min() >= 1


def test_lognormal_parameters_are_those_of_the_log():
    sizes = _draw("lognormal:4,0.5,65536")
    assert abs(np.log(sizes).mean() - 4) < 0.05
    assert sizes.dtype == np.int64 and sizes.min() >= 1


def test_quantile_file_sizes_are_drawn_uniformly(tmp_path):
    path = tmp_path / "sizes.txt"
    path.write_text("# a comment\n10\n20.0\n\n30\n")
    parsed = parse_query_sizes(f"file:{path}")
    assert parsed.values == (10, 20, 30) and parsed.maximum == 30
    sizes = parsed.sample(30_000, np.random.default_rng(1))
    counts = np.bincount(sizes)[[10, 20, 30]]
    assert set(np.unique(sizes)) == {10, 20, 30}
    assert (abs(counts / 30_000 - 1 / 3) < 0.02).all()


@pytest.mark.parametrize("text", [
    "poisson:3", "fixed", "fixed:0", "fixed:1.5", "fixed:-3", f"fixed:{MAX_REQUEST_ITEMS + 1}",
    "normal:165,16", "normal:165,0,1024", "normal:nan,16,1024", "normal:165,16,0",
    "lognormal:400,1,1024", "normal:a,b,c", "file:", "file:/no/such/file",
])
def test_bad_specs_are_one_line_errors_naming_the_option(text):
    with pytest.raises(RecstackError) as error:
        parse_query_sizes(text)
    message = str(error.value)
    assert message.startswith("--query-sizes") and "\n" not in message


@pytest.mark.parametrize("content", ["12\nabc\n", "0\n", "-4\n", "1e9\n", "\n\n", "3.5\n"])
def test_malformed_quantile_files_are_refused_with_the_line(tmp_path, content):
    path = tmp_path / "q.txt"
    path.write_text(content)
    with pytest.raises(RecstackError) as error:
        parse_query_sizes(f"file:{path}")
    assert "q.txt" in str(error.value) and "\n" not in str(error.value)


def test_binary_and_huge_quantile_files_are_refused(tmp_path):
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe12\n")
    with pytest.raises(RecstackError, match="UTF-8"):
        parse_query_sizes(f"file:{binary}")
    huge = tmp_path / "h.txt"
    huge.write_text("1\n" * 600_000)
    with pytest.raises(RecstackError, match="larger than"):
        parse_query_sizes(f"file:{huge}")


def test_a_file_is_keyed_by_its_sizes_not_its_name(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("5\n6\n")
    second.write_text("5\n6\n")
    a, b = parse_query_sizes(f"file:{first}"), parse_query_sizes(f"file:{second}")
    assert a.to_dict()["values_digest"] == b.to_dict()["values_digest"]
