"""Byte counts for people, size tokens, and the parser that reads tokens back."""

from __future__ import annotations

import pytest

from recstack.errors import SpecError
from recstack.units import human_bytes, parse_size, size_token


def test_human_bytes() -> None:
    assert human_bytes(4_096_000_000) == "4.10 GB"
    assert human_bytes(2_500_000) == "2.50 MB"
    assert human_bytes(1_000) == "1.00 KB"
    assert human_bytes(999) == "999 B"


def test_size_tokens_are_exact_and_read_back() -> None:
    assert size_token(32 << 10) == "32KiB"
    assert size_token(2 << 20) == "2MiB"
    assert size_token(1 << 30) == "1GiB"
    assert size_token(1536) == "1536B"
    assert size_token(480 << 20, " ") == "480 MiB"
    for size in (0, 1, 1000, 1536, 32 << 10, 3 << 20, 5 << 30):
        assert parse_size(size_token(size)) == size
        assert parse_size(size_token(size, " ")) == size


@pytest.mark.parametrize(("text", "size"), [
    ("512KiB", 512 << 10), ("32mib", 32 << 20), ("1GiB", 1 << 30), ("1.5GB", 1_500_000_000),
    ("4096", 4096), (" 64 KiB ", 64 << 10), (".5MiB", 1 << 19), ("10kb", 10_000),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["12parsecs", "", "MiB", "1.2.3KB", "-1KiB", "1e3",
                                  "\u0661KiB", "9" * 400 + "GiB"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(SpecError, match="cache_sizes: .* is not allowed; expected sizes like"):
        parse_size(text, "cache_sizes")
