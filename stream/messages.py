"""What flows between the pipeline's stages: capture -> detect -> track -> read -> vote -> publish.

Each stage takes and returns these small dataclasses; nothing else crosses a queue.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.issuer import Issuer
from trackers.kalman import Box, Direction, Track  # the tracker's output (re-exported)

__all__ = ["Box", "Frame", "Track", "PlateRead", "Direction", "Candidate", "Match", "PlateDecision"]


@dataclass
class Frame:
    camera_id: str
    index: int  # 0-based frame number within this camera's source
    timestamp: float  # seconds: the file's own time for replay, wall clock (epoch) for live
    image: np.ndarray  # BGR
    received: float  # time.monotonic() when captured, for latency figures


@dataclass
class PlateRead:
    """One OCR reading of one track's crop in one frame."""
    camera_id: str
    track_id: int
    frame_index: int
    timestamp: float
    text: str  # A-Z0-9 (may be empty when nothing was legible)
    confidence: float
    char_confidences: list[float]
    region: str | None
    box: Box
    crop: np.ndarray | None = field(default=None, repr=False)  # BGR plate crop, for the event's JPEG
    vehicle: np.ndarray | None = field(default=None, repr=False)  # BGR crop around the vehicle, for evidence


@dataclass
class Candidate:
    text: str
    score: float


@dataclass(frozen=True)
class Match:
    """A decision's plate found on a watchlist (stream/watchlist.py)."""
    list: str  # the list's name
    entry: str  # the listed text or regex that matched
    distance: float  # 0 for a regex or an exact text
    action: str  # alert | ignore


@dataclass
class PlateDecision:
    """The voter's verdict on a track: what gets published (as a plate or correction event)."""
    camera_id: str
    track_id: int
    plate: str
    region: str | None
    confidence: float
    char_confidences: list[float]
    candidates: list[Candidate]
    reads: int
    first_seen: tuple[float, int]  # (timestamp, frame index)
    last_seen: tuple[float, int]
    box: Box
    correction_of: str | None = None  # the earlier plate text this decision overturns
    crop: np.ndarray | None = field(default=None, repr=False)  # of the read that won the vote
    issuer: Issuer = field(default_factory=Issuer)  # read once per decision, on its crop
    captured: tuple[float, int] | None = None  # (timestamp, frame index) of the read that won the vote
    direction: Direction | None = None
    last_box: Box | None = None  # of the track's latest read (with its first whole box: the direction)
    match: Match | None = None  # the watchlist entry it matched
    vehicle: np.ndarray | None = field(default=None, repr=False)  # around the vehicle, same frame as crop
