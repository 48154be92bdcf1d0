"""Read the text of plate crops with our EasyOCR custom recognizer.

The network is loaded through `easyocr.Reader` (custom-model layout in `models/ocr/`,
no download), then called directly on batches so that each read carries per-character
confidences. Decoding knows plate formats: where a format fits the read, the position
decides between look-alike letters and digits (0/O/D/Q, 1/I, 2/Z, 4/A/L, 5/S, 6/G, 8/B).
By default every crop is also read by a second, pretrained reader (PP-OCRv4, `models.ppocr`)
through the same decoder, and the two reads are combined (`combine`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from models.defaults import NETWORK, OCR_DIR, resolve_device
from models.errors import ModelError
from models.formats import DIGITS, FORMATS, LETTERS, LOOKALIKES, PlateFormat, match_family
from models.issuer import Issuer, read_issuers
from models.ocr.alpr_crnn import INPUT_H, INPUT_W, Model

log = logging.getLogger(__name__)
CHARSET = yaml.safe_load((OCR_DIR / f"{NETWORK}.yaml").read_text())["character_list"]
# A format-consistent reading is preferred unless the unconstrained one is this many
# times likelier: vanity plates still read as printed.
FORMAT_PRIOR = 20.0
# The second reader costs ten times ours per crop on CPU: a crop ours reads at this confidence
# as a plate of a known format is not read again. On the reading panel's crop sets that
# changed no set's exact reads by more than 0.4 points and spared 31-80 % of second reads.
SURE_ALONE = 0.95


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


def _merge(targets: str, weight: float) -> np.ndarray:
    """(classes, len(targets)) matrix: a slot's probabilities @ it = each target's own
    probability plus `weight` times its look-alikes' (`formats.LOOKALIKES`)."""
    m = np.zeros((len(CHARSET) + 1, len(targets)), np.float32)
    for j, t in enumerate(targets):
        for c in {a for a, b in LOOKALIKES if b == t} | {b for a, b in LOOKALIKES if a == t}:
            m[CHARSET.index(c) + 1, j] = weight
        m[CHARSET.index(t) + 1, j] = 1
    return m


# A network can be sure of a glyph's shape and still name the wrong one of a look-alike
# pair (the open-top 4 of US plates as L). Where a format says which kind of character
# stands in a slot, the shape's probability counts for the character of that kind: in full
# for its confidence, at LOOKALIKE_WEIGHT for choosing the reading, so that a reading which
# fits a format as read beats one that needs swaps, one swap beats no format (0.2 > 1 /
# FORMAT_PRIOR) and two do not (0.2 ** 2 < 1 / FORMAT_PRIOR).
LOOKALIKE_WEIGHT = 0.2
# A swap must also be one the network half-sees: the swapped-in character needs at least this
# share of the probability of the character read. A plate of a format the table lacks is
# nearly always one swap from some format of its length; its characters are read with
# certainty, and swapping them misread it (generated German plates of lacking patterns: 60 %
# read right with the table, 85 % without formats), while the swaps that fix look-alikes
# mostly give the other character some probability. The cost: an open-top 4 that the network
# names L with certainty stays L (README, "the swap floor").
MIN_SWAP_RATIO = 0.1
_TARGETS = {"L": LETTERS, "D": DIGITS, "A": CHARSET}  # "A" slots: either kind, nothing merged
_SHAPE = {"L": _merge(LETTERS, 1.0), "D": _merge(DIGITS, 1.0), "A": _merge(CHARSET, 0.0)}
_CHOICE = {"L": _merge(LETTERS, LOOKALIKE_WEIGHT), "D": _merge(DIGITS, LOOKALIKE_WEIGHT), "A": _SHAPE["A"]}
_INDEX = {k: np.array([CHARSET.index(c) + 1 for c in t]) for k, t in _TARGETS.items()}  # columns of `slots`


def decode(probs: np.ndarray, formats: tuple[PlateFormat, ...] = FORMATS) -> TextRead:
    """One crop's CTC probabilities (T, classes) -> a read, using plate formats."""
    slots = np.array(_slots(probs))
    if not len(slots):
        return TextRead("", 0.0, [], None)
    free = slots[:, 1:].argmax(1)
    confs = slots[np.arange(len(slots)), free + 1]
    best = ("".join(CHARSET[k] for k in free), confs, None)
    best_score = np.log(confs + 1e-9).sum() - math.log(FORMAT_PRIOR)
    # Per slot and kind of character: the pick, its log choice score and its confidence.
    rows = np.arange(len(slots))
    choice = {k: slots @ m for k, m in _CHOICE.items()}
    pick = {k: c.argmax(1) for k, c in choice.items()}
    log_choice = {k: np.log(c[rows, pick[k]].astype(np.float64) + 1e-9) for k, c in choice.items()}
    shape = {k: np.minimum(1.0, (slots @ _SHAPE[k])[rows, pick[k]]) for k in _SHAPE}
    own = {k: slots[rows, _INDEX[k][pick[k]]] for k in _SHAPE}
    seen = {k: own[k] >= MIN_SWAP_RATIO * confs for k in _SHAPE}  # not a swap, or one the network half-sees
    for fmt in formats:
        if len(fmt.classes) != len(slots) or not all(seen[k][i] for i, k in enumerate(fmt.classes)):
            continue
        score = sum(log_choice[k][i] for i, k in enumerate(fmt.classes))
        if score > best_score:
            text = "".join(_TARGETS[k][pick[k][i]] for i, k in enumerate(fmt.classes))
            best, best_score = (text, np.array([shape[k][i] for i, k in enumerate(fmt.classes)]), fmt.family), score
    text, confs, region = best
    if region:  # a shape families share (Romania's `LL DD LLL` is the UK's): the one whose region code it has
        region = match_family(text, formats) or region
    return TextRead(text, float(np.prod(confs)), [float(c) for c in confs], region)


def combine(a: TextRead, b: TextRead, formats: tuple[PlateFormat, ...]) -> TextRead:
    """Two reads of one crop (ours, the second reader's) made one. Where they agree, the text
    stands and both confidences count (either being right suffices). Where they disagree, the
    candidates are each reader's text and, for texts of one length, the character-by-character
    pick of the more confident reader; one that fits a plate format beats one that does not,
    and among equals the more confident wins, keeping its own confidence. The two fail on
    different crops, so the pair reads more plates than either (docs/models.md)."""
    if a.text == b.text:
        return TextRead(a.text, 1 - (1 - a.confidence) * (1 - b.confidence),
                        [1 - (1 - x) * (1 - y) for x, y in zip(a.char_confidences, b.char_confidences)],
                        a.region or b.region)
    candidates = [a, b]
    if a.text and len(a.text) == len(b.text):
        picks = [(x, cx) if cx >= cy else (y, cy)
                 for x, y, cx, cy in zip(a.text, b.text, a.char_confidences, b.char_confidences)]
        text = "".join(c for c, _ in picks)
        if text not in (a.text, b.text):
            confidence = 1.0
            for _, c in picks:
                confidence *= c
            candidates.append(TextRead(text, confidence, [c for _, c in picks], match_family(text, formats)))
    return max(candidates, key=lambda r: (r.region is not None and r.text != "", r.confidence))


def _onnx_session(net: torch.nn.Module) -> "onnxruntime.InferenceSession | None":
    """The loaded network exported to ONNX Runtime, which runs it about twice as fast as PyTorch
    on CPU (logits equal to 1e-4). Exported from the network in memory (a quarter of a
    second), so it is always the weights that were loaded; None, and PyTorch runs it, where
    the export fails."""
    try:
        import onnxruntime as ort

        buf = io.BytesIO()
        with warnings.catch_warnings():  # tracer notes about the network's fixed-size branch
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.zeros(1, 1, INPUT_H, INPUT_W),), buf, input_names=["x"],
                              output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                              dynamo=False)
        options = ort.SessionOptions()
        # Its threads would otherwise spin between the small batches a still gives, taking
        # the cores the detector runs on next (a still read 30 % slower than with PyTorch).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        log.warning("OCR runs on PyTorch: ONNX export failed: %s: %s", type(e).__name__, e)
        return None


class PlateRecognizer:
    """Batched plate-text reading. `device`: auto | cpu | cuda[:N]; `second_reader`: also read
    every crop with PP-OCRv4 (`models.ppocr`) and combine the two reads (`models.combine`)."""

    def __init__(self, weights: Path | str = OCR_DIR / f"{NETWORK}.pth", device: str = "auto",
                 formats: tuple[PlateFormat, ...] = FORMATS, second_reader: bool = True):
        import easyocr  # heavy import, only when a recognizer is made

        from models.ppocr import PPOCRRecognizer

        self.second = PPOCRRecognizer(CHARSET) if second_reader else None

        weights = Path(weights)
        if not weights.is_file():
            raise ModelError(f"OCR weights not found: {weights}")
        device = resolve_device(device)
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
        self.session = _onnx_session(self.net) if self.device.type == "cpu" else None

    @torch.no_grad()
    def read(self, crops: list[np.ndarray], batch_size: int = 64) -> list[TextRead]:
        out: list[TextRead] = []
        for i in range(0, len(crops), batch_size):
            x = preprocess(crops[i:i + batch_size])
            if self.session is not None:
                logits = torch.from_numpy(self.session.run(None, {"x": x.numpy()})[0])
            else:
                logits = self.net(x.to(self.device)).float()
            probs = logits.softmax(2).cpu().numpy()
            out += [decode(p, self.formats) for p in probs]
        if self.second is not None:  # where ours is not already sure of a plate (SURE_ALONE)
            unsure = [i for i, a in enumerate(out) if not (a.confidence >= SURE_ALONE and a.region)]
            for i, p in zip(unsure, self.second.probabilities([crops[i] for i in unsure])):
                out[i] = combine(out[i], decode(p, self.formats), self.formats)
        return out

    def issuers(self, crops: list[np.ndarray], texts: list[str]) -> list[Issuer]:
        """Who issued each plate (`models.issuer`): from the words the second reader reads on it,
        else from its number's format."""
        return read_issuers(crops, texts, self.second.words if self.second is not None else None)
