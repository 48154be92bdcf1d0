"""Capture: fail-fast source checks, replay that never drops, live that drops the oldest,
max_fps, folders of images, and stop(). Generated small videos only; no models, no network."""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import stream.capture as capture_module
from models.synth.video import render_video
from stream.capture import Capture, EndOfStream, SourceError, check_source, is_live, redact
from stream.messages import Frame

FPS = 15.0
N = 45  # frames in the generated video: 3 s at 15 fps
W, H = 320, 240


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "street.mp4"
    render_video(path, seed=3, cars=1, seconds=N / FPS, fps=FPS, size=(W, H))
    cap = cv2.VideoCapture(str(path))  # the file is what the tests below assume
    assert cap.get(cv2.CAP_PROP_FPS) == FPS and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N
    cap.release()
    return path


def drain(q: queue.Queue, delay: float = 0.0, timeout: float = 10.0) -> tuple[list[Frame], EndOfStream]:
    """Everything on `q` up to and including the EndOfStream, sleeping `delay` per item."""
    frames = []
    while True:
        item = q.get(timeout=timeout)
        if isinstance(item, EndOfStream):
            return frames, item
        assert isinstance(item, Frame)
        frames.append(item)
        if delay:
            time.sleep(delay)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def source_error(source) -> str:
    with pytest.raises(SourceError) as info:
        check_source(source)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- check_source -------------------------------------------------------------------------------

def test_check_source_rejects_a_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    assert str(path) in source_error(str(path))


def test_check_source_rejects_an_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    m = source_error(str(path))
    assert str(path) in m and "empty" in m


def test_check_source_rejects_a_truncated_video(tmp_path, video):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(video.read_bytes()[:2048])
    m = source_error(str(path))
    assert str(path) in m and "not a readable video" in m


def test_check_source_rejects_a_text_file_named_like_a_video(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_text("this is not a video\n" * 50)
    m = source_error(str(path))
    assert str(path) in m and "not a readable video" in m


def test_check_source_rejects_a_folder_without_images(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    (folder / "clip.mp4").write_bytes(b"\0" * 100)
    (folder / "sub.png").mkdir()
    m = source_error(str(folder))
    assert str(folder) in m and "no images" in m
    assert cv2.imwrite(str(folder / "z.jpg"), np.zeros((8, 8, 3), np.uint8))
    check_source(str(folder))  # one image among other files is enough


def test_check_source_rejects_an_unsupported_scheme():
    m = source_error("ftp://files.example.com/cam.mp4")
    assert "'ftp'" in m and "ftp://files.example.com/cam.mp4" in m
    # with credentials the message names the source, redacted
    m = source_error("ftp://user:secret@files.example.com/cam.mp4")
    assert "secret" not in m and "ftp://***@files.example.com/cam.mp4" in m


def test_check_source_accepts_what_can_work(tmp_path, video):
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.full((20, 30, 3), 128, np.uint8))
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0001.jpg"), np.zeros((20, 30, 3), np.uint8))
    for source in (str(video), str(image), str(folder)):
        assert check_source(source) is None
    # live sources are not opened here (the capture thread connects, and reconnects): these
    # hosts do not exist and the check must still pass, at once
    start = time.monotonic()
    for source in ("rtsp://user:pass@camera.invalid:554/stream", "RTSP://camera.invalid/x",
                   "rtsps://camera.invalid/x", "http://camera.invalid/video.mjpg", "https://camera.invalid/x",
                   0, 3, "0"):
        assert is_live(source)
        assert check_source(source) is None
    assert time.monotonic() - start < 1.0
    assert not is_live(str(video)) and not is_live(str(folder))


def test_redact_hides_credentials():
    out = redact("rtsp://user:pass@host:554/x")
    assert "pass" not in out and "user:pass" not in out
    assert out == "rtsp://***@host:554/x"
    assert redact("rtsp://host:554/x") == "rtsp://host:554/x"
    assert redact(0) == "0"


# --- replay ---------------------------------------------------------------------------------------

def test_replay_never_drops_and_keeps_the_file_clock(video):
    q: queue.Queue = queue.Queue(maxsize=2)
    capture = Capture("cam0", str(video), q)
    assert not capture.live
    capture.start()
    frames, end = drain(q, delay=0.003)  # a slow consumer: the reader must wait, not drop
    capture.join(timeout=5)
    assert not capture.is_alive()
    assert [f.index for f in frames] == list(range(N))
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in range(N)])
    assert all(f.camera_id == "cam0" for f in frames)
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert end == EndOfStream("cam0", N, None)
    assert capture.dropped == 0 and capture.read == N and capture.total == N
    assert capture.state == "ended" and capture.last_error is None  # a replay ends; it is not reconnected


def test_max_fps_keeps_frames_at_least_one_period_apart(video):
    q: queue.Queue = queue.Queue(maxsize=4)
    capture = Capture("cam0", str(video), q, max_fps=5)
    capture.start()
    frames, end = drain(q)
    capture.join(timeout=5)
    # 15 fps capped at 5: a frame is kept when it is >= 0.2 s after the last kept one
    expected, last = [], None
    for i in range(N):
        if last is None or i / FPS - last >= 0.2 - 1e-9:
            expected.append(i)
            last = i / FPS
    assert expected == list(range(0, N, 3)) and len(expected) == 15
    assert [f.index for f in frames] == expected  # indexes stay the source's frame numbers
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in expected])
    assert end.frames == len(expected) and end.error is None
    assert capture.read == N and capture.dropped == 0


def test_an_unreadable_source_ends_with_an_error(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_text("not a video")
    q: queue.Queue = queue.Queue(maxsize=2)
    capture = Capture("cam0", str(path), q)
    capture.start()
    frames, end = drain(q)
    capture.join(timeout=5)
    assert frames == [] and end.frames == 0 and end.error and str(path) in end.error
    assert capture.state == "failed" and capture.last_error == end.error


def test_a_damaged_frame_mid_file_is_skipped_not_taken_for_the_end(tmp_path):
    # The shipped sample with bytes flipped in its middle third: one frame there cannot be
    # decoded at all (the others come out smeared), and decoding resumes after it.
    data = bytearray((Path(__file__).parent.parent / "samples" / "traffic.mp4").read_bytes())
    rng = np.random.default_rng(1)
    for i in rng.integers(len(data) // 3, 2 * len(data) // 3, 400):
        data[i] = rng.integers(0, 256)
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(data))
    cap = cv2.VideoCapture(str(path))
    n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    decoded = [cap.read()[0] for _ in range(n)]
    cap.release()
    bad = [i for i, ok in enumerate(decoded) if not ok]
    assert bad and bad[-1] < n - 1, bad  # the file is what this test is about

    q: queue.Queue = queue.Queue()
    capture = Capture("cam0", str(path), q)
    capture.start()
    frames, end = drain(q)
    capture.join(timeout=5)
    assert len(frames) == end.frames == n - len(bad) and end.error is None
    slots = [i for i, ok in enumerate(decoded) if ok]  # each frame keeps its place on the file's clock
    assert [f.timestamp for f in frames] == pytest.approx([i / fps for i in slots])


# --- live -------------------------------------------------------------------------------------------

def test_live_drops_the_oldest_frames_when_behind(video, monkeypatch):
    # A file read as if it were live: `live` is what selects the drop-oldest policy, and a
    # file makes the test fast and deterministic (tests/test_reconnect.py uses a real RTSP
    # server). A long first backoff keeps it from reading the file again.
    monkeypatch.setattr(capture_module, "BACKOFF_START", 60.0)
    q: queue.Queue = queue.Queue(maxsize=2)
    capture = Capture("cam0", str(video), q, max_backoff_seconds=60.0)
    capture.live = True
    started = time.time()
    capture.start()
    # Nobody consumes: each frame after the first two pushes the oldest one out. At the end
    # of the file a live source is lost, not ended: no end marker, it waits to reconnect.
    wait_for(lambda: capture.state == "reconnecting")
    assert capture.read == N and capture.dropped == N - 2
    assert capture.last_error == "the stream ended or a read failed"
    assert q.qsize() == 2 and capture.is_alive()
    capture.stop_event.set()  # only stop ends a live source
    frames, end = drain(q)
    capture.join(timeout=5)
    assert not capture.is_alive() and capture.state == "ended"
    assert [f.index for f in frames] == [N - 2, N - 1]  # the newest frames survive
    assert all(started <= f.timestamp <= time.time() for f in frames)  # live: wall-clock time
    assert end == EndOfStream("cam0", N, None)  # frames put on the queue, dropped ones included
    assert capture.dropped == N - 2 and capture.reconnects == 0
    assert q.empty()


# --- folders and images ----------------------------------------------------------------------------

def test_a_folder_replays_in_name_order_skipping_a_bad_image(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    h, w = 24, 32
    cv2.imwrite(str(folder / "b.png"), np.full((h, w, 3), (10, 20, 30), np.uint8))
    cv2.imwrite(str(folder / "a.png"), np.full((h, w, 3), (1, 2, 3), np.uint8))
    (folder / "c.jpg").write_bytes(b"\xff\xd8 garbage, not a jpeg" * 10)
    cv2.imwrite(str(folder / "d_gray.png"), np.full((h, w), 77, np.uint8))
    cv2.imwrite(str(folder / "e_bgra.png"), np.full((h, w, 4), (40, 50, 60, 128), np.uint8))
    cv2.imwrite(str(folder / "f_gray16.png"), np.full((h, w), 65535, np.uint16))
    (folder / "notes.txt").write_text("ignored")
    check_source(str(folder))
    q: queue.Queue = queue.Queue(maxsize=2)
    capture = Capture("cam0", str(folder), q)
    capture.start()
    frames, end = drain(q)
    capture.join(timeout=5)
    assert not capture.is_alive()
    assert all(f.image.shape == (h, w, 3) and f.image.dtype == np.uint8 for f in frames)
    colours = [tuple(int(v) for v in f.image[0, 0]) for f in frames]
    assert colours == [(1, 2, 3), (10, 20, 30), (77, 77, 77), (40, 50, 60), (255, 255, 255)]
    assert [f.index for f in frames] == list(range(5))
    ts = [f.timestamp for f in frames]
    assert ts == sorted(ts) and len(set(ts)) == 5
    assert end == EndOfStream("cam0", 5, None)
    assert capture.total == 5 and capture.read == 5 and capture.dropped == 0  # c.jpg is no image by content


def test_a_single_image_is_one_frame(tmp_path):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), np.full((10, 12), 200, np.uint8))  # grey on disk
    q: queue.Queue = queue.Queue(maxsize=2)
    capture = Capture("cam0", str(path), q)
    capture.start()
    frames, end = drain(q)
    capture.join(timeout=5)
    assert len(frames) == 1 and frames[0].image.shape == (10, 12, 3) and frames[0].image.dtype == np.uint8
    assert end.frames == 1 and end.error is None


# --- stop ---------------------------------------------------------------------------------------------

def test_stop_ends_a_capture_promptly_and_still_ends_the_stream(video):
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    capture = Capture("cam0", str(video), q, realtime=True, stop=stop)  # paced: 3 s in all
    capture.start()
    got = [q.get(timeout=10) for _ in range(3)]
    assert all(isinstance(f, Frame) for f in got)
    stopped = time.monotonic()
    stop.set()
    frames, end = drain(q)
    capture.join(timeout=2)
    assert not capture.is_alive()
    assert time.monotonic() - stopped < 1.0
    frames = got + frames
    assert len(frames) < N
    assert [f.index for f in frames] == list(range(len(frames)))
    assert end.frames == len(frames) and end.error is None


def test_stop_while_waiting_for_room_counts_only_frames_put(video):
    q: queue.Queue = queue.Queue(maxsize=2)
    capture = Capture("cam0", str(video), q)
    capture.start()
    wait_for(q.full)
    wait_for(lambda: capture.read == 3)  # the third frame waits for room
    capture.stop_event.set()
    time.sleep(0.3)  # it gives up that frame, then waits to put the end marker (never dropped)
    frames, end = drain(q)
    capture.join(timeout=2)
    assert not capture.is_alive()
    # [0, 1] unless a very slow machine let the third one in before it gave up
    assert [f.index for f in frames] in ([0, 1], [0, 1, 2])
    assert end.frames == len(frames)  # frames put on the queue, not frames read


def test_stop_does_not_wait_out_a_long_realtime_gap(tmp_path):
    # A folder replays at one image per second of "file time": stop() must not wait it out.
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    q: queue.Queue = queue.Queue(maxsize=2)
    capture = Capture("cam0", str(folder), q, realtime=True)
    capture.start()
    first = q.get(timeout=10)
    assert isinstance(first, Frame) and first.index == 0
    time.sleep(0.05)  # now pacing the next image, due 1 s after the first
    stopped = time.monotonic()
    capture.stop_event.set()
    frames, end = drain(q)
    capture.join(timeout=2)
    assert not capture.is_alive() and time.monotonic() - stopped < 0.5
    assert frames == [] and end.frames == 1
