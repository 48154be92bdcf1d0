"""Speed of the two models on this machine, printed as figures and one JSON line.

    python -m models.benchmark [--device auto|cpu|cuda:0] [--batch 64] [--onnx]

OCR: ms per crop when crops come in batches. Detector: ms per 640x480 frame, PyTorch or
(`--onnx`) the exported ONNX model through ONNX Runtime.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from models.detector import DEFAULT_WEIGHTS, PlateDetector
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
    ocr = PlateRecognizer(device=args.device)
    det = PlateDetector(DEFAULT_WEIGHTS.with_suffix(".onnx") if args.onnx else DEFAULT_WEIGHTS, device=args.device)
    ocr_ms = 1000 * _time(lambda: ocr.read(crops, batch_size=args.batch), 5) / len(crops)
    det_ms = 1000 * _time(lambda: [det.detect([f]) for f in frames], 3) / len(frames)
    r = {"ocr_ms_per_crop": round(ocr_ms, 2), "ocr_batch": args.batch, "detector_ms_per_frame": round(det_ms, 1),
         "detector_runtime": "onnxruntime" if args.onnx else "torch", "detector_imgsz": det.imgsz,
         "device": str(det.device), "cpu": platform.processor() or platform.machine()}
    print(f"OCR: {ocr_ms:.2f} ms per crop (batches of {args.batch}); detector: {det_ms:.1f} ms per 640x480 frame")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
