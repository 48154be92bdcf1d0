"""Images as files and as frames, for the models and the stream alike (in a module of its own
so that the stream's capture need not import the models):

- which files are images, judged by their content (whether an OpenCV decoder knows it), not
  by their names: the one rule for the still-image reader and the stream's image sources;
- `letterbox`: an image fitted into a frame of another size (the detector's zoom-out pass,
  the saved annotated video);
- `size_problem`: what is wrong with an image's size, if anything.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


# The longest image side read: an 8K frame (7680 px) is read, a larger one is refused rather
# than tiled into hundreds of network calls (a 16k x 16k still would take 22 x 22 tiles).
MAX_SIDE = 8192


def size_problem(img: np.ndarray) -> str | None:
    """Why an image array cannot be read for its size (empty, or over MAX_SIDE), else None."""
    h, w = img.shape[:2] if img.ndim >= 2 else (0, 0)
    if h == 0 or w == 0:
        return f"empty image: {w}x{h} px"
    if max(h, w) > MAX_SIDE:
        return f"image too large: {w}x{h} px (at most {MAX_SIDE} px a side)"
    return None


def is_image(path: Path) -> bool:
    return path.is_file() and cv2.haveImageReader(str(path))


def folder_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """The folder's image files in name order, and its other files."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if cv2.haveImageReader(str(p))]
    return images, sorted(set(files) - set(images))


def letterbox(img: np.ndarray, w: int, h: int, share: float = 1.0, pad: int = 0) -> tuple[np.ndarray, float, int, int]:
    """`img` scaled to `share` of the largest size that fits a w x h frame of grey `pad`, centred
    in it; with its scale and its left and top offsets, to map positions back."""
    s = min(w / img.shape[1], h / img.shape[0]) * share
    fw, fh = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
    left, top = (w - fw) // 2, (h - fh) // 2
    out = np.full((h, w, 3), pad, np.uint8)
    out[top:top + fh, left:left + fw] = cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA)
    return out, s, left, top
