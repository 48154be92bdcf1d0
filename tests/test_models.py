"""The shipped models: they load offline and read plates they were never trained on.

Held-out material: generator seeds never used in training (training uses list seeds
`[seed, worker]` / `[7, i]` and validation 12345) and a font never used in training
(tests/fonts/OpenSans-CondBold.ttf, with the stroke glyphs switched off).
"""
from __future__ import annotations

import importlib.util
import math
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from config.schema import Config
from conftest import HELDOUT_FONT, offline_env
from models.detector import (DEFAULT_WEIGHTS, MIN_CONFIDENCE, ONNX_WEIGHTS, Detection, PlateDetector, _one_per_plate,
                             _zoom_plate, resolve_weights)
from models.evaluate import IOU_MATCH, iou
from models.formats import FORMATS, MAX_TEMPLATES, family_matcher, from_regexes, match_family
from models.reader import (CONFIRMED_READ, CROP_MARGIN, EXTRA_MARGINS, GATED_WIDTH, MAX_PLATE_CHARS, READ_EVIDENCE,
                           SURE_DETECTION, WEAK_DETECTION, PlateReader, confirmed, confirmed_tries, crop)
from models.errors import ModelError
from models.evaluate import predicted_issuer
from models.issuer import Issuer, from_words
from models.ppocr import PPOCRRecognizer, model_path
from models.recognizer import CHARSET, MIN_SWAP_RATIO, TextRead, combine, decode
from models.synth.camera import warp
from models.synth.plates import render_plate
from models.synth.scenes import render_closeup, render_scene

# Accuracy floors, set below what the shipped weights measured (0.95, 0.75, 0.77) to absorb noise.
MIN_EXACT_HELDOUT = 0.85  # reported text == truth, held-out font, mild camera, ~60 plates
MIN_EASYOCR_API_EXACT = 0.6  # easyocr's own recognize() on clean held-out-font plates
MIN_SCENE_RECALL = 0.7  # detector recall (IoU > 0.4) on generated scenes, held-out font
MIN_EXACT_BR_MOTO = 0.85  # Brazil's stacked motorcycle plates, held-out font (measured 0.975; OCR step 11: 0.75)
MIN_EXACT_NUMBER_BOXED = 0.6  # crops boxed at the number's characters alone (measured 0.75; read as given only: 0.10)

OCR_SEED = 424242
EASYOCR_SEED = 434343
SCENE_SEED = 454545
BR_MOTO_SEED = 474747
NUMBER_BOXED_SEED = 484848
N_OCR = 60
N_EASYOCR = 20
N_SCENES = 100  # ~145 plates: a third of them under 30 px wide, where recall is about half


def mild_crop(rng: np.random.Generator, image: np.ndarray, margin: float = 0.06) -> np.ndarray:
    """The plate as a good camera sees it: 110-220 px wide, slight perspective, a detector-like
    margin of car-body colour, light blur, noise and JPEG."""
    h, w = image.shape[:2]
    pw = rng.uniform(110, 220)
    ph = h * pw / w
    mx, my = margin * pw, margin * ph
    dst = np.array([[mx, my], [mx + pw, my], [mx + pw, my + ph], [mx, my + ph]], np.float32)
    dst += rng.normal(0, 0.01 * pw, (4, 2)).astype(np.float32)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    border = tuple(int(v) for v in rng.integers(30, 220, 3))
    size = (int(math.ceil(pw + 2 * mx)), int(math.ceil(ph + 2 * my)))
    out = warp(image, src, dst, size, border).astype(np.float32)
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 0.7))
    out = np.clip(out + rng.normal(0, 3, out.shape), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_COLOR)


def heldout_plates(seed: int, n: int):
    rng = np.random.default_rng(seed)
    return rng, [render_plate(rng, fonts=(HELDOUT_FONT,), glyph_prob=0.0) for _ in range(n)]


def _report(pairs) -> str:
    wrong = [f"{t}->{p}" for t, p in pairs if t != p]
    return f"{len(wrong)} wrong of {len(pairs)}: " + ", ".join(wrong[:15])


# --- the network guard itself ----------------------------------------------------------------

def test_network_guard_blocks_remote_and_allows_loopback(no_network):
    n = len(no_network)
    with pytest.raises(OSError, match="network blocked"):
        socket.create_connection(("203.0.113.7", 80), timeout=1)  # TEST-NET-3, never routable
    with pytest.raises(OSError, match="network blocked"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("198.51.100.7", 443))
    assert len(no_network) == n + 2
    del no_network[n:]  # these were the test's own attempts
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_network_guard_in_child_processes(tmp_path):
    log = tmp_path / "attempts.log"
    code = "import socket; socket.create_connection(('203.0.113.7', 80), timeout=1)"
    r = subprocess.run([sys.executable, "-c", code], env=offline_env(log), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "network blocked" in r.stderr
    assert "203.0.113.7" in log.read_text()


# --- (a) the recognizer -----------------------------------------------------------------------

def test_shipped_weights_load_offline(reader, no_network):
    assert isinstance(reader, PlateReader)
    assert reader.recognizer.device.type == "cpu"
    assert reader.detector.device == "cpu"
    assert no_network == [], f"model loading tried to reach the network: {no_network}"


def test_auto_weights_pick_the_fastest_shipped_runtime(reader, monkeypatch):
    assert reader.detector.weights == ONNX_WEIGHTS  # the reader fixture runs on CPU
    assert resolve_weights("auto", "cpu", imgsz=640) == ONNX_WEIGHTS  # the export takes any input size
    assert resolve_weights("elsewhere/mine.onnx", "cpu") == Path("elsewhere/mine.onnx")
    # CUDA without TensorRT, or in fp32: PyTorch; decided without a GPU
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorrt" else object())
    assert resolve_weights("auto", "cuda:0") == DEFAULT_WEIGHTS
    assert resolve_weights("auto", "cuda:0", half=False) == DEFAULT_WEIGHTS


def test_letterboxing_on_the_device_finds_what_ultralytics_finds():
    """The CUDA path's own resize-and-pad, both passes in one call (run here on the CPU),
    against ultralytics' own and the CPU's zoom-out pass."""
    detector = PlateDetector(DEFAULT_WEIGHTS, device="cpu")
    rng = np.random.default_rng(6)
    images = [render_scene(rng, size=size)[0] for size in [(640, 480), (960, 540), (500, 700)]]
    images += closeups(SCENE_SEED, 2)[0]
    images[-2][:60] = 255  # overexposed sky (above its plate): shrinking it must not take values past 1.0
    # the zoom-out pass on all, as on a GPU (without the still's tiles, which video has not)
    expected = detector.detect(images, stills=True, tiled=[False] * len(images))
    detector.gpu_letterbox = True
    got = detector.detect(images)
    assert sum(map(len, expected)) >= 5

    def same(a: Detection, b: Detection, large: bool) -> bool:
        if large:  # zoom-out pass: a pixel there is 6 of the frame's
            return iou(a.box, b.box) > 0.85 and abs(a.confidence - b.confidence) < 0.1
        return np.allclose(a.box, b.box, atol=3) and abs(a.confidence - b.confidence) < 0.05

    for img, e, g in zip(images, expected, got):
        for boxes, others in ((e, g), (g, e)):
            for a in boxes:
                large = a.box[2] - a.box[0] > max(img.shape[:2]) / 3
                # within the tolerance of the threshold, the other way may have it just under
                if a.confidence >= MIN_CONFIDENCE + (0.1 if large else 0.05):
                    assert any(same(a, b, large) for b in others), (a, others)


def test_reads_heldout_plates_through_a_mild_camera(reader, no_network):
    rng, plates = heldout_plates(OCR_SEED, N_OCR)
    crops = [mild_crop(rng, p.image) for p in plates]
    reads = reader.read_crops(crops)
    assert len(reads) == len(plates)
    for r in reads:  # every reading is well formed, confident or not
        assert set(r.guess) <= set(CHARSET)
        assert 0.0 <= r.confidence <= 1.0
        assert len(r.char_confidences) == len(r.guess)
        assert r.text is None or r.text == r.guess
    rate = sum(p.text == r.text for p, r in zip(plates, reads)) / len(plates)
    shown = [(p.text, r.text if r.text is not None else f"None(guess {r.guess} {r.confidence:.2f})")
             for p, r in zip(plates, reads)]
    assert rate >= MIN_EXACT_HELDOUT, f"exact {rate:.2f} < {MIN_EXACT_HELDOUT}; {_report(shown)}"
    assert no_network == []


def test_reads_brazilian_motorcycle_plates_top_row_first(reader):
    """Both stacked layouts: grey (`LLL` over `0000`) and Mercosur (`LLL` over `0L00`)."""
    rng = np.random.default_rng(BR_MOTO_SEED)
    plates = [render_plate(rng, family="br", fonts=(HELDOUT_FONT,), glyph_prob=0.0, two_row_prob=1.0)
              for _ in range(40)]
    assert len({p.text[4].isdigit() for p in plates}) == 2  # the seed draws both layouts
    reads = reader.recognizer.read([mild_crop(rng, p.image) for p in plates])
    pairs = [(p.text, r.text) for p, r in zip(plates, reads)]
    rate = sum(t == r for t, r in pairs) / len(pairs)
    assert rate >= MIN_EXACT_BR_MOTO, f"exact {rate:.2f} < {MIN_EXACT_BR_MOTO}; {_report(pairs)}"


def test_reads_crops_boxed_at_the_number_alone(reader):
    """Some detectors and labelled sets box a plate's characters, not the plate: `read_crops`
    also reads such a crop inside a border, as the plate-boxed crops the network learnt."""
    rng, plates = heldout_plates(NUMBER_BOXED_SEED, 40)
    crops = [mild_crop(rng, p.image[y0:y1, x0:x1], margin=0.03) for p in plates for x0, y0, x1, y1 in [p.serial_box]]
    pairs = [(p.text, r.text) for p, r in zip(plates, reader.read_crops(crops))]
    rate = sum(t == r for t, r in pairs) / len(pairs)
    assert rate >= MIN_EXACT_NUMBER_BOXED, f"exact {rate:.2f} < {MIN_EXACT_NUMBER_BOXED}; {_report(pairs)}"


# EasyOCR's loader asks for pinned memory whatever the device; torch warns of it without a GPU.
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
def test_reads_through_easyocr_api(reader):
    """EasyOCR's own entry point runs our network (its layout is a working custom model)."""
    rng, plates = heldout_plates(EASYOCR_SEED, N_EASYOCR)
    pairs = []
    for p in plates:
        h, w = p.image.shape[:2]
        m = int(0.06 * w)  # a little margin, as a detector box would give
        img = cv2.copyMakeBorder(p.image, m, m, m, m, cv2.BORDER_CONSTANT, value=(90, 90, 90))
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        H, W = gray.shape
        result = reader.recognizer.reader.recognize(gray, horizontal_list=[[0, W, 0, H]], free_list=[], detail=1)
        assert len(result) == 1
        box, text, conf = result[0]
        assert isinstance(text, str)
        assert 0.0 <= float(conf) <= 1.0
        pairs.append((p.text, text))
    assert any(t for _, t in pairs), "easyocr returned only empty strings"
    rate = sum(t == p for t, p in pairs) / len(pairs)
    assert rate >= MIN_EASYOCR_API_EXACT, f"easyocr api exact {rate:.2f}; {_report(pairs)}"


def test_the_cpu_recognizer_runs_onnx_runtime_and_reads_as_pytorch(reader, monkeypatch):
    """On CPU the network runs as an in-memory ONNX export (the faster runtime there), with
    PyTorch's probabilities to rounding: the same texts and confidences (our network's alone)."""
    import torch

    from models.recognizer import preprocess

    rec = reader.recognizer
    monkeypatch.setattr(rec, "second", None)
    assert rec.session is not None
    rng, plates = heldout_plates(OCR_SEED + 1, 32)
    crops = [mild_crop(rng, p.image) for p in plates]
    with torch.no_grad():
        expected = [decode(p) for p in rec.net(preprocess(crops)).float().softmax(2).numpy()]
    for got, want in zip(rec.read(crops), expected):
        assert got.text == want.text
        assert got.confidence == pytest.approx(want.confidence, abs=1e-3)


def test_the_recognizer_falls_back_to_pytorch_where_the_export_fails(reader, monkeypatch, caplog):
    import torch

    from models.recognizer import PlateRecognizer

    def no_exporter(*args, **kwargs):
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(torch.onnx, "export", no_exporter)
    rec = PlateRecognizer(device="cpu")
    assert rec.session is None and "ONNX export failed: RuntimeError: no exporter here" in caplog.text
    rng, plates = heldout_plates(OCR_SEED + 2, 16)
    crops = [mild_crop(rng, p.image) for p in plates]
    assert [r.text for r in rec.read(crops)] == [r.text for r in reader.recognizer.read(crops)]


# --- (b) the detector -------------------------------------------------------------------------

def test_detector_recall_on_heldout_scenes(reader):
    scenes = [render_scene(np.random.default_rng([SCENE_SEED, i]), fonts=(HELDOUT_FONT,)) for i in range(N_SCENES)]
    dets = reader.detector.detect([img for img, _ in scenes], conf=reader.detection_confidence)
    assert len(dets) == len(scenes)
    found = total = 0
    for (img, plates), ds in zip(scenes, dets):
        H, W = img.shape[:2]
        for d in ds:
            x1, y1, x2, y2 = d.box
            assert -1 <= x1 < x2 <= W + 1 and -1 <= y1 < y2 <= H + 1
            assert reader.detection_confidence <= d.confidence <= 1.0
        for p in plates:
            total += 1
            found += any(iou(p.box, d.box) > IOU_MATCH for d in ds)
    assert total >= N_SCENES  # the seed gives enough plates for the figure to mean something
    recall = found / total
    assert recall >= MIN_SCENE_RECALL, f"recall {recall:.2f} ({found}/{total}) < {MIN_SCENE_RECALL}"


def test_weak_boxes_come_on_top_of_the_same_confident_ones(reader):
    scenes = [render_scene(np.random.default_rng([SCENE_SEED, i]), fonts=(HELDOUT_FONT,))[0] for i in range(12)]
    scenes += closeups(SCENE_SEED, 3)[0]  # where the zoom-out pass replaces first-pass boxes
    on_gpu_path = PlateDetector(DEFAULT_WEIGHTS, device="cpu")
    on_gpu_path.gpu_letterbox = True  # both passes in one call, as on CUDA
    for detector in (reader.detector, on_gpu_path):
        plain = detector.detect(scenes, stills=True)
        both = detector.detect(scenes, stills=True, weak=WEAK_DETECTION)
        assert sum(len(b) for b in both) > sum(len(p) for p in plain)  # the seeds give weak boxes
        for p, b in zip(plain, both):
            strong = [d for d in b if d.confidence >= MIN_CONFIDENCE]
            assert [d.box for d in p] == [d.box for d in strong]
            assert all(d.confidence >= WEAK_DETECTION for d in b)


def test_a_still_plate_keeps_its_most_confident_read_of_the_margins(reader):
    scenes = [render_scene(np.random.default_rng([SCENE_SEED, i]), fonts=(HELDOUT_FONT,))[0] for i in range(8)]
    margins = (CROP_MARGIN, *EXTRA_MARGINS)
    chosen = []
    for img, readings in zip(scenes, reader.read_batch(scenes)):
        dets = reader.detector.detect([img], conf=reader.detection_confidence, stills=True, weak=WEAK_DETECTION)[0]
        for p in readings:
            d = next(d for d in dets if d.box == p.box)
            tries = [t.confidence for t in reader.recognizer.read([crop(img, d.box, m) for m in margins])]
            assert p.confidence == pytest.approx(max(tries), abs=1e-4)
            chosen.append(int(np.argmax(tries)))
    assert len(chosen) >= 8 and any(k > 0 for k in chosen)  # the seeds exercise another margin


def closeups(seed: int, n: int) -> tuple[list[np.ndarray], list[tuple]]:
    """A gate camera's close-ups: 640x480 frames with a held-out-font plate 75-90 % of their
    width, larger than the detector learnt; and the plates' boxes."""
    rng = np.random.default_rng(seed)
    frames, plates = zip(*(render_closeup(rng, widths=(480, 576), fonts=(HELDOUT_FONT,)) for _ in range(n)))
    return list(frames), [p[0].box for p in plates]


def test_zoom_out_pass_boxes_a_plate_filling_most_of_the_frame(reader):
    """The first pass alone boxes such plates in part or not at all."""
    frames, boxes = closeups(SCENE_SEED, 6)
    found = [max((iou(b, d.box) for d in ds), default=0) for b, ds in zip(boxes, reader.detector.detect(frames))]
    assert sum(f > 0.7 for f in found) >= 5, f"IoU of the best box per plate: {[round(f, 2) for f in found]}"


def test_a_plate_filling_nine_tenths_of_a_gate_view_is_boxed(reader):
    rng = np.random.default_rng(SCENE_SEED + 1)
    frames, plates = zip(*(render_closeup(rng, widths=(576, 576), fonts=(HELDOUT_FONT,)) for _ in range(6)))
    found = [max((iou(p[0].box, d.box) for d in ds), default=0) for p, ds in zip(plates, reader.detector.detect(frames))]
    assert sum(f > 0.6 for f in found) >= 5, f"IoU of the best box per plate: {[round(f, 2) for f in found]}"


def test_a_60_px_plate_in_a_1080p_still_is_found_by_the_tiles(reader):
    """At the network's 512 px such a plate is 16 px wide; the still reader's tiles see it at 40."""
    rng = np.random.default_rng(SCENE_SEED + 2)
    scenes = [render_scene(rng, size=(1920, 1080), widths=(60, 60), fonts=(HELDOUT_FONT,)) for _ in range(6)]
    plates = [(p.box, r) for (_, ps), r in zip(scenes, reader.read_batch([img for img, _ in scenes])) for p in ps]
    found = [any(iou(box, x.box) > IOU_MATCH for x in read) for box, read in plates]
    assert len(plates) >= 8 and sum(found) >= 0.8 * len(plates), f"{sum(found)} of {len(plates)} found"


def test_one_box_per_plate_across_passes_and_tiles():
    plate = Detection((100, 100, 200, 150), 0.9)
    again = Detection((104, 98, 205, 152), 0.6)  # the same plate seen by a tile
    part = Detection((150, 100, 200, 150), 0.95)  # its right half, read as a line of its own
    beside = Detection((210, 100, 310, 150), 0.5)  # a plate next to it
    assert _one_per_plate([again, plate, beside]) == [plate, beside]
    assert _one_per_plate([plate, part]) == [part]


def test_lettering_on_a_sign_is_not_a_plate(reader):
    """A white sign with a line of black text: boxes overlapping on it are one at most, and a
    text longer than any plate's is not reported."""
    img = np.full((480, 640, 3), 200, np.uint8)
    cv2.rectangle(img, (10, 200), (630, 300), (255, 255, 255), -1)
    cv2.putText(img, "HELLO WORLD 123", (20, 270), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 4)
    dets = reader.detector.detect([img], stills=True, weak=WEAK_DETECTION)[0]
    assert not any(_one_per_plate([a, b]) == [a, b] and iou(a.box, b.box) > 0.1 for a in dets for b in dets if a is not b)
    assert all(len(p.guess) <= MAX_PLATE_CHARS for p in reader.read(img))


def test_the_onnx_export_finds_the_boxes_of_the_pytorch_weights():
    rng = np.random.default_rng(SCENE_SEED + 3)
    images = [render_scene(rng, size=(640, 480), fonts=(HELDOUT_FONT,))[0] for _ in range(4)]
    torch_boxes = PlateDetector(DEFAULT_WEIGHTS, device="cpu").detect(images, stills=True)
    onnx_boxes = PlateDetector(ONNX_WEIGHTS, device="cpu").detect(images, stills=True)
    assert sum(map(len, torch_boxes)) >= 3
    for a_list, b_list in zip(torch_boxes, onnx_boxes):
        assert len(a_list) == len(b_list)
        for a in a_list:
            assert any(np.allclose(a.box, b.box, atol=2) and abs(a.confidence - b.confidence) < 0.03 for b in b_list)


def test_a_fixed_size_export_sees_the_frame_as_small_in_its_zoom_out_pass():
    """Such an export takes every pass at its own size (here 512 px, as `PlateDetector` sets
    for one): the frame must still be shrunk to the zoom-out pass's 112 px in it."""
    frames, boxes = closeups(SCENE_SEED, 6)
    detector = PlateDetector("auto", device="cpu")
    detector.zoom_imgsz = 512
    found = [max((iou(b, d.box) for d in ds), default=0) for b, ds in zip(boxes, detector.detect(frames, stills=True))]
    assert sum(f > 0.7 for f in found) >= 5, f"IoU of the best box per plate: {[round(f, 2) for f in found]}"


def test_loading_the_detector_leaves_torch_its_threads():
    """ultralytics sets torch, process-wide, to one thread fewer than the machine has; the OCR
    in the same process must keep what it had."""
    import torch

    before = torch.get_num_threads()
    ours = before + 1  # a count ultralytics would not pick itself
    torch.set_num_threads(ours)
    try:
        PlateDetector(DEFAULT_WEIGHTS, device="cpu")
        assert torch.get_num_threads() == ours
    finally:
        torch.set_num_threads(before)


def test_zoom_out_boxes_that_are_not_plates_are_dropped():
    w, h = 640, 480
    large = Detection((40, 100, 600, 260), 0.6)
    assert _zoom_plate(large, [], w, h)  # a large plate the first pass missed
    assert _zoom_plate(large, [Detection((200, 110, 460, 250), 0.7)], w, h)  # found in part
    assert not _zoom_plate(Detection((100, 100, 300, 160), 0.6), [], w, h)  # the first pass's own size
    assert not _zoom_plate(Detection((0, 0, 640, 200), 0.6), [], w, h)  # the frame's outline
    # a first-pass box much narrower than the box around it: as confident, it is a plate on the
    # vehicle the zoom-out box outlines; less confident, a line of the large plate's text
    assert not _zoom_plate(Detection((40, 60, 600, 400), 0.45), [Detection((260, 250, 380, 290), 0.6)], w, h)
    assert _zoom_plate(Detection((40, 60, 600, 400), 0.75), [Detection((260, 250, 380, 290), 0.6)], w, h)


# --- (c) confidence threshold and format-aware decoding (hand-made CTC outputs) -----------------

NUM_CLASSES = len(CHARSET) + 1  # 37: blank at 0


def ctc_matrix(slots: list[dict[str, float]], blanks: int = 2) -> np.ndarray:
    """A (T, 37) probability matrix: for each slot one frame with the given character
    probabilities (the rest spread evenly), separated by frames that are almost surely blank."""
    rows = []

    def blank():
        r = np.full(NUM_CLASSES, 0.02 / (NUM_CLASSES - 1))
        r[0] = 0.98
        return r

    rows += [blank() for _ in range(blanks)]
    for probs in slots:
        r = np.zeros(NUM_CLASSES)
        for ch, q in probs.items():
            r[CHARSET.index(ch) + 1] = q
        rest = [k for k in range(NUM_CLASSES) if r[k] == 0]
        r[rest] = (1 - r.sum()) / len(rest)
        rows.append(r)
        rows += [blank() for _ in range(blanks)]
    m = np.array(rows, np.float32)
    assert np.allclose(m.sum(1), 1, atol=1e-5)
    return m


def bare_reader(min_confidence: float) -> PlateReader:
    """A PlateReader with no models: `reading` only needs the threshold."""
    r = PlateReader.__new__(PlateReader)
    r.min_confidence = min_confidence
    r.detection_confidence = 0.25
    return r


def test_low_character_probabilities_give_low_confidence():
    t = decode(ctc_matrix([{c: 0.4} for c in "7ABC123"]))
    assert isinstance(t, TextRead)
    assert t.text == "7ABC123"
    # The format's letter and digit slots add the (here tiny) probability of look-alikes.
    assert t.char_confidences == pytest.approx([0.4] * 7, abs=0.02)
    assert t.confidence == pytest.approx(np.prod(t.char_confidences), rel=1e-5)
    assert t.confidence < 0.5
    assert t.region == "us"


def test_confident_characters_give_high_confidence():
    t = decode(ctc_matrix([{c: 0.995} for c in "AB12CDE"]))
    assert t.text == "AB12CDE" and t.confidence > 0.95


def test_reading_below_threshold_is_a_failure_with_a_guess():
    t = decode(ctc_matrix([{c: 0.4} for c in "7ABC123"]))
    strict = bare_reader(0.5).reading(t, (1, 2, 30, 12), 0.9)
    assert strict.text is None
    assert strict.guess == t.text == "7ABC123"
    assert strict.confidence == pytest.approx(t.confidence)
    assert strict.box == (1, 2, 30, 12) and strict.detection_confidence == 0.9
    lenient = bare_reader(0.0).reading(t, (1, 2, 30, 12), 0.9)
    assert lenient.text == "7ABC123" and lenient.guess == "7ABC123"
    # An empty read is never reported as a plate, whatever the threshold.
    empty = decode(ctc_matrix([]))
    assert empty.text == "" and empty.confidence == 0.0
    assert bare_reader(0.0).reading(empty, (0, 0, 1, 1), 1.0).text is None


def test_a_weak_detection_counts_only_when_it_reads_as_a_plate():
    r = bare_reader(0.5)
    plate, sign = decode(ctc_matrix([{c: 0.95} for c in "7ABC123"])), decode(ctc_matrix([{c: 0.95} for c in "EXIT"]))
    unsure = decode(ctc_matrix([{c: 0.6} for c in "7ABC123"]))
    assert plate.region and not sign.region and unsure.region and unsure.confidence < CONFIRMED_READ
    strong = r.reading(sign, (0, 0, 40, 10), 0.9)  # confident detections stay, whatever they read
    plate_weak = r.reading(plate, (100, 0, 140, 10), 0.15)
    readings = [strong, plate_weak, r.reading(sign, (200, 0, 240, 10), 0.2), r.reading(unsure, (300, 0, 340, 10), 0.2),
                r.reading(plate, (30, 5, 70, 15), 0.2),  # overlaps the confident box
                r.reading(plate, (110, 2, 150, 12), 0.12)]  # overlaps a weak box kept first
    kept = confirmed([x.box for x in readings], [x.detection_confidence for x in readings], readings, 0.25)
    assert kept == [0, 1]


def test_an_unsure_wide_box_that_reads_nothing_is_dropped():
    nothing = decode(ctc_matrix([{c: 0.1} for c in "AB1"]))
    plate = decode(ctc_matrix([{c: 0.95} for c in "7ABC123"]))
    assert nothing.confidence < READ_EVIDENCE
    unsure, w = (SURE_DETECTION + 0.4) / 2, GATED_WIDTH
    boxes = [(0, 0, w, 10), (100, 0, 100 + w, 10), (200, 0, 200 + w - 1, 10), (300, 0, 300 + w, 10)]
    dets = [unsure, SURE_DETECTION, unsure, unsure]
    tries = [[nothing, nothing], [nothing], [nothing], [nothing, plate]]  # the last: its second margin reads
    # Dropped: the first only; sure, narrower than GATED_WIDTH, or read at some margin, the others stay.
    assert confirmed_tries(boxes, dets, tries, 0.4) == [(1, 0), (2, 0), (3, 1)]


def test_format_decides_confusable_digit_position():
    """UK 'LLDD LLL': the 4th character is a digit, so a slightly likelier 'O' reads as '0',
    with the confidence of the shape (both of the pair's probabilities)."""
    slots = [{c: 0.95} for c in "AB1"] + [{"O": 0.5, "0": 0.45}] + [{c: 0.95} for c in "CDE"]
    t = decode(ctc_matrix(slots))
    assert t.text == "AB10CDE"
    assert t.region == "eu"  # the UK shape is also Romania's 'LL DD LLL', and AB is Alba's code
    assert t.char_confidences[3] == pytest.approx(0.95, abs=0.005)  # + the rest's share of D and Q


def test_one_lookalike_the_network_half_sees_is_swapped_to_fit_a_format():
    """California 'DLLL DDD': an open-top 4 read as L, the 4 at a fair share of the L's
    probability, reads as 4. A character read with certainty is not swapped: German
    'HH AB 123', a format the table lacks, is one swap from 'LLL-DDDD' and stays as read.
    A read that fits a format as it stands is not swapped into another format."""
    t = decode(ctc_matrix([{"L": 0.8, "4": 0.8 * MIN_SWAP_RATIO * 1.5}] + [{c: 0.97} for c in "KYR003"]))
    assert t.text == "4KYR003" and t.region == "us"
    assert t.char_confidences[0] == pytest.approx(0.8 * (1 + MIN_SWAP_RATIO * 1.5), abs=0.01)
    barely_seen = decode(ctc_matrix([{"L": 0.8, "4": 0.8 * MIN_SWAP_RATIO * 0.5}] + [{c: 0.97} for c in "KYR003"]))
    assert barely_seen.text == "LKYR003"
    german = decode(ctc_matrix([{c: 0.97} for c in "HHAB123"]))
    assert german.text == "HHAB123" and german.region is None
    # 'A337HF' fits the Dutch 'L-DDD-LL' as read, though '4337HF' would fit the US 'DDDD LL'.
    assert decode(ctc_matrix([{c: 0.95} for c in "A337HF"])).text == "A337HF"


def test_california_commercial_number_keeps_its_leading_digit():
    """California trucks' 'DLDDDDD': a 5 read with certainty stays a 5 rather than becoming
    the S of 'LL DDDDD' (the swap a missing format would force)."""
    t = decode(ctc_matrix([{c: 0.97} for c in "5K12345"]))
    assert t.text == "5K12345" and t.region == "us"


def test_format_decides_confusable_letter_position():
    """UK 'LLDD LLL': the 6th character is a letter, so a slightly likelier '8' reads as 'B'
    (the free reading 'AB12C8E' fits no format)."""
    slots = [{c: 0.95} for c in "AB12C"] + [{"8": 0.5, "B": 0.45}] + [{"E": 0.95}]
    t = decode(ctc_matrix(slots))
    assert t.text == "AB12CBE" and t.region == "eu"


def test_region_of_a_shared_shape_follows_its_region_code():
    """UK 'LLDD LLL' is also Romania's 'LL DD LLL', whose numbers start with a county code:
    a number with one is Romanian, any other British. Bucharest's 'B DD LLL' likewise wins
    over the US 'LDD LLL'. The decoder, the table and the config's regexes agree."""
    cases = {"LS15EBC": "uk", "AB12CDE": "eu", "B21GSB": "eu", "ABC1234": "us", "R123ABC": None}
    family_of = family_matcher(Config().plate_formats)
    for text, family in cases.items():
        assert match_family(text) == family_of(text) == family, text
        if family:
            assert decode(ctc_matrix([{c: 0.97} for c in text])).region == family, text
    # the config's regexes make the table's decoding templates, region codes and all
    assert ({(f.family, f.classes, f.prefixes) for f in from_regexes(Config().plate_formats)}
            == {(f.family, f.classes, f.prefixes) for f in FORMATS})


def test_format_decides_confusable_pair_on_mercosur():
    """Mercosur 'LLLDLDD' alone: '5' in a letter slot reads 'S', 'Z' in a digit slot reads '2'."""
    mercosur = tuple(f for f in FORMATS if f.name == "mercosur")
    slots = [{c: 0.95} for c in "ABC1"] + [{"5": 0.5, "S": 0.45}] + [{"2": 0.95}] + [{"Z": 0.5, "2": 0.45}]
    t = decode(ctc_matrix(slots), formats=mercosur)
    assert t.text == "ABC1S22" and t.region == "br"
    # With no formats at all, the unconstrained reading stands.
    assert decode(ctc_matrix(slots), formats=()).text == "ABC152Z"


def test_a_configured_count_range_guides_the_decoder_at_every_length_it_allows():
    """Germany's numbers, 1-3 + 1-2 letters and 1-4 digits, are one config regex; in each length it
    allows, a digit slot reads the likelier 'O' as '0'."""
    german = from_regexes({"de": ["^[A-Z]{1,3}[A-Z]{1,2}[0-9]{1,4}$"]})
    assert {f.classes for f in german} == {"L" * k + "D" * d for k in range(2, 6) for d in range(1, 5)}
    for head in ("KA", "MAB1", "HHAB12"):
        t = decode(ctc_matrix([{c: 0.95} for c in head] + [{"O": 0.5, "0": 0.45}]), german)
        assert t.text == head + "0" and t.region == "de"
    assert from_regexes({"x": ["^[A-Z]{1,8}[0-9]{1,8}$"]})  # 64 lengths
    too_many = {"x": ["^[A-Z]{1,99999}[0-9]{1,99999}$", "^[A-Z]{3,1}$"]}
    assert 8 * 8 <= MAX_TEMPLATES and from_regexes(too_many) == ()  # these tag plates but cannot guide


def test_clear_reading_outside_the_formats_is_kept():
    """Vanity plates read as printed: a format is not forced on a much likelier reading, nor
    on one that fits only after two look-alike swaps."""
    slots = [{c: 0.95} for c in "AB1"] + [{"X": 0.9, "0": 0.01}] + [{c: 0.95} for c in "CDE"]
    t = decode(ctc_matrix(slots))
    assert t.text == "AB1XCDE" and t.region is None
    two_swaps = decode(ctc_matrix([{c: 0.95} for c in "ABIOCDE"]))  # UK 'AB10CDE' needs I->1 and O->0
    assert two_swaps.text == "ABIOCDE" and two_swaps.region is None
    short = decode(ctc_matrix([{c: 0.9} for c in "HELLO"]))
    assert short.text == "HELLO" and short.region is None


def test_repeated_characters_need_a_blank_between_them():
    """CTC: 'AA' over two frames is one A unless a blank separates them."""
    a = np.zeros(NUM_CLASSES, np.float32)
    a[CHARSET.index("A") + 1] = 1.0
    b = np.zeros(NUM_CLASSES, np.float32)
    b[0] = 1.0
    assert decode(np.stack([a, a, b])).text == "A"
    assert decode(np.stack([a, b, a])).text == "AA"


# --- the second reader and the combination of two reads --------------------------------------

def test_the_second_readers_weights_are_checked_against_their_release(tmp_path):
    changed = tmp_path / "rec.onnx"
    data = bytearray(model_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"second reader's weights changed: {changed} has md5") as e:
        PPOCRRecognizer(CHARSET, changed)
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="second reader's weights not found"):
        PPOCRRecognizer(CHARSET, tmp_path / "missing.onnx")


def test_two_readers_that_disagree_in_a_confusable_position_give_the_format_valid_reading():
    ours = TextRead("7A8C123", 0.72, [0.99, 0.99, 0.75, 0.99, 0.99, 0.99, 0.99], None)  # 8 where B stands
    second = TextRead("7ABC123", 0.61, [0.9, 0.9, 0.8, 0.9, 0.95, 0.95, 0.95], "us")
    assert combine(ours, second, FORMATS).text == "7ABC123"
    # each wrong in another place: the more confident character of each position fits the format
    a = TextRead("7ABC1Z3", 0.5, [0.99, 0.99, 0.95, 0.99, 0.99, 0.55, 0.99], None)
    b = TextRead("7A8C123", 0.5, [0.99, 0.99, 0.60, 0.99, 0.99, 0.97, 0.99], None)
    merged = combine(a, b, FORMATS)
    assert (merged.text, merged.region) == ("7ABC123", "us")
    assert merged.char_confidences == [0.99, 0.99, 0.95, 0.99, 0.99, 0.97, 0.99]


def test_two_readers_that_agree_are_surer_than_either():
    a = TextRead("AB12CDE", 0.6, [0.9] * 7, "uk")
    both = combine(a, TextRead("AB12CDE", 0.7, [0.95] * 7, "uk"), FORMATS)
    assert both.text == "AB12CDE" and both.confidence == pytest.approx(0.88)


def test_a_combined_reading_below_the_threshold_is_a_failure_with_its_guess():
    a = TextRead("KX4411", 0.3, [0.7] * 6, None)
    b = TextRead("KXA411", 0.2, [0.6] * 6, None)
    combined = combine(a, b, FORMATS)
    r = bare_reader(0.5).reading(combined, (0, 0, 10, 5), 0.9)
    assert r.text is None and r.guess == combined.text and r.guess in ("KX4411", "KXA411")


def test_the_second_reader_reads_clear_plates(reader):
    """Alone it reads about half of generated plates (their fonts are not plates' typefaces);
    folded onto our characters wrongly it would read none."""
    rng, plates = heldout_plates(OCR_SEED + 7, 12)
    probs = reader.recognizer.second.probabilities([mild_crop(rng, p.image) for p in plates])
    pairs = [(p.text, decode(x, FORMATS).text) for p, x in zip(plates, probs)]
    assert sum(t == r for t, r in pairs) >= 5, _report(pairs)


# --- who issued the plate ------------------------------------------------------------------------

def test_generated_plates_of_several_states_and_countries_get_their_issuer(reader):
    rng = np.random.default_rng(777)
    for family, at_least in (("us", 10), ("eu", 5), ("uk", 8), ("br", 5)):
        plates = [render_plate(rng, family=family, fonts=(HELDOUT_FONT,), glyph_prob=0.0) for _ in range(12)]
        got = [predicted_issuer(r.issuer) for r in reader.read_crops([mild_crop(rng, p.image) for p in plates])]
        pairs = [(p.issuer, g) for p, g in zip(plates, got)]
        assert sum(t == g for t, g in pairs) >= at_least and all(g in (t, None) for t, g in pairs), (family, pairs)


def test_a_plate_without_words_and_of_a_shared_format_gets_no_state(reader):
    """ABC1234 is a US format and Brazil's old one: neither country nor state is guessed."""
    img = np.full((120, 320, 3), 235, np.uint8)
    cv2.putText(img, "ABC 1234", (18, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.9, (20, 20, 20), 5)
    r = reader.read_crops([img])[0]
    assert r.text == "ABC1234" and r.issuer == Issuer()
    assert from_words(["FLORIANOPOLIS"]).country == "br" and from_words(["WESTVIRGINIA"]).subdivision == "wv"
    assert from_words(["NEWJERSE"]).subdivision == "nj" and from_words(["OHI0"]) is None  # short names: exact
