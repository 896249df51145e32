"""Stored backend races (``backend_choices``): what ``auto`` runs on a machine, per thread
count, one ``set_id`` per race (:mod:`recstack.backend_race`). The newest
``KEEP_CHOICE_SETS`` races of each platform and thread count are kept; ``auto`` reads the
newest. A mixin of :class:`recstack.store.results.ResultStore`, as the ceilings' methods
are its own, kept apart so that each module stays one job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from recstack.records import Platform
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
        if choices.empty:
            raise ValueError("write_backend_choices: no choices to store")
        keys = choices[["platform_id", "threads"]].drop_duplicates()
        if len(keys) != 1:
            raise ValueError("write_backend_choices: expected rows of one platform and thread "
                             "count")
        platform_id, threads = str(keys.platform_id.iloc[0]), int(keys.threads.iloc[0])
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        set_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        table = self.schema.table("backend_choices")  # type: ignore[attr-defined]
        # JSON columns take their text (as ``Table.row_values`` encodes single rows).
        encoded = {c.name: choices[c.name].map(lambda value: encode(value, True))
                   for c in table.columns if c.is_json and c.name in choices}
        rows = table.frame({}, choices.assign(set_id=set_id, **encoded))
        with self._writer() as db:  # type: ignore[attr-defined]
            db.execute("BEGIN")
            self._insert(db, self.schema.table("platforms"), {},  # type: ignore[attr-defined]
                         [Platform(platform_id=platform_id, description=description,
                                   info=platform)], "ON CONFLICT DO NOTHING")
            db.register("new_rows", rows)
            try:
                db.execute("INSERT INTO backend_choices BY NAME SELECT * FROM new_rows")
            finally:
                db.unregister("new_rows")
            db.execute("""
                DELETE FROM backend_choices WHERE platform_id = ? AND threads = ? AND set_id IN (
                    SELECT set_id FROM backend_choices WHERE platform_id = ? AND threads = ?
                    GROUP BY set_id ORDER BY max(measured_at) DESC OFFSET ?)""",
                       [platform_id, threads, platform_id, threads, KEEP_CHOICE_SETS])
            db.execute("COMMIT")
        return set_id

    def load_backend_choices(self, platform_id: str | None = None, threads: int | None = None,
                             every_set: bool = False) -> pd.DataFrame:
        """Stored races (columns of ``backend_choices``, ``candidates`` as a dict),
        optionally of one platform and thread count: the newest race of each, or with
        ``every_set`` every stored one; empty when there are none or no store yet."""
        import json

        columns = list(self.schema.table("backend_choices").names)  # type: ignore[attr-defined]
        if not self.path.is_file():  # type: ignore[attr-defined]
            return pd.DataFrame(columns=columns)
        where, parameters = [], []
        if platform_id is not None:
            where.append("platform_id = ?")
            parameters.append(platform_id)
        if threads is not None:
            where.append("threads = ?")
            parameters.append(int(threads))
        if not every_set:
            where.append("""set_id = (SELECT newest.set_id FROM backend_choices newest
                WHERE newest.platform_id = backend_choices.platform_id
                      AND newest.threads = backend_choices.threads
                GROUP BY newest.set_id ORDER BY max(newest.measured_at) DESC, newest.set_id DESC
                LIMIT 1)""")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        frame = self.query(  # type: ignore[attr-defined]
            f"SELECT {', '.join(columns)} FROM backend_choices {clause} "
            "ORDER BY platform_id, threads, set_id, model, batch_size", parameters)
        frame["candidates"] = frame["candidates"].map(
            lambda value: json.loads(value) if isinstance(value, str) else value)
        return frame
