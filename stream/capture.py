"""Capture: one thread per camera reads frames into its own bounded queue.

Sources: rtsp:// and http(s):// URLs and webcam indexes are *live*: when the queue is
full the oldest frame is dropped (and counted), so processing always works on the newest
picture. Video files, image files and folders of images are *replay*: nothing is ever
dropped (the reader waits for room), and frames can be paced to the file's own clock.

A replay source that ends puts `EndOfStream` on the queue. A live source never ends by
itself: one that cannot be opened, fails a read or gives no frame for `stall_seconds` is
connected again after a pause that doubles from BACKOFF_START up to `max_backoff_seconds`,
forever; only `stop` ends it (and then it puts `EndOfStream`). Each capture keeps its state,
last error and counters, which the pipeline publishes as health messages.
"""
from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.errors import AlprError
from models.images import folder_images, is_image, size_problem
from stream.messages import Frame

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps", "http", "https")
BACKOFF_START = 0.5  # s: the first pause before connecting again; doubles up to max_backoff_seconds
POLL = 0.1  # s: how often a waiting capture looks at its stop event
END_WAIT = 1.0  # s: after stop, the longest the end marker waits for room (the reader may have quit)
MAX_BAD_FRAMES = 30  # undecodable frames in a row after which a video file is taken to have ended


class SourceError(AlprError, ValueError):
    """A source that cannot be used; the message is one line naming it."""


@dataclass
class EndOfStream:
    camera_id: str
    frames: int  # frames put on the queue
    error: str | None = None  # why it ended early, if it did


def redact(source: str | int) -> str:
    """A source or URL for logs, events and metric labels: credentials are never shown, neither
    `user:password@` nor any query value (`?token=***`: tokens and keys often travel there)."""
    # userinfo ends at the last @ before the path: a password may hold an unescaped @
    s = re.sub(r"(://)[^/?#\s]*@", r"\1***@", str(source))
    # every value, and bare items (`?SECRET`); only in URLs: a file name may hold ? and =
    return re.sub(r"([?&](?:[^=&#\s]*=)?)[^&#\s]+", r"\1***", s) if "://" in s else s


def stall_error(seconds: float) -> str:
    """Why a live connection was dropped when no frame came for `seconds`."""
    return f"no frame for {seconds:g} s"


def is_live(source: str | int) -> bool:
    return isinstance(source, int) or str(source).isdigit() or str(source).split("://")[0].lower() in LIVE_SCHEMES


def is_stills(source: str | int) -> bool:
    """An image file or a folder of images: frames that need not follow from each other."""
    return not is_live(source) and (Path(str(source)).is_dir() or is_image(Path(str(source))))


def check_source(source: str | int) -> None:
    """Fail fast, with one line, on a source that can never work (before any thread starts)."""
    if is_live(source):
        return
    s = str(source)
    if "://" in s:
        raise SourceError(f"unsupported source scheme {s.split('://')[0]!r} in {redact(s)} "
                          f"(use {', '.join(LIVE_SCHEMES)}, a webcam index or a file)")
    path = Path(s)
    if not path.exists():
        raise SourceError(f"source not found: {s}")
    if path.is_dir():
        if not any(is_image(p) for p in path.iterdir()):  # the capture lists them all, once
            raise SourceError(f"source folder has no images: {s}")
        return
    if path.stat().st_size == 0:
        raise SourceError(f"source file is empty: {s}")
    if is_image(path):
        return
    cap = cv2.VideoCapture(s)
    ok = cap.isOpened() and cap.read()[0]
    cap.release()
    if not ok:
        raise SourceError(f"not a readable video or image: {s}")


class _Connection(threading.Thread):
    """One connection to a live source, read in a thread of its own so that a read which
    hangs (a stalled camera) can be abandoned: the capture connects again at once, and this
    thread ends, releasing the source, when the backend's own timeout gives the read back."""

    def __init__(self, name: str, source: str | int, timeout_s: float):
        super().__init__(name=name, daemon=True)
        self.source = source
        self.timeout_s = timeout_s
        # (epoch time, image) per frame, then one string: why the connection ended
        self.items: queue.Queue[tuple[float, np.ndarray] | str] = queue.Queue(2)
        self.abandoned = threading.Event()
        self.fps: float | None = None  # the source's frame rate, when it tells

    def _open(self) -> cv2.VideoCapture:
        if isinstance(self.source, int):
            return cv2.VideoCapture(self.source)  # a webcam: its driver's own read timeout applies
        # The backend's timeouts bound how long an abandoned connection holds on to the source.
        ms = round(self.timeout_s * 1000)
        return cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                              cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])

    def run(self) -> None:
        cap = self._open()
        try:
            if not cap.isOpened():
                self._give(f"cannot open {redact(self.source)}")
                return
            self.fps = cap.get(cv2.CAP_PROP_FPS) or None
            while not self.abandoned.is_set():
                start = time.monotonic()
                ok, img = cap.read()
                if time.monotonic() - start >= self.timeout_s:
                    # The backend timed out: what it returns now is the decoder's flush of a
                    # dead stream, which must not count as the stream being alive.
                    self._give(stall_error(self.timeout_s))
                    return
                if not ok or img is None:
                    self._give("the stream ended or a read failed")
                    return
                if not self._give((time.time(), img)):
                    return
        finally:
            cap.release()

    def _give(self, item) -> bool:
        """Hand `item` to the capture; False once the capture has abandoned this connection."""
        return _put_unless(self.items, item, self.abandoned)


def _put_unless(q: queue.Queue, item, cancel: threading.Event) -> bool:
    """Wait for room in `q` and put `item`; False (not put) once `cancel` is set."""
    while not cancel.is_set():
        try:
            q.put(item, timeout=POLL)
            return True
        except queue.Full:
            continue
    return False


class Capture(threading.Thread):
    """Reads one camera into `frames`. `realtime` paces replay to the file's clock.

    A live source that gives no frame for `stall_seconds` (connecting included) is dropped
    and connected again; pauses between attempts double from BACKOFF_START up to
    `max_backoff_seconds`, and start over once frames flow again.
    """

    def __init__(self, camera_id: str, source: str | int, frames: queue.Queue, max_fps: float | None = None,
                 realtime: bool = False, stop: threading.Event | None = None, stall_seconds: float = 10.0,
                 max_backoff_seconds: float = 10.0):
        super().__init__(name=f"capture-{camera_id}", daemon=True)
        self.camera_id, self.source, self.frames = camera_id, source, frames
        self.max_fps, self.realtime = max_fps, realtime
        self.stall_seconds, self.max_backoff_seconds = stall_seconds, max_backoff_seconds
        self.live = is_live(source)
        self.stop_event = stop or threading.Event()
        self.read = 0  # frames read from the source (every connection of a live one)
        self.queued = 0  # frames put on the queue (read, less those max_fps skipped)
        self.dropped = 0  # live frames discarded because processing was behind
        self.decode_seconds = 0.0  # spent reading and decoding replay frames (bench figures)
        self.total: int | None = None  # frames in a replay source, when known
        self.fps: float | None = None  # the source's frame rate, when it tells
        # connecting: no frame yet; streaming: frames arrive; reconnecting: a live source was
        # lost (or never opened) and is retried; failed: a replay source that ended on an
        # error; ended: a replay source that finished, or the capture was stopped.
        self.state = "connecting"
        self.last_error: str | None = None  # the latest reason a connection failed or the source ended early
        self.reconnects = 0  # connection attempts after the first

    def _set_state(self, state: str, error: str | None = None) -> None:
        """Record `state` (and `error`); a change of state is logged, one line."""
        if error is not None:
            self.last_error = error
        if state == self.state:
            return
        self.state = state
        level = {"reconnecting": logging.WARNING, "failed": logging.ERROR}.get(state, logging.INFO)
        log.log(level, "camera %s: %s%s", self.camera_id, state, f" ({error})" if error else "")

    def fail(self, error: str) -> None:
        """The pipeline behind this camera failed: the camera is `failed` with that error."""
        self._set_state("failed", error)

    def _put(self, frame: Frame) -> bool:
        """Queue `frame`; False when a replay is stopped while waiting for room (not queued)."""
        if not self.live:
            return _put_unless(self.frames, frame, self.stop_event)
        while True:
            try:
                self.frames.put_nowait(frame)
                return True
            except queue.Full:
                try:
                    self.frames.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _replay_images(self):
        """(timestamp, image) pairs of a replay source, or a one-line error as a string."""
        path = Path(str(self.source))
        if is_stills(self.source):
            files, others = folder_images(path) if path.is_dir() else ([path], [])
            if others:
                log.warning("camera %s: skipping %d files that are not images: %s", self.camera_id, len(others),
                            ", ".join(p.name for p in others))
            self.total = len(files)
            for i, f in enumerate(files):
                start = time.perf_counter()
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                self.decode_seconds += time.perf_counter() - start
                if img is None:
                    log.warning("camera %s: skipping unreadable image %s", self.camera_id, f)
                    continue
                if problem := size_problem(img):
                    log.warning("camera %s: skipping %s: %s", self.camera_id, f, problem)
                    continue
                yield float(i), img
            return
        cap = cv2.VideoCapture(str(self.source))
        if not cap.isOpened():
            yield f"cannot open {redact(self.source)}"
            return
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.fps = fps or None
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.total = n if n > 0 else None
        index, bad = 0, 0
        try:
            while not self.stop_event.is_set():
                start = time.perf_counter()
                ok, img = cap.read()
                self.decode_seconds += time.perf_counter() - start
                if not ok or img is None:
                    # A damaged frame inside a file is skipped (its slot keeps the file clock):
                    # the decoder picks up again at the next one. Past the last frame, or
                    # after a run of failures (a file cut short), the file has ended.
                    index, bad = index + 1, bad + 1
                    if self.total is None or index >= self.total:
                        return
                    if bad > MAX_BAD_FRAMES:
                        log.warning("camera %s: %s ends at frame %d of the %d its header lists (cut short?)",
                                    self.camera_id, redact(self.source), index - bad, self.total)
                        return
                    continue
                if bad:  # told once decoding resumed: a file whose header overstates its length is not damaged
                    log.warning("camera %s: skipped %d undecodable frame(s) of %s from frame %d", self.camera_id,
                                bad, redact(self.source), index - bad)
                    bad = 0
                # Replay uses the file's own clock so results do not depend on speed.
                t = index / fps if fps > 0 else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
                index += 1
                yield t, img
        finally:
            cap.release()

    def _live_images(self):
        """(epoch time, image) pairs of a live source, across as many connections as it takes,
        until stop."""
        source = int(self.source) if str(self.source).isdigit() else str(self.source)
        delay = min(BACKOFF_START, self.max_backoff_seconds)
        while True:
            conn = _Connection(f"{self.name}-read", source, self.stall_seconds)
            conn.start()
            try:
                error = yield from self._connection_images(conn)
            finally:
                conn.abandoned.set()
            if error is None:  # stopped
                return
            if self.state == "streaming":  # it worked until now: the first retry comes soon
                delay = min(BACKOFF_START, self.max_backoff_seconds)
            self._set_state("reconnecting", error)
            log.debug("camera %s: %s; reconnect %d in %.1f s", self.camera_id, error, self.reconnects + 1, delay)
            if self.stop_event.wait(delay):
                return
            delay = min(2 * delay, self.max_backoff_seconds)
            self.reconnects += 1

    def _connection_images(self, conn: _Connection):
        """The frames of one connection; returns why it ended, None when stopped."""
        deadline = time.monotonic() + self.stall_seconds
        while not self.stop_event.is_set():
            try:
                item = conn.items.get(timeout=POLL)
            except queue.Empty:
                if time.monotonic() > deadline:
                    return stall_error(self.stall_seconds)
                continue
            if isinstance(item, str):
                return item
            if self.state != "streaming":
                self.fps = conn.fps
                self._set_state("streaming")
            yield item
            deadline = time.monotonic() + self.stall_seconds
        return None

    def run(self) -> None:
        error, last_t, start = None, None, None
        for item in self._live_images() if self.live else self._replay_images():
            if isinstance(item, str):
                error = item
                break
            t, img = item
            if self.stop_event.is_set():
                break
            if self.state == "connecting":  # replay (live sets it per connection)
                self._set_state("streaming")
            self.read += 1
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                img = _to_bgr8(img)
            if self.max_fps and last_t is not None and t - last_t < 1.0 / self.max_fps - 1e-6:
                continue
            if self.realtime and not self.live:
                start = start if start is not None else time.monotonic() - t
                delay = start + t - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):  # stop() must not wait out a long gap
                    break
            last_t = t
            if self._put(Frame(self.camera_id, self.read - 1, t, img, time.monotonic())):
                self.queued += 1
        # a camera the pipeline marked failed (`fail`) stays so
        self._set_state("failed" if error or self.state == "failed" else "ended", error)
        self._put_end(EndOfStream(self.camera_id, self.queued, error))

    def _put_end(self, end: EndOfStream) -> None:
        # The end marker is never dropped. After stop it waits END_WAIT at most: the
        # pipeline then drains the queue and ends the camera itself.
        give_up = None
        while True:
            try:
                self.frames.put(end, timeout=POLL)
                return
            except queue.Full:
                if self.stop_event.is_set():
                    give_up = give_up or time.monotonic() + END_WAIT
                    if time.monotonic() > give_up:
                        return


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """Grey, BGRA or 16-bit frames as 8-bit BGR."""
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(img.max())))
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img[:, :, :3]
