"""Speed of the two models on this machine, printed as figures and one JSON line.

    python -m models.benchmark [--device auto|cpu|cuda:0] [--batch 64] [--onnx]

OCR: ms per crop when crops come in batches: our network alone, the second reader
(PP-OCRv4) alone, and both combined (the default). Detector: ms per 640x480 frame, PyTorch or
(`--onnx`) the exported ONNX model through ONNX Runtime. Still: ms to read every plate of a
1920x1080 still with the still reader (both passes, tiles, both OCR readers).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from models.detector import DEFAULT_WEIGHTS, PlateDetector
from models.reader import PlateReader
from models.recognizer import PlateRecognizer
from models.synth.camera import ocr_crop
from models.synth.plates import render_plate
from models.synth.scenes import render_scene


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--onnx", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(99)
    crops = [ocr_crop(rng, render_plate(rng)) for _ in range(args.batch)]
    frames = [render_scene(rng, size=(640, 480))[0] for _ in range(4)]
    alone = PlateRecognizer(device=args.device, second_reader=False)
    both = PlateRecognizer(device=args.device)
    weights = DEFAULT_WEIGHTS.with_suffix(".onnx") if args.onnx else DEFAULT_WEIGHTS
    det = PlateDetector(weights, device=args.device)
    per_crop = {name: round(1000 * _time(fn, 5) / len(crops), 2) for name, fn in (
        ("ours", lambda: alone.read(crops, batch_size=args.batch)),
        ("second", lambda: both.second.probabilities(crops)),
        ("combined", lambda: both.read(crops, batch_size=args.batch)))}
    det_ms = 1000 * _time(lambda: [det.detect([f]) for f in frames], 3) / len(frames)
    reader = PlateReader(weights, device=args.device)
    still = render_scene(rng, size=(1920, 1080), widths=(50, 140))[0]
    still_ms = 1000 * _time(lambda: reader.read(still), 3)
    r = {"ocr_ms_per_crop": per_crop, "ocr_batch": args.batch, "detector_ms_per_frame": round(det_ms, 1),
         "still_1080p_ms": round(still_ms, 1), "detector_runtime": "onnxruntime" if args.onnx else "torch",
         "detector_imgsz": det.imgsz, "device": str(det.device), "cpu": platform.processor() or platform.machine()}
    print(f"OCR ms per crop (batches of {args.batch}): ours {per_crop['ours']}, second reader {per_crop['second']}, "
          f"combined {per_crop['combined']}; detector: {det_ms:.1f} ms per 640x480 frame; "
          f"a 1920x1080 still: {still_ms:.0f} ms")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
