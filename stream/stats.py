"""The pipeline's counters and latencies in one object: the pipeline's threads write them;
the metrics, the progress line, the benchmark, the evaluator and the API read them."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

LATENCY_WINDOW = 10_000  # latencies kept for the p50/p95 figures: the latest events'
STAGES = ("detect", "track", "ocr", "vote", "publish")


@dataclass
class PipelineStats:
    cameras: list[str]
    frames_done: int = 0  # frames through detect/track/read, all cameras
    frames_detected: int = 0  # frames the detector ran on (detector.detect_every skips some)
    events: int = 0
    events_by: dict[tuple[str, str], int] = field(default_factory=dict)  # (camera, event type) -> events
    processed: dict[str, int] = field(default_factory=dict)  # frames done per camera
    detections: dict[str, int] = field(default_factory=dict)  # plate boxes inside each camera's ROI
    # seconds from the first frame whose read gave the published plate to its event
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    # (camera, reason) -> OCR reads not voted: "illegible" (nothing read), "unsure" (under
    # ocr.min_confidence)
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.processed = self.processed or dict.fromkeys(self.cameras, 0)
        self.detections = self.detections or dict.fromkeys(self.cameras, 0)

    def event(self, camera_id: str, kind: str, latency: float | None) -> None:
        self.events += 1
        self.events_by[(camera_id, kind)] = self.events_by.get((camera_id, kind), 0) + 1
        if latency is not None:
            self.latencies.append(latency)

    def reject(self, camera_id: str, reason: str) -> None:
        self.rejected[(camera_id, reason)] = self.rejected.get((camera_id, reason), 0) + 1

    def summary(self, dropped: int) -> dict:
        """The figures `Pipeline.run` returns (and logs), with the frames the captures dropped."""
        lat = sorted(self.latencies)
        pct = (lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1)) if lat else (lambda p: None)
        return {"frames": self.frames_done, "frames_detected": self.frames_detected, "events": self.events,
                "dropped": dropped, "latency_ms_p50": pct(0.5), "latency_ms_p95": pct(0.95)}
