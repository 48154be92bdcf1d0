"""Sinks and metrics on real parts: a mosquitto broker started here, a local HTTP server that
fails on purpose, files, and a pipeline run scraped over HTTP."""
from __future__ import annotations

import csv
import json
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from config.schema import MqttConfig, SinksConfig, WebhookConfig
from conftest import ROOT, offline_env
from models.synth.video import render_video
from stream.sinks import CSV_COLUMNS, Sink, open_sinks

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
WAIT_S = 10.0
needs_broker = pytest.mark.skipif(not Path(MOSQUITTO).exists(),
                                  reason="mosquitto not installed (Debian package mosquitto; .ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event(seq: int, camera: str = "cam0") -> dict:
    seen = {"time": "2026-11-21T12:00:00.000Z", "offset": 1.0, "frame": 3}
    return {"type": "plate", "seq": seq, "event_id": f"id{seq}", "camera_id": camera, "track_id": seq,
            "plate": f"AB{seq:02d}CDE", "region": "uk", "confidence": 0.9, "first_seen": seen, "last_seen": seen,
            "reads": 4}


def closed(sinks: list[Sink]) -> None:
    deadline = time.monotonic() + WAIT_S
    for s in sinks:
        s.close(deadline)


# --- MQTT ------------------------------------------------------------------------------------------

def start_broker(tmp_path, port: int) -> subprocess.Popen:
    conf = tmp_path / f"mosquitto-{port}.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("mosquitto did not start")


def subscriber(port: int, topic: str) -> tuple[mqtt.Client, queue.Queue]:
    got: queue.Queue = queue.Queue()
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda c, u, m: got.put((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(WAIT_S), "subscription not acknowledged"
    return client, got


@pytest.fixture
def broker_port(tmp_path):
    port = free_port()
    proc = start_broker(tmp_path, port)
    yield port
    proc.kill()
    proc.wait()


@needs_broker
def test_mqtt_delivers_each_event_on_its_camera_topic(broker_port):
    client, got = subscriber(broker_port, "gate/#")
    sinks = open_sinks(SinksConfig(mqtt=MqttConfig(host="127.0.0.1", port=broker_port, topic="gate/plates")))
    for i, cam in enumerate(["north", "south", "north"], 1):
        sinks[0].put(event(i, cam))
    received = [got.get(timeout=WAIT_S) for _ in range(3)]
    closed(sinks)
    client.loop_stop()
    assert [(t, e["seq"]) for t, e in received] == [("gate/plates/north", 1), ("gate/plates/south", 2),
                                                  ("gate/plates/north", 3)]
    assert received[1][1] == event(2, "south")


@needs_broker
def test_mqtt_waits_for_a_broker_that_starts_late(tmp_path):
    port = free_port()
    sinks = open_sinks(SinksConfig(mqtt=MqttConfig(host="127.0.0.1", port=port)))
    start = time.monotonic()
    sinks[0].put(event(1))  # returns at once although nothing listens yet
    assert time.monotonic() - start < 0.5
    proc = start_broker(tmp_path, port)
    try:
        client, got = subscriber(port, "alpr/plates/#")
        sinks[0].put(event(2))
        seqs = sorted(got.get(timeout=WAIT_S)[1]["seq"] for _ in range(2))
        assert seqs == [1, 2]  # the QoS 1 event queued while the broker was away arrives too
        client.loop_stop()
    finally:
        closed(sinks)
        proc.kill()
        proc.wait()


# --- webhooks and files ------------------------------------------------------------------------------

class FlakyHandler(BaseHTTPRequestHandler):
    """Answers 500 to the first `failures` POSTs, then 204; keeps every body that got a 204."""
    failures = 0
    attempts: list = []
    accepted: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).attempts.append(body["seq"])
        ok = len(type(self).attempts) > type(self).failures
        self.send_response(204 if ok else 500)
        self.end_headers()
        if ok:
            type(self).accepted.append(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    handler = type("Handler", (FlakyHandler,), {"failures": 2, "attempts": [], "accepted": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def test_webhook_retries_until_delivered(webhook_server):
    url, handler = webhook_server
    sinks = open_sinks(SinksConfig(webhooks=[WebhookConfig(url, timeout_seconds=2, retries=3)]))
    sinks[0].put(event(1))
    sinks[0].put(event(2))
    deadline = time.monotonic() + WAIT_S
    while len(handler.accepted) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    closed(sinks)
    assert handler.attempts == [1, 1, 1, 2]  # two failures, then one delivery each
    assert handler.accepted == [event(1), event(2)]
    assert (sinks[0].delivered, sinks[0].failed, sinks[0].dropped) == (2, 0, 0)


def test_a_dead_webhook_blocks_neither_the_caller_nor_the_other_sinks(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/hook"
    config = SinksConfig(webhooks=[WebhookConfig(dead, timeout_seconds=1, retries=100, max_backoff_seconds=1)],
                         jsonl=str(tmp_path / "out" / "events.jsonl"), csv=str(tmp_path / "events.csv"),
                         queue_size=5)
    sinks = open_sinks(config)
    start = time.monotonic()
    for i in range(1, 51):
        for s in sinks:
            s.put(event(i))
        time.sleep(0.002)  # the file sinks keep up; the webhook cannot
    assert time.monotonic() - start < 2.0
    webhook = sinks[[s.label.startswith("webhook") for s in sinks].index(True)]
    assert webhook.dropped >= 40
    closed(sinks)
    lines = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 51))
    rows = list(csv.reader((tmp_path / "events.csv").read_text().splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS and [int(r[0]) for r in rows[1:]] == list(range(1, 51))
    assert rows[1][CSV_COLUMNS.index("plate")] == "AB01CDE"


def test_a_sink_file_that_cannot_be_opened_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"^cannot open sink file .*/file/events.csv: File exists$"):
        open_sinks(SinksConfig(csv=str(tmp_path / "file" / "events.csv")))


# --- the pipeline: sinks and metrics -------------------------------------------------------------------

def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_a_run_feeds_every_sink_and_its_metrics_change(tmp_path, webhook_server):
    url, handler = webhook_server
    video = tmp_path / "cars.mp4"
    cars = render_video(video, seed=41, cars=2, seconds=5.0, fps=10.0, size=(640, 360))
    metrics_port = free_port()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"cameras:\n  - id: cam0\n    source: {video}\n"
                   f"publisher:\n  endpoint: tcp://127.0.0.1:*\n  replay_endpoint: tcp://127.0.0.1:*\n"
                   f"journal:\n  path: {tmp_path / 'events.db'}\n"
                   f"sinks:\n  webhooks:\n    - url: {url}\n  csv: {tmp_path / 'events.csv'}\n"
                   f"metrics:\n  port: {metrics_port}\nlogging:\n  level: WARNING\n")
    proc = subprocess.Popen([sys.executable, "run_stream.py", "--config", str(cfg), "--realtime", "--quiet",
                             "--jsonl", str(tmp_path / "published.jsonl")], cwd=ROOT,
                            env=offline_env(tmp_path / "net.log"), stderr=subprocess.PIPE, text=True)
    try:
        samples = []
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                samples.append(scrape(metrics_port))
            except OSError:
                pass  # not up yet
            time.sleep(0.5)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert len(samples) >= 3
    processed = [s.get('alpr_frames_processed_total{camera="cam0"}', 0) for s in samples]
    assert processed == sorted(processed) and processed[-1] > processed[0]
    last = samples[-1]
    assert last['alpr_frames_read_total{camera="cam0"}'] >= processed[-1]
    assert last['alpr_detections_total{camera="cam0"}'] > 0
    assert "alpr_event_latency_seconds_count" in last and 'alpr_queue_depth{camera="cam0"}' in last
    published = [json.loads(line) for line in (tmp_path / "published.jsonl").read_text().splitlines()]
    # One event per car; what the plates read is test_pipeline's subject, not the sinks'.
    assert len(published) == len(cars)
    assert handler.accepted == published  # retried through the server's two failures, in order
    rows = list(csv.DictReader((tmp_path / "events.csv").read_text().splitlines()))
    assert [r["plate"] for r in rows] == [e["plate"] for e in published]
