"""End to end: a generated video with known plates -> run_stream.py -> a real ZeroMQ subscriber."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import cv2
import pytest
import zmq

from conftest import ROOT, offline_env
from models.synth.video import render_video

EVENT_WAIT_S = 240  # the whole replay, model loading included, on a slow 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_and_subscribe(video, tmp_path, name: str, *extra: str
                       ) -> tuple[list[dict], list[dict], subprocess.CompletedProcess]:
    """Run run_stream.py on `video` with a subscriber attached; (received, jsonl, process)."""
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    cfg = tmp_path / f"{name}.yaml"
    # a journal of its own per run, so each run's seq starts at 1
    cfg.write_text(f"publisher:\n  endpoint: {endpoint}\n  replay_endpoint: tcp://127.0.0.1:*\n"
                   f"journal:\n  path: {tmp_path / name}.db\nlogging:\n  level: WARNING\n")
    jsonl = tmp_path / f"{name}.jsonl"
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"plate.")
    sub.connect(endpoint)  # before the publisher binds: ZeroMQ connects as soon as it is up
    proc = subprocess.Popen([sys.executable, "run_stream.py", "--config", str(cfg), "--source", str(video),
                             "--jsonl", str(jsonl), "--quiet", *extra], cwd=ROOT, env=offline_env(tmp_path / "net.log"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    received, deadline, exited_at = [], time.monotonic() + EVENT_WAIT_S, None
    try:
        while time.monotonic() < deadline:
            if sub.poll(100):
                topic, body = sub.recv_multipart()[:2]
                received.append(json.loads(body))
                assert topic.decode() == f"plate.{received[-1]['camera_id']}"
            elif proc.poll() is not None:
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 1.0:  # drained
                    break
    finally:
        sub.close(linger=0)
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    events = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    return received, events, done


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "cars.mp4"
    truth = render_video(path, seed=31, cars=4, seconds=8.0, fps=15.0)
    return path, truth


def test_one_correct_event_per_car_in_order(video, tmp_path):
    path, truth = video
    annotated = tmp_path / "annotated.mp4"
    received, journal, proc = _run_and_subscribe(path, tmp_path, "run", "--save-video", str(annotated))
    assert proc.returncode == 0, proc.stderr
    assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
    assert [e["type"] for e in received] == ["plate"] * len(received)
    by_first_seen = sorted(received, key=lambda e: e["first_seen"]["frame"])
    assert [e["plate"] for e in by_first_seen] == [c.plate for c in truth]
    assert received == journal  # the --jsonl file holds exactly what was published
    cap = cv2.VideoCapture(str(annotated))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))


def test_replay_is_deterministic(video, tmp_path):
    path, _ = video
    a, _, pa = _run_and_subscribe(path, tmp_path, "a")
    b, _, pb = _run_and_subscribe(path, tmp_path, "b")
    assert pa.returncode == 0 and pb.returncode == 0
    assert a, "no events at all"
    assert [{**e, "event_id": None} for e in a] == [{**e, "event_id": None} for e in b]  # ids are random


def test_bad_source_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "run_stream.py", "--source", str(tmp_path / "missing.mp4")], cwd=ROOT,
                       env=offline_env(tmp_path / "net.log"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: source not found: {tmp_path / 'missing.mp4'}"]
