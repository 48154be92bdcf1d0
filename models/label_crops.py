"""Auto-label real plate crops with an offline teacher, for OCR training.

    python -m models.label_crops [--real ../shared/data/detect-romanian] [--out data/ocr_real]

Cuts every labelled plate box out of the real frames of `--real` (YOLO layout, boxes only;
MIT-licensed, so usable for training), reads each crop with the PP-OCR recognizer that the
`rapidocr-onnxruntime` wheel ships (installed by `setup.sh`; nothing is downloaded) and keeps
the reads that are confident and fit one of our plate formats (`models/formats.py`): about
nine in ten of those are right, which a small share of real crops in training tolerates.
Writes two datasets in the crops layout of `models.evaluate` (`images/`, `labels.csv`):
`OUT/train` and `OUT/val`, split by plate text (the frames come from a few drives, so the
same car is in many frames: a split by frame would validate on training plates).

A crop named in `models/ocr/detect_romanian_labels.csv` (`file,plate`, the crop's name as
written here) takes the plate a person read there instead of the teacher's: crops the
teacher was unsure of (most of the night frames' pink infrared plates) and the teacher's
misreads (it drops the I of Ilfov's IF beside the blue band, reading IF82EVA as F82EVA).
"""
from __future__ import annotations

import argparse
import csv
import sys
import zlib
from collections import Counter
from pathlib import Path

import cv2

from models.detector import ROOT
from models.errors import ModelError
from models.formats import clean, match_family
from models.reader import crop
from models.train_detector import read_yolo_labels

TEACHER_MIN_SCORE = 0.9
VAL_SHARE = 0.2  # of distinct plate texts
HAND_LABELS = Path(__file__).parent / "ocr" / "detect_romanian_labels.csv"


def label(real: Path, out: Path) -> dict[str, int]:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise ModelError("the teacher needs rapidocr-onnxruntime: pip install --no-deps -r requirements-peer.txt") from None
    frames = sorted(real.glob("*/images/*.jpg"))
    if not frames:
        raise ModelError(f"no frames in {real}/*/images/")
    teacher = RapidOCR()
    with HAND_LABELS.open(newline="") as f:
        hand = {row["file"]: row["plate"] for row in csv.DictReader(f)}
    reads: list[tuple[str, str, object]] = []  # (name, text, crop)
    n_crops = 0
    for path in frames:
        img = cv2.imread(str(path))
        labels = path.parent.parent / "labels" / (path.stem + ".txt")
        for k, box in enumerate(read_yolo_labels(labels, img.shape[1], img.shape[0])):
            c = crop(img, box)
            n_crops += 1
            name = f"{path.parent.parent.name}_{path.stem}_{k}.png"
            if name in hand:
                reads.append((name, hand[name], c))
                continue
            result, _ = teacher(c, use_det=False, use_cls=False, use_rec=True)
            if result:
                text, score = clean(result[0][0]), float(result[0][1])
                if score >= TEACHER_MIN_SCORE and match_family(text) is not None:
                    reads.append((name, text, c))
    # The same car is read in many frames: a teacher's text one edit away from a more frequent
    # one is that plate misread (B310YLV beside B310VLV), not another car.
    freq = Counter(text for _, text, _ in reads)
    doubtful = {t for t in freq for u in freq if freq[u] > freq[t] and _one_edit(t, u)} - set(hand.values())
    counts = {"crops": n_crops, "train": 0, "val": 0}
    for split in ("train", "val"):
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        with (out / split / "labels.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "plate"])
            for name, text, c in reads:
                in_val = zlib.crc32(text.encode()) % 100 < VAL_SHARE * 100
                if text not in doubtful and in_val == (split == "val"):
                    cv2.imwrite(str(out / split / "images" / name), c)
                    w.writerow([name, text])
                    counts[split] += 1
    return counts


def _one_edit(a: str, b: str) -> bool:
    """a and b differ by one substitution, insertion or deletion."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "detect-romanian")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "ocr_real")
    args = ap.parse_args()
    try:
        counts = label(args.real, args.out)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{counts['crops']} crops, {counts['train']} labelled for training, {counts['val']} for validation, "
          f"in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
