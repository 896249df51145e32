"""The results store: one DuckDB file, the only place results live
(:mod:`recstack.store.results`; its file and schema: :mod:`recstack.store.connection`)."""

from recstack.store.results import (KEEP_CEILING_SETS, RUN_END_STATES, ResultStore,
                                    git_revision, new_run_id)

DEFAULT_STORE = "results/recstack.duckdb"
"""Where every command reads and writes results unless told otherwise (``--store``)."""

__all__ = ["DEFAULT_STORE", "KEEP_CEILING_SETS", "RUN_END_STATES", "ResultStore",
           "git_revision", "new_run_id"]
