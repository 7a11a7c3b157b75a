"""A small SQLite store that several engine processes on one machine can share.

Every connection runs in WAL mode (readers never block the writer) with a busy timeout, and
every read-modify-write runs in `BEGIN IMMEDIATE`: the write lock is taken before anything is
read, so two processes can never decide on the same stale state. The schema carries its version
in `PRAGMA user_version` and is checked on open (a newer file is refused, never guessed at).

SQLite errors are translated into the Foundry error tree: a lock held past the busy timeout is a
`TemporaryError` (retry later), anything else (a corrupt or foreign file) a `PermanentError`
that names the file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from foundry.errors import PermanentError, TemporaryError


class Store:
    """One connection to a shared database file, serialized between this process's threads."""

    def __init__(self, path: Path, *, schema: str, version: int, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; every one is begun explicitly.
            # The timeout installs SQLite's busy handler for every lock this connection waits on.
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise PermanentError(f"{path}: cannot open the database: {exc}") from exc
        try:
            self._setup(schema, version)
        except BaseException:
            self._conn.close()
            raise

    def _setup(self, schema: str, version: int) -> None:
        with self._translated():
            mode = self._journal_mode_wal()
            if str(mode).lower() != "wal":
                raise PermanentError(
                    f"{self.path}: SQLite cannot use WAL mode here (got {mode!r}); "
                    "put the database on a local file system"
                )
            # NORMAL is crash-safe in WAL mode (only a power loss can drop the last commits).
            self._conn.execute("PRAGMA synchronous=NORMAL")
        with self.immediate() as conn:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found == 0:
                conn.executescript_in_transaction(schema)
                conn.execute(f"PRAGMA user_version = {int(version)}")
            elif found != version:
                raise PermanentError(
                    f"{self.path}: database schema version {found}, this Foundry knows "
                    f"version {version}; use the matching Foundry, or delete the file "
                    "(it holds only leases and queues, which rebuild themselves)"
                )

    def _journal_mode_wal(self) -> object:
        """Switch to WAL. SQLite answers "database is locked" at once, without its busy handler,
        when another process is switching the same new file at the same moment; so wait here,
        within the busy timeout, as the busy handler would."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def immediate(self) -> Iterator[Txn]:
        """A write transaction whose lock is taken before the first read."""
        with self._lock, self._translated():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Txn(self._conn)
                self._conn.execute("COMMIT")
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """A read transaction: one consistent snapshot, no write lock."""
        with self._lock, self._translated():
            self._conn.execute("BEGIN")
            try:
                yield Txn(self._conn)
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise TemporaryError(
                    f"{self.path}: the database stayed locked for {self._busy_timeout:g}s "
                    "(another engine process holds it); retry later",
                    delay=max(self._busy_timeout, 1.0),
                ) from exc
            raise PermanentError(f"{self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise PermanentError(
                f"{self.path}: {exc}; if the file is damaged, delete it "
                "(it holds only leases and queues, which rebuild themselves)"
            ) from exc


class Txn:
    """The connection as seen inside a transaction (no commit, no rollback, no close)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def executescript_in_transaction(self, script: str) -> None:
        # `executescript` would COMMIT first; run the statements one by one instead.
        for statement in script.split(";"):
            if statement.strip():
                self._conn.execute(statement)
