"""Score the shipped models on a labelled dataset.

    python -m models.evaluate DATASET_DIR [--predictions OUT.jsonl] [--min-confidence 0.5] [--device auto]
                              [--no-zoom-out]

DATASET_DIR holds `images/` and `labels.csv` in one of two layouts:
  stills: file,x1,y1,x2,y2,plate[,region]   (one row per plate, pixel corners)
  crops:  file,plate[,region]               (each image is one plate)
An optional `region` column names who issued each plate: a US state's ISO 3166-2 suffix
(`ca`, `ny`) or a country's ISO 3166-1 code (`nl`, `br`); then the issuer is scored too:
accuracy where one is given, coverage (plates given one), macro precision, recall and F1 over
the labelled issuers, and the most confused pairs. A plate's predicted issuer is its state
for the US (none where only the country is known), else its country.
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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from models.detector import MIN_CONFIDENCE
from models.errors import ModelError
from models.formats import clean

IOU_MATCH = 0.4


@dataclass
class Dataset:
    kind: str  # "stills" | "crops"
    root: Path
    # file -> [(box, plate, issuer label or None)]
    labels: dict[str, list[tuple[tuple[float, float, float, float] | None, str, str | None]]]


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
    at = header.index("region") if "region" in header else None
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
            labels[file].append((box, clean(row[5]), _issuer_label(row, at)))
        else:
            labels[file].append((None, clean(row[1]), _issuer_label(row, at)))
    if not labels:
        raise ModelError(f"{path} lists no images")
    return Dataset(kind, root, dict(labels))


def _issuer_label(row: list[str], at: int | None) -> str | None:
    value = row[at].strip().lower() if at is not None and at < len(row) else ""
    return value or None


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

    issuers: list[tuple[str, str | None]] = field(default_factory=list)  # (label, predicted) per labelled plate

    def add_still(self, truth: list[tuple], preds: list[tuple]) -> None:
        """truth: [(box, plate[, issuer label])]; preds: [(box, text or None for a failed read[, issuer])]."""
        truth = [(*t, None)[:3] for t in truth]
        preds = [(*p, None)[:3] for p in preds]
        matched = [False] * len(preds)
        for box, plate, label in truth:
            self.plates += 1
            overlaps = [iou(box, p[0]) for p in preds]
            top = max(overlaps, default=0.0)
            if top <= IOU_MATCH:
                self.overlapped += top > 0
                if label:
                    self.issuers.append((label, None))
                continue
            self.detected += 1
            best = max(range(len(preds)), key=overlaps.__getitem__)
            text = preds[best][1] or ""
            self.read += text == plate
            self.chars += char_accuracy(text, plate)
            if label:
                self.issuers.append((label, preds[best][2]))
        for k, p in enumerate(preds):
            matched[k] = any(iou(t[0], p[0]) > IOU_MATCH for t in truth)
        self.unmatched += matched.count(False)

    def add_crop(self, plate: str, text: str | None, label: str | None = None, issuer: str | None = None) -> None:
        self.plates += 1
        self.read += (text or "") == plate
        self.chars += char_accuracy(text or "", plate)
        if label:
            self.issuers.append((label, issuer))


def issuer_figures(pairs: list[tuple[str, str | None]]) -> dict:
    """Accuracy where an issuer is given, coverage, macro P/R/F1 over the labels, top confusions."""
    given = [(t, p) for t, p in pairs if p is not None]
    labels = sorted({t for t, _ in pairs})
    precision, recall = [], []
    for c in labels:
        predicted = [t for t, p in given if p == c]
        precision.append(sum(t == c for t in predicted) / len(predicted) if predicted else 0.0)
        recall.append(sum(p == c for t, p in pairs if t == c) / sum(t == c for t, _ in pairs))
    mp, mr = sum(precision) / len(labels), sum(recall) / len(labels)
    f1 = [2 * a * b / (a + b) if a + b else 0.0 for a, b in zip(precision, recall)]
    confused = Counter((t, p) for t, p in given if t != p).most_common(5)
    return {"issuer_accuracy": round(sum(t == p for t, p in given) / len(given), 4) if given else None,
            "issuer_coverage": round(len(given) / len(pairs), 4), "issuer_macro_precision": round(mp, 4),
            "issuer_macro_recall": round(mr, 4), "issuer_macro_f1": round(sum(f1) / len(f1), 4),
            "issuer_confused": [f"{t}->{p} x{n}" for (t, p), n in confused]}


def predicted_issuer(issuer) -> str | None:
    """The label a reading's issuer is scored as: for the US its state (none where only the
    country is known), else its country."""
    return issuer.subdivision if issuer.country == "us" else issuer.country


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
                score.add_still(truth, [(p.box, p.text, predicted_issuer(p.issuer)) for p in plates])
                record = {"file": file, "plates": [{"text": p.text, "confidence": round(p.confidence, 4),
                          "char_confidences": [round(c, 4) for c in p.char_confidences],
                          "box": [round(v, 1) for v in p.box]} for p in plates]}
            else:
                p = reader.read_crops([img])[0]
                elapsed += time.perf_counter() - t0
                for _, plate, label in truth:
                    score.add_crop(plate, p.text, label, predicted_issuer(p.issuer))
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
        **(issuer_figures(score.issuers) if score.issuers else {}),
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
    if "issuer_coverage" in r:
        accuracy = "-" if r["issuer_accuracy"] is None else f"{r['issuer_accuracy']:.1%}"
        print(f"issuer:          {accuracy} right where given, coverage {r['issuer_coverage']:.1%}, macro P/R/F1 "
              f"{r['issuer_macro_precision']:.2f}/{r['issuer_macro_recall']:.2f}/{r['issuer_macro_f1']:.2f}")
        print(f"issuer confused: {', '.join(r['issuer_confused']) or 'none'}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
