"""Sinks and metrics on real parts: a mosquitto broker started here, a local HTTP server that
fails on purpose, files, and a pipeline run scraped over HTTP."""
from __future__ import annotations

import csv
import json
import logging
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest
from prometheus_client import generate_latest

from config.schema import ConfigError, MqttConfig, SinksConfig, WebhookConfig, parse_config
from conftest import ROOT, offline_env
from models.synth.video import render_video
from stream.metrics import PipelineMetrics
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


def wait_until(condition, seconds: float = WAIT_S) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def sink_metrics(sinks: list[Sink]) -> str:
    """The Prometheus text the metrics server would serve for these sinks (no pipeline)."""
    pipeline = SimpleNamespace(captures=[], stats=SimpleNamespace(processed={}, detections={}, events_by={}, rejected={}),
                               sinks=sinks)
    return generate_latest(PipelineMetrics(pipeline).registry).decode()


def messages(caplog, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if word in r.getMessage()]


# --- MQTT ------------------------------------------------------------------------------------------

def start_broker(tmp_path, port: int, extra: str = "") -> subprocess.Popen:
    conf = tmp_path / f"mosquitto-{port}.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}")
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


def test_mqtt_events_no_broker_confirmed_are_undelivered_and_reported_in_one_line(caplog):
    caplog.set_level(logging.INFO)
    port = free_port()  # nothing listens there for the whole run
    sinks = open_sinks(SinksConfig(mqtt=MqttConfig(host="127.0.0.1", port=port)))
    for i in range(1, 5):
        sinks[0].put(event(i))
    start = time.monotonic()
    sinks[0].close(start + 2.0)
    assert time.monotonic() - start < 3.0
    sink = sinks[0]
    assert (sink.delivered, sink.undelivered, sink.failed, sink.pending) == (0, 4, 0, 0)
    assert messages(caplog, "not delivered") == [
        f"sink mqtt:127.0.0.1:{port}: 4 events not delivered (they stay in the journal for replay)"]
    assert len(messages(caplog, "not connected")) == 1  # a state change, not a line per retry
    text = sink_metrics(sinks)
    assert f'alpr_sink_events_total{{outcome="delivered",sink="mqtt:127.0.0.1:{port}"}} 0.0' in text
    assert f'alpr_sink_events_total{{outcome="undelivered",sink="mqtt:127.0.0.1:{port}"}} 4.0' in text


@needs_broker
def test_mqtt_counts_an_event_delivered_only_once_the_broker_acknowledged_it(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    proc = start_broker(tmp_path, port)
    try:
        sinks = open_sinks(SinksConfig(mqtt=MqttConfig(host="127.0.0.1", port=port, qos=1)))
        sink = sinks[0]
        sink.put(event(1))
        assert wait_until(lambda: sink.delivered == 1)
        proc.send_signal(signal.SIGSTOP)  # connected, but the broker sends no PUBACK now
        for i in range(2, 5):
            sink.put(event(i))
        time.sleep(1.0)  # written to the socket long since: the old code counted them here
        assert sink.delivered == 1 and sink.pending == 3
        proc.send_signal(signal.SIGCONT)
        assert wait_until(lambda: sink.delivered == 4)
        closed(sinks)
        assert (sink.delivered, sink.undelivered, sink.failed) == (4, 0, 0)
        assert messages(caplog, f"sink mqtt:127.0.0.1:{port}: connected") and not messages(caplog, "not delivered")
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


@needs_broker
@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_mqtt_over_tls_to_a_broker_whose_certificate_chains_to_ca_file(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cert, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    # as root, mosquitto would read the files as user mosquitto, who may not enter tmp_path
    me = pwd.getpwuid(os.geteuid()).pw_name
    proc = start_broker(tmp_path, port, f"certfile {cert}\nkeyfile {key}\nuser {me}\n")
    try:
        config = parse_config({"sinks": {"mqtt": {"host": "127.0.0.1", "port": port, "tls": True,
                                                  "ca_file": str(cert)}}})
        sinks = open_sinks(config.sinks)
        sinks[0].put(event(1))
        assert wait_until(lambda: sinks[0].delivered == 1), caplog.text
        closed(sinks)
        assert sinks[0].undelivered == 0
    finally:
        proc.kill()
        proc.wait()


def test_mqtt_tls_settings_and_secrets_are_checked_in_one_line(tmp_path):
    def error(**mqtt_config) -> str:
        with pytest.raises(ConfigError) as e:
            parse_config({"sinks": {"mqtt": {"host": "b", **mqtt_config}}})
        assert "\n" not in str(e.value)
        return str(e.value)

    missing = tmp_path / "nope.pem"
    assert error(tls=True, ca_file=str(missing)) == f"sinks.mqtt.ca_file: no such file: {str(missing)!r}"
    assert error(tls=True, cert_file=str(tmp_path)).startswith("sinks.mqtt.cert_file: no such file")
    assert error(ca_file=__file__) == "sinks.mqtt.ca_file: needs tls: true"
    assert error(tls=True, key_file=__file__) == "sinks.mqtt.key_file: needs cert_file too"
    with pytest.raises(ConfigError) as e:
        parse_config({"sinks": {"webhooks": [{"url": "ftp://u:SECRET@h/x?t=SECRET", "headers": {"A": "b"}}]}})
    assert str(e.value) == "sinks.webhooks[0].url: must start with http:// or https://, got scheme 'ftp'"
    with pytest.raises(ConfigError) as e:
        parse_config({"sinks": {"webhooks": [{"url": "http://h", "headers": {"Authorization": "SECRET\nX: y"}}]}})
    assert str(e.value).startswith("sinks.webhooks[0].headers.Authorization: must be") and "SECRET" not in str(e.value)
    config = parse_config({"sinks": {"mqtt": {"host": "b", "username": "u", "password": "SECRET"},
                                     "webhooks": [{"url": "http://h", "headers": {"Authorization": "SECRET"}}]}})
    assert "SECRET" not in repr(config)


# --- webhooks and files ------------------------------------------------------------------------------

class FlakyHandler(BaseHTTPRequestHandler):
    """Answers 500 to the first `failures` POSTs, then 204; keeps every body that got a 204,
    and the path and headers of every attempt."""
    failures = 0
    attempts: list = []
    accepted: list = []
    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, dict(self.headers)))
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
    handler = type("Handler", (FlakyHandler,), {"failures": 2, "attempts": [], "accepted": [], "requests": []})
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


def test_a_webhook_token_stays_out_of_logs_labels_and_metrics(webhook_server, caplog):
    caplog.set_level(logging.DEBUG)
    url, handler = webhook_server
    dead = f"http://127.0.0.1:{free_port()}/hook?token=SECRET123&site=gate"
    sinks = open_sinks(SinksConfig(webhooks=[WebhookConfig(f"{url}?token=SECRET123", timeout_seconds=2, retries=3),
                                             WebhookConfig(dead, timeout_seconds=1, retries=0)]))
    for s in sinks:
        s.put(event(1))
    assert wait_until(lambda: handler.accepted and sinks[1].failed)
    closed(sinks)
    assert handler.requests[-1][0] == "/hook?token=SECRET123"  # sent whole, shown masked
    assert sinks[0].label == f"webhook:{url}?token=***"
    assert sinks[1].label.endswith("/hook?token=***&site=***")
    # what was logged: the state of each (the first one failing, then up) and the event given up
    assert len(messages(caplog, "not connected")) == 2 and messages(caplog, ": connected")
    assert messages(caplog, "gave up")
    text = sink_metrics(sinks)
    assert 'outcome="delivered",sink="webhook:' in text
    assert "SECRET123" not in caplog.text and "SECRET123" not in text


def test_a_webhook_sends_its_configured_headers_and_never_logs_them(webhook_server, caplog):
    caplog.set_level(logging.DEBUG)
    url, handler = webhook_server
    config = WebhookConfig(url, timeout_seconds=2, retries=3,
                           headers={"Authorization": "Bearer s3cr3t", "X-Site": "g1"})
    sinks = open_sinks(SinksConfig(webhooks=[config]))
    sinks[0].put(event(1))
    assert wait_until(lambda: handler.accepted)
    closed(sinks)
    assert len(handler.requests) == 3  # two failures and the delivery, each with the headers
    for _, headers in handler.requests:
        assert (headers["Authorization"], headers["X-Site"], headers["Content-Type"]) == \
               ("Bearer s3cr3t", "g1", "application/json")
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in repr(config)


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
    assert {'alpr_rejected_reads_total{camera="cam0",reason="illegible"}',
            'alpr_rejected_reads_total{camera="cam0",reason="unsure"}'} <= set(last)
    assert "alpr_event_latency_seconds_count" in last and 'alpr_queue_depth{camera="cam0"}' in last
    published = [json.loads(line) for line in (tmp_path / "published.jsonl").read_text().splitlines()]
    # One event per car; what the plates read is test_pipeline's subject, not the sinks'.
    assert len(published) == len(cars)
    assert handler.accepted == published  # retried through the server's two failures, in order
    rows = list(csv.DictReader((tmp_path / "events.csv").read_text().splitlines()))
    assert [r["plate"] for r in rows] == [e["plate"] for e in published]
