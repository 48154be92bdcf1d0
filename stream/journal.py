"""Journal: every event is written to SQLite before it is published.

One table, `events(seq INTEGER PRIMARY KEY, time REAL, camera_id TEXT, json TEXT)`: `time`
is when the event was appended (Unix seconds) and `json` the event as published. WAL mode
lets the replay server read while the pipeline writes, and `synchronous=FULL` makes
`append` return only once the event is on disk, so an event the journal acknowledged
survives the process being killed (and a power cut). `last_seq()` is where the next run's
numbering continues.

Events older than `retention_days` are pruned when the journal opens and then at most every
PRUNE_SECONDS, except the latest one: it carries the seq the next run continues from.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.errors import AlprError

PRUNE_SECONDS = 300.0
DAY = 86400.0

_SCHEMA = ("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, time REAL NOT NULL, "
           "camera_id TEXT NOT NULL, json TEXT NOT NULL)",
           "CREATE INDEX IF NOT EXISTS events_time ON events (time)")


class JournalError(AlprError, ValueError):
    """The journal cannot be used; the message is one line naming its path."""


class JournalReader:
    """Reads a journal through a connection of its own (the replay server's).

    The connection may be used from another thread than the one that opened it, but by one
    thread at a time.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():  # connecting would create an empty database
            raise JournalError(f"no journal at {self.path}")
        self._db = self._connect()
        try:
            with self._errors():
                self._db.execute("PRAGMA query_only = ON")
            self.last_seq()  # a file that is no journal fails here, not at the first request
        except JournalError:
            self._db.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir():  # SQLite would only say "unable to open database file"
            raise JournalError(f"journal {self.path} is a directory")
        with self._errors():
            # isolation_level None: each statement commits by itself, no implicit transactions.
            # check_same_thread off: opened by the pipeline, used by its read or replay thread.
            return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite errors (corrupt file, disk full, read-only) as a JournalError naming the path."""
        try:
            yield
        except sqlite3.Error as e:
            raise JournalError(f"journal {self.path}: {e}") from None

    def last_seq(self) -> int:
        """The seq of the latest event, 0 when there is none."""
        with self._errors():
            return self._db.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0

    def after(self, seq: int, limit: int) -> list[dict]:
        """The events with seq > `seq`, in seq order, at most `limit` of them."""
        with self._errors():
            rows = self._db.execute("SELECT json FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (seq, limit)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        self._db.close()


class Journal(JournalReader):
    """The journal the publisher writes, from one thread (the pipeline's read thread).

    A missing folder is created; a path that is a folder, cannot be written or holds
    something other than a journal raises JournalError naming it.
    """

    def __init__(self, path: str | Path, retention_days: float = 30.0) -> None:
        # not JournalReader.__init__: it refuses a missing file, which a writer creates
        self.path = Path(path)
        self.retention_days = retention_days
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JournalError(f"cannot create folder {self.path.parent} for journal {self.path}: "
                               f"{e.strerror}") from None
        self._db = self._connect()
        try:
            with self._errors():
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = FULL")
                # IMMEDIATE takes the write lock: a file we cannot write fails now, not at the
                # first event
                self._db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._prune()
                self._db.execute("COMMIT")
        except JournalError:
            self._db.close()  # also rolls back the open transaction
            raise

    def _prune(self) -> None:
        cutoff = time.time() - self.retention_days * DAY
        self._db.execute("DELETE FROM events WHERE time < ? AND seq < (SELECT MAX(seq) FROM events)", (cutoff,))
        self._pruned_at = time.monotonic()

    def append(self, event: dict) -> None:
        """Write `event` (its `seq` already set, above `last_seq()`); on disk when this returns."""
        row = (event["seq"], time.time(), event["camera_id"], json.dumps(event, separators=(",", ":")))
        try:
            self._db.execute("INSERT INTO events (seq, time, camera_id, json) VALUES (?, ?, ?, ?)", row)
        except sqlite3.IntegrityError:
            raise JournalError(f"journal {self.path} already holds seq {event['seq']}: "
                               "is another pipeline writing to it?") from None
        except sqlite3.Error as e:
            raise JournalError(f"journal {self.path}: {e}") from None
        if time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
            with self._errors():
                self._prune()
