"""Capture: one thread per camera reads frames into its own bounded queue.

Sources: rtsp:// and http(s):// URLs and webcam indexes are *live*: when the queue is
full the oldest frame is dropped (and counted), so processing always works on the newest
picture. Video files, image files and folders of images are *replay*: nothing is ever
dropped (the reader waits for room), and frames can be paced to the file's own clock.
A source that ends puts `EndOfStream` on the queue.
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

from stream.messages import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
LIVE_SCHEMES = ("rtsp", "rtsps", "http", "https")


class SourceError(ValueError):
    """A source that cannot be used; the message is one line naming it."""


@dataclass
class EndOfStream:
    camera_id: str
    frames: int  # frames put on the queue
    error: str | None = None  # why it ended early, if it did


def redact(source: str | int) -> str:
    """The source for logs and events: credentials in URLs are never shown."""
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", str(source))


def is_live(source: str | int) -> bool:
    return isinstance(source, int) or str(source).isdigit() or str(source).split("://")[0].lower() in LIVE_SCHEMES


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
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            raise SourceError(f"source folder has no images: {s}")
        return
    if path.stat().st_size == 0:
        raise SourceError(f"source file is empty: {s}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return
    cap = cv2.VideoCapture(s)
    ok = cap.isOpened() and cap.read()[0]
    cap.release()
    if not ok:
        raise SourceError(f"not a readable video or image: {s}")


class Capture(threading.Thread):
    """Reads one camera into `frames`. `realtime` paces replay to the file's clock."""

    def __init__(self, camera_id: str, source: str | int, frames: queue.Queue, max_fps: float | None = None,
                 realtime: bool = False, stop: threading.Event | None = None):
        super().__init__(name=f"capture-{camera_id}", daemon=True)
        self.camera_id, self.source, self.frames = camera_id, source, frames
        self.max_fps, self.realtime = max_fps, realtime
        self.live = is_live(source)
        self.stop_event = stop or threading.Event()
        self.read = 0  # frames read from the source
        self.dropped = 0  # live frames discarded because processing was behind
        self.total: int | None = None  # frames in a replay source, when known
        self.fps: float | None = None  # the source's frame rate, when it tells

    def _put(self, frame: Frame) -> bool:
        """Queue `frame`; False when a replay is stopped while waiting for room (not queued)."""
        if not self.live:
            while not self.stop_event.is_set():
                try:
                    self.frames.put(frame, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False
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

    def _images(self):
        """(timestamp, image) pairs of the source, or a one-line error as a string."""
        path = Path(str(self.source))
        if not self.live and (path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES):
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
            self.total = len(files)
            for i, f in enumerate(files):
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is None:
                    log.warning("camera %s: skipping unreadable image %s", self.camera_id, f)
                    continue
                yield float(i), img
            return
        src = int(self.source) if str(self.source).isdigit() else str(self.source)
        cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            yield f"cannot open {redact(self.source)}"
            return
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.fps = fps or None
        if not self.live:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.total = n if n > 0 else None
        index = 0
        try:
            while not self.stop_event.is_set():
                ok, img = cap.read()
                if not ok or img is None:
                    return
                # Replay uses the file's own clock so results do not depend on speed.
                t = time.time() if self.live else (index / fps if fps > 0 else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
                index += 1
                yield t, img
        finally:
            cap.release()

    def run(self) -> None:
        error, index, last_t, start = None, 0, None, None
        for item in self._images():
            if isinstance(item, str):
                error = item
                break
            t, img = item
            if self.stop_event.is_set():
                break
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
                index += 1
        if error:
            log.error("camera %s: %s", self.camera_id, error)
        self._put_end(EndOfStream(self.camera_id, index, error))

    def _put_end(self, end: EndOfStream) -> None:
        # The end marker must never be dropped, even from a live queue.
        while True:
            try:
                self.frames.put(end, timeout=0.1)
                return
            except queue.Full:
                if self.stop_event.is_set() and self.live:
                    try:
                        self.frames.get_nowait()
                    except queue.Empty:
                        pass


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """Grey, BGRA or 16-bit frames as 8-bit BGR."""
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(img.max())))
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img[:, :, :3]
