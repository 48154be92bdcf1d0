"""NATS JetStream sink: every event into a JetStream stream, sent from the journal, nothing lost.

Subjects: `<prefix>.plate.<camera_id>` for every event; an event whose `alert` is true also
goes to `<prefix>.alert.<camera_id>` (as ZeroMQ's `alert.` topic: `plate.>` still has every
event); `<prefix>.health.<worker>` for this worker's health (`health()`). Each event is
published with its `event_id` as message id (header `Nats-Msg-Id`; the alert copy's is
`<event_id>-alert`), so JetStream stores a retry within `duplicate_window_seconds` once; an
event counts as delivered when JetStream acknowledged it (stored on a majority of the stream's
replicas). The stream is created when missing: subjects `<prefix>.>`, `replicas` copies, file
storage.

The journal is the outbox. Events are journaled before a sink sees them (stream/publish.py);
this sink keeps the highest seq JetStream acknowledged, with every seq below it, per sink in
the table `sink_offsets` of the journal's SQLite file (its own connection: the journal itself
is never written to), and sends what the journal holds after that seq, in seq order, before
new events: at start (a worker killed and started again), after a reconnect, after any
publish that was not acknowledged. Nothing is lost (NATS away, network cut, worker killed),
and a retry JetStream stores again after its window is the same event_id, which a consumer
drops (`python -m stream.subscribe nats://...` does). The queue only wakes the sender and
counts: an event dropped from it still goes out, from the journal. Without a journal
(`journal.enabled: false`) the events wait in memory, at most `sinks.queue_size` of them.

Order: events are handed to the connection in seq order, so a worker's events are stored in
seq order while nothing fails. At most one event per camera is in flight (a later event waits
for the acknowledgement of its camera's previous one), so even a retry, after a NATS node died
or a leader moved, never lands after its camera's next event; events of different cameras are
in flight together, up to WINDOW at once.

nats-py is asyncio: its loop runs in a thread of the sink's own; the sink's thread only hands
events over. nats-py is imported only when the sink is configured.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone
from urllib.parse import urlsplit

from config.schema import NatsConfig
from stream.capture import redact
from stream.journal import JournalError, JournalReader
from stream.sinks import Sink

log = logging.getLogger(__name__)

WINDOW = 256  # publishes awaiting JetStream's acknowledgement at once
BATCH = 256  # journal events read at a time
RETRY_START, RETRY_MAX = 0.25, 1.0  # s: pauses after a failed publish or connect, doubling
RECONNECT_WAIT = 1  # s: nats-py's pause before trying a server again
OFFSET_SECONDS = 0.5  # the acknowledged seq is written at most this often (and at shutdown)
POLL_SECONDS = 1.0  # the journal is also read this often without a wake-up (an event dropped from the queue)
CLOSE_SECONDS = 2.0  # at shutdown, for closing the connection
STILL_SECONDS = 60.0  # while nothing is acknowledged, a log line this often (beside the state line)
HEALTH_VERSION = 1
OFFSETS = ("CREATE TABLE IF NOT EXISTS sink_offsets (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
           "time REAL NOT NULL)")


def subject_token(text: str) -> str:
    """`text` as one subject token: what NATS does not allow in one (., *, >, spaces) as _."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "_"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _why(e: BaseException) -> str:
    text = str(e).strip()
    return redact(f"{type(e).__name__}: {text}" if text and text != type(e).__name__ else type(e).__name__)


class _Offsets:
    """The highest acknowledged seq per sink, in `sink_offsets` in the journal's file."""

    def __init__(self, path: str) -> None:
        self.path = path
        # a short busy wait: the pipeline writes the same file (WAL: readers never wait)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        # NORMAL: a power cut may lose the latest update, which only sends events again
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(OFFSETS)

    def get(self, sink: str) -> int | None:
        row = self._db.execute("SELECT seq FROM sink_offsets WHERE sink = ?", (sink,)).fetchone()
        return None if row is None else row[0]

    def set(self, sink: str, seq: int) -> None:
        self._db.execute("INSERT INTO sink_offsets (sink, seq, time) VALUES (?, ?, ?) "
                         "ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, time = excluded.time",
                         (sink, seq, time.time()))

    def close(self) -> None:
        self._db.close()


class _Broken(Exception):
    """A publish was not acknowledged: send again from the acknowledged seq."""


class NatsSink(Sink):
    """Publishes events to a JetStream stream; see the module docstring."""

    def __init__(self, config: NatsConfig, queue_size: int, journal: str | None = None,
                 cameras: Sequence[str] = ()) -> None:
        c = self.config = config
        host = urlsplit(c.servers[0]).netloc.rpartition("@")[2] or redact(c.servers[0])
        super().__init__(f"nats:{host}/{c.stream}", queue_size)
        try:  # here: a missing nats-py fails at start, and only with sinks.nats
            import nats  # noqa: F401
        except ImportError:
            raise OSError(f"sink {self.label}: nats-py is not installed (see requirements.txt)") from None
        self.worker = c.worker or subject_token(socket.gethostname())
        self.cameras = list(cameras)
        self.key = f"nats:{c.stream}"  # the row of sink_offsets
        self.prefix = c.subject_prefix
        self._tls = self._tls_context()
        self._reader: JournalReader | None = None
        self._offsets: _Offsets | None = None
        self.acked_seq = 0  # every event up to this seq is acknowledged (or was before this sink's time)
        if journal:
            try:
                self._reader = JournalReader(journal)
                self._offsets = _Offsets(journal)
                last = self._reader.last_seq()
                stored = self._offsets.get(self.key)
                if stored is None:  # a journal this sink never sent from
                    stored = 0 if c.backfill else last
                    self._offsets.set(self.key, stored)
                self.acked_seq = min(stored, last)  # above last: the journal was emptied
            except (JournalError, sqlite3.Error) as e:
                self._close_files()
                raise OSError(f"sink {self.label}: cannot use journal {journal}: {e}") from None
        self._saved_seq, self._saved_at = self.acked_seq, time.monotonic()
        self._memory: deque[dict] = deque()  # without a journal: events not acknowledged yet
        self._waiting: deque[int] = deque()  # seqs taken by put() and not acknowledged, ascending
        self.latencies: deque[float] = deque(maxlen=10000)  # s from a publish to its acknowledgement
        self.duplicates = 0  # events sent again that JetStream already had (not stored again)
        # the asyncio side, all in the loop's thread
        self._loop = asyncio.new_event_loop()
        self._io = threading.Thread(target=self._run_loop, name=f"sink-{self.label}-io", daemon=True)
        self._wake = asyncio.Event()
        self._nc = self._js = None
        self._stream_ready = False
        self._finishing = False
        self._read = self.acked_seq  # the seq of the last event handed to NATS
        self._inflight: deque[tuple[int, asyncio.Task]] = deque()  # (seq, publish) in seq order
        self._busy: set[str] = set()  # cameras with a publish in flight
        self._progress = asyncio.Event()  # a publish in flight ended
        self._broken: BaseException | None = None
        self._main_task: asyncio.Task | None = None

    def _tls_context(self) -> ssl.SSLContext | None:
        c = self.config
        if not (c.tls or any(u.startswith(("tls://", "wss://")) for u in c.servers)):
            return None
        try:  # the files are read here: a bad one fails at start, in one line
            context = ssl.create_default_context(cafile=c.ca_file or None)
            if c.cert_file:
                context.load_cert_chain(c.cert_file, c.key_file or None)
        except (OSError, ValueError, ssl.SSLError) as e:
            raise OSError(f"sink {self.label}: cannot set up TLS: {e}") from None
        return context

    # --- the sink's thread -----------------------------------------------------------------

    def run(self) -> None:
        self._io.start()
        super().run()

    def deliver(self, event: dict) -> bool | None:
        seq = event.get("seq")
        if not isinstance(seq, int) or not isinstance(event.get("camera_id"), str):
            log.error("sink %s: an event without an integer seq and a camera_id: not sent", self.label)
            return False
        with self._settled:
            if seq <= self.acked_seq:  # sent from the journal already
                return True
            self._waiting.append(seq)
            if self._reader is None:
                self._memory.append(event)
                if len(self._memory) > self._queue.maxsize:  # bounded as the queue is
                    lost = self._memory.popleft()
                    self._waiting.remove(lost["seq"])
                    self.dropped += 1
                    log.warning("sink %s is behind: dropped its oldest event (%d so far)", self.label, self.dropped)
        self._loop.call_soon_threadsafe(self._wake.set)
        return None

    def shutdown(self) -> None:
        if self._io.is_alive():
            with self._settled:  # acknowledgements still on their way, until close()'s deadline
                self._settled.wait_for(lambda: not self._waiting, max(0.0, self._deadline - time.monotonic()))
            try:
                asyncio.run_coroutine_threadsafe(self._finish(), self._loop).result(CLOSE_SECONDS + 1)
            except Exception as e:  # noqa: BLE001  (closing: nothing left to do about it)
                log.debug("sink %s: closing: %s", self.label, _why(e))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._io.join(CLOSE_SECONDS)
        self._save_offset(force=True)
        self._close_files()

    def _close_files(self) -> None:
        for f in (self._reader, self._offsets):
            if f is not None:
                try:
                    f.close()
                except sqlite3.Error:
                    pass

    # --- the loop's thread -----------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._main_task = self._loop.create_task(self._main())
        try:
            self._loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(self._loop)  # a connect in progress leaves some of its own
            for task in tasks:
                task.cancel()
            if tasks:
                self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _finish(self) -> None:
        self._finishing = True
        if self._main_task is not None:
            self._main_task.cancel()
            await asyncio.gather(self._main_task, return_exceptions=True)
        if self._nc is not None and not self._nc.is_closed:
            try:
                if self._nc.is_connected:  # a last health message: what this run got acknowledged
                    await self._nc.publish(self._health_subject, self._health_body())
                await asyncio.wait_for(self._nc.close(), CLOSE_SECONDS)
            except Exception as e:  # noqa: BLE001
                log.debug("sink %s: close: %s", self.label, _why(e))

    async def _main(self) -> None:
        health = asyncio.create_task(self._health())
        delay = RETRY_START
        failing_since = said_at = None  # monotonic: the first failure without progress since, the last line
        try:
            while True:
                acked = self.acked_seq
                try:
                    if self._nc is None:
                        await self._connect()
                    while not self._nc.is_connected:  # nats-py reconnects by itself
                        await asyncio.sleep(0.05)
                    if not self._stream_ready:
                        await self._ensure_stream()
                    if self._up is None:  # then only an acknowledgement says that JetStream is back
                        self._state(True)
                    await self._pump()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001  (a failed publish or request: try again)
                    cause = e.__cause__ if isinstance(e, _Broken) and e.__cause__ else e
                    if isinstance(cause, JournalError):
                        log.error("sink %s: %s", self.label, cause)
                    self._stream_ready = self._stream_ready and type(cause).__name__ != "NoStreamResponseError"
                    self._state(False, _why(cause))
                    now = time.monotonic()
                    if self.acked_seq > acked or failing_since is None:
                        failing_since = said_at = now
                    elif now - said_at >= STILL_SECONDS:  # the state line said it once: remind
                        said_at = now
                        log.warning("sink %s: nothing acknowledged for %.0f s (%d events waiting): %s", self.label,
                                    now - failing_since, self.pending, _why(cause))
                delay = RETRY_START if self.acked_seq > acked else min(2 * delay, RETRY_MAX)
                await asyncio.sleep(delay)
        finally:
            health.cancel()

    async def _connect(self) -> None:
        import nats

        c = self.config

        async def error(e: Exception) -> None:  # while connecting: the reason it does not
            if self._nc is None or not self._nc.is_connected:
                self._state(False, _why(e))

        async def disconnected() -> None:
            if not self._finishing:
                self._state(False, "disconnected")

        async def reconnected() -> None:
            self._state(True)

        options = dict(servers=c.servers, name=f"alpr-{self.worker}", connect_timeout=2,
                       reconnect_time_wait=RECONNECT_WAIT, max_reconnect_attempts=-1,  # forever, the first too
                       error_cb=error, disconnected_cb=disconnected, reconnected_cb=reconnected)
        if c.credentials_file:
            options["user_credentials"] = c.credentials_file
        if c.username:
            options["user"], options["password"] = c.username, c.password
        if self._tls is not None:
            options["tls"] = self._tls
        self._nc = await nats.connect(**options)
        self._js = self._nc.jetstream(timeout=c.timeout_seconds)

    async def _ensure_stream(self) -> None:
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError, NotFoundError

        c = self.config
        try:
            await self._js.stream_info(c.stream)
        except NotFoundError:
            config = StreamConfig(name=c.stream, subjects=[f"{self.prefix}.>"], num_replicas=c.replicas,
                                  duplicate_window=c.duplicate_window_seconds, storage=StorageType.FILE,
                                  max_age=c.max_age_days * 86400 or None)
            try:
                await self._js.add_stream(config)
                log.info("sink %s: created stream %s (subjects %s.>, %d replicas)", self.label, c.stream,
                         self.prefix, c.replicas)
            except BadRequestError as e:
                if e.err_code != 10058:  # 10058: another worker created it meanwhile
                    raise
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001  (no answer, no leader yet; credentials that may only publish)
            log.debug("sink %s: stream info: %s; publishing all the same", self.label, _why(e))
            # a publish says whether the stream is there (NoStreamResponseError: ask again)
        self._stream_ready = True

    def _backlog(self, after: int, limit: int) -> list[dict]:
        """The events to send after seq `after`, in seq order, at most `limit`."""
        if self._reader is not None:
            return self._reader.after(after, limit)
        with self._settled:
            return [e for e in self._memory if e["seq"] > after][:limit]

    async def _pump(self) -> None:
        """Send what follows the acknowledged seq, then each new event; raise _Broken once a
        publish failed and every publish in flight has ended."""
        self._read = self.acked_seq
        self._inflight.clear()
        self._busy.clear()
        self._broken = None
        while True:
            if self._broken is not None:
                await asyncio.gather(*(t for _, t in self._inflight), return_exceptions=True)
                raise _Broken() from self._broken
            self._wake.clear()  # before reading: an event journaled after this wakes us
            batch = self._backlog(self._read, BATCH)
            if not batch:
                self._save_offset()
                try:
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                except asyncio.TimeoutError:
                    pass
                continue
            for event in batch:
                # in seq order; one publish in flight per camera, so a retried event never lands
                # after its camera's next one
                while self._broken is None and (event["camera_id"] in self._busy or len(self._inflight) >= WINDOW):
                    self._progress.clear()
                    await self._progress.wait()
                if self._broken is not None:
                    break
                try:
                    await self._send(event)
                except Exception as e:  # noqa: BLE001  (not handed to the connection: sent again)
                    self._broken = e
                    break
                self._read = event["seq"]

    async def _send(self, event: dict) -> None:
        """Hand `event` to the connection (in call order) and track its acknowledgement."""
        camera = event["camera_id"]
        body = json.dumps(event, separators=(",", ":")).encode()
        msg_id = str(event.get("event_id") or event["seq"])
        start = time.monotonic()
        acks = []
        for kind in ("plate", "alert") if event.get("alert") is True else ("plate",):
            # the alert copy has an id of its own: JetStream would drop it as a duplicate
            acks.append(await self._js.publish_async(
                f"{self.prefix}.{kind}.{camera}", body, stream=self.config.stream,
                headers={"Nats-Msg-Id": msg_id if kind == "plate" else f"{msg_id}-alert"}))
        task = self._loop.create_task(self._acknowledged(camera, acks, start))
        self._busy.add(camera)
        self._inflight.append((event["seq"], task))
        task.add_done_callback(self._published)

    async def _acknowledged(self, camera: str, acks: list[asyncio.Future], start: float) -> bool:
        try:
            for ack in acks:
                await asyncio.wait_for(ack, max(0.0, start + self.config.timeout_seconds - time.monotonic()))
            self.latencies.append(time.monotonic() - start)
            if acks[0].result().duplicate:  # sent before, unacknowledged or not yet recorded: stored once
                self.duplicates += 1
            return True
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001  (not acknowledged: sent again from the journal)
            if self._broken is None:
                self._broken = e if str(e) or not isinstance(e, asyncio.TimeoutError) else asyncio.TimeoutError(
                    f"no acknowledgement within {self.config.timeout_seconds:g} s")
            return False
        finally:
            for ack in acks:  # an alert's second acknowledgement, after the first failed
                if not ack.done():
                    ack.cancel()
                elif not ack.cancelled():
                    ack.exception()  # retrieved: asyncio would log it as never retrieved
            self._busy.discard(camera)
            self._progress.set()

    def _published(self, _task: asyncio.Task) -> None:
        """A publish ended: move the acknowledged seq over every acknowledged one at the front."""
        seq = None
        while self._inflight and self._inflight[0][1].done():
            task = self._inflight[0][1]
            if task.cancelled() or task.exception() is not None or not task.result():
                break
            seq = self._inflight.popleft()[0]
        if seq is None:
            return
        self._state(True)
        settled = 0
        with self._settled:
            self.acked_seq = seq
            while self._waiting and self._waiting[0] <= seq:
                self._waiting.popleft()
                settled += 1
            while self._memory and self._memory[0]["seq"] <= seq:
                self._memory.popleft()
            for _ in range(settled):
                self._settle(True)
        self._save_offset()

    def _save_offset(self, force: bool = False) -> None:
        if self._offsets is None or self.acked_seq == self._saved_seq:
            return
        if force or time.monotonic() - self._saved_at >= OFFSET_SECONDS:
            try:
                self._offsets.set(self.key, self.acked_seq)
                self._saved_seq, self._saved_at = self.acked_seq, time.monotonic()
            except sqlite3.Error as e:  # sent again after a restart: harmless; said once per try
                log.warning("sink %s: cannot record the acknowledged seq in %s: %s", self.label,
                            self._offsets.path, e)
                self._saved_at = time.monotonic()

    def health(self) -> dict:
        """This worker's health message."""
        return {"type": "health", "schema_version": HEALTH_VERSION, "time": _now_iso(), "worker": self.worker,
                "cameras": self.cameras, "stream": self.config.stream, "last_acked_seq": self.acked_seq,
                "pending": self.pending, "connected": bool(self._up)}

    @property
    def _health_subject(self) -> str:
        return f"{self.prefix}.health.{self.worker}"

    def _health_body(self) -> bytes:
        return json.dumps(self.health(), separators=(",", ":")).encode()

    async def _health(self) -> None:
        """Every health_seconds, while connected, and once more at shutdown: health() on
        <prefix>.health.<worker>. Not acknowledged: a lost one is replaced by the next."""
        while True:
            if self._nc is not None and self._nc.is_connected:
                try:
                    await self._nc.publish(self._health_subject, self._health_body())
                except Exception as e:  # noqa: BLE001
                    log.debug("sink %s: health: %s", self.label, _why(e))
            await asyncio.sleep(self.config.health_seconds)
