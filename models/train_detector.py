"""Train the plate detector from scratch (no pretrained weights exist offline).

    python -m models.train_detector [--synthetic 3000] [--epochs 60] [--imgsz 640] [--resume]

1. Builds `data/detector/` (YOLO layout): generated scenes (`models/synth/scenes.py`), a share of them drawn over real frames, plus the real
   labelled frames of each `--real` folder (default `../shared/data/detect-romanian`, MIT,
   and `../shared/data/detect-openlpr`, Apache-2.0, less its hold-out `openlpr_holdout`;
   skipped if absent) and close-ups cut from them (`--closeups`; the plate 60 px to 95 % of a
   640x480 view), in some of which the real plate is swapped for a generated one of another
   family, so real cars carry US, UK and Brazilian plates too.
2. Trains ultralytics YOLOv8n from `yolov8n.yaml` (device auto: CUDA when present), or goes
   on from `--weights`, checkpointing every epoch in `runs/detect/plates/` (`--resume`
   continues an interrupted run).
3. Copies the best weights to `models/detector/plate_yolov8n.pt` and exports ONNX beside it
   with a dynamic input size (the detector's two passes run at two sizes).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import zlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from models.defaults import resolve_device
from models.detector import DETECTOR_DIR, IMGSZ, ROOT, offline_ultralytics
from models.synth.camera import degrade, pose
from models.synth.plates import render_plate
from models.synth.scenes import paste_plate, render_scene

DATA = ROOT / "data" / "detector"
RUN = ROOT / "runs" / "detect"
SHARED = ROOT.parent / "shared" / "data"
# Close-ups: the plate's width in a 640x480 view, log-uniform (a toll gate's view up to 95 %).
CLOSEUP_WIDTHS = (60, 608)


def openlpr_holdout(image: Path) -> bool:
    """Whether a frame of a flat `images/` + `labels/` set (detect-openlpr) is in the dev
    hold-out that is never trained on: one in five, by a stable hash of its name."""
    return zlib.crc32(image.stem.encode()) % 5 == 0


def real_frames(root: Path) -> dict[str, list[Path]]:
    """A real YOLO set's frames by split: `train/` and `valid/` folders as they are, or for a
    flat `images/` folder all but the hold-out as train (the hold-out is neither trained nor
    validated on: it judges the weights in `models.panel`)."""
    if (root / "train" / "images").is_dir():
        return {"train": sorted((root / "train" / "images").glob("*.jpg")),
                "val": sorted((root / "valid" / "images").glob("*.jpg"))}
    images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return {"train": [p for p in images if not openlpr_holdout(p)], "val": []}


def read_yolo_labels(path: Path, w: int, h: int) -> list[tuple[float, float, float, float]]:
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
        real = read_yolo_labels(path.parent.parent / "labels" / (path.stem + ".txt"), bg.shape[1], bg.shape[0])
        img, plates = render_scene(rng, background=bg, occupied=real)
        boxes = real + [p.box for p in plates]
    else:
        img, plates = render_scene(rng)
        boxes = [p.box for p in plates]
    _write(split, f"synth_{i:06d}", img, boxes)


def _swap_plate(rng: np.random.Generator, img: np.ndarray, box) -> tuple[float, float, float, float]:
    """Paint over the real plate in `box` and put a generated one of about the same area there,
    as bright as the real one was; returns the new plate's box."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(img.shape[1], x2), min(img.shape[0], y2)
    brightness = img[y1:y2, x1:x2].mean() / 200
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.rectangle(mask, (x1 - 2, y1 - 2), (x2 + 2, y2 + 2), 255, -1)
    img[:] = cv2.inpaint(img, mask, 5, cv2.INPAINT_TELEA)
    plate = render_plate(rng)
    ph, pw = plate.image.shape[:2]
    plate_w = min(np.sqrt((x2 - x1) * (y2 - y1) * pw / ph) * rng.uniform(0.9, 1.2), img.shape[1] * 0.8)
    face = np.clip(plate.image * brightness * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
    dst = pose(rng, np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32), plate_w) + [(x1 + x2) / 2, (y1 + y2) / 2]
    paste_plate(rng, img, replace(plate, image=face), dst)
    (nx1, ny1), (nx2, ny2) = dst.min(0), dst.max(0)
    return max(0.0, nx1), max(0.0, ny1), min(img.shape[1], nx2), min(img.shape[0], ny2)


def _closeup_job(args: tuple[int, str, str]) -> None:
    """A window cut from a real frame around one of its plates, scaled so that the plate is
    CLOSEUP_WIDTHS px wide in a 640x480 image: the parking-lot and gate views dashcam frames lack."""
    i, split, path = args
    rng = np.random.default_rng([8, i])
    img = cv2.imread(path)
    boxes = read_yolo_labels(Path(path).parent.parent / "labels" / (Path(path).stem + ".txt"), img.shape[1], img.shape[0])
    if not boxes:
        return
    if rng.random() < 0.6:
        boxes = [_swap_plate(rng, img, b) for b in boxes]
    x1, y1, x2, y2 = boxes[rng.integers(len(boxes))]
    scale = np.exp(rng.uniform(*np.log(CLOSEUP_WIDTHS))) / max(1.0, x2 - x1)
    out_w, out_h = 640, 480
    win_w, win_h = out_w / scale, out_h / scale
    # The plate anywhere it fits whole (a wide one barely moves from the centre).
    room_x = max(0.0, (win_w - (x2 - x1)) / 2 / win_w) * 0.9
    room_y = max(0.0, (win_h - (y2 - y1)) / 2 / win_h) * 0.9
    cx = (x1 + x2) / 2 + rng.uniform(-min(0.35, room_x), min(0.35, room_x)) * win_w
    cy = (y1 + y2) / 2 + rng.uniform(-min(0.3, room_y), min(0.35, room_y)) * win_h
    wx, wy = cx - win_w / 2, cy - win_h / 2
    M = np.array([[scale, 0, -wx * scale], [0, scale, -wy * scale]], np.float32)
    out = cv2.warpAffine(img, M, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    kept = []
    for bx1, by1, bx2, by2 in boxes:
        nx1, ny1, nx2, ny2 = (bx1 - wx) * scale, (by1 - wy) * scale, (bx2 - wx) * scale, (by2 - wy) * scale
        cx1, cy1, cx2, cy2 = max(0, nx1), max(0, ny1), min(out_w, nx2), min(out_h, ny2)
        if cx2 - cx1 > 4 and cy2 - cy1 > 3 and (cx2 - cx1) * (cy2 - cy1) > 0.5 * (nx2 - nx1) * (ny2 - ny1):
            kept.append((cx1, cy1, cx2, cy2))
        elif cx2 > cx1 and cy2 > cy1:  # mostly cut off: hide it rather than teach a half plate as background
            out[int(cy1):int(np.ceil(cy2)), int(cx1):int(np.ceil(cx2))] = cv2.blur(
                out[int(cy1):int(np.ceil(cy2)), int(cx1):int(np.ceil(cx2))], (15, 15))
    _write(split, f"closeup_{i:06d}", degrade(rng, out, scale=4.0, severity=0.7), kept)


def build_dataset(n_synth: int, n_closeups: int, reals: list[Path], workers: int) -> Path:
    for split in ("train", "val"):
        for kind in ("images", "labels"):
            d = DATA / kind / split
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
    backgrounds: list[str] = []
    real_val: list[str] = []
    for real in reals:
        if not real.is_dir():
            print(f"skipping {real}: not found")
            continue
        for split, frames in real_frames(real).items():
            for img in frames:
                os.symlink(img.resolve(), DATA / "images" / split / img.name)
                label = img.parent.parent / "labels" / (img.stem + ".txt")
                shutil.copy(label, DATA / "labels" / split / label.name) if label.exists() else None
                (backgrounds if split == "train" else real_val).append(str(img.resolve()))
    n_val = max(50, n_synth // 10)
    jobs = [(i, "train", backgrounds) for i in range(n_synth)] + [(n_synth + i, "val", []) for i in range(n_val)]
    closeups = []
    if backgrounds:
        closeups = [(i, "train", backgrounds[i % len(backgrounds)]) for i in range(n_closeups)]
        closeups += [(n_closeups + i, "val", real_val[i % len(real_val)]) for i in range(n_closeups // 10)]
    with mp.Pool(workers) as pool:
        for k, _ in enumerate(pool.imap_unordered(_synth_job, jobs, chunksize=16)):
            if k % 500 == 0:
                print(f"scenes {k}/{len(jobs)}", flush=True)
        for k, _ in enumerate(pool.imap_unordered(_closeup_job, closeups, chunksize=16)):
            if k % 500 == 0:
                print(f"close-ups {k}/{len(closeups)}", flush=True)
    yaml_path = DATA / "data.yaml"
    yaml_path.write_text(f"path: {DATA}\ntrain: images/train\nval: images/val\nnames:\n  0: plate\n")
    return yaml_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", type=int, default=3000, help="generated training scenes")
    ap.add_argument("--closeups", type=int, default=1500, help="close-ups cut from the real frames")
    ap.add_argument("--real", type=Path, nargs="*", default=[SHARED / "detect-romanian", SHARED / "detect-openlpr"],
                    help="real YOLO sets: train/ + valid/ folders, or a flat images/ + labels/ (less its hold-out)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--hours", type=float, help="stop after this long, fitting the schedule to it (overrides --epochs)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the training images used per epoch")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--weights", type=Path, help="start from these weights instead of from scratch")
    ap.add_argument("--lr0", type=float, default=0.002, help="AdamW learning rate (lower to fine-tune)")
    ap.add_argument("--resume", action="store_true", help="continue runs/detect/plates/weights/last.pt")
    ap.add_argument("--skip-data", action="store_true", help="reuse data/detector as it is")
    args = ap.parse_args()
    offline_ultralytics()
    from ultralytics import YOLO

    device = resolve_device(args.device).replace("cuda:", "")
    last = RUN / "plates" / "weights" / "last.pt"
    if args.resume and last.exists():
        results_model = YOLO(str(last))
        results_model.train(resume=True)
    else:
        data = DATA / "data.yaml" if args.skip_data else build_dataset(args.synthetic, args.closeups, args.real,
                                                                           args.workers)
        model = YOLO(str(args.weights) if args.weights else "yolov8n.yaml")
        model.train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=device,
                    workers=args.workers, project=str(RUN), name="plates", exist_ok=True,
                    pretrained=bool(args.weights), optimizer="AdamW", lr0=args.lr0,
                    warmup_epochs=0.5 if args.weights else 3.0,
                    plots=False, seed=0, deterministic=False, close_mosaic=max(1, args.epochs // 10),
                    patience=max(10, args.epochs // 3), cache="ram", fraction=args.fraction,
                    time=args.hours)
    best = RUN / "plates" / "weights" / "best.pt"
    DETECTOR_DIR.mkdir(exist_ok=True)
    shutil.copy(best, DETECTOR_DIR / "plate_yolov8n.pt")
    onnx = YOLO(str(DETECTOR_DIR / "plate_yolov8n.pt")).export(format="onnx", imgsz=IMGSZ, simplify=True,
                                                                  dynamic=True)
    print(f"weights: {DETECTOR_DIR / 'plate_yolov8n.pt'}, onnx: {onnx}")


if __name__ == "__main__":
    main()
