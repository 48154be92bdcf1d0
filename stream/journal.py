"""Journal: every event is written to SQLite before it is published.

Events go in `events(seq INTEGER PRIMARY KEY, time REAL, camera_id TEXT, json TEXT)`: `time`
is when the event was appended (Unix seconds) and `json` the event as published. WAL mode
lets the replay server read while the pipeline writes, and `synchronous=FULL` makes
`append` return only once the event is on disk, so an event the journal acknowledged
survives the process being killed (and a power cut). `last_seq()` is where the next run's
numbering continues.

Evidence: `append(event, crops)` may store JPEGs with the event, by name ("crop": the plate
whose read won, "vehicle": around the vehicle), in `images(event_id, name, seq, jpeg)`, in
the same transaction as the event. `JournalReader.search` finds events by plate, camera and
time of first sight (expression indexes on the JSON: a journal written before them needs no
new columns), and `image` gives an event's JPEG back.

Events older than `retention_days` are pruned, with their images, when the journal opens
and then at most every PRUNE_SECONDS, except the latest one: it carries the seq the next run
continues from.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from models.errors import AlprError

PRUNE_SECONDS = 300.0
DAY = 86400.0

_PLATE = "json_extract(json, '$.plate')"
_SEEN = "json_extract(json, '$.first_seen.time')"
_SCHEMA = ("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, time REAL NOT NULL, "
           "camera_id TEXT NOT NULL, json TEXT NOT NULL)",
           "CREATE INDEX IF NOT EXISTS events_time ON events (time)",
           f"CREATE INDEX IF NOT EXISTS events_plate ON events ({_PLATE})",
           f"CREATE INDEX IF NOT EXISTS events_seen ON events ({_SEEN})",
           "CREATE TABLE IF NOT EXISTS images (event_id TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, "
           "jpeg BLOB NOT NULL, PRIMARY KEY (event_id, name))",
           "CREATE INDEX IF NOT EXISTS images_seq ON images (seq)")


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

    def plates(self) -> list[str]:
        """Every plate text the journal holds, once each (what a fuzzy search compares with)."""
        with self._errors():
            rows = self._db.execute(f"SELECT DISTINCT {_PLATE} FROM events WHERE {_PLATE} IS NOT NULL").fetchall()
        return [r[0] for r in rows]

    def search(self, plates: Collection[str] | None = None, camera: str | None = None, since: str | None = None,
               until: str | None = None, before_seq: int | None = None, limit: int = 100) -> list[dict]:
        """Events newest first (seq descending), at most `limit`: with seq < `before_seq` (the
        cursor of the next page), a plate among `plates` (None: any), of `camera`, first seen
        at or after `since` and before `until`. Times are ISO 8601 UTC texts as events carry
        them (`2026-12-07T10:00:00.000Z`), compared as text."""
        where, args = ["1"], []
        for clause, value in (("seq < ?", before_seq), ("camera_id = ?", camera), (f"{_SEEN} >= ?", since),
                              (f"{_SEEN} < ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if plates is not None:  # one JSON parameter: no limit on the number of SQL variables
            where.append(f"{_PLATE} IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(list(plates)))
        with self._errors():
            rows = self._db.execute(f"SELECT json FROM events WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
                                    (*args, limit)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def _has_images(self) -> bool:
        # a journal last opened by a writer older than the images table has none
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'images'").fetchone() \
            is not None

    def image(self, event_id: str, name: str) -> bytes | None:
        """The JPEG stored as `name` with event `event_id`; None when there is none (never
        stored, or pruned)."""
        with self._errors():
            row = self._has_images() and self._db.execute("SELECT jpeg FROM images WHERE event_id = ? AND name = ?",
                                                          (event_id, name)).fetchone()
        return bytes(row[0]) if row else None

    def image_names(self, event_ids: Collection[str]) -> dict[str, list[str]]:
        """The names of the images stored with each of `event_ids` that has any."""
        with self._errors():
            rows = self._has_images() and self._db.execute(
                "SELECT event_id, name FROM images WHERE event_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY event_id, name", (json.dumps(list(event_ids)),)).fetchall()
        names: dict[str, list[str]] = {}
        for event_id, name in rows or ():
            names.setdefault(event_id, []).append(name)
        return names

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
        old = "SELECT seq FROM events WHERE time < ? AND seq < (SELECT MAX(seq) FROM events)"
        self._db.execute(f"DELETE FROM images WHERE seq IN ({old})", (cutoff,))
        self._db.execute(f"DELETE FROM events WHERE seq IN ({old})", (cutoff,))
        self._pruned_at = time.monotonic()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, rolled back on any error (isolation_level None: nothing is implicit)."""
        self._db.execute("BEGIN")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def append(self, event: dict, crops: Mapping[str, bytes | None] | None = None) -> None:
        """Write `event` (its `seq` already set, above `last_seq()`) and its `crops`, JPEGs by
        name ("crop", "vehicle"; a None one is left out); on disk, together, when this returns."""
        row = (event["seq"], time.time(), event["camera_id"], json.dumps(event, separators=(",", ":")))
        images = [(event["event_id"], name, event["seq"], jpeg) for name, jpeg in (crops or {}).items() if jpeg]
        try:
            with self._transaction():  # one commit, one fsync: the event and its evidence or neither
                self._db.execute("INSERT INTO events (seq, time, camera_id, json) VALUES (?, ?, ?, ?)", row)
                self._db.executemany("INSERT INTO images (event_id, name, seq, jpeg) VALUES (?, ?, ?, ?)", images)
        except sqlite3.IntegrityError:
            raise JournalError(f"journal {self.path} already holds seq {event['seq']}: "
                               "is another pipeline writing to it?") from None
        except sqlite3.Error as e:
            raise JournalError(f"journal {self.path}: {e}") from None
        if time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
            with self._errors(), self._transaction():
                self._prune()
