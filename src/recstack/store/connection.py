"""The store's file: connections held for one write or one query, its schema version, and
upgrading an older store in place from the declared records (:mod:`recstack.records`).

Every write goes through a connection opened for that write only: a sweep killed at any
moment loses at most the point it was measuring, the file stays readable, and other
processes can read the store between points.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from recstack.errors import RecstackError, StoreError
from recstack.records import SCHEMA, Schema
from recstack.text import one_line, shown

# How long opening the store waits for another process's connection to close.
LOCK_WAIT_S = 60.0
# What the machine does to a write (a full disk, a read-only file, memory): a user's problem,
# reported in one line. Any other DuckDB error is a bug in recstack and is not disguised.
_WRITE_FAILURES = (duckdb.IOException, duckdb.TransactionException, duckdb.FatalException,
                   duckdb.OutOfMemoryException, duckdb.PermissionException)


class StoreFile:
    """A DuckDB results file of ``schema``. Created on first write; readers never create it."""

    def __init__(self, path: str | Path, schema: Schema = SCHEMA):
        self.path = Path(path)
        self.schema = schema

    @contextmanager
    def _writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one write. A write that fails (a full disk, a read-only file)
        is a :class:`StoreError`: the transaction is lost, everything committed before it
        stays, and the write-ahead log is folded back into the file where it can be."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"store {self.path}: its folder cannot be created "
                             f"({error.strerror or error})") from None
        connection = self._connect(read_only=False)
        try:
            # The version first: an older store is upgraded before CREATE IF NOT EXISTS
            # could add tables of the new version beside it.
            new = self._check_schema(connection)
            connection.execute(self.schema.ddl)
            if new:
                connection.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, "
                                   "value VARCHAR)")
                connection.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                   [str(self.schema.version)])
            yield connection
        except (*_WRITE_FAILURES, OSError) as error:
            connection.close()
            self._fold_log()
            raise StoreError(f"store {self.path}: cannot write ({one_line(error, 200)}); "
                             "what was stored before is kept") from None
        finally:
            connection.close()

    def _fold_log(self) -> None:
        """Folds a write-ahead log left by a failed write into the file, where the disk
        allows it now (DuckDB replays a log that is left at every open either way)."""
        if not self.path.with_name(self.path.name + ".wal").is_file():
            return
        try:
            with duckdb.connect(str(self.path)) as connection:
                connection.execute("CHECKPOINT")
        except duckdb.Error:
            pass

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.path.is_file():
            what = "is not a file" if self.path.exists() else "does not exist"
            raise RecstackError(f"store: {shown(str(self.path))} {what}; run `recstack run` "
                                "or `recstack sweep --store PATH` first")
        self._fold_log()
        connection = self._connect(read_only=True)
        try:
            stored = self._stored_version(connection)
            outdated = stored is not None and self.schema.oldest <= stored < self.schema.version
        except BaseException:
            connection.close()
            raise
        if outdated:
            connection.close()  # an older store: upgraded once, by a writer
            with self._writer():
                pass
            connection = self._connect(read_only=True)
        try:
            self._check_schema(connection, missing_ok=False)
            yield connection
        finally:
            connection.close()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Opens the file, waiting while another process holds its lock: every recstack
        connection is held for one point's write or one query, so the wait is short."""
        if self.path.is_dir():
            raise StoreError(f"store {self.path}: is a folder; expected a DuckDB file (e.g. "
                             f"{self.path / 'recstack.duckdb'})")
        deadline = time.monotonic() + LOCK_WAIT_S
        pause = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as error:
                locked = "lock" in str(error).lower()
                if not locked or time.monotonic() > deadline:
                    what = "read" if read_only else "write to"
                    reason = (f"another process has held it for over {LOCK_WAIT_S:g} s"
                              if locked else one_line(error, 200))
                    raise StoreError(f"store {self.path}: cannot {what} it ({reason})"
                                     ) from None
            except duckdb.Error as error:
                raise StoreError(f"store {self.path}: cannot be opened ({one_line(error, 200)})"
                                 ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _stored_version(self, connection: duckdb.DuckDBPyConnection) -> int | None:
        """The store's schema version; None for a file without one (a new, empty store).
        A DuckDB file holding other tables and no recstack version is someone else's
        database: refused, never written into."""
        try:
            row = connection.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.Error:
            row = None
        if row is None:
            tables = _tables(connection)
            if tables:
                names = sorted(tables)
                raise StoreError(f"store {self.path}: a DuckDB database that is not a recstack "
                                 f"store (it holds {', '.join(map(shown, names[:5]))}"
                                 f"{' ...' if len(names) > 5 else ''}); choose another file")
            return None
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise StoreError(f"store {self.path}: its schema version {shown(row[0])} is not a "
                             "number; not a recstack store, or a damaged one") from None

    def _check_schema(self, connection: duckdb.DuckDBPyConnection,
                      missing_ok: bool = True) -> bool:
        """Checks the store's version: a writer (``missing_ok``) upgrades an older store
        (in one transaction), a reader refuses anything but the current version. Returns
        whether the file has no version yet (a new store, for the writer to stamp)."""
        current = self.schema.version
        version = self._stored_version(connection)
        if version is None:
            if not missing_ok:
                raise StoreError(f"store {self.path}: not a recstack results file")
            return True
        if version > current:
            raise StoreError(f"store {self.path}: schema version {version} was written by a "
                             f"newer recstack; this one reads version {current}")
        if version < self.schema.oldest:
            raise StoreError(f"store {self.path}: schema version {version} is too old to "
                             f"upgrade; this recstack reads version {current}")
        if version < current:
            if not missing_ok:
                raise StoreError(f"store {self.path}: schema version {version} is not upgraded")
            self._upgrade(connection, version)
        return False

    def _upgrade(self, connection: duckdb.DuckDBPyConnection, version: int) -> None:
        """Brings a store of ``version`` to the schema's, one version at a time: what a
        declaration cannot say (``Schema.rewrites``), then the columns that version added
        to the tables that exist (new tables are created afterwards, whole)."""
        connection.execute("BEGIN")
        while version < self.schema.version:
            for statement in self.schema.rewrites.get(version, ()):
                connection.execute(statement)
            version += 1
            existing = _tables(connection)
            for table, column in self.schema.added_in(version):
                if table.name in existing:
                    connection.execute(f"ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS "
                                       f"{column.ddl()}")
        connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                           [str(version)])
        connection.execute("COMMIT")

    def check_writable(self) -> None:
        """Refuses, before a long measurement, a store that cannot take its results (not
        recstack's, under a file, read-only); creates it when it does not exist."""
        with self._writer():
            pass


def _tables(connection: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in connection.execute(
        "SELECT table_name FROM information_schema.tables").fetchall()}
