"""Table roles."""

from __future__ import annotations

from recstack.layout import table_layout
from recstack.specs import zoo_spec


def test_dlrm_pools_every_table() -> None:
    layout = table_layout(zoo_spec("rmc2"))
    assert layout.pooled == tuple(range(32))
    assert layout.pooling == (120,) * 32
    assert layout.behaviour == () and layout.sequence_length == 0


def test_din_roles() -> None:
    layout = table_layout(zoo_spec("din"))
    assert (layout.user_table, layout.candidate_table, layout.context_table) == (0, 2, 3)
    assert layout.pooled == (0, 2, 3) and layout.pooling == (3, 1, 3)
    assert layout.behaviour == (1,)
    assert {layout.behaviour_table_of_step(t) for t in range(250)} == {1}


def test_dien_has_one_behaviour_table_per_step() -> None:
    layout = table_layout(zoo_spec("dien"))
    assert layout.behaviour == tuple(range(1, 41))
    assert [layout.behaviour_table_of_step(t) for t in range(40)] == list(range(1, 41))
    assert layout.pooled == (0, 41, 42)
