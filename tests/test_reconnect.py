"""Live sources stay up: a real RTSP server on loopback (tests/rtsp_server.py) killed and
restarted, or stalled; an unreachable camera retried with growing pauses while a file on
another capture finishes; a lost camera's open tracks published while it is away. No
models (the pipeline test has stand-ins). The server needs Debian's GStreamer RTSP packages and
the H.264 test file Debian's ffmpeg: without them those tests skip, saying why."""
from __future__ import annotations

import logging
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import stream.capture as capture_module
from config.schema import parse_config
from models.detector import Detection
from models.issuer import Issuer
from models.recognizer import TextRead
from models.synth.video import render_video
from stream.capture import Capture, EndOfStream
from stream.messages import Frame
from stream.pipeline import Models, Pipeline

TESTS = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has the GStreamer bindings (not the venv)
STALL_S = 2.0
MAX_BACKOFF_S = 1.0
FPS = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def h264(tmp_path_factory) -> Path:
    """A 20 s H.264 mp4 (what the RTSP server can packetize; OpenCV writes only mp4v)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    folder = tmp_path_factory.mktemp("rtsp")
    render_video(folder / "mp4v.mp4", seed=5, cars=1, seconds=20.0, fps=FPS, size=(320, 240))
    out = folder / "h264.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(folder / "mp4v.mp4"), "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)
    return out


@pytest.fixture
def rtsp_server(h264):
    """start(port) -> the server process, once it listens; every one is killed afterwards."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True, timeout=60) \
        if Path(SYSTEM_PYTHON).exists() else None
    if probe is None or probe.returncode != 0:
        pytest.skip("GStreamer RTSP server not installed for /usr/bin/python3 (apt-get install python3-gi "
                    "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
                    "gstreamer1.0-plugins-bad)")
    servers: list[subprocess.Popen] = []

    def start(port: int) -> subprocess.Popen:
        p = subprocess.Popen([SYSTEM_PYTHON, str(TESTS / "rtsp_server.py"), str(h264), str(port)],
                             stdout=subprocess.PIPE, text=True)
        servers.append(p)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(p.stdout.readline()), daemon=True).start()
        assert lines.get(timeout=30).strip() == "ready", "the RTSP server did not start"
        return p

    yield start
    for p in servers:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)  # a stopped process dies of SIGKILL anyway; this is for clarity
            p.kill()
        p.wait(timeout=10)


@pytest.fixture(autouse=True)
def no_reader_left():
    """After each test every capture thread has ended (a connection's reader included): one
    still in OpenCV when the interpreter exits would abort it."""
    yield
    deadline = time.monotonic() + 20
    while any(t.name.startswith("capture-") for t in threading.enumerate()):
        assert time.monotonic() < deadline, [t.name for t in threading.enumerate()]
        time.sleep(0.05)


class Consumer:
    """Takes everything off a capture's queue: (time.monotonic() received, item) pairs."""

    def __init__(self, q: queue.Queue):
        self.items: list[tuple[float, Frame | EndOfStream]] = []
        threading.Thread(target=self._run, args=(q,), daemon=True).start()

    def _run(self, q: queue.Queue) -> None:
        while True:
            item = q.get()
            self.items.append((time.monotonic(), item))
            if isinstance(item, EndOfStream):
                return

    def frames(self) -> list[Frame]:
        return [i for _, i in self.items if isinstance(i, Frame)]


def state_lines(caplog, camera_id: str) -> list[str]:
    """The capture's one-line state changes for `camera_id`, state names only."""
    prefix = f"camera {camera_id}: "
    return [r.getMessage()[len(prefix):].split(" ")[0] for r in caplog.records
            if r.name == "stream.capture" and r.levelno >= logging.INFO and r.getMessage().startswith(prefix)]


def start_streaming(rtsp_server, caplog):
    """An RTSP server on a free port and a capture (cam0) reading it into a Consumer, once 20
    frames have come with no reconnect between the 10th and the 20th. A first connection
    slower than STALL_S (the handshake alone is about 1.5 s on a loaded machine) is retried
    like any other: what the caller asserts starts from here, and `caplog` is cleared."""
    port = free_port()
    server = rtsp_server(port)
    q: queue.Queue = queue.Queue(maxsize=8)
    capture = Capture("cam0", f"rtsp://127.0.0.1:{port}/x", q, stall_seconds=STALL_S,
                      max_backoff_seconds=MAX_BACKOFF_S)
    consumer = Consumer(q)
    capture.start()
    wait_for(lambda: len(consumer.frames()) >= 10, timeout=30)
    settled = capture.reconnects
    wait_for(lambda: len(consumer.frames()) >= 20, timeout=30)
    assert capture.state == "streaming" and capture.reconnects == settled and capture.fps == pytest.approx(FPS)
    caplog.clear()
    return port, server, capture, consumer


def test_a_killed_rtsp_server_is_reconnected_when_it_comes_back(rtsp_server, caplog):
    caplog.set_level(logging.INFO, logger="stream.capture")
    port, server, capture, consumer = start_streaming(rtsp_server, caplog)
    try:
        reconnects = capture.reconnects
        server.kill()  # an outage: the stream is gone and the port refuses connections
        server.wait()
        lost = time.monotonic()
        wait_for(lambda: capture.state == "reconnecting", timeout=3 * STALL_S)
        print(f"\nRTSP server killed: capture reconnecting after {time.monotonic() - lost:.2f} s "
              f"({capture.last_error})")
        time.sleep(2.0)  # down for a while: attempts fail, refused
        assert capture.state == "reconnecting" and capture.reconnects > reconnects
        assert capture.last_error == f"cannot open rtsp://127.0.0.1:{port}/x"
        before = len(consumer.frames())
        rtsp_server(port)
        restarted = time.monotonic()
        wait_for(lambda: len(consumer.frames()) >= before + 10, timeout=30)
        recovery = next(t for t, i in consumer.items[before:] if isinstance(i, Frame)) - restarted
        print(f"RTSP recovery: {recovery:.2f} s from server restart to the first new frame "
              f"(max_backoff_seconds {MAX_BACKOFF_S:g}, {capture.reconnects} reconnects)")
        assert capture.state == "streaming"
        # one retry pause at most, then the RTSP handshake (about 1.5 s here)
        assert recovery < MAX_BACKOFF_S + 6.0
    finally:
        capture.stop_event.set()
        capture.join(timeout=5)
    assert not capture.is_alive()
    wait_for(lambda: any(isinstance(i, EndOfStream) for _, i in consumer.items), timeout=5)  # the consumer's lag
    frames = consumer.frames()
    indexes = [f.index for f in frames]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)  # numbering goes on across connections
    ends = [i for _, i in consumer.items if isinstance(i, EndOfStream)]
    assert ends == [consumer.items[-1][1]] and ends[0].error is None  # one end marker: at stop
    assert state_lines(caplog, "cam0") == ["reconnecting", "streaming", "ended"]


def test_a_stalled_rtsp_server_is_dropped_after_stall_seconds(rtsp_server, caplog):
    caplog.set_level(logging.INFO, logger="stream.capture")
    port, server, capture, consumer = start_streaming(rtsp_server, caplog)
    try:
        reconnects = capture.reconnects
        server.send_signal(signal.SIGSTOP)  # connections stay open, nothing comes: a stall
        stopped = time.monotonic()
        wait_for(lambda: capture.state == "reconnecting", timeout=3 * STALL_S)
        detected = time.monotonic()
        last_frame = max(t for t, i in consumer.items if isinstance(i, Frame))
        print(f"\nstall detected {detected - stopped:.2f} s after SIGSTOP, "
              f"{detected - last_frame:.2f} s after the last frame (stall_seconds {STALL_S:g})")
        # Not twice that: the decoder's flush when the backend times out is no sign of life.
        assert STALL_S - 0.5 < detected - stopped < STALL_S + 1.5
        assert detected - last_frame > STALL_S - 0.5
        assert capture.last_error == f"no frame for {STALL_S:g} s"
        server.send_signal(signal.SIGCONT)
        before = len(consumer.frames())
        wait_for(lambda: len(consumer.frames()) >= before + 10, timeout=30)
        assert capture.state == "streaming" and capture.reconnects > reconnects
    finally:
        capture.stop_event.set()
        capture.join(timeout=5)
        server.kill()  # the reader abandoned on the stall gets its read back now
    assert state_lines(caplog, "cam0") == ["reconnecting", "streaming", "ended"]


def test_an_unreachable_camera_retries_with_growing_pauses_and_others_finish(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="stream.capture")
    port = free_port()  # nothing listens there
    video = tmp_path / "lane.mp4"
    render_video(video, seed=3, cars=1, seconds=3.0, fps=FPS, size=(160, 120))
    live_q: queue.Queue = queue.Queue(maxsize=8)
    file_q: queue.Queue = queue.Queue(maxsize=8)
    live = Capture("gate1", f"rtsp://admin:s3cret@127.0.0.1:{port}/x", live_q, stall_seconds=STALL_S,
                   max_backoff_seconds=2.0)
    replay = Capture("lane2", str(video), file_q)
    live_consumer, file_consumer = Consumer(live_q), Consumer(file_q)
    live.start()
    replay.start()
    try:
        wait_for(lambda: file_consumer.items and isinstance(file_consumer.items[-1][1], EndOfStream), timeout=30)
        assert len(file_consumer.frames()) == 45 and file_consumer.items[-1][1].error is None
        assert replay.state == "ended"
        wait_for(lambda: live.reconnects >= 4, timeout=20)  # pauses 0.5 + 1 + 2 + 2 s
        assert live.is_alive() and live.state == "reconnecting" and live_consumer.items == []
        assert live.last_error == f"cannot open rtsp://***@127.0.0.1:{port}/x"
    finally:
        live.stop_event.set()
        live.join(timeout=5)
    assert not live.is_alive() and live.state == "ended"
    wait_for(lambda: live_consumer.items, timeout=5)  # the consumer's lag
    assert [i for _, i in live_consumer.items] == [EndOfStream("gate1", 0, None)]
    pauses = [float(m.group(1)) for r in caplog.records
              if (m := re.search(r"; reconnect \d+ in ([0-9.]+) s$", r.getMessage()))]
    assert len(pauses) >= 4 and pauses[:4] == [0.5, 1.0, 2.0, 2.0] and set(pauses[4:]) <= {2.0}
    # one line per state change, not per attempt
    assert state_lines(caplog, "gate1") == ["reconnecting", "ended"]
    out, err = capfd.readouterr()  # OpenCV's and FFmpeg's own output too
    for text in (caplog.text, out, err, live.last_error):
        assert "s3cret" not in text and "admin" not in text


# --- the pipeline: a lost camera's plates do not wait for it ---------------------------------------

class OnePlateDetector:
    """The same plate box in every frame: one track that never ends by itself."""

    def detect(self, images, conf, stills=False, weak=None, tiled=None):
        return [[Detection((40.0, 40.0, 120.0, 70.0), 0.9)] for _ in images]


class OnePlateReader:
    def read(self, crops, batch_size):
        return [TextRead("AB12CDE", 0.9, [0.99] * 7, "uk") for _ in crops]

    def issuers(self, crops, texts):
        return [Issuer("gb", 0.6) for _ in crops]


def test_a_lost_camera_has_its_open_tracks_published_while_it_reconnects(tmp_path, monkeypatch):
    video = tmp_path / "gate.mp4"
    render_video(video, seed=3, cars=1, seconds=3.0, fps=FPS, size=(160, 120))
    config = parse_config({
        "cameras": [{"id": "gate1", "source": str(video)}],
        "capture": {"stall_seconds": 1.0},
        "voting": {"min_agreeing": 99},  # no early event: only the end of the track publishes it
        "publisher": {"endpoint": "tcp://127.0.0.1:*", "replay_endpoint": "tcp://127.0.0.1:*"},
        "journal": {"path": str(tmp_path / "events.db")}})
    events: list[dict] = []
    pipeline = Pipeline(config, on_event=events.append, models=Models(OnePlateDetector(), OnePlateReader()))
    # The file read as if it were a live camera: at its end the camera is lost, and a long
    # first backoff keeps it away.
    monkeypatch.setattr(capture_module, "BACKOFF_START", 60.0)
    capture = pipeline.captures[0]
    capture.live = True
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    try:
        wait_for(lambda: capture.state == "reconnecting", timeout=30)
        lost = time.monotonic()
        assert events == []  # the track is still open
        wait_for(lambda: events, timeout=10)
        assert 1.0 <= time.monotonic() - lost < 4.0  # stall_seconds of silence, then it is published
        assert capture.state == "reconnecting" and runner.is_alive()
    finally:
        pipeline.stop()
        runner.join(timeout=10)
    assert not runner.is_alive()
    assert [(e["plate"], e["type"], e["track_id"]) for e in events] == [("AB12CDE", "plate", 1)]
