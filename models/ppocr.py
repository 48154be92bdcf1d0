"""The second reader: PP-OCRv4's text recognizer, a general-purpose network trained on millions
of real text images, which reads plates of typefaces our own network never saw.

Its ONNX file ships in the `rapidocr-onnxruntime` wheel (Apache-2.0) and is loaded from there
by ONNX Runtime, checked against the md5 sum of that release. Its probabilities over its
6,600 characters are folded onto ours (a letter's two cases as one; every other character,
such as a state's silhouette read as a symbol, as blank) and decoded by our format-aware
decoder (`models.recognizer`), so its reads carry per-character confidences and regions
exactly as ours do.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from models.errors import ModelError

PACKAGE = "rapidocr-onnxruntime==1.4.4"
MODEL = "models/ch_PP-OCRv4_rec_infer.onnx"
MD5 = "8e4817a3f31c8be29d3b25393eb1b579"
INPUT_H = 48  # its training height; width follows the crop's aspect, up to MAX_W
PAD_W = 320  # narrower inputs are padded to this width (blank to the network), as rapidocr does
MAX_W = 640


def model_path() -> Path:
    """The recognizer's ONNX file inside the installed wheel, or ModelError naming what to install."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the second reader needs {PACKAGE} (pip install {PACKAGE})")
    return Path(spec.submodule_search_locations[0]) / MODEL


class PPOCRRecognizer:
    """Batched CTC probabilities of plate crops (BGR) over `charset` (blank first)."""

    def __init__(self, charset: list[str], path: Path | None = None):
        import onnxruntime as ort

        path = path or model_path()
        if not path.is_file():
            raise ModelError(f"second reader's weights not found: {path}")
        if (md5 := hashlib.md5(path.read_bytes()).hexdigest()) != MD5:
            raise ModelError(f"second reader's weights changed: {path} has md5 {md5}, {PACKAGE} ships {MD5}")
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as our own reader's
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        chars = self.session.get_modelmeta().custom_metadata_map["character"].splitlines()
        # Column 0 of its output is blank, then its characters, then a space.
        fold = np.zeros((len(chars) + 2, len(charset) + 1), np.float32)
        for i, c in enumerate(["", *chars, " "]):
            fold[i, charset.index(c.upper()) + 1 if i and len(c) == 1 and c.upper() in charset else 0] = 1
        self.fold = fold
        self.charset = charset

    def words(self, crops: list[np.ndarray]) -> list[str]:
        """Per crop, the letters and digits it reads, as read (greedy, no plate formats)."""
        out = []
        for probs in self.probabilities(crops):
            best = probs.argmax(1)
            out.append("".join(self.charset[k - 1] for k, prev in zip(best, [0, *best[:-1]]) if k and k != prev))
        return out

    def probabilities(self, crops: list[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
        """Per crop, its (frames, 1 + len(charset)) probabilities."""
        # Each crop keeps its aspect at INPUT_H and is padded to PAD_W (as rapidocr pads), or to
        # its own width past that: batched by padded width, a crop reads the same in any batch.
        widths = [max(INPUT_H, min(MAX_W, int(np.ceil(INPUT_H * c.shape[1] / max(1, c.shape[0]))))) for c in crops]
        groups: dict[int, list[int]] = {}
        for i, w in enumerate(widths):
            groups.setdefault(max(PAD_W, w), []).append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(crops)
        for padded, members in groups.items():
            for k in range(0, len(members), batch_size):
                batch = members[k:k + batch_size]
                x = np.zeros((len(batch), 3, INPUT_H, padded), np.float32)
                for j, i in enumerate(batch):
                    x[j, :, :, :widths[i]] = cv2.resize(crops[i], (widths[i], INPUT_H)).transpose(2, 0, 1) / 127.5 - 1
                probs = self.session.run(None, {self.session.get_inputs()[0].name: x})[0] @ self.fold
                for j, i in enumerate(batch):
                    out[i] = probs[j]
        return out
