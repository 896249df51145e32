"""The stored shape of a table-gather ceiling, written and read back."""

from __future__ import annotations

from recstack.ceiling_shapes import parse_table_gather_shape, table_gather_shape


def test_table_gather_shape_round_trip() -> None:
    shape = table_gather_shape(128, 4096, 20)
    assert shape == "row 128 B, table 4096 B, ids 20"
    assert parse_table_gather_shape(shape) == (128, 4096, 20)
    assert parse_table_gather_shape(" row 128 B, table 4096 B ") == (128, 4096, None)
    assert parse_table_gather_shape("row 128 B") is None
    assert parse_table_gather_shape("1024x512x256") is None
