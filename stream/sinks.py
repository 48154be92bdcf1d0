"""Sinks: every published event also goes to MQTT, webhooks and CSV/JSONL files, as configured.

Each sink is a thread with its own bounded queue, so a slow or dead sink never blocks the
pipeline or the other sinks: `put()` returns at once, and when a sink's queue is full its
oldest event is dropped, counted (`dropped`) and logged. The guaranteed path stays the
journal with its replay endpoint; a sink is for consumers that do not speak ZeroMQ.

- MQTT (paho-mqtt): the event JSON on `<topic>/<camera_id>`, QoS as configured; paho
  reconnects by itself, and QoS 1/2 messages wait in its queue while the broker is away.
- Webhooks: an HTTP POST of the event JSON per URL; a failed attempt (connection error,
  timeout, any status but 2xx) is retried with doubling pauses up to `retries` times, then
  the event is given up for that URL (counted in `failed`, logged).
- CSV and JSONL: one line per event, flushed at once.
"""
from __future__ import annotations

import csv
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
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
        self.delivered = self.dropped = self.failed = 0

    def put(self, event: dict) -> None:
        """Queue `event` without waiting; a full queue loses its oldest event."""
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
                    log.error("sink %s: %s: %s", self.label, type(e).__name__, e)
                    ok = False
                if ok:
                    self.delivered += 1
                else:
                    self.failed += 1
        finally:
            self.shutdown()

    def deliver(self, event: dict) -> bool:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release what the sink holds (called in its thread after the last event)."""

    def close(self, deadline: float) -> None:
        """Deliver what is queued (one attempt per event from now on) until the monotonic
        `deadline` at the latest, then stop; what is left then is lost to this sink."""
        self._stopping.set()
        try:
            self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return
        self.join(max(0.0, deadline - time.monotonic()))


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

    def deliver(self, event: dict) -> bool:
        body = json.dumps(event).encode()
        delay = BACKOFF_START
        for attempt in range(self.config.retries + 1):
            request = urllib.request.Request(self.config.url, body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_seconds):
                    return True  # urlopen raises for every status outside 2xx (after redirects)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
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
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=m.client_id)
        if m.username:
            self._client.username_pw_set(m.username, m.password or None)
        self._client.max_queued_messages_set(queue_size)  # paho's own queue, while the broker is away
        # Asynchronous: an absent broker is retried by paho's loop, not an error at start.
        self._client.connect_async(m.host, m.port)
        self._client.loop_start()

    def deliver(self, event: dict) -> bool:
        info = self._client.publish(f"{self.topic}/{event['camera_id']}", json.dumps(event), qos=self.qos)
        return info.rc == 0 or self.qos > 0  # QoS 1/2 messages are queued by paho until the broker is back

    def shutdown(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def open_sinks(config: SinksConfig) -> list[Sink]:
    """Start every configured sink; OSError (one line) for a file that cannot be opened."""
    n = config.queue_size
    sinks: list[Sink] = []
    for path, as_csv in ((config.jsonl, False), (config.csv, True)):
        if not path:
            continue
        try:
            sinks.append(FileSink(path, as_csv, n))
        except OSError as e:
            for s in sinks:
                s.shutdown()
            raise OSError(f"cannot open sink file {path}: {e.strerror or e}") from None
    sinks += [WebhookSink(w, n) for w in config.webhooks]
    if config.mqtt.host:
        sinks.append(MqttSink(config, n))
    for s in sinks:
        s.start()
    return sinks
