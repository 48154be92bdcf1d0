"""SORT for plates: a constant-velocity Kalman filter per track, Hungarian matching on IoU.

After Bewley et al., "Simple Online and Realtime Tracking" (sort.py), with changes for plates:

- A fresh track (one detection, velocity not yet known) may match a detection whose IoU
  is below the threshold when the centres are close (`GATE_DIAGONALS`): plates are small
  and, at low fps, move about their own width per frame, so its next detection often does
  not overlap it at all. A track whose velocity is known needs the overlap: coasting past
  the vehicle it followed, it would otherwise take over the next vehicle coming by,
  already read as the one before.
- Confirmed tracks are reported while they coast (matched False), so the pipeline can keep
  a plate's box through a missed detection, and tracks that age out are handed back
  (`pop_ended`) so their reads can be finalized.
- A matched track reports the detector's box, not the filter's: it is what the reader crops,
  and the smoothed box lags behind a plate that changes speed.
- Given the frame size, a track whose predicted centre has left the frame has ended: the
  vehicle drove out, and a coasting track there would take over the next vehicle entering
  at that edge (with its identity and its plate already read).

Call once per frame, in order: `update()` when detection ran, `predict()` when it was
skipped. Coasting boxes can leave the frame; crop with clipping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment

from models.detector import Detection

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the frame


@dataclass
class Track:
    """One tracked plate on one camera, as the tracker reports it for a frame."""
    camera_id: str
    track_id: int  # unique per camera and run, never reused
    box: Box
    confidence: float  # detector confidence of the matched detection (0 when coasting)
    hits: int  # frames with a matched detection so far
    frame_index: int
    matched: bool  # False when the box is the Kalman prediction only (a missed frame)


@dataclass
class Direction:
    """Which way a track's plate moved: `motion` approaching (it grew), receding (it shrank),
    crossing (it moved across the view) or stationary; `angle` of its path in the image,
    degrees counter-clockwise from the right (90: up the frame), None when stationary."""
    motion: str
    angle: float | None


# Direction of travel: a plate whose height changed by more than GREW between the first and
# the latest whole box of its track came closer or went away (height, not width: a pole in
# front cuts a plate's width, seldom its height), unless it moved more than ACROSS_WIDTHS of
# its width sideways meanwhile (a box's height jitters by a few pixels: a small plate crossing
# the view can seem to grow); else one whose centre moved more than CROSSING_WIDTHS of its
# width crossed the view; else it stood.
GREW = 0.25
ACROSS_WIDTHS = 2.0
CROSSING_WIDTHS = 0.5


def direction(first: Box, last: Box) -> Direction:
    """The direction from a track's `first` box to its `last`."""
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = first, last
    dx, dy = (bx1 + bx2 - ax1 - ax2) / 2, (by1 + by2 - ay1 - ay2) / 2
    ha, hb = max(ay2 - ay1, 1e-6), max(by2 - by1, 1e-6)
    width = max(ax2 - ax1, bx2 - bx1)
    across = abs(dx) > ACROSS_WIDTHS * width
    motion = ("approaching" if hb > (1 + GREW) * ha and not across else
              "receding" if ha > (1 + GREW) * hb and not across else
              "crossing" if math.hypot(dx, dy) > CROSSING_WIDTHS * width else "stationary")
    angle = None if motion == "stationary" else round(math.degrees(math.atan2(-dy, dx)) % 360, 1)
    return Direction(motion, angle)


GATE_DIAGONALS = 1.5  # centre-distance gate, in diagonals of the detected box
_MIN_SIDE = 1e-3  # px; keeps area and aspect positive (and finite) for degenerate boxes


def _ordered(box: Box) -> Box:
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1, y1, max(x1, x2), max(y1, y2)


def _box_to_z(box: Box) -> np.ndarray:
    """x1, y1, x2, y2 -> centre x, centre y, area, aspect (w / h)."""
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, _MIN_SIDE), max(y2 - y1, _MIN_SIDE)
    return np.array([x1 + w / 2, y1 + h / 2, w * h, w / h])


def _z_to_box(z: np.ndarray) -> Box:
    cx, cy, s, r = (float(v) for v in z[:4])
    w = (max(s, _MIN_SIDE**2) * max(r, _MIN_SIDE)) ** 0.5
    h = max(s, _MIN_SIDE**2) / w
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _match_scores(tracks: np.ndarray, dets: np.ndarray, iou_threshold: float, fresh: np.ndarray) -> np.ndarray:
    """(N, 4) predicted and (M, 4) detected boxes (x1 <= x2, y1 <= y2) -> (N, M) scores, 0 where the pair may not match.

    Pairs at or above `iou_threshold` score their IoU; below it, pairs of a `fresh` track
    (N booleans) inside the centre gate score in (0, iou_threshold], closer is higher, so any
    overlap-based match outranks them.
    """
    sizes_t = tracks[:, 2:] - tracks[:, :2]
    sizes_d = dets[:, 2:] - dets[:, :2]
    inter = np.prod(np.clip(np.minimum(tracks[:, None, 2:], dets[None, :, 2:])
                            - np.maximum(tracks[:, None, :2], dets[None, :, :2]), 0, None), axis=2)
    iou = inter / (np.prod(sizes_t, axis=1)[:, None] + np.prod(sizes_d, axis=1)[None, :] - inter)
    dist = np.linalg.norm((tracks[:, None, :2] + tracks[:, None, 2:]) / 2
                          - (dets[None, :, :2] + dets[None, :, 2:]) / 2, axis=2)
    gate = GATE_DIAGONALS * np.hypot(*np.clip(sizes_d, _MIN_SIDE, None).T)
    near = iou_threshold * np.clip(1 - dist / gate[None, :], 0, None) * fresh[:, None]
    return np.where(iou >= iou_threshold, iou, near)


class KalmanBoxTracker:
    """One plate: state centre x, y, area s, aspect r and the velocities of x, y, s (aspect is
    taken as constant, as in SORT)."""

    def __init__(self, track_id: int, detection: Detection):
        kf = KalmanFilter(dim_x=7, dim_z=4)
        kf.F = np.eye(7)
        kf.F[0, 4] = kf.F[1, 5] = kf.F[2, 6] = 1.0
        kf.H = np.eye(4, 7)
        # SORT's tuning: area and aspect are noisier measurements than the centre, and the
        # velocities start unknown (large variance), so the second detection sets them.
        kf.R[2:, 2:] *= 10.0
        kf.P[4:, 4:] *= 1000.0
        kf.P *= 10.0
        kf.Q[-1, -1] *= 0.01
        kf.Q[4:, 4:] *= 0.01
        kf.x[:4, 0] = _box_to_z(_ordered(detection.box))
        self.kf = kf
        self.id = track_id
        self.hits = 1
        self.misses = 0  # update() frames without a match since the last one
        self.confirmed = False  # sticky once reported, so it keeps being reported while coasting
        self.detection = detection  # the last matched one

    def predict(self) -> None:
        if self.kf.x[2, 0] + self.kf.x[6, 0] <= 0:  # a shrinking plate must not reach negative area
            self.kf.x[6, 0] = 0.0
        self.kf.predict()

    def update(self, detection: Detection) -> None:
        self.kf.update(_box_to_z(_ordered(detection.box)))
        self.detection = detection
        self.hits += 1
        self.misses = 0

    @property
    def box(self) -> Box:
        """The filter's current estimate."""
        return _z_to_box(self.kf.x[:, 0])


class SortTracker:
    """Plate tracks for one camera.

    A track is confirmed at `min_hits` matched detections (or at once while
    `frame_index < min_hits`, so a stream's first frames are not lost); only confirmed tracks
    are reported. `max_age` counts missed detections, i.e. `update()` calls without a match:
    frames skipped through `predict()` are not misses. Track IDs start at 1 and are never
    reused by an instance.
    """

    def __init__(self, camera_id: str, max_age: int = 15, min_hits: int = 2, iou_threshold: float = 0.2):
        self.camera_id = camera_id
        self.max_age = max_age
        self.min_hits = min_hits
        self.iou_threshold = iou_threshold
        self._tracks: list[KalmanBoxTracker] = []
        self._next_id = 1
        self._ended: list[int] = []

    def update(self, detections: list[Detection], frame_index: int,
               frame_size: tuple[int, int] | None = None) -> list[Track]:
        """Match this frame's detections; returns the confirmed tracks, matched or coasting.
        `frame_size` (width, height): end the tracks that left it (module docstring)."""
        self._advance(frame_size)
        unmatched = set(range(len(detections)))
        matched: set[int] = set()
        if self._tracks and detections:
            scores = _match_scores(np.array([t.box for t in self._tracks]),
                                   np.array([_ordered(d.box) for d in detections]), self.iou_threshold,
                                   np.array([t.hits == 1 for t in self._tracks]))
            for ti, di in zip(*linear_sum_assignment(scores, maximize=True)):
                if scores[ti, di] > 0:
                    self._tracks[ti].update(detections[di])
                    matched.add(ti)
                    unmatched.discard(di)
        for ti, t in enumerate(self._tracks):
            if ti not in matched:
                t.misses += 1
        for di in sorted(unmatched):
            self._tracks.append(KalmanBoxTracker(self._next_id, detections[di]))
            self._next_id += 1
        self._end([t for t in self._tracks if t.misses > self.max_age])
        for t in self._tracks:
            if t.misses == 0 and (t.hits >= self.min_hits or frame_index < self.min_hits):
                t.confirmed = True
        return [self._report(t, frame_index, matched=t.misses == 0) for t in self._tracks if t.confirmed]

    def predict(self, frame_index: int, frame_size: tuple[int, int] | None = None) -> list[Track]:
        """Advance the filters for a frame without detection; every confirmed track coasts."""
        self._advance(frame_size)
        return [self._report(t, frame_index, matched=False) for t in self._tracks if t.confirmed]

    def _advance(self, frame_size: tuple[int, int] | None) -> None:
        for t in self._tracks:
            t.predict()
        if frame_size is not None:
            w, h = frame_size
            self._end([t for t in self._tracks
                       if not (0 <= t.kf.x[0, 0] < w and 0 <= t.kf.x[1, 0] < h)])

    def live_ids(self) -> list[int]:
        """IDs of every live track, reported or not yet."""
        return [t.id for t in self._tracks]

    def pop_ended(self) -> list[int]:
        """IDs of the reported tracks removed since the last call (for finalizing their plates)."""
        ended, self._ended = self._ended, []
        return ended

    def flush(self) -> list[int]:
        """End every live track (shutdown, end of file); returns all IDs not yet popped."""
        self._end(self._tracks)
        return self.pop_ended()

    def _end(self, tracks: list[KalmanBoxTracker]) -> None:
        # Tracks never reported are unknown downstream, so they end silently.
        self._ended += [t.id for t in tracks if t.confirmed]
        gone = {t.id for t in tracks}
        self._tracks = [t for t in self._tracks if t.id not in gone]

    def _report(self, t: KalmanBoxTracker, frame_index: int, matched: bool) -> Track:
        box, confidence = (_ordered(t.detection.box), float(t.detection.confidence)) if matched else (t.box, 0.0)
        return Track(self.camera_id, t.id, box, confidence, t.hits, frame_index, matched)
