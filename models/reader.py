"""Read every plate in still images: detector boxes, then the recognizer on padded crops.

    python -m models.reader IMAGE|FOLDER [...] [--json] [--min-confidence 0.5] [--device auto]

Python API: `PlateReader().read(image)` -> list of `PlateReading` (text, confidence,
per-character confidences, box). A reading whose confidence is below `min_confidence` is
a recognition failure: its `text` is None (the best guess stays in `guess`).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from models.detector import IMGSZ, MIN_CONFIDENCE, PlateDetector
from models.errors import ModelError
from models.images import folder_images, size_problem
from models.issuer import Issuer
from models.recognizer import OCR_DIR, NETWORK, PlateRecognizer, TextRead

# The recognizer was trained on boxes a few percent looser than the plate; detector
# boxes are tight, so they are padded by this share of their size on each side.
CROP_MARGIN = 0.06
# Whether a read comes out right can hinge on a few pixels of frame edge or bolt at the box's
# sides, and a detector box is off the plate's edges by a few percent either way. So a still's
# plate is also read at these margins and the most confident read is kept (video has other
# frames of the same plate for that). Chosen on generated close-ups and stills and on the
# real Romanian validation plates, not on eval-ucsd: read exactly 458 -> 471 of their 630
# plates. Crops given without detection are not read at these margins: padding them helped
# generated crops and hurt real ones, trimming them the other way round.
EXTRA_MARGINS = (0.0, 0.12)
# A crop given as the plate may be boxed at the number's characters alone, as some detectors
# and labelled sets box plates; the OCR learnt plate-boxed crops (a US number is about half
# its plate's height). So a one-row crop (at least twice as wide as high; a two-row plate's
# rows fill its height already) is also read inside a border of its own edge colour, this
# share of its height above and below and of its width left and right, and the more
# confident read kept. Generated crops boxed at the number: 49 -> 71 % read exactly, those
# boxed at the plate 87.0 -> 86.8 %, the real Romanian validation crops 54 -> 53 of 65
# (README, after OCR "step 14"; chosen with a rule written first, not on eval-ucsd).
CROP_BORDER = (0.25, 0.05)
# A plate of a kind the detector has seen little of (its training frames are European) can
# get a weak detection. Boxes down to WEAK_DETECTION count when what they read is a plate:
# a confident text (CONFIRMED_READ) of a known format, overlapping no box kept before. Both
# chosen on generated stills and the real Romanian validation frames, not on eval-ucsd.
WEAK_DETECTION = 0.1
CONFIRMED_READ = 0.5
# The other way round: a box the detector is not sure of (under SURE_DETECTION), wide enough
# for the OCR to see characters on a plate (GATED_WIDTH px), whose best read has next to no
# evidence of any text (under READ_EVIDENCE) is a car badge, a light or a sign: dropped.
# Narrower plates often read nothing, so they are not gated. Chosen on generated stills and
# close-ups and the Romanian validation frames with a rule written first (README: the unread-box gate).
SURE_DETECTION = 0.5
READ_EVIDENCE = 0.05
GATED_WIDTH = 40
# No plate format anywhere has more characters than this (US and EU numbers run to 8): a box
# whose best read is longer is lettering (a sign, a truck's side, a shop front), dropped.
MAX_PLATE_CHARS = 8


@dataclass
class PlateReading:
    text: str | None  # None when the reading is below the confidence threshold
    confidence: float
    char_confidences: list[float]
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
    detection_confidence: float
    region: str | None
    guess: str  # the best reading, even when it is not confident enough to report
    issuer: Issuer = field(default_factory=Issuer)  # who issued the plate (models.issuer)

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(d.pop("issuer"))  # country, subdivision and their confidences, beside region
        d["box"] = [round(v, 1) for v in self.box]
        d["confidence"] = round(self.confidence, 4)
        d["char_confidences"] = [round(c, 4) for c in self.char_confidences]
        d["detection_confidence"] = round(self.detection_confidence, 4)
        return d


def load_image(path: str | Path) -> np.ndarray:
    """A BGR image from a file, or ModelError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"image not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ModelError(f"unreadable image (not a supported image file or corrupt): {path}")
    try:
        return to_bgr(img)
    except ModelError as e:
        raise ModelError(f"{e}: {path}") from None


def image_paths(paths: list[Path]) -> list[Path]:
    """The paths given, with each folder replaced by its files that OpenCV can decode (judged by
    their content), in name order; the other files of a folder are named on stderr."""
    out = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        images, others = folder_images(path)
        if not images:
            raise ModelError(f"folder has no images: {path}")
        if others:
            print(f"{path}: skipping {len(others)} files that are not images: {', '.join(p.name for p in others)}",
                  file=sys.stderr)
        out += images
    return out


def to_bgr(img: np.ndarray) -> np.ndarray:
    """Any 8-bit grey, BGR or BGRA array, up to MAX_SIDE px a side, as BGR."""
    if problem := size_problem(img):
        raise ModelError(problem)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise ModelError(f"unsupported image shape {img.shape}: expected HxW, HxWx3 or HxWx4")


def crop(img: np.ndarray, box: tuple[float, float, float, float], margin: float = CROP_MARGIN) -> np.ndarray:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = img.shape[:2]
    # Clamped so that even a degenerate box on (or past) the right/bottom edge gives a pixel.
    X1, Y1 = int(min(max(0, x1 - mx), w - 1)), int(min(max(0, y1 - my), h - 1))
    X2, Y2 = int(min(w, x2 + mx + 1)), int(min(h, y2 + my + 1))
    return img[Y1:max(Y2, Y1 + 1), X1:max(X2, X1 + 1)]


def bordered(img: np.ndarray) -> np.ndarray:
    """`img` inside a CROP_BORDER of the median colour of its outermost pixels."""
    h, w = img.shape[:2]
    edge = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    color = tuple(int(v) for v in np.median(edge, axis=0))
    py, px = round(CROP_BORDER[0] * h), round(CROP_BORDER[1] * w)
    return cv2.copyMakeBorder(img, py, py, px, px, cv2.BORDER_CONSTANT, value=color)


def confirmed(boxes: list, detection_confidences: list[float], reads: list, threshold: float) -> list[int]:
    """Which detections count: those at `threshold` or above, then the weaker ones whose read
    (a TextRead or PlateReading) is a plate, as WEAK_DETECTION says."""
    kept = [i for i, c in enumerate(detection_confidences) if c >= threshold]
    for i in sorted(range(len(boxes)), key=lambda i: -detection_confidences[i]):
        if (detection_confidences[i] < threshold and reads[i].region and reads[i].confidence >= CONFIRMED_READ
                and not any(overlap(boxes[i], boxes[k]) for k in kept)):
            kept.append(i)
    return kept


def confirmed_tries(boxes: list, detection_confidences: list[float], tries: list[list],
                    threshold: float) -> list[tuple[int, int]]:
    """`confirmed` for detections each read at several margins (`tries`, CROP_MARGIN's read
    first): which count, decided on that first read alone (more tries would give a weak box on
    a sign more chances to read as a plate), each with the index of its most confident read;
    less the unsure, unread boxes that SURE_DETECTION says are no plate and the lettering that
    MAX_PLATE_CHARS says is none."""
    keep = confirmed(boxes, detection_confidences, [t[0] for t in tries], threshold)
    best = [(i, max(range(len(tries[i])), key=lambda k: tries[i][k].confidence)) for i in keep]
    return [(i, k) for i, k in best if not (detection_confidences[i] < SURE_DETECTION
                                            and boxes[i][2] - boxes[i][0] >= GATED_WIDTH
                                            and tries[i][k].confidence < READ_EVIDENCE)
            and len(tries[i][k].text) <= MAX_PLATE_CHARS]


def overlap(a, b) -> bool:
    """Whether two boxes share any area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


class PlateReader:
    def __init__(self, detector_weights: Path | str = "auto", ocr_weights: Path | str = OCR_DIR / f"{NETWORK}.pth",
                 device: str = "auto", min_confidence: float = 0.5, detection_confidence: float = MIN_CONFIDENCE,
                 imgsz: int = IMGSZ, detect: bool = True, half: bool = True, zoom_out: bool = True,
                 second_reader: bool = True):
        """`detect=False` loads the recognizer only, for `read_crops`; `half`: fp16 detector on CUDA;
        `zoom_out`: the detector's pass for close-ups (`models.detector`); `second_reader`: PP-OCRv4
        reads every crop too (`models.recognizer.combine`)."""
        for name, value in (("min_confidence", min_confidence), ("detection_confidence", detection_confidence)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ModelError(f"{name} must be a number from 0 to 1, got {value!r}")
        self.detector = PlateDetector(detector_weights, device=device, half=half, imgsz=imgsz,
                                      zoom_out=zoom_out) if detect else None
        self.recognizer = PlateRecognizer(ocr_weights, device=device, second_reader=second_reader)
        self.min_confidence = min_confidence
        self.detection_confidence = detection_confidence

    def reading(self, t: TextRead, box, det_conf: float) -> PlateReading:
        ok = t.confidence >= self.min_confidence and t.text != ""
        return PlateReading(t.text if ok else None, t.confidence, t.char_confidences, tuple(box), det_conf, t.region,
                            t.text)

    def read(self, image: np.ndarray) -> list[PlateReading]:
        return self.read_batch([image])[0]

    def read_batch(self, images: list[np.ndarray]) -> list[list[PlateReading]]:
        images = [to_bgr(im) for im in images]
        dets = self.detector.detect(images, conf=self.detection_confidence, stills=True, weak=WEAK_DETECTION)
        found = [(im, d) for im, ds in zip(images, dets) for d in ds]
        margins = (CROP_MARGIN, *EXTRA_MARGINS)
        reads = self.recognizer.read([crop(im, d.box, m) for im, d in found for m in margins])
        # Per box, its read at each margin, CROP_MARGIN's first.
        by_box = iter([reads[k:k + len(margins)] for k in range(0, len(reads), len(margins))])
        out = []
        for ds in dets:
            tries = [next(by_box) for _ in ds]
            keep = confirmed_tries([d.box for d in ds], [d.confidence for d in ds], tries, self.detection_confidence)
            out.append([self.reading(tries[i][k], ds[i].box, ds[i].confidence) for i, k in keep])
        return self._with_issuers(images, out)

    def _with_issuers(self, images: list[np.ndarray], readings: list[list[PlateReading]]) -> list[list[PlateReading]]:
        """The readings with who issued each plate, read on its crop."""
        found = [(im, r) for im, rs in zip(images, readings) for r in rs]
        issuers = iter(self.recognizer.issuers([crop(im, r.box) for im, r in found], [r.guess for _, r in found]))
        return [[replace(r, issuer=next(issuers)) for r in rs] for rs in readings]

    def read_crops(self, crops: list[np.ndarray]) -> list[PlateReading]:
        """Images that are each one plate already (no detection)."""
        crops = [to_bgr(c) for c in crops]
        one_row = [i for i, c in enumerate(crops) if c.shape[1] >= 2 * c.shape[0]]
        reads = self.recognizer.read(crops + [bordered(crops[i]) for i in one_row])
        best = reads[:len(crops)]
        for i, t in zip(one_row, reads[len(crops):]):
            if t.confidence > best[i].confidence:
                best[i] = t
        one_each = [[self.reading(t, (0, 0, c.shape[1], c.shape[0]), 1.0)] for t, c in zip(best, crops)]
        return [r for (r,) in self._with_issuers(crops, one_each)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", type=Path, help="image files, or folders read in name order")
    ap.add_argument("--json", action="store_true", help="one JSON object per image")
    ap.add_argument("--min-confidence", type=float, default=0.5)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--crops", action="store_true",
                    help="each image is a crop cut at the plate: skip detection (loose crops read better without it)")
    args = ap.parse_args()
    try:
        paths = image_paths(args.images)
        reader = PlateReader(device=args.device, min_confidence=args.min_confidence)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        try:
            img = load_image(path)
        except ModelError as e:  # one bad file does not stop the others
            print(f"error: {e}", file=sys.stderr)
            status = 2
            continue
        plates = reader.read_crops([img]) if args.crops else reader.read(img)
        if args.json:
            print(json.dumps({"file": str(path), "plates": [p.to_json() for p in plates]}))
            continue
        if not plates:
            print(f"{path}: no plate found")
        for p in plates:
            box = ",".join(f"{v:.0f}" for v in p.box)
            if p.text is None:
                print(f"{path}: recognition failed (best guess {p.guess!r}, confidence {p.confidence:.2f}) box={box}")
            else:
                chars = " ".join(f"{c}:{q:.2f}" for c, q in zip(p.text, p.char_confidences))
                issuer = "/".join(filter(None, (p.issuer.country, p.issuer.subdivision))) or "unknown"
                print(f"{path}: {p.text} confidence={p.confidence:.2f} box={box} region={p.region} issuer={issuer} "
                      f"[{chars}]")
    return status


if __name__ == "__main__":
    sys.exit(main())
