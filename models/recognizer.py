"""Read the text of plate crops with our EasyOCR custom recognizer.

The network is loaded through `easyocr.Reader` (custom-model layout in `models/ocr/`,
no download), then called directly on batches so that each read carries per-character
confidences. Decoding knows plate formats: where a format fits the read, the position
decides between look-alike letters and digits (0/O, 8/B, 5/S, 2/Z, 1/I).
"""
from __future__ import annotations

import contextlib
import io
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from models.errors import ModelError
from models.formats import DIGITS, FORMATS, LETTERS, PlateFormat
from models.ocr.alpr_crnn import INPUT_H, INPUT_W, Model

OCR_DIR = Path(__file__).parent / "ocr"
NETWORK = "alpr_crnn"
CHARSET = yaml.safe_load((OCR_DIR / f"{NETWORK}.yaml").read_text())["character_list"]
# A format-consistent reading is preferred unless the unconstrained one is this many
# times likelier: vanity plates still read as printed.
FORMAT_PRIOR = 20.0


@dataclass
class TextRead:
    text: str  # A-Z0-9; empty when nothing legible
    confidence: float  # probability that the whole text is right (product of the characters')
    char_confidences: list[float]
    region: str | None  # family of the plate format the text matches, if any


def build_network() -> Model:
    params = yaml.safe_load((OCR_DIR / f"{NETWORK}.yaml").read_text())["network_params"]
    return Model(num_class=len(CHARSET) + 1, **params)


def preprocess(crops: list[np.ndarray]) -> torch.Tensor:
    """BGR or grey crops -> (N, 1, H, W) float tensor in [-1, 1], the network's input."""
    out = np.empty((len(crops), 1, INPUT_H, INPUT_W), np.float32)
    for i, c in enumerate(crops):
        g = cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) if c.ndim == 3 else c
        interp = cv2.INTER_AREA if g.shape[1] > INPUT_W else cv2.INTER_LINEAR
        out[i, 0] = cv2.resize(g, (INPUT_W, INPUT_H), interpolation=interp)
    return torch.from_numpy(out / 127.5 - 1.0)


def _slots(probs: np.ndarray) -> list[np.ndarray]:
    """Collapse the greedy CTC path into character slots, each with its class distribution
    (taken at the frame where the slot's character is most certain)."""
    best = probs.argmax(1)
    slots, prev, cur = [], 0, None
    for t, k in enumerate(best):
        if k != 0 and k == prev and cur is not None:
            if probs[t, k] > cur[k]:
                cur = probs[t]
        elif k != 0:
            if cur is not None:
                slots.append(cur)
            cur = probs[t]
        else:
            if cur is not None:
                slots.append(cur)
            cur = None
        prev = k
    if cur is not None:
        slots.append(cur)
    return slots


_LETTER_IDX = np.array([CHARSET.index(c) + 1 for c in LETTERS])
_DIGIT_IDX = np.array([CHARSET.index(c) + 1 for c in DIGITS])


def decode(probs: np.ndarray, formats: tuple[PlateFormat, ...] = FORMATS) -> TextRead:
    """One crop's CTC probabilities (T, classes) -> a read, using plate formats."""
    slots = _slots(probs)
    if not slots:
        return TextRead("", 0.0, [], None)
    free = [int(s[1:].argmax()) + 1 for s in slots]
    free_score = sum(math.log(s[k] + 1e-9) for s, k in zip(slots, free))
    best, best_score, region = free, free_score - math.log(FORMAT_PRIOR), None
    for fmt in formats:
        classes = fmt.classes
        if len(classes) != len(slots):
            continue
        picks = []
        for s, k in zip(slots, classes):
            idx = _LETTER_IDX if k == "L" else _DIGIT_IDX if k == "D" else np.arange(1, len(CHARSET) + 1)
            picks.append(int(idx[s[idx].argmax()]))
        score = sum(math.log(s[k] + 1e-9) for s, k in zip(slots, picks))
        if score > best_score:
            best, best_score, region = picks, score, fmt.family
    confs = [float(s[k]) for s, k in zip(slots, best)]
    return TextRead("".join(CHARSET[k - 1] for k in best), float(np.prod(confs)), confs, region)


class PlateRecognizer:
    """Batched plate-text reading. `device`: auto | cpu | cuda[:N]."""

    def __init__(self, weights: Path | str = OCR_DIR / f"{NETWORK}.pth", device: str = "auto",
                 formats: tuple[PlateFormat, ...] = FORMATS):
        import easyocr  # heavy import, only when a recognizer is made

        weights = Path(weights)
        if not weights.is_file():
            raise ModelError(f"OCR weights not found: {weights}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.formats = formats
        try:
            # EasyOCR loads `<storage dir>/<NETWORK>.pth` whatever the file is called: give it a
            # folder where that name is exactly `weights`, so another file there is never loaded.
            with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
                storage = weights.parent
                if weights.name != f"{NETWORK}.pth":
                    storage = Path(tmp)
                    try:
                        (storage / f"{NETWORK}.pth").symlink_to(weights.resolve())
                    except OSError:  # no symlinks (Windows without the privilege)
                        shutil.copyfile(weights, storage / f"{NETWORK}.pth")
                self.reader = easyocr.Reader(
                    ["en"], gpu=device if device != "cpu" else False, detector=False, recognizer=True,
                    recog_network=NETWORK, model_storage_directory=str(storage),
                    user_network_directory=str(OCR_DIR), download_enabled=False, quantize=False, verbose=False)
        except Exception as e:  # torch.load / load_state_dict failures on a bad file
            raise ModelError(f"OCR weights unreadable: {weights}: {type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0]}") from e
        self.net = self.reader.recognizer.eval()
        self.device = next(self.net.parameters()).device

    @torch.no_grad()
    def read(self, crops: list[np.ndarray], batch_size: int = 64) -> list[TextRead]:
        out: list[TextRead] = []
        for i in range(0, len(crops), batch_size):
            x = preprocess(crops[i:i + batch_size]).to(self.device)
            probs = self.net(x).float().softmax(2).cpu().numpy()
            out += [decode(p, self.formats) for p in probs]
        return out
