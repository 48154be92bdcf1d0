"""The single-frame peer that `stream.bench --peer` compares us with, built from PyPI packages:
the `platedet` YOLO ONNX plate detector and `rapidocr-onnxruntime`'s PP-OCR recognizer on
its crops, run on every frame with no tracking or voting (what a script gluing the two
would do). Install them with `pip install --no-deps -r requirements-peer.txt` (their own
pins clash with ours; every dependency they need is already in requirements.txt).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from models.formats import clean

PACKAGES = "platedet==0.0.2 rapidocr-onnxruntime==1.4.4"
DETECT_CONFIDENCE = 0.4  # as ours
IOU_NMS = 0.4  # platedet's default


@dataclass
class PeerRun:
    frames: int
    seconds: float
    texts: dict[str, int] = field(default_factory=dict)  # every text read, with the frames it was read in

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def run_peer(video: Path) -> PeerRun:
    """Detect and read every frame of `video`; ImportError (naming what to install) without the packages."""
    try:
        from platedet import Platedet
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise ImportError(f"the peer needs {PACKAGES}: pip install --no-deps -r requirements-peer.txt") from None
    detector, ocr = Platedet(), RapidOCR()
    cap = cv2.VideoCapture(str(video))
    run = PeerRun(0, 0.0)
    start = time.perf_counter()
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            run.frames += 1
            found = detector.inference(frame, conf_threshold=DETECT_CONFIDENCE, iou_threshold=IOU_NMS,
                                       return_types=["np_array"])
            for crop in found.get("np_array", {}).get("crops", []):
                if crop.size == 0:
                    continue
                result, _ = ocr(crop, use_det=False, use_cls=False, use_rec=True)
                text = clean(result[0][0]) if result else ""
                if text:
                    run.texts[text] = run.texts.get(text, 0) + 1
    finally:
        cap.release()
    run.seconds = time.perf_counter() - start
    return run
