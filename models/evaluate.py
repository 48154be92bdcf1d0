"""Score the shipped models on a labelled dataset.

    python -m models.evaluate DATASET_DIR [--predictions OUT.jsonl] [--min-confidence 0.5] [--device auto]
                              [--no-zoom-out]

DATASET_DIR holds `images/` and `labels.csv` in one of two layouts:
  stills: file,x1,y1,x2,y2,plate   (one row per plate, pixel corners)
  crops:  file,plate[,...]         (each image is one plate)
A plate is detected when a predicted box has IoU > 0.4 with it, and read when the text of
the best-overlapping box equals the label on A-Z0-9. Predicted boxes overlapping no
labelled plate by more than that are counted as unmatched. Plates that a box overlaps only
by IoU <= 0.4 are counted apart: many of them mean the labels box something else than the
detector does (the characters, not the whole plate). The last line printed is the figures
as one JSON object.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from models.detector import MIN_CONFIDENCE
from models.errors import ModelError
from models.formats import clean

IOU_MATCH = 0.4


@dataclass
class Dataset:
    kind: str  # "stills" | "crops"
    root: Path
    labels: dict[str, list[tuple[tuple[float, float, float, float] | None, str]]]  # file -> [(box, plate)]


def load_dataset(root: Path) -> Dataset:
    """Parse DATASET_DIR, or raise ModelError saying exactly what is wrong."""
    if not root.is_dir():
        raise ModelError(f"dataset folder not found: {root}")
    path = root / "labels.csv"
    if not path.is_file():
        raise ModelError(f"no labels.csv in {root}")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except UnicodeDecodeError as e:
        raise ModelError(f"{path}: not a text file ({e.reason})") from e
    if not rows:
        raise ModelError(f"{path} is empty")
    header = [h.strip().lower() for h in rows[0]]
    if header[:6] == ["file", "x1", "y1", "x2", "y2", "plate"]:
        kind = "stills"
    elif header[:2] == ["file", "plate"]:
        kind = "crops"
    else:
        raise ModelError(f"{path}: header must start with file,x1,y1,x2,y2,plate or file,plate; got {','.join(rows[0])}")
    labels: dict[str, list] = defaultdict(list)
    for n, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        need = 6 if kind == "stills" else 2
        if len(row) < need:
            raise ModelError(f"{path}:{n}: expected {need} columns, got {len(row)}")
        file = row[0].strip()
        if not (root / "images" / file).is_file():
            raise ModelError(f"{path}:{n}: image not found: images/{file}")
        if kind == "stills":
            try:
                box = tuple(float(v) for v in row[1:5])
            except ValueError:
                raise ModelError(f"{path}:{n}: box coordinates must be numbers, got {','.join(row[1:5])}") from None
            if not (box[2] > box[0] and box[3] > box[1]):
                raise ModelError(f"{path}:{n}: box must have x2 > x1 and y2 > y1, got {','.join(row[1:5])}")
            labels[file].append((box, clean(row[5])))
        else:
            labels[file].append((None, clean(row[1])))
    if not labels:
        raise ModelError(f"{path} lists no images")
    return Dataset(kind, root, dict(labels))


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def char_accuracy(pred: str, truth: str) -> float:
    """1 - edit distance / label length, floored at 0."""
    prev = list(range(len(truth) + 1))
    for i, p in enumerate(pred, 1):
        cur = [i]
        for j, t in enumerate(truth, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (p != t)))
        prev = cur
    return max(0.0, 1 - prev[-1] / max(1, len(truth)))


@dataclass
class Score:
    plates: int = 0
    detected: int = 0
    read: int = 0
    chars: float = 0.0
    unmatched: int = 0
    overlapped: int = 0  # plates some box overlaps, but none by more than IOU_MATCH

    def add_still(self, truth: list[tuple[tuple, str]], preds: list[tuple[tuple, str | None]]) -> None:
        """truth: [(box, plate)]; preds: [(box, text or None for a failed read)]."""
        matched = [False] * len(preds)
        for box, plate in truth:
            self.plates += 1
            overlaps = [iou(box, p[0]) for p in preds]
            top = max(overlaps, default=0.0)
            if top <= IOU_MATCH:
                self.overlapped += top > 0
                continue
            self.detected += 1
            best = max(range(len(preds)), key=overlaps.__getitem__)
            text = preds[best][1] or ""
            self.read += text == plate
            self.chars += char_accuracy(text, plate)
        for k, p in enumerate(preds):
            matched[k] = any(iou(box, p[0]) > IOU_MATCH for box, _ in truth)
        self.unmatched += matched.count(False)

    def add_crop(self, plate: str, text: str | None) -> None:
        self.plates += 1
        self.read += (text or "") == plate
        self.chars += char_accuracy(text or "", plate)


def evaluate(root: Path, predictions: Path | None, min_confidence: float, device: str,
             detection_confidence: float = MIN_CONFIDENCE, detector_weights: Path | str = "auto",
             ocr_weights: Path | None = None, zoom_out: bool = True, second_reader: bool = True) -> dict:
    """`ocr_weights` None: the shipped recognizer; `zoom_out`: the detector's pass for close-ups;
    `second_reader`: PP-OCRv4 reads every crop too."""
    from models.reader import PlateReader, load_image

    ds = load_dataset(root)
    ocr = {"ocr_weights": ocr_weights} if ocr_weights else {}
    reader = PlateReader(detector_weights, **ocr, device=device, min_confidence=min_confidence,
                         detection_confidence=detection_confidence, detect=ds.kind == "stills", zoom_out=zoom_out,
                         second_reader=second_reader)
    score = Score()
    try:
        out = predictions.open("w") if predictions else None
    except OSError as e:
        raise ModelError(f"cannot write predictions to {predictions}: {e.strerror}") from e
    elapsed = 0.0
    try:
        for file, truth in ds.labels.items():
            img = load_image(root / "images" / file)
            t0 = time.perf_counter()
            if ds.kind == "stills":
                plates = reader.read(img)
                elapsed += time.perf_counter() - t0
                score.add_still(truth, [(p.box, p.text) for p in plates])
                record = {"file": file, "plates": [{"text": p.text, "confidence": round(p.confidence, 4),
                          "char_confidences": [round(c, 4) for c in p.char_confidences],
                          "box": [round(v, 1) for v in p.box]} for p in plates]}
            else:
                p = reader.read_crops([img])[0]
                elapsed += time.perf_counter() - t0
                for _, plate in truth:
                    score.add_crop(plate, p.text)
                record = {"file": file, "text": p.text, "confidence": round(p.confidence, 4)}
            if out:
                out.write(json.dumps(record) + "\n")
    finally:
        if out:
            out.close()
    n = len(ds.labels)
    return {
        "dataset": str(root), "layout": ds.kind, "images": n, "plates": score.plates,
        "detection_rate": round(score.detected / score.plates, 4) if ds.kind == "stills" else None,
        "exact_read_rate": round(score.read / score.plates, 4),
        "char_accuracy": round(score.chars / score.plates, 4),
        "unmatched_boxes": score.unmatched if ds.kind == "stills" else None,
        "overlapped_below_match": score.overlapped if ds.kind == "stills" else None,
        "ms_per_image": round(1000 * elapsed / n, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--predictions", type=Path, help="write predictions as JSON lines here")
    ap.add_argument("--min-confidence", type=float, default=0.5)
    ap.add_argument("--detection-confidence", type=float, default=MIN_CONFIDENCE)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--detector-weights", default="auto", help="a .pt/.onnx file to score instead of the shipped one")
    ap.add_argument("--ocr-weights", type=Path, help="an OCR .pth to score instead of the shipped one")
    ap.add_argument("--no-zoom-out", dest="zoom_out", action="store_false",
                    help="without the detector's zoom-out pass (for close-ups; models/detector.py)")
    ap.add_argument("--no-second-reader", dest="second_reader", action="store_false",
                    help="our network alone, without PP-OCRv4 (models/recognizer.py)")
    args = ap.parse_args()
    try:
        r = evaluate(args.dataset, args.predictions, args.min_confidence, args.device, args.detection_confidence,
                     args.detector_weights, args.ocr_weights, args.zoom_out, args.second_reader)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if r["layout"] == "stills":
        print(f"detected:        {r['detection_rate']:.1%} of {r['plates']} plates")
    print(f"read exactly:    {r['exact_read_rate']:.1%}")
    print(f"char accuracy:   {r['char_accuracy']:.1%}")
    if r["layout"] == "stills":
        print(f"unmatched boxes: {r['unmatched_boxes']}")
        print(f"missed plates overlapped at IoU <= {IOU_MATCH}: {r['overlapped_below_match']}")
    print(f"ms per image:    {r['ms_per_image']}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
