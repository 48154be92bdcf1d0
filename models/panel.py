"""The dev panels: every dev set in one table, with the peer's column from the same run.

    python -m models.panel detect [--weights A.pt B.onnx ...] [--no-peer]
    python -m models.panel read [--no-peer]

The detector's panel (each set skipped where its data is absent):
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
the same confidence (0.4).

The reading panel, exact reads (A-Z0-9) at the shipped 0.5 threshold:
  eval-ucsd        the still reader on the stills (a plate read when the box over it reads right)
  ocr-ar           real Argentine crops, old and Mercosur formats (a check set, never trained on)
  romanian-crops   the real Romanian validation crops (`models.label_crops`, split by plate)
  gen-crops        generated crops in a font never trained on
  nl-parking, uk   the stream pipeline on the videos: cars with exactly one right event
Columns: our network alone, with the second reader (PP-OCRv4) combined (the default), and
the peer: PP-OCRv4 alone as `rapidocr` reads a crop (on stills behind `platedet`'s boxes).
Below it, each reader's reliability on the crop sets: per confidence bin, the reads in it and
the share whose best guess was right (the 0.5 threshold should withhold wrong reads).

The last line printed is the table as JSON.
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


def _crop_sets() -> dict[str, Path]:
    """The reading panel's crop sets (crops layout of `models.evaluate`)."""
    from models.label_crops import label
    from models.synth.__main__ import write_crops

    sets = {}
    if (SHARED / "ocr-ar" / "labels.csv").is_file():
        sets["ocr-ar"] = SHARED / "ocr-ar"
    romanian = ROOT / "data" / "ocr_real" / "val"
    if not (romanian / "labels.csv").is_file() and (SHARED / "detect-romanian").is_dir():
        label(SHARED / "detect-romanian", romanian.parent)
    if (romanian / "labels.csv").is_file():
        sets["romanian-crops"] = romanian
    if not (GENERATED / "gen-crops" / "labels.csv").is_file():
        write_crops(400, GENERATED / "gen-crops", 282, (HELD_OUT_FONT,))
    sets["gen-crops"] = GENERATED / "gen-crops"
    return sets


def _peer_crop_reader():
    from rapidocr_onnxruntime import RapidOCR

    from models.formats import clean

    ocr = RapidOCR()

    def read(crop: np.ndarray) -> str:
        result, _ = ocr(crop, use_det=False, use_cls=False, use_rec=True)
        return clean(result[0][0]) if result else ""
    return read


def _peer_stills(root: Path) -> float:
    from models.evaluate import Score, load_dataset
    from models.reader import crop

    ds, det, read = load_dataset(root), _peer(), _peer_crop_reader()
    score = Score()
    for file, truth in ds.labels.items():
        img = cv2.imread(str(root / "images" / file))
        score.add_still(truth, [(b, read(crop(img, b, 0.0)), None) for b in det(img)])
    return score.read / score.plates


def _peer_crops(root: Path) -> float:
    from models.evaluate import load_dataset

    ds, read = load_dataset(root), _peer_crop_reader()
    right = [read(cv2.imread(str(root / "images" / f))) == t[0][1] for f, t in ds.labels.items()]
    return sum(right) / len(right)


def _video(args: list[str], second_reader: bool) -> float:
    """Share of cars with exactly one right event, from `stream.evaluate ARGS`."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as cfg:
        cfg.write(f"ocr:\n  second_reader: {str(second_reader).lower()}\n")
        cfg.flush()
        r = subprocess.run([sys.executable, "-m", "stream.evaluate", *args, "--config", cfg.name], cwd=ROOT,
                           capture_output=True, text=True)
    if r.returncode:
        raise ModelError(f"stream.evaluate {' '.join(args)} failed: {(r.stderr.strip().splitlines() or [''])[-1]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["cars_exactly_one_right_event"] / out["cars"]


RELIABILITY_BINS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9, 1.01)


def reliability(pairs: list[tuple[float, bool]]) -> list[dict]:
    """Per confidence bin: how many reads fell in it and the share of them that were right."""
    out = []
    for lo, hi in zip(RELIABILITY_BINS, RELIABILITY_BINS[1:]):
        hits = [ok for c, ok in pairs if lo <= c < hi]
        out.append({"from": lo, "to": min(hi, 1.0), "reads": len(hits),
                    "right": round(sum(hits) / len(hits), 3) if hits else None})
    return out


def run_read_panel(peer: bool) -> dict[str, dict[str, dict]]:
    """{column: {set: {"read": share}}}, with a `mean` row per column; and the combined
    reader's reliability on the crop sets (`reliability`), under "reliability"."""
    from models.evaluate import evaluate, load_dataset
    from models.reader import PlateReader

    columns = {"ours alone": False, "ours + PP-OCRv4": True}
    table: dict[str, dict[str, dict]] = {c: {} for c in [*columns, *(["peer (PP-OCRv4)"] if peer else [])]}
    stills = {"eval-ucsd": SHARED / "eval-ucsd"} if (SHARED / "eval-ucsd" / "labels.csv").is_file() else {}
    confidences: dict[str, list[tuple[float, bool]]] = {c: [] for c in columns}
    readers = {column: PlateReader(device="cpu", detect=False, second_reader=second) for column, second in columns.items()}
    for name, root in {**stills, **_crop_sets()}.items():
        for column, second in columns.items():
            r = evaluate(root, None, 0.5, "cpu", second_reader=second)
            table[column][name] = {"read": r["exact_read_rate"]}
            if name not in stills:  # each crop's confidence, against whether its best guess is right
                for file, rows in load_dataset(root).labels.items():
                    p = readers[column].read_crops([cv2.imread(str(root / "images" / file))])[0]
                    confidences[column].append((p.confidence, p.guess == rows[0][1]))
        if peer:
            table["peer (PP-OCRv4)"][name] = {"read": round(_peer_stills(root) if name in stills
                                                             else _peer_crops(root), 4)}
        print(name, {c: t[name] for c, t in table.items()}, file=sys.stderr, flush=True)
    videos = {"nl-parking": [str(SHARED / "video" / "nl-parking")],
              "uk": [str(SHARED / "video" / "uk_LS15EBC.mp4"), "--plate", "LS15EBC"]}
    for name, args in videos.items():
        if Path(args[0]).exists():
            for column, second in columns.items():
                table[column][name] = {"read": round(_video(args, second), 4)}
            print(name, {c: t.get(name) for c, t in table.items()}, file=sys.stderr, flush=True)
    for column, rows in table.items():
        rows["mean"] = {"read": round(sum(r["read"] for r in rows.values()) / len(rows), 4)}
    table["reliability"] = {c: reliability(pairs) for c, pairs in confidences.items()}
    return table


def print_table(table: dict[str, dict[str, dict]]) -> None:
    curves = table.pop("reliability", None)
    columns = list(table)
    sets = list(dict.fromkeys(s for c in columns for s in table[c]))
    detect = "detected" in table[columns[0]][sets[0]]
    print(f"{'set':<16}" + "".join(f"{Path(c).name[:26]:>28}" for c in columns))
    print(f"{'':<16}" + "".join(f"{'detected  on-no-plate/img' if detect else 'read exactly':>28}" for _ in columns))
    for s in sets:
        cells = [table[c].get(s) for c in columns]
        print(f"{s:<16}" + "".join(f"{'-':>28}" if x is None else f"{x['detected']:>17.1%}{x['stray_per_image']:>11.2f}"
                                    if detect else f"{x['read']:>28.1%}" for x in cells))
    if curves:
        print("\nreliability on the crop sets: reads per confidence bin, and the share right")
        for column, bins in curves.items():
            print(f"{column:<16}" + "  ".join(f"{b['from']:.1f}-{b['to']:.1f}: {b['reads']} "
                                              f"{'-' if b['right'] is None else format(b['right'], '.0%')}"
                                              for b in bins))
        table["reliability"] = curves


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("panel", choices=["detect", "read"])
    ap.add_argument("--weights", nargs="+", default=["auto"], help="detector weights to score (default: the shipped)")
    ap.add_argument("--no-peer", dest="peer", action="store_false", help="without the peer's column")
    args = ap.parse_args()
    try:
        table = run_panel(args.weights, args.peer) if args.panel == "detect" else run_read_panel(args.peer)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_table(table)
    print(json.dumps(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
