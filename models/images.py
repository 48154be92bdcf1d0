"""Images as files and as frames, for the models and the stream alike (in a module of its own
so that the stream's capture need not import the models):

- which files are images, judged by their content (whether an OpenCV decoder knows it), not
  by their names: the one rule for the still-image reader and the stream's image sources;
- `letterbox`: an image fitted into a frame of another size (the detector's zoom-out pass,
  the saved annotated video);
- `size_problem`: what is wrong with an image's size, if anything;
- `VideoWriter`: frames into an H.264 MP4 that browsers play (OpenCV's writer makes MPEG-4
  Part 2, which they refuse).
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


class VideoWriter:
    """BGR frames of one size into an H.264 MP4 (PyAV's FFmpeg with libx264; yuv420p, the
    index at the front so a browser starts playing before the end). OSError naming the file
    when it cannot be written."""

    def __init__(self, path: Path | str, fps: float, size: tuple[int, int]):
        import av
        from fractions import Fraction

        if not Path(path).parent.is_dir():  # FFmpeg would find out at the first frame
            raise OSError(f"cannot write video {path}: no folder {Path(path).parent}")
        try:
            mp4 = Path(path).suffix.lower() in (".mp4", ".mov", ".m4v")
            self._out = av.open(str(path), "w", options={"movflags": "+faststart"} if mp4 else {})
        except (OSError, av.FFmpegError, ValueError) as e:
            raise OSError(f"cannot write video {path}: {e}") from None
        self._stream = self._out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        # yuv420p halves the chroma: odd sizes are padded by a pixel
        self.size = size
        self._stream.width, self._stream.height = size[0] + size[0] % 2, size[1] + size[1] % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "23", "preset": "veryfast"}

    def write(self, frame: np.ndarray) -> None:
        import av

        w, h = self._stream.width, self._stream.height
        if frame.shape[1] != w or frame.shape[0] != h:
            frame = cv2.copyMakeBorder(frame, 0, h - frame.shape[0], 0, w - frame.shape[1], cv2.BORDER_REPLICATE)
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
            self._out.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()
