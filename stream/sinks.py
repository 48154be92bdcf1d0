"""Sinks: every published event also goes to MQTT, webhooks and CSV/JSONL files, as configured.

Each sink is a thread with its own bounded queue, so a slow or dead sink never blocks the
pipeline or the other sinks: `put()` returns at once, and when a sink's queue is full its
oldest event is dropped, counted (`dropped`) and logged. The guaranteed path stays the
journal with its replay endpoint; a sink is for consumers that do not speak ZeroMQ.

Every event a sink takes ends in one count: `delivered` (the other side has it), `failed`
(given up, logged), `dropped` (queue full), or, at `close()`, `undelivered` (still queued or
unconfirmed at the deadline: one log line with the count). A sink logs the changes of its
connection state, one line each (connected, connection lost, reconnected), never each retry.

- MQTT (paho-mqtt): the event JSON on `<topic>/<camera_id>`, QoS as configured, over TLS if
  asked; paho reconnects by itself, and QoS 1/2 messages wait in its queue while the broker is
  away. An event is delivered once the broker confirmed it (PUBACK at QoS 1, PUBCOMP at QoS 2;
  at QoS 0, once written to the connection), not when handed to paho.
- Webhooks: an HTTP POST of the event JSON per URL, with the configured headers; a failed
  attempt (connection error, timeout, any status but 2xx) is retried with doubling pauses up
  to `retries` times, then the event is given up for that URL (counted in `failed`, logged).
- CSV and JSONL: one line per event, flushed at once.
- NATS JetStream (stream/nats_sink.py): sent from the journal, each event once (its event_id as
  message id), in order per camera, delivered once JetStream acknowledged it.

Labels and log lines show URLs through `redact` (no userinfo, no query values); header values
and passwords are never shown.
"""
from __future__ import annotations

import csv
import json
import logging
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from config.schema import SinksConfig, WebhookConfig
from stream.capture import redact

log = logging.getLogger(__name__)

BACKOFF_START = 0.5  # s before the first webhook retry
CSV_COLUMNS = ("seq", "type", "camera_id", "track_id", "plate", "region", "confidence", "first_seen", "last_seen",
               "reads", "event_id")


class Sink(threading.Thread):
    """Delivers events from its own bounded queue in its own thread; subclasses `deliver`."""

    def __init__(self, name: str, queue_size: int) -> None:
        super().__init__(name=f"sink-{name}", daemon=True)
        self.label = name
        self._queue: queue.Queue[dict | None] = queue.Queue(queue_size)
        self._stopping = threading.Event()
        self._deadline = 0.0  # close()'s, for a sink that still waits for confirmations
        # Guards the counts: confirmations arrive on other threads (paho's); notified on each.
        self._settled = threading.Condition()
        self._closed = False  # counts are final: a confirmation after close() is not counted
        self.received = self.delivered = self.dropped = self.failed = self.undelivered = 0
        self._up: bool | None = None  # connection state: None until known
        self._was_up = False

    @property
    def pending(self) -> int:
        """Events taken but not settled yet: queued, being delivered, or awaiting confirmation."""
        return self.received - self.delivered - self.failed - self.dropped - self.undelivered

    def put(self, event: dict) -> None:
        """Queue `event` without waiting; a full queue loses its oldest event."""
        self.received += 1
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                    log.warning("sink %s is behind: dropped its oldest event (%d so far)", self.label, self.dropped)
                except queue.Empty:
                    pass

    def run(self) -> None:
        try:
            while (event := self._queue.get()) is not None:
                try:
                    ok = self.deliver(event)
                except Exception as e:  # a sink must never take the thread down: the next event may go through
                    log.error("sink %s: %s: %s", self.label, type(e).__name__, redact(str(e)))
                    ok = False
                if ok is not None:  # None: settled later, by a confirmation
                    self._settle(ok)
        finally:
            self.shutdown()

    def deliver(self, event: dict) -> bool | None:
        """True: delivered, False: given up, None: sent, `_settle` follows on its confirmation."""
        raise NotImplementedError

    def _settle(self, ok: bool) -> None:
        with self._settled:
            if not self._closed:
                if ok:
                    self.delivered += 1
                else:
                    self.failed += 1
            self._settled.notify_all()

    def _state(self, up: bool, why: str = "") -> None:
        """Log a change of the connection state in one line; the same state again says nothing."""
        if up != self._up:
            if up:
                log.info("sink %s: %s", self.label, "reconnected" if self._was_up else "connected")
            else:
                log.warning("sink %s: %s: %s", self.label, "connection lost" if self._up else "not connected",
                            redact(why))
            self._up, self._was_up = up, self._was_up or up

    def shutdown(self) -> None:
        """Release what the sink holds (called in its thread after the last event)."""

    def close(self, deadline: float) -> None:
        """Deliver what is queued (one attempt per event from now on) until the monotonic
        `deadline` at the latest, then stop; what is left then is lost to this sink, counted in
        `undelivered` and logged in one line (the journal still has it)."""
        self._deadline = deadline
        self._stopping.set()
        try:
            self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            self.join(max(0.0, deadline - time.monotonic()))
        except queue.Full:
            pass
        with self._settled:
            self.undelivered = self.pending  # queued, in a last attempt, or not confirmed
            self._closed = True
        if self.undelivered:
            log.warning("sink %s: %d events not delivered (they stay in the journal for replay)", self.label,
                        self.undelivered)


class FileSink(Sink):
    """Appends a line per event: its JSON, or with `as_csv` a CSV row (CSV_COLUMNS; the seen
    times as ISO text), under a header row when the file is new."""

    def __init__(self, path: str, as_csv: bool, queue_size: int) -> None:
        super().__init__(f"{'csv' if as_csv else 'jsonl'}:{path}", queue_size)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        new = not Path(path).exists() or Path(path).stat().st_size == 0
        self._file = open(path, "a", encoding="utf-8", newline="")  # here: a bad path fails at start
        self._csv = csv.writer(self._file) if as_csv else None
        if self._csv and new:
            self._csv.writerow(CSV_COLUMNS)
            self._file.flush()

    def deliver(self, event: dict) -> bool:
        if self._csv:
            row = {**event, "first_seen": event["first_seen"]["time"], "last_seen": event["last_seen"]["time"]}
            self._csv.writerow([row.get(c, "") for c in CSV_COLUMNS])
        else:
            self._file.write(json.dumps(event) + "\n")
        self._file.flush()
        return True

    def shutdown(self) -> None:
        self._file.close()


class WebhookSink(Sink):
    def __init__(self, config: WebhookConfig, queue_size: int) -> None:
        super().__init__(f"webhook:{redact(config.url)}", queue_size)
        self.config = config
        self._headers = {"Content-Type": "application/json", **config.headers}  # values never logged

    def deliver(self, event: dict) -> bool:
        body = json.dumps(event).encode()
        delay = BACKOFF_START
        for attempt in range(self.config.retries + 1):
            request = urllib.request.Request(self.config.url, body, self._headers)
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_seconds):
                    self._state(True)
                    return True  # urlopen raises for every status outside 2xx (after redirects)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = redact(str(getattr(e, "reason", None) or e))  # an error may quote the URL
                self._state(False, reason)
            if attempt == self.config.retries or self._stopping.wait(delay):
                log.error("sink %s: gave up on event seq %s after %d attempts: %s", self.label, event.get("seq"),
                          attempt + 1, reason)
                return False
            delay = min(2 * delay, self.config.max_backoff_seconds)
        return False


class MqttSink(Sink):
    def __init__(self, config: SinksConfig, queue_size: int) -> None:
        import paho.mqtt.client as mqtt

        m = config.mqtt
        super().__init__(f"mqtt:{m.host}:{m.port}", queue_size)
        self.topic, self.qos = m.topic.rstrip("/"), m.qos
        self._mqtt = mqtt
        self._pending: dict[int, object] = {}  # mid -> event seq: published, not yet confirmed
        self._early: set[int] = set()  # mids confirmed before publish() returned them to deliver()
        self._leaving = False  # our own disconnect at shutdown: no "connection lost" line
        c = self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=m.client_id)
        if m.username:
            c.username_pw_set(m.username, m.password or None)
        if m.tls:
            try:  # the files are read here: a bad one fails at start, in one line
                c.tls_set(ca_certs=m.ca_file or None, certfile=m.cert_file or None, keyfile=m.key_file or None)
            except (OSError, ValueError) as e:
                raise OSError(f"sink {self.label}: cannot set up TLS: {e}") from None
        c.max_queued_messages_set(queue_size)  # paho's own queue, while the broker is away
        c.on_connect = lambda _c, _u, _f, rc, _p: self._state(not rc.is_failure, str(rc))
        # called within paho's `except OSError` around its connect: the exception says why
        c.on_connect_fail = lambda _c, _u: self._state(False, str(sys.exc_info()[1] or "broker unreachable"))
        c.on_disconnect = lambda _c, _u, _f, rc, _p: self._leaving or self._state(False, str(rc))
        c.on_publish = self._on_publish
        # Asynchronous: an absent broker is retried by paho's loop, not an error at start.
        c.connect_async(m.host, m.port)
        c.loop_start()

    def deliver(self, event: dict) -> bool | None:
        info = self._client.publish(f"{self.topic}/{event['camera_id']}", json.dumps(event), qos=self.qos)
        # QoS 1/2 messages wait in paho's queue until the broker is back; at QoS 0 paho drops them.
        if not (info.rc == 0 or info.rc == self._mqtt.MQTT_ERR_NO_CONN and self.qos > 0):
            log.error("sink %s: could not publish event seq %s: %s", self.label, event.get("seq"),
                      self._mqtt.error_string(info.rc))
            return False
        with self._settled:
            if info.mid in self._early:
                self._early.discard(info.mid)
                return True
            self._pending[info.mid] = event.get("seq")
        return None

    def _on_publish(self, _client, _userdata, mid: int, reason_code, _properties) -> None:
        """paho's thread: the broker confirmed `mid` (or, at QoS 0, it was written)."""
        with self._settled:
            if self._pending.pop(mid, self) is self:  # publish() has not returned yet: deliver() settles
                self._early.add(mid)
                return
        self._settle(not reason_code.is_failure)  # a failure code only exists in MQTT 5

    def shutdown(self) -> None:
        with self._settled:  # confirmations still on their way, until close()'s deadline
            self._settled.wait_for(lambda: not self._pending, max(0.0, self._deadline - time.monotonic()))
        self._leaving = True
        self._client.disconnect()  # before loop_stop: it ends paho's reconnect wait, and goes out if connected
        self._client.loop_stop()


def open_sinks(config: SinksConfig, journal: str | None = None, cameras: Sequence[str] = ()) -> list[Sink]:
    """Start every configured sink; OSError (one line) for a file that cannot be opened.

    `journal`: the path of the journal the events are written to first (None: the journal is
    off), which the NATS sink sends from; `cameras`: this worker's camera ids, for its health."""
    n = config.queue_size
    sinks: list[Sink] = []
    try:
        for path, as_csv in ((config.jsonl, False), (config.csv, True)):
            if path:
                try:
                    sinks.append(FileSink(path, as_csv, n))
                except OSError as e:
                    raise OSError(f"cannot open sink file {path}: {e.strerror or e}") from None
        sinks += [WebhookSink(w, n) for w in config.webhooks]
        if config.mqtt.host:
            sinks.append(MqttSink(config, n))
        if config.nats.servers:
            from stream.nats_sink import NatsSink  # it imports this module

            sinks.append(NatsSink(config.nats, n, journal, cameras))
    except OSError:
        for s in sinks:  # none is started yet: release what the others hold
            s.shutdown()
        raise
    for s in sinks:
        s.start()
    return sinks
