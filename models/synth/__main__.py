"""Write generated plates to disk, in the evaluator's dataset layouts.

    python -m models.synth stills N OUT_DIR [--seed S] [--font FILE ...]   # scenes + boxes
    python -m models.synth closeups N OUT_DIR [...]  # gate views: one plate 60-600 px wide in 640x480
    python -m models.synth crops N OUT_DIR [--seed S] [--font FILE ...]    # plate crops, with their issuer

OUT_DIR gets `images/` and `labels.csv` (`file,x1,y1,x2,y2,plate` or `file,plate,region`), so
`python -m models.evaluate OUT_DIR` scores the models on it.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from models.synth.camera import ocr_crop
from models.synth.plates import TRAIN_FONTS, render_plate
from models.synth.scenes import render_closeup, render_scene


def write_stills(n: int, out: Path, seed: int, fonts: tuple[str, ...], render=render_scene) -> None:
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "x1", "y1", "x2", "y2", "plate"])
        for i in range(n):
            img, plates = render(rng, size=(640, 480), fonts=fonts)
            name = f"scene_{i:04d}.jpg"
            cv2.imwrite(str(out / "images" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            for p in plates:
                w.writerow([name, *(round(v) for v in p.box), p.text])


def write_crops(n: int, out: Path, seed: int, fonts: tuple[str, ...]) -> None:
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "plate", "region"])
        for i in range(n):
            plate = render_plate(rng, fonts=fonts, glyph_prob=0.6 if fonts == TRAIN_FONTS else 0.0)
            name = f"crop_{i:04d}.png"
            cv2.imwrite(str(out / "images" / name), ocr_crop(rng, plate))
            w.writerow([name, plate.text, plate.issuer])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["stills", "closeups", "crops"])
    ap.add_argument("n", type=int)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--font", action="append", help="use only these font files (no stroke glyphs)")
    args = ap.parse_args()
    fonts = tuple(args.font) if args.font else TRAIN_FONTS
    if args.kind == "crops":
        write_crops(args.n, args.out, args.seed, fonts)
    else:
        write_stills(args.n, args.out, args.seed, fonts, render_closeup if args.kind == "closeups" else render_scene)
    print(f"wrote {args.n} {args.kind} to {args.out}")


if __name__ == "__main__":
    main()
