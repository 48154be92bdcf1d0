"""Failures a user can cause: missing or corrupt weights, bad images, bad datasets.

Each must surface as ModelError (API) or as exit status 2 with one `error: ...` line per
problem on stderr and no traceback (CLI), and must not lose output already produced.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import run_module
from models.detector import PlateDetector
from models.errors import ModelError
from models.reader import PlateReader, PlateReading, crop, load_image
from models.recognizer import OCR_DIR, PlateRecognizer
from models.synth.scenes import render_scene

SHIPPED_OCR = OCR_DIR / "alpr_crnn.pth"


def _one_line(msg: str) -> bool:
    return len(msg.splitlines()) == 1 and msg.strip() == msg


def _garbage(path: Path, n: int) -> Path:
    path.write_bytes(np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def _stderr_errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), f"stray stderr lines:\n{stderr}"
    return lines


# --- weights ----------------------------------------------------------------------------------

def test_missing_ocr_weights(tmp_path):
    path = tmp_path / "nowhere" / "alpr_crnn.pth"
    with pytest.raises(ModelError) as e:
        PlateRecognizer(path, device="cpu")
    assert str(path) in str(e.value) and "not found" in str(e.value) and _one_line(str(e.value))


def test_missing_detector_weights(tmp_path):
    path = tmp_path / "nowhere" / "plate_yolov8n.pt"
    with pytest.raises(ModelError) as e:
        PlateDetector(path, device="cpu")
    assert str(path) in str(e.value) and "not found" in str(e.value) and _one_line(str(e.value))
    with pytest.raises(ModelError) as e:  # the reader checks the detector first, and says so
        PlateReader(detector_weights=path, device="cpu")
    assert str(path) in str(e.value)


@pytest.mark.parametrize("size", [0, 4096])
@pytest.mark.parametrize("load, name, says", [(PlateRecognizer, "corrupt.pth", "OCR weights unreadable"),
                                              (PlateDetector, "corrupt.pt", "detector weights unreadable")])
def test_corrupt_weights(tmp_path, no_network, size, load, name, says):
    path = _garbage(tmp_path / name, size)
    with pytest.raises(ModelError) as e:
        load(path, device="cpu")
    msg = str(e.value)
    assert msg.startswith(says) and str(path) in msg and _one_line(msg), msg


def test_ocr_weights_are_loaded_from_the_file_named(tmp_path, no_network):
    """EasyOCR looks for `<dir>/alpr_crnn.pth`; the recognizer must load the file it is given,
    and never a different file that happens to sit beside it."""
    good = tmp_path / "renamed.pth"
    shutil.copyfile(SHIPPED_OCR, good)
    rec = PlateRecognizer(good, device="cpu")
    state = torch.load(good, map_location="cpu", weights_only=True)
    for k, v in rec.net.state_dict().items():
        assert torch.equal(v.cpu(), state["module." + k]), k
    shutil.copyfile(good, tmp_path / "alpr_crnn.pth")  # a valid file under the default name ...
    bad = _garbage(tmp_path / "other.pth", 2048)  # ... must not stand in for a corrupt one
    with pytest.raises(ModelError) as e:
        PlateRecognizer(bad, device="cpu")
    assert str(bad) in str(e.value)


# --- images through the API -------------------------------------------------------------------

def test_load_image_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ModelError, match="unreadable"):
        load_image(_garbage(tmp_path / "x.jpg", 500))
    with pytest.raises(ModelError, match="unreadable"):
        load_image(_garbage(tmp_path / "empty.png", 0))
    with pytest.raises(ModelError, match="not found"):
        load_image(tmp_path)  # a folder is not an image


@pytest.mark.parametrize("shape", [(120, 160), (120, 160, 4), (1, 1, 3), (1, 1), (2, 300, 3), (300, 2)])
def test_odd_image_shapes_read_without_raising(reader, shape):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = reader.read(img)
    assert isinstance(out, list)
    assert all(isinstance(p, PlateReading) for p in out)
    crops = reader.read_crops([img])
    assert len(crops) == 1 and isinstance(crops[0], PlateReading)


@pytest.mark.parametrize("box", [(20, 2, 20, 5), (19.5, 9.5, 20, 10), (-5, -5, 3, 3), (0, 0, 20, 10),
                                 (25, 12, 30, 15), (3, 3, 3, 3)])
def test_crop_is_never_empty(box):
    """Detector boxes are clipped to the image and may be degenerate at its edge: the crop
    handed to the recognizer must still have pixels."""
    img = np.zeros((10, 20, 3), np.uint8)
    c = crop(img, box)
    assert c.ndim == 3 and c.shape[0] >= 1 and c.shape[1] >= 1


def test_batch_of_mixed_shapes(reader):
    scene, _ = render_scene(np.random.default_rng(3), size=(320, 240))
    images = [scene, cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY), cv2.cvtColor(scene, cv2.COLOR_BGR2BGRA),
              np.zeros((1, 1, 3), np.uint8)]
    out = reader.read_batch(images)
    assert len(out) == 4 and all(isinstance(r, list) for r in out)


@pytest.mark.parametrize("shape, says", [((0, 0, 3), "empty image"), ((0, 50, 3), "empty image"),
                                         ((16000, 16000, 3), "image too large: 16000x16000 px")])
def test_empty_and_oversized_images_are_a_one_line_model_error(reader, shape, says):
    img = np.zeros(shape, np.uint8)
    for read in (reader.read, lambda im: reader.read_crops([im])):
        with pytest.raises(ModelError, match=says) as e:
            read(img)
        assert "\n" not in str(e.value)


def test_reader_cli_names_an_oversized_image_and_reads_the_others(tmp_path):
    big = np.zeros((9000, 300, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a_big.png"), big)
    scene, _ = render_scene(np.random.default_rng(5), size=(320, 240))
    cv2.imwrite(str(tmp_path / "b_scene.jpg"), scene)
    r = run_module("models.reader", "--json", tmp_path, tmp_path=tmp_path)
    assert r.returncode == 2
    assert [line for line in r.stderr.splitlines() if "a_big.png" in line] == [
        f"error: image too large: 300x9000 px (at most 8192 px a side): {tmp_path / 'a_big.png'}"]
    assert [json.loads(line)["file"] for line in r.stdout.splitlines()] == [str(tmp_path / "b_scene.jpg")]


def test_unsupported_image_shape_is_a_model_error(reader):
    with pytest.raises(ModelError, match="unsupported image shape"):
        reader.read(np.zeros((10, 10, 2), np.uint8))


# --- the reader CLI ---------------------------------------------------------------------------

def test_reader_cli_bad_and_missing_images_do_not_stop_good_ones(tmp_path):
    bad = _garbage(tmp_path / "x.jpg", 500)
    good = tmp_path / "good.jpg"
    scene, _ = render_scene(np.random.default_rng(5), size=(320, 240))
    assert cv2.imwrite(str(good), scene)
    missing = tmp_path / "missing.jpg"
    r = run_module("models.reader", bad, good, missing, "--json", "--device", "cpu", tmp_path=tmp_path)
    assert r.returncode == 2, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    errors = _stderr_errors(r.stderr)
    assert len(errors) == 2, r.stderr
    assert str(bad) in errors[0] and "unreadable" in errors[0]
    assert str(missing) in errors[1] and "not found" in errors[1]
    out = r.stdout.strip().splitlines()
    assert len(out) == 1, r.stdout  # the good image, in between the bad ones, was still read
    rec = json.loads(out[0])
    assert rec["file"] == str(good) and isinstance(rec["plates"], list)
    for p in rec["plates"]:
        assert {"text", "confidence", "char_confidences", "box", "guess"} <= set(p)


def test_reader_cli_reads_a_folder_and_names_what_it_skips(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for name, seed in (("b.png", 6), ("a.jpg", 7)):
        scene, _ = render_scene(np.random.default_rng(seed), size=(320, 240))
        assert cv2.imwrite(str(folder / name), scene)
    (folder / "labels.csv").write_text("file,plate\n")
    _garbage(folder / "c.jpg", 300)
    r = run_module("models.reader", folder, "--json", "--device", "cpu", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["file"] for line in r.stdout.splitlines()] == [str(folder / "a.jpg"), str(folder / "b.png")]
    assert r.stderr.strip() == f"{folder}: skipping 2 files that are not images: c.jpg, labels.csv"

    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_module("models.reader", empty, "--device", "cpu", tmp_path=tmp_path)
    assert r.returncode == 2
    assert _stderr_errors(r.stderr) == [f"error: folder has no images: {empty}"]


# --- the evaluate CLI on broken datasets (fails before any model is loaded) ----------------------

def _dataset(root: Path, labels: str | None, images=("a.jpg",)) -> Path:
    (root / "images").mkdir(parents=True)
    for name in images:
        cv2.imwrite(str(root / "images" / name), np.zeros((20, 40, 3), np.uint8))
    if labels is not None:
        (root / "labels.csv").write_text(labels)
    return root


BROKEN = {
    "empty": ("file,x1,y1,x2,y2,plate\n", "lists no images"),
    "no-labels": (None, "no labels.csv"),
    "wrong-header": ("name,x1,y1,x2,y2,text\na.jpg,1,2,30,12,AB12\n", "header must start with"),
    "non-numeric": ("file,x1,y1,x2,y2,plate\na.jpg,1,2,x,12,AB12\n", "must be numbers"),
    "missing-image": ("file,plate\na.jpg,AB12\nnope.jpg,CD34\n", "image not found: images/nope.jpg"),
    "short-row": ("file,x1,y1,x2,y2,plate\na.jpg,1,2\n", "expected 6 columns"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_evaluate_cli_broken_dataset(tmp_path, case):
    labels, expected = BROKEN[case]
    root = _dataset(tmp_path / case, labels)
    r = run_module("models.evaluate", root, "--device", "cpu", tmp_path=tmp_path, timeout=120)
    assert r.returncode == 2, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    errors = _stderr_errors(r.stderr)
    assert len(errors) == 1 and expected in errors[0], r.stderr
    if case != "no-labels":
        assert "labels.csv" in errors[0]  # names the file at fault
    assert r.stdout.strip() == ""


@pytest.mark.parametrize("kwargs", [{"min_confidence": 2.0}, {"min_confidence": "0.5"},
                                    {"detection_confidence": -0.1}, {"min_confidence": float("nan")}])
def test_reader_confidences_out_of_range(kwargs):
    with pytest.raises(ModelError) as e:
        PlateReader(device="cpu", **kwargs)
    name = next(iter(kwargs))
    assert f"{name} must be a number from 0 to 1" in str(e.value) and _one_line(str(e.value))


def test_reader_cli_min_confidence_out_of_range(tmp_path):
    image = _garbage(tmp_path / "x.jpg", 500)
    r = run_module("models.reader", image, "--min-confidence", "2", "--device", "cpu", tmp_path=tmp_path)
    assert r.returncode == 2
    errors = _stderr_errors(r.stderr)
    assert len(errors) == 1 and "min_confidence must be a number from 0 to 1, got 2.0" in errors[0], r.stderr


def test_evaluate_cli_missing_dataset_folder(tmp_path):
    r = run_module("models.evaluate", tmp_path / "no-such-set", tmp_path=tmp_path, timeout=120)
    assert r.returncode == 2
    errors = _stderr_errors(r.stderr)
    assert len(errors) == 1 and "dataset folder not found" in errors[0] and "no-such-set" in errors[0]


def test_relative_weight_paths_in_a_config_are_the_projects_whatever_the_working_directory(tmp_path, monkeypatch):
    from models.defaults import ROOT, project_path
    from models.detector import DETECTOR_DIR

    monkeypatch.chdir(tmp_path)
    assert project_path("models/detector/plate_yolov8n.onnx") == DETECTOR_DIR / "plate_yolov8n.onnx"
    assert project_path(tmp_path / "mine.onnx") == tmp_path / "mine.onnx"
    with pytest.raises(ModelError, match=f"OCR weights not found: {ROOT / 'models' / 'ocr' / 'missing.pth'}"):
        PlateRecognizer(project_path("models/ocr/missing.pth"))
