"""Which files are images: judged by their content (whether an OpenCV decoder knows it), not by
their names. The one rule for the still-image reader and the stream's image sources, in a
module of its own so that the stream's capture need not import the models."""
from __future__ import annotations

from pathlib import Path

import cv2


def is_image(path: Path) -> bool:
    return path.is_file() and cv2.haveImageReader(str(path))


def folder_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """The folder's image files in name order, and its other files."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if cv2.haveImageReader(str(p))]
    return images, sorted(set(files) - set(images))
