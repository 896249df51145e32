"""Which table plays which role in a model, from the spec alone.

The query generator, the footprint and the models all read the table roles from here, so
they cannot disagree about which ids feed which table.

- Pooled tables receive bags of ids (``indices`` and ``offsets``), summed per sample.
- Behaviour tables (DIN, DIEN) receive a sequence of ``sequence_length`` ids per sample,
  looked up one by one (not pooled). Step ``t`` uses behaviour table
  ``behaviour[t % len(behaviour)]``: one shared table for DIN, one table per step for the
  DeepRecSys DIEN layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from recstack.specs import ModelSpec


@dataclass(frozen=True)
class TableLayout:
    """Roles of a spec's tables. Indices refer to ``spec.rows``."""

    pooled: tuple[int, ...]
    """Tables fed by bags of ids, in the order of ``Batch.bag_indices``."""
    pooling: tuple[int, ...]
    """Maximum (and, when fixed, exact) lookups per bag, per pooled table."""
    behaviour: tuple[int, ...] = ()
    """Tables holding the behaviour sequence (DIN, DIEN)."""
    sequence_length: int = 0
    user_table: int | None = None
    candidate_table: int | None = None
    context_table: int | None = None

    def behaviour_table_of_step(self, step: int) -> int:
        return self.behaviour[step % len(self.behaviour)]


def table_layout(spec: ModelSpec) -> TableLayout:
    """The table roles of ``spec`` (see the module docstring)."""
    if spec.model_type in ("din", "dien"):
        last = spec.num_tables - 1
        user, candidate, context = 0, last - 1, last
        return TableLayout(
            pooled=(user, candidate, context),
            # One candidate ad per sample; user profile and context are multi-hot bags.
            pooling=(spec.pooling_factor, 1, spec.pooling_factor),
            behaviour=tuple(range(1, last - 1)),
            sequence_length=spec.sequence_length or 0,
            user_table=user,
            candidate_table=candidate,
            context_table=context,
        )
    return TableLayout(
        pooled=tuple(range(spec.num_tables)),
        pooling=(spec.pooling_factor,) * spec.num_tables,
    )
