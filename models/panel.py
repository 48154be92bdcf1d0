"""The detector's dev panel: every dev set in one table, with the peer's column from the same run.

    python -m models.panel [--weights A.pt B.onnx ...] [--no-peer]

Sets (each skipped, with a note, where its data is absent):
  romanian-valid   real dashcam frames, Romania (../shared/data/detect-romanian/valid)
  openlpr-holdout  real photos, many countries: the 1 in 5 of detect-openlpr never trained on
  eval-ucsd        real parking-lot stills, California (evaluation only)
  gen-gate         generated gate views: one plate 60 px to 95 % of a 640x480 frame
  gen-hd           generated 1280x720 and 1920x1080 scenes, plates 40-140 px wide
Generated sets use a font the detector never saw in training and seeds of their own.

Each set is read by the still reader (`models.reader.PlateReader`), so what is scored is what
a user gets: both detector passes, tiles on large images, weak boxes confirmed by their read.
A plate is detected when a box has IoU > 0.4 with it; a box overlapping no labelled plate
by that much counts as a box on no plate. The peer is `platedet`'s YOLO plate detector at
the same confidence (0.4). The last line printed is the table as JSON.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.errors import ModelError
from models.evaluate import IOU_MATCH, iou
from models.train_detector import SHARED, openlpr_holdout, read_yolo_labels

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "data" / "panel"
HELD_OUT_FONT = str(ROOT / "tests" / "fonts" / "OpenSans-CondBold.ttf")
PEER_CONFIDENCE = 0.4

Box = tuple[float, float, float, float]


@dataclass
class Frame:
    path: Path
    plates: list[Box]


def _yolo_frames(images: list[Path]) -> list[Frame]:
    out = []
    for p in images:
        h, w = cv2.imread(str(p)).shape[:2]
        out.append(Frame(p, read_yolo_labels(p.parent.parent / "labels" / f"{p.stem}.txt", w, h)))
    return out


def _csv_frames(root: Path) -> list[Frame]:
    boxes: dict[str, list[Box]] = {}
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            boxes.setdefault(row["file"], []).append(tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2")))
    return [Frame(root / "images" / name, b) for name, b in boxes.items()]


def _generated(name: str, n: int, seed: int, render) -> list[Frame]:
    """A generated set, written once under data/panel/NAME (the same images on every run)."""
    folder = GENERATED / name
    if not (folder / "labels.csv").is_file():
        rng = np.random.default_rng(seed)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        rows = [["file", "x1", "y1", "x2", "y2", "plate"]]
        for i in range(n):
            img, plates = render(rng)
            file = f"{name}_{i:04d}.jpg"
            cv2.imwrite(str(folder / "images" / file), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            rows += [[file, *(round(v) for v in p.box), p.text] for p in plates]
        with open(folder / "labels.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return _csv_frames(folder)


def panel_sets() -> dict[str, list[Frame]]:
    from models.synth.scenes import render_closeup, render_scene

    fonts = (HELD_OUT_FONT,)
    sets: dict[str, list[Frame]] = {}
    romanian = SHARED / "detect-romanian" / "valid" / "images"
    if romanian.is_dir():
        sets["romanian-valid"] = _yolo_frames(sorted(romanian.glob("*.jpg")))
    openlpr = SHARED / "detect-openlpr" / "images"
    if openlpr.is_dir():
        sets["openlpr-holdout"] = _yolo_frames([p for p in sorted(openlpr.iterdir()) if openlpr_holdout(p)])
    if (SHARED / "eval-ucsd" / "labels.csv").is_file():
        sets["eval-ucsd"] = _csv_frames(SHARED / "eval-ucsd")
    sets["gen-gate"] = _generated("gen-gate", 150, 901, lambda rng: render_closeup(
        rng, widths=(60, 608), fonts=fonts))
    sets["gen-hd"] = _generated("gen-hd", 100, 902, lambda rng: render_scene(
        rng, size=[(1280, 720), (1920, 1080)][rng.integers(2)], fonts=fonts, widths=(40, 140)))
    return sets


@dataclass
class SetScore:
    plates: int = 0
    detected: int = 0
    images: int = 0
    stray: int = 0  # boxes on no plate

    def add(self, truth: list[Box], boxes: list[Box]) -> None:
        self.images += 1
        self.plates += len(truth)
        self.detected += sum(any(iou(t, b) > IOU_MATCH for b in boxes) for t in truth)
        self.stray += sum(not any(iou(t, b) > IOU_MATCH for t in truth) for b in boxes)

    def figures(self) -> dict:
        return {"detected": round(self.detected / max(1, self.plates), 4),
                "stray_per_image": round(self.stray / max(1, self.images), 3), "plates": self.plates}


def _ours(weights: str):
    from models.reader import PlateReader

    reader = PlateReader(detector_weights=weights, device="cpu")
    return lambda img: [p.box for p in reader.read(img)]


def _peer():
    try:
        from platedet import Platedet
    except ImportError:
        raise ModelError("the peer needs platedet: pip install --no-deps -r requirements-peer.txt") from None
    det = Platedet()

    def boxes(img):
        found = det.inference(img, conf_threshold=PEER_CONFIDENCE, iou_threshold=0.4, return_types=["boxes"])
        return [tuple(float(v) for v in b) for b in found.get("boxes", {}).get("boxes", [])]
    return boxes


def run_panel(weights: list[str], peer: bool) -> dict[str, dict[str, dict]]:
    """{column: {set: figures}}, with a `mean` row per column."""
    sets = panel_sets()
    columns = {w: _ours(w) for w in weights}
    if peer:
        columns["peer (platedet)"] = _peer()
    table: dict[str, dict[str, dict]] = {}
    for name, boxes_of in columns.items():
        table[name] = {}
        for set_name, frames in sets.items():
            score = SetScore()
            for f in frames:
                score.add(f.plates, boxes_of(cv2.imread(str(f.path))))
            table[name][set_name] = score.figures()
            print(f"{name} {set_name}: {table[name][set_name]}", file=sys.stderr, flush=True)
        rows = list(table[name].values())
        table[name]["mean"] = {"detected": round(sum(r["detected"] for r in rows) / len(rows), 4),
                               "stray_per_image": round(sum(r["stray_per_image"] for r in rows) / len(rows), 3)}
    return table


def print_table(table: dict[str, dict[str, dict]]) -> None:
    columns = list(table)
    sets = list(next(iter(table.values())))
    print(f"{'set':<16}" + "".join(f"{Path(c).name[:26]:>28}" for c in columns))
    print(f"{'':<16}" + "".join(f"{'detected  on-no-plate/img':>28}" for _ in columns))
    for s in sets:
        print(f"{s:<16}" + "".join(f"{table[c][s]['detected']:>17.1%}{table[c][s]['stray_per_image']:>11.2f}"
                                    for c in columns))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="+", default=["auto"], help="detector weights to score (default: the shipped)")
    ap.add_argument("--no-peer", dest="peer", action="store_false", help="without the platedet column")
    args = ap.parse_args()
    try:
        table = run_panel(args.weights, args.peer)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_table(table)
    print(json.dumps(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
