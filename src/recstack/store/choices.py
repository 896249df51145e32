"""Stored backend races (``backend_choices``): what ``auto`` runs on a machine, per thread
count, one ``set_id`` per race (:mod:`recstack.backend_race`). The newest
``KEEP_CHOICE_SETS`` races of each platform and thread count are kept; ``auto`` reads the
newest. A mixin of :class:`recstack.store.results.ResultStore`, as the ceilings' methods
are its own, kept apart so that each module stays one job."""

from __future__ import annotations

from typing import Any

import pandas as pd

from recstack.records.declare import encode

# A few races are kept: an older one says how a choice changed after an upgrade.
KEEP_CHOICE_SETS = 5


class BackendChoiceStore:
    """Writing and reading races; used only as a base of ResultStore (its ``_writer``,
    ``_insert``, ``query``, ``schema`` and ``path``)."""

    def write_backend_choices(self, choices: pd.DataFrame, platform: dict[str, Any],
                              description: str) -> str:
        """Stores a new race (rows of ``backend_choices`` less ``set_id``, one platform and
        thread count) beside the races before it, keeping the newest ``KEEP_CHOICE_SETS``,
        in one transaction. Returns the new race's set id."""
        table = self.schema.table("backend_choices")  # type: ignore[attr-defined]
        # JSON columns take their text (as ``Table.row_values`` encodes single rows).
        encoded = {c.name: choices[c.name].map(lambda value: encode(value, True))
                   for c in table.columns if c.is_json and c.name in choices}
        return self.write_set(  # type: ignore[attr-defined]
            table, choices.assign(**encoded), platform, description, KEEP_CHOICE_SETS)

    def load_backend_choices(self, platform_id: str | None = None, threads: int | None = None,
                             every_set: bool = False) -> pd.DataFrame:
        """Stored races (columns of ``backend_choices``, ``candidates`` as a dict),
        optionally of one platform and thread count: the newest race of each, or with
        ``every_set`` every stored one; empty when there are none or no store yet."""
        import json

        frame = self.load_sets(  # type: ignore[attr-defined]
            "backend_choices", ("model", "batch_size"), platform_id, threads, every_set)
        frame["candidates"] = frame["candidates"].map(
            lambda value: json.loads(value) if isinstance(value, str) else value)
        return frame
