"""The YOLO plate detector: our own trained weights (PyTorch, ONNX or TensorRT), CPU or CUDA.

Weights `auto` (the default) picks the fastest runtime for the device: on CPU the shipped
ONNX export (ONNX Runtime, about 1.6x PyTorch's speed there); on CUDA a TensorRT fp16
engine where TensorRT is installed (exported from the shipped weights on first use and
cached beside them, since an engine is built for one GPU), else PyTorch in fp16.

Ultralytics is configured to run offline before it is imported: no settings sync, no
font download, config kept inside the project (`.cache/ultralytics`).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.defaults import IMGSZ, MIN_CONFIDENCE, ROOT, resolve_device
from models.errors import ModelError
from models.images import letterbox

DETECTOR_DIR = Path(__file__).parent / "detector"
DEFAULT_WEIGHTS = DETECTOR_DIR / "plate_yolov8n.pt"
ONNX_WEIGHTS = DEFAULT_WEIGHTS.with_suffix(".onnx")  # dynamic input size: one file serves both passes
# The zoom-out pass. The detector learnt plates up to about half its input's width and boxes a
# larger one (a gate camera's close-up) only in part. A second pass sees the frame shrunk to
# ZOOM_FILL of a ZOOM_IMGSZ square (112 px), grey around it, where such a plate is of a familiar
# size; its boxes wider than ZOOM_MIN_WIDTH of the frame's longer side replace what the first
# pass found under them (`_zoom_plate` says which it keeps). Sizes chosen on generated close-ups
# (real validation frames cut so that a plate is 60-600 px wide in 640x480): plates boxed at
# IoU > 0.5 73.5 % -> 89.4 %, those over 400 px 16 -> 52 of 54; the real validation frames'
# figures are unchanged. 6-11 ms more per detected frame on CPU.
ZOOM_IMGSZ = 160
ZOOM_FILL = 0.7
ZOOM_MIN_WIDTH = 1 / 3
# On CPU, in video, the pass is skipped where the first pass found something (at any confidence down to
# ZOOM_HINT_CONFIDENCE) and all of it is narrower than ZOOM_SKIP_BELOW of the frame's longer
# side: on those close-ups it boxes a plate wider than ZOOM_MIN_WIDTH at least 0.4 of its
# width, or finds nothing at all. Run on every frame, the pass's 5 ms had cost a 720p 30 fps
# camera (the UK video, replayed at its pace) 60 ms of latency; skipped so, none.
ZOOM_SKIP_BELOW = 1 / 8
ZOOM_HINT_CONFIDENCE = 0.1
# Stills larger than the network's input lose small plates to the shrink: a 60 px plate in a
# 1920x1080 frame is 16 px at 512. A still whose longer side is over TILE_SCALE x imgsz is
# also read in overlapping square tiles of that size (a 60 px plate is then 40 px), and a tile's
# box touching one of its inner edges (a plate cut there) is dropped: TILE_OVERLAP of a tile is
# shared with its neighbour, so any plate up to that wide lies whole in some tile, and a wider
# one is found by the whole-frame pass. A 1920x1080 still takes 6 tiles.
TILE_SCALE = 1.5
TILE_OVERLAP = 0.25
# Boxes that share more than this share of the smaller one's area are one plate seen twice
# (two passes, two tiles, or two overlapping readings of one line of lettering): the most
# confident is kept.
SAME_PLATE = 0.5
MAX_BATCH = 32  # frames per network call (a TensorRT engine is built for at most this many)


def offline_ultralytics() -> None:
    """Point ultralytics at a project-local config dir and keep it off the network."""
    cfg = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics")))
    os.environ["YOLO_OFFLINE"] = "1"
    fonts = cfg / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):  # plotting wants these; it would download them
        if not (fonts / name).exists():
            shutil.copy(Path(__file__).parent / "synth" / "fonts" / "DejaVuSansCondensed-Bold.ttf", fonts / name)
    from ultralytics import settings
    from ultralytics.utils import LOGGER

    if settings.get("sync", True):
        settings.update({"sync": False})
    # Its log lines ("Loading ... for ONNX Runtime inference") go to stdout, where our CLIs
    # print events and JSON: send them to stderr with the other logs.
    for handler in LOGGER.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


log = logging.getLogger(__name__)


def _tensorrt_engine(imgsz: int, device: str) -> Path | None:
    """The shipped weights as a TensorRT fp16 engine for this GPU: exported on first use (a few
    minutes), then reused; None where TensorRT is missing or the export fails."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    engine = DEFAULT_WEIGHTS.with_name(f"{DEFAULT_WEIGHTS.stem}-{imgsz}.engine")
    if not engine.is_file():
        from ultralytics import YOLO

        log.info("exporting the detector to TensorRT for %s (once; cached at %s)", device, engine)
        try:
            out = YOLO(str(DEFAULT_WEIGHTS)).export(format="engine", imgsz=imgsz, quantize=16, dynamic=True,
                                                    batch=MAX_BATCH, device=device, verbose=False)
            os.replace(out, engine)
        except Exception as e:  # any failure of an optional speed-up falls back to PyTorch
            log.warning("TensorRT export failed, using PyTorch fp16: %s", (str(e).splitlines() or [""])[0])
            return None
    return engine


def resolve_weights(weights: Path | str, device: str, imgsz: int = IMGSZ, half: bool = True) -> Path:
    """The weights file to load: `weights` itself, or for `auto` the fastest shipped runtime
    on `device` (module docstring; the engine is fp16, so not when `half` is off)."""
    if str(weights) != "auto":
        return Path(weights)
    if device.startswith("cuda"):
        return (_tensorrt_engine(imgsz, device) if half else None) or DEFAULT_WEIGHTS
    return ONNX_WEIGHTS if ONNX_WEIGHTS.is_file() else DEFAULT_WEIGHTS


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the input image
    confidence: float


class PlateDetector:
    """`weights`: a .pt, .onnx or .engine file, or `auto` (module docstring); `device`: auto |
    cpu | cuda[:N]; `half` (fp16) applies on CUDA only; `zoom_out`: the second pass for large
    plates (a fixed-size export runs it at its own size, the frame as small as elsewhere)."""

    def __init__(self, weights: Path | str = "auto", device: str = "auto", half: bool = True,
                 imgsz: int = IMGSZ, zoom_out: bool = True):
        offline_ultralytics()
        import torch
        from ultralytics import YOLO
        from ultralytics.utils import LOGGER

        # Inference only: its INFO lines ("Loading ... for ONNX Runtime inference") would mix
        # with our CLIs' one-line errors on stderr; warnings and errors still show.
        LOGGER.setLevel(logging.WARNING)

        self.device = resolve_device(device)
        self.weights = weights = resolve_weights(weights, self.device, imgsz, half)
        if not weights.is_file():
            raise ModelError(f"detector weights not found: {weights}")
        self.half = half and self.device.startswith("cuda")
        # ultralytics 8.4 logs a deprecation warning for `half` (to stdout, which would corrupt
        # the CLIs' JSON output); `quantize` is its replacement: 16 = fp16, None = fp32.
        self.quantize = 16 if self.half else None
        self.imgsz = imgsz
        self.zoom_out = zoom_out
        # On CUDA the frames are resized and padded on the GPU (ultralytics would do it on the CPU).
        self.gpu_letterbox = self.device.startswith("cuda")
        threads = torch.get_num_threads()
        try:
            self.model = YOLO(str(weights), task="detect")
            self.model.predict(np.zeros((imgsz, imgsz, 3), np.uint8), device=self.device, quantize=self.quantize,
                               imgsz=imgsz, verbose=False)  # load now, so a bad file fails here
        except Exception as e:
            raise ModelError(f"detector weights unreadable: {weights}: {type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0]}") from e
        finally:
            # ultralytics' device selection leaves torch one core fewer than the machine has
            # (room for its training data loaders), process-wide: on 2 cores it halved the OCR.
            torch.set_num_threads(threads)
        # A fixed-size export runs every pass at its own size (ultralytics resizes to it anyway).
        backend = self.model.predictor.model
        self.zoom_imgsz = max(backend.imgsz) if hasattr(backend, "imgsz") and not backend.dynamic else ZOOM_IMGSZ

    def detect(self, images: list[np.ndarray], conf: float = MIN_CONFIDENCE, stills: bool = False,
               weak: float | None = None, tiled: list[bool] | None = None) -> list[list[Detection]]:
        """BGR images -> plate detections per image, one box per plate. `stills`: the zoom-out
        pass on every image and tiles on large ones (no next frame makes up for a miss); else
        the zoom-out pass is skipped on CPU as ZOOM_SKIP_BELOW says. `tiled`: per image, whether
        large ones are also read in tiles (default: `stills`).
        `weak`: also the first pass's boxes down to this confidence, for a caller that confirms
        them by other means (the still reader, by what they read); they decide nothing here."""
        low = conf if weak is None else min(conf, weak)
        out: list[list[Detection]] = []
        step = MAX_BATCH // 2 if self.zoom_out and self.gpu_letterbox else MAX_BATCH
        for i in range(0, len(images), step):
            chunk = images[i:i + step]
            if not self.zoom_out:
                out += self._predict(chunk, self.imgsz, [1.0] * len(chunk), low)
                continue
            found, zoomed = (self._one_call(chunk, conf, low) if self.gpu_letterbox
                             else self._two_calls(chunk, conf, low, stills))
            for img, dets, zdets in zip(chunk, found, zoomed):
                strong = [d for d in dets if d.confidence >= conf]
                large = [z for z in zdets if _zoom_plate(z, strong, img.shape[1], img.shape[0])]
                out.append([d for d in dets if not any(_mostly_inside(d.box, z.box) for z in large)] + large)
        for k, tile in enumerate([stills] * len(images) if tiled is None else tiled):
            if tile:
                out[k] = out[k] + self._tiled(images[k], low)
        return [_one_per_plate(dets) for dets in out]

    def _tiled(self, img: np.ndarray, conf: float) -> list[Detection]:
        """The boxes found in TILE_SCALE tiles of a large still, less those cut by a tile's inner edge."""
        h, w = img.shape[:2]
        size = round(TILE_SCALE * self.imgsz)
        if max(h, w) <= size:
            return []
        tiles = [(x, y) for y in _starts(h, size) for x in _starts(w, size)]
        found = []
        for k in range(0, len(tiles), MAX_BATCH):
            chunk = tiles[k:k + MAX_BATCH]
            dets = self._predict([img[y:y + size, x:x + size] for x, y in chunk], self.imgsz, [1.0] * len(chunk), conf)
            for (x, y), ds in zip(chunk, dets):
                th, tw = min(size, h - y), min(size, w - x)
                found += [Detection((b[0] + x, b[1] + y, b[2] + x, b[3] + y), d.confidence) for d in ds
                          for b in [d.box] if not ((x > 0 and b[0] <= 1) or (y > 0 and b[1] <= 1)
                                                   or (x + tw < w and b[2] >= tw - 1) or (y + th < h and b[3] >= th - 1))]
        return found

    def _one_call(self, chunk: list[np.ndarray], conf: float, low: float) -> tuple[list, list]:
        """Both passes' detections (the first pass's down to `low`), in one network call: on a
        GPU a call costs more than its pixels, so the zoom-out images come at the first pass's
        size, the frame as small."""
        n = len(chunk)
        both = self._predict(chunk * 2, self.imgsz, [1.0] * n + [_zoom_share(self.imgsz)] * n, low)
        return both[:n], [[z for z in zdets if z.confidence >= conf] for zdets in both[n:]]

    def _two_calls(self, chunk: list[np.ndarray], conf: float, low: float, stills: bool) -> tuple[list, list]:
        """Both passes' detections (the first pass's down to `low`), the zoom-out pass skipped
        as ZOOM_SKIP_BELOW says (but for `stills`)."""
        hints = self._predict(chunk, self.imgsz, [1.0] * len(chunk), min(low, ZOOM_HINT_CONFIDENCE))
        todo = [k for k, (img, dets) in enumerate(zip(chunk, hints)) if stills or not dets
                or max(d.box[2] - d.box[0] for d in dets) >= ZOOM_SKIP_BELOW * max(img.shape[:2])]
        zoomed = [[] for _ in chunk]
        if todo:
            share = _zoom_share(self.zoom_imgsz)
            zoom = self._predict([chunk[k] for k in todo], self.zoom_imgsz, [share] * len(todo), conf)
            for k, dets in zip(todo, zoom):
                zoomed[k] = dets
        return [[d for d in dets if d.confidence >= low] for dets in hints], zoomed

    def _predict(self, images: list[np.ndarray], size: int, fills: list[float], conf: float) -> list[list[Detection]]:
        """The network at input `size` on the images, each shrunk to its `fills` share of it
        (1: as large as fits); boxes in the images' own pixels."""
        if self.gpu_letterbox:
            batch, places = self._letterboxed(images, size, fills)
        elif fills[0] == 1.0:  # ultralytics fits the image to `size` itself
            batch, places = images, [(1.0, 0, 0, img.shape[1], img.shape[0]) for img in images]
        else:
            batch, places = map(list, zip(*(_shrunk(img, size, fill) for img, fill in zip(images, fills))))
        # rect=False: square inputs as the fixed-size export had them (its validated figures; a
        # 16:9 frame padded to the minimum gave 4 fewer of 131 real validation plates).
        results = self.model.predict(batch, device=self.device, quantize=self.quantize, imgsz=size,
                                     conf=conf, rect=False, verbose=False)
        return [[Detection((min(max((b[0] - left) / scale, 0.0), w), min(max((b[1] - top) / scale, 0.0), h),
                            min(max((b[2] - left) / scale, 0.0), w), min(max((b[3] - top) / scale, 0.0), h)),
                           float(b[4])) for b in r.boxes.data.tolist()]
                for r, (scale, left, top, w, h) in zip(results, places)]

    def _letterboxed(self, images: list[np.ndarray], size: int, fills: list[float]):
        """The batch as the network takes it (RGB, 0-1, `size` square, each image shrunk to its
        `fills` share of it and padded with grey 114 as ultralytics pads), made on the device,
        with each image's (scale, left, top, w, h) to map boxes back."""
        import torch
        import torch.nn.functional as F

        batch = torch.full((len(images), 3, size, size), 114 / 255, device=self.device)
        places = []
        for i, (img, fill) in enumerate(zip(images, fills)):
            h, w = img.shape[:2]
            scale = min(size / h, size / w) * fill
            nh, nw = round(h * scale), round(w * scale)
            top, left = round((size - nh) / 2 - 0.1), round((size - nw) / 2 - 0.1)
            rgb = torch.from_numpy(np.ascontiguousarray(img)).to(self.device).permute(2, 0, 1).flip(0)
            # antialias where shrunk (the zoom-out pass), as `_shrunk`'s INTER_AREA; ultralytics' own
            # letterbox resizes bilinearly without it. Clamped: its float error can pass 1.0, and
            # ultralytics takes a batch with any value over 1 for 0-255 and divides it all by 255.
            batch[i, :, top:top + nh, left:left + nw] = F.interpolate(
                rgb[None].float() / 255, (nh, nw), mode="bilinear", align_corners=False,
                antialias=fill < 1)[0].clamp_(0, 1)
            places.append((scale, left, top, w, h))
        return batch, places


def _zoom_share(size: int) -> float:
    """The share of a `size` input the frame fills in the zoom-out pass: the same pixels at any size."""
    return ZOOM_IMGSZ * ZOOM_FILL / size


def _shrunk(img: np.ndarray, size: int, fill: float) -> tuple[np.ndarray, tuple]:
    """`_letterboxed` on the CPU for one image: the `size` square and its place."""
    canvas, scale, left, top = letterbox(img, size, size, fill, 114)
    return canvas, (scale, left, top, img.shape[1], img.shape[0])


def _zoom_plate(z: Detection, found: list[Detection], w: int, h: int) -> bool:
    """Whether a zoom-out pass box is a large plate: wider than ZOOM_MIN_WIDTH of the frame's
    longer side; not reaching both side edges (the frame's own outline against the grey
    around it, at that scale; a plate cut at both sides cannot be read anyway); and no
    first-pass box under it that is less than a third of its width is as confident as it is:
    that box is then a plate and the zoom-out box the vehicle around it, where a less
    confident one is a line of the large plate's text (a large plate's partial first-pass
    boxes are 0.4 of its width or more)."""
    width = z.box[2] - z.box[0]
    return (width > ZOOM_MIN_WIDTH * max(w, h) and not (z.box[0] <= 1 and z.box[2] >= w - 1)
            and not any(d.box[2] - d.box[0] < width / 3 and d.confidence >= z.confidence
                        for d in found if _mostly_inside(d.box, z.box)))


def _starts(length: int, size: int) -> list[int]:
    """Tile origins along one side: tiles of `size` overlapping by at least TILE_OVERLAP, the last
    one flush with the end."""
    if length <= size:
        return [0]
    n = int(np.ceil((length - size) / (size * (1 - TILE_OVERLAP)))) + 1
    return [round(i * (length - size) / (n - 1)) for i in range(n)]


def _one_per_plate(dets: list[Detection]) -> list[Detection]:
    """The most confident of each group of boxes that SAME_PLATE says are one plate."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.confidence):
        if not any(_shared(d.box, k.box) > SAME_PLATE for k in kept):
            kept.append(d)
    return kept


def _shared(a, b) -> float:
    """The share of the smaller box's area that lies in the other."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / max(1e-9, min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])))


def _mostly_inside(box, outer) -> bool:
    """More than half of `box`'s area lies in `outer`."""
    ix = min(box[2], outer[2]) - max(box[0], outer[0])
    iy = min(box[3], outer[3]) - max(box[1], outer[1])
    return ix > 0 and iy > 0 and ix * iy > 0.5 * (box[2] - box[0]) * (box[3] - box[1])
