"""Train the plate detector from scratch (no pretrained weights exist offline).

    python -m models.train_detector [--synthetic 3000] [--epochs 60] [--imgsz 640] [--resume]

1. Builds `data/detector/` (YOLO layout): generated scenes (`models/synth/scenes.py`),
   a share of them drawn over real frames, plus the real labelled frames of `--real`
   (default `../shared/data/detect-romanian`, MIT licence; skipped if absent).
2. Trains ultralytics YOLOv8n from `yolov8n.yaml` (device auto: CUDA when present),
   checkpointing every epoch in `runs/detect/plates/` (`--resume` continues it).
3. Copies the best weights to `models/detector/plate_yolov8n.pt` and exports ONNX beside it
   at the inference size `models.detector.IMGSZ`.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from models.detector import DETECTOR_DIR, IMGSZ, ROOT, offline_ultralytics
from models.synth.scenes import render_scene

DATA = ROOT / "data" / "detector"
RUN = ROOT / "runs" / "detect"


def _read_yolo_labels(path: Path, w: int, h: int) -> list[tuple[float, float, float, float]]:
    boxes = []
    if path.exists():
        for line in path.read_text().split("\n"):
            p = line.split()
            if len(p) == 5:
                cx, cy, bw, bh = (float(v) for v in p[1:])
                boxes.append(((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h))
    return boxes


def _write(split: str, name: str, img: np.ndarray, boxes) -> None:
    h, w = img.shape[:2]
    cv2.imwrite(str(DATA / "images" / split / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    lines = [f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
             for x1, y1, x2, y2 in boxes]
    (DATA / "labels" / split / f"{name}.txt").write_text("\n".join(lines))


def _synth_job(args: tuple[int, str, list[str]]) -> None:
    i, split, backgrounds = args
    rng = np.random.default_rng([7, i])
    if backgrounds and rng.random() < 0.4:
        # Synthetic plates drawn over a real frame, whose own plates stay labelled.
        path = Path(backgrounds[rng.integers(len(backgrounds))])
        bg = cv2.imread(str(path))
        real = _read_yolo_labels(path.parent.parent / "labels" / (path.stem + ".txt"), bg.shape[1], bg.shape[0])
        img, plates = render_scene(rng, background=bg, occupied=real)
        boxes = real + [p.box for p in plates]
    else:
        img, plates = render_scene(rng)
        boxes = [p.box for p in plates]
    _write(split, f"synth_{i:06d}", img, boxes)


def build_dataset(n_synth: int, real: Path | None, workers: int) -> Path:
    for split in ("train", "val"):
        for kind in ("images", "labels"):
            d = DATA / kind / split
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
    backgrounds: list[str] = []
    if real and real.is_dir():
        for split, src in (("train", "train"), ("val", "valid")):
            for img in sorted((real / src / "images").glob("*.jpg")):
                os.symlink(img.resolve(), DATA / "images" / split / img.name)
                label = real / src / "labels" / (img.stem + ".txt")
                shutil.copy(label, DATA / "labels" / split / label.name) if label.exists() else None
                if split == "train":
                    backgrounds.append(str(img.resolve()))
    n_val = max(50, n_synth // 10)
    jobs = [(i, "train", backgrounds) for i in range(n_synth)] + [(n_synth + i, "val", []) for i in range(n_val)]
    with mp.Pool(workers) as pool:
        for k, _ in enumerate(pool.imap_unordered(_synth_job, jobs, chunksize=16)):
            if k % 500 == 0:
                print(f"scenes {k}/{len(jobs)}", flush=True)
    yaml_path = DATA / "data.yaml"
    yaml_path.write_text(f"path: {DATA}\ntrain: images/train\nval: images/val\nnames:\n  0: plate\n")
    return yaml_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", type=int, default=3000, help="generated training scenes")
    ap.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "detect-romanian")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the training images used per epoch")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--resume", action="store_true", help="continue runs/detect/plates/weights/last.pt")
    ap.add_argument("--skip-data", action="store_true", help="reuse data/detector as it is")
    args = ap.parse_args()
    offline_ultralytics()
    import torch
    from ultralytics import YOLO

    device = ("0" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device.replace("cuda:", "")
    last = RUN / "plates" / "weights" / "last.pt"
    if args.resume and last.exists():
        results_model = YOLO(str(last))
        results_model.train(resume=True)
    else:
        data = DATA / "data.yaml" if args.skip_data else build_dataset(args.synthetic, args.real, args.workers)
        model = YOLO("yolov8n.yaml")
        model.train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=device,
                    workers=min(args.workers, 8), project=str(RUN), name="plates", exist_ok=True, pretrained=False,
                    plots=False, seed=0, deterministic=False, close_mosaic=max(1, args.epochs // 10),
                    patience=max(10, args.epochs // 3), cache="ram", fraction=args.fraction)
    best = RUN / "plates" / "weights" / "best.pt"
    DETECTOR_DIR.mkdir(exist_ok=True)
    shutil.copy(best, DETECTOR_DIR / "plate_yolov8n.pt")
    onnx = YOLO(str(DETECTOR_DIR / "plate_yolov8n.pt")).export(format="onnx", imgsz=IMGSZ, simplify=True,
                                                                  dynamic=False)
    print(f"weights: {DETECTOR_DIR / 'plate_yolov8n.pt'}, onnx: {onnx}")


if __name__ == "__main__":
    main()
