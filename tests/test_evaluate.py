"""The evaluator: scoring rules on hand-made answers, dataset parsing, and one CLI run per layout."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import HELDOUT_FONT, needs_shared, run_module, shared_path
from models.evaluate import IOU_MATCH, Score, char_accuracy, iou, issuer_figures, load_dataset
from models.synth.camera import ocr_crop
from models.synth.plates import render_plate
from models.synth.scenes import render_scene

SUMMARY_KEYS = {"dataset", "layout", "images", "plates", "detection_rate", "exact_read_rate", "char_accuracy",
                "unmatched_boxes", "overlapped_below_match", "ms_per_image"}


# --- scoring rules ----------------------------------------------------------------------------

def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert iou((0, 0, 2, 1), (1, 0, 3, 1)) == pytest.approx(1 / 3)
    assert iou((0, 0, 10, 10), (0, 0, 4, 10)) == pytest.approx(0.4)
    assert iou((0, 0, 10, 10), (2, 2, 4, 4)) == pytest.approx(4 / 100)
    assert iou((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0  # degenerate boxes do not divide by zero
    a, b = (3, 1, 9, 7), (4, 0, 12, 5)
    assert iou(a, b) == pytest.approx(iou(b, a))


@pytest.mark.parametrize("pred,truth,expected", [
    ("ABC123", "ABC123", 1.0),
    ("", "ABC123", 0.0),
    ("ABC124", "ABC123", 5 / 6),  # one substitution
    ("ABC1234", "ABC123", 5 / 6),  # one insertion
    ("ABC12", "ABC123", 5 / 6),  # one deletion
    ("BAC123", "ABC123", 4 / 6),  # a swap is two edits
    ("XXXXXXXXXXXX", "AB", 0.0),  # floored at 0
    ("", "", 1.0),
])
def test_char_accuracy(pred, truth, expected):
    assert char_accuracy(pred, truth) == pytest.approx(expected)


def test_score_still_counts_hits_misses_and_extras():
    truth = [((10, 10, 110, 40), "ABC123"),  # read right
             ((200, 10, 300, 40), "XYZ789"),  # found, read wrong
             ((400, 300, 500, 330), "MISS01")]  # not found
    preds = [((12, 11, 108, 41), "ABC123"),
             ((205, 12, 298, 39), "XYZ780"),
             ((50, 300, 150, 330), "EXTRA1")]  # overlaps no plate
    s = Score()
    s.add_still(truth, preds)
    assert (s.plates, s.detected, s.read, s.unmatched, s.overlapped) == (3, 2, 1, 1, 0)
    assert s.chars == pytest.approx(1 + 5 / 6 + 0)


def test_score_still_edge_cases():
    s = Score()
    # IoU exactly at the threshold is not a detection; the box counts as unmatched.
    assert iou((0, 0, 10, 10), (0, 0, 4, 10)) == pytest.approx(IOU_MATCH)
    s.add_still([((0, 0, 10, 10), "AB12")], [((0, 0, 4, 10), "AB12")])
    assert (s.plates, s.detected, s.read, s.unmatched, s.overlapped) == (1, 0, 0, 1, 1)
    # A box around the whole plate where the label boxes only its characters (IoU 0.33):
    # missed, but counted apart from plates no box touches.
    s.add_still([((10, 10, 90, 30), "AB12")], [((0, 0, 100, 48), "AB12")])
    s.add_still([((0, 0, 10, 10), "CD34")], [((50, 50, 60, 60), "CD34")])
    assert (s.plates, s.detected, s.unmatched, s.overlapped) == (3, 0, 3, 2)
    # A failed read (None) on a found plate: detected, not read, no characters.
    s = Score()
    s.add_still([((0, 0, 10, 10), "AB12")], [((0, 0, 10, 10), None)])
    assert (s.plates, s.detected, s.read, s.chars, s.unmatched) == (1, 1, 0, 0.0, 0)
    # Two boxes on one plate: the better-overlapping one's text is scored, neither is unmatched.
    s = Score()
    s.add_still([((0, 0, 100, 30), "AB12")], [((0, 0, 70, 30), "ZZZZ"), ((1, 0, 100, 30), "AB12")])
    assert (s.plates, s.detected, s.read, s.unmatched) == (1, 1, 1, 0)
    # An image with no plates: every box is unmatched; no plates, no predictions: nothing.
    s = Score()
    s.add_still([], [((0, 0, 5, 5), "A"), ((9, 9, 20, 20), None)])
    s.add_still([], [])
    assert (s.plates, s.detected, s.unmatched) == (0, 0, 2)
    # Scores accumulate over images.
    s = Score()
    s.add_still([((0, 0, 10, 10), "A1")], [((0, 0, 10, 10), "A1")])
    s.add_still([((0, 0, 10, 10), "B2")], [])
    assert (s.plates, s.detected, s.read, s.unmatched) == (2, 1, 1, 0)


def test_score_crops():
    s = Score()
    s.add_crop("ABC123", "ABC123")
    s.add_crop("ABC123", "ABC124")
    s.add_crop("ABC123", None)
    assert (s.plates, s.read, s.detected) == (3, 1, 0)
    assert s.chars == pytest.approx(1 + 5 / 6)


# --- dataset parsing --------------------------------------------------------------------------

def _touch_images(root: Path, *names: str) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / "images" / n).write_bytes(b"not parsed here")


def test_load_dataset_stills(tmp_path):
    _touch_images(tmp_path, "a.jpg", "b.jpg")
    (tmp_path / "labels.csv").write_text(
        "\ufeffFile,X1,Y1,X2,Y2,Plate\n"  # BOM and capitals, as spreadsheets write them
        "a.jpg,1,2,30,12.5,xs-nb-23\n"
        "a.jpg,40,2,70,12,LS15 EBC\n"
        "\n"
        "b.jpg,5,5,50,20,7ABC123\n", encoding="utf-8")
    ds = load_dataset(tmp_path)
    assert ds.kind == "stills" and ds.root == tmp_path
    assert ds.labels == {"a.jpg": [((1.0, 2.0, 30.0, 12.5), "XSNB23", None), ((40.0, 2.0, 70.0, 12.0), "LS15EBC", None)],
                         "b.jpg": [((5.0, 5.0, 50.0, 20.0), "7ABC123", None)]}


def test_load_dataset_crops(tmp_path):
    _touch_images(tmp_path, "c1.png", "c2.png")
    (tmp_path / "labels.csv").write_text("file,plate,notes\nc1.png,ab-12-cd,front\nc2.png,7ABC123\n")
    ds = load_dataset(tmp_path)
    assert ds.kind == "crops"
    assert ds.labels == {"c1.png": [(None, "AB12CD", None)], "c2.png": [(None, "7ABC123", None)]}


@needs_shared
def test_load_dataset_on_the_shared_stills():
    ds = load_dataset(shared_path("eval-ucsd"))
    assert ds.kind == "stills"
    assert len(ds.labels) > 100
    for file, rows in ds.labels.items():
        for box, plate, _ in rows:
            assert box[2] > box[0] and box[3] > box[1]
            assert plate and plate.isalnum() and plate == plate.upper()


# --- the command line, end to end (needs the shipped weights) -----------------------------------

def _write_stills(root: Path) -> dict[str, list]:
    (root / "images").mkdir(parents=True)
    truth, lines, seed = {}, ["file,x1,y1,x2,y2,plate"], 0
    while len(truth) < 3:
        img, plates = render_scene(np.random.default_rng([515151, seed]), size=(640, 480), fonts=(HELDOUT_FONT,))
        seed += 1
        if not plates:
            continue
        name = f"scene{len(truth)}.jpg"
        assert cv2.imwrite(str(root / "images" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        truth[name] = [(tuple(round(v) for v in p.box), p.text) for p in plates]
        lines += [f"{name},{','.join(str(v) for v in box)},{text}" for box, text in truth[name]]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return truth


def _write_crops(root: Path) -> dict[str, str]:
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(525252)
    truth = {}
    for i in range(3):
        plate = render_plate(rng, fonts=(HELDOUT_FONT,), glyph_prob=0.0)
        name = f"crop{i}.png"
        assert cv2.imwrite(str(root / "images" / name), ocr_crop(rng, plate))
        truth[name] = plate.text
    (root / "labels.csv").write_text("file,plate\n" + "".join(f"{n},{t}\n" for n, t in truth.items()))
    return truth


def _summary(r) -> dict:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr
    last = r.stdout.strip().splitlines()[-1]
    summary = json.loads(last)
    assert set(summary) == SUMMARY_KEYS
    return summary


def _rate(x) -> bool:
    return isinstance(x, (int, float)) and 0.0 <= x <= 1.0


def test_evaluate_cli_on_stills(tmp_path):
    root = tmp_path / "stills"
    truth = _write_stills(root)
    pred_path = tmp_path / "stills.jsonl"
    r = run_module("models.evaluate", root, "--predictions", pred_path, "--device", "cpu", tmp_path=tmp_path)
    s = _summary(r)
    n_plates = sum(len(v) for v in truth.values())
    assert s["dataset"] == str(root) and s["layout"] == "stills"
    assert s["images"] == 3 and s["plates"] == n_plates
    assert _rate(s["detection_rate"]) and _rate(s["exact_read_rate"]) and _rate(s["char_accuracy"])
    assert s["exact_read_rate"] <= s["detection_rate"]
    assert isinstance(s["unmatched_boxes"], int) and s["unmatched_boxes"] >= 0
    assert s["ms_per_image"] > 0

    records = [json.loads(line) for line in pred_path.read_text().splitlines()]
    assert sorted(rec["file"] for rec in records) == sorted(truth)
    score = Score()
    for rec in records:
        assert set(rec) == {"file", "plates"}
        for p in rec["plates"]:
            assert set(p) == {"text", "confidence", "char_confidences", "box"}
            assert p["text"] is None or (isinstance(p["text"], str) and p["text"].isalnum())
            assert 0.0 <= p["confidence"] <= 1.0
            assert all(0.0 <= c <= 1.0 for c in p["char_confidences"])
            if p["text"] is not None:
                assert len(p["char_confidences"]) == len(p["text"])
            assert len(p["box"]) == 4 and p["box"][0] < p["box"][2] and p["box"][1] < p["box"][3]
        score.add_still(truth[rec["file"]], [(tuple(p["box"]), p["text"]) for p in rec["plates"]])
    # The summary is the scoring rule applied to the predictions it wrote.
    assert s["detection_rate"] == pytest.approx(score.detected / score.plates, abs=1e-4)
    assert s["exact_read_rate"] == pytest.approx(score.read / score.plates, abs=1e-4)
    assert s["unmatched_boxes"] == score.unmatched


def test_evaluate_cli_on_crops(tmp_path):
    root = tmp_path / "crops"
    truth = _write_crops(root)
    pred_path = tmp_path / "crops.jsonl"
    r = run_module("models.evaluate", root, "--predictions", pred_path, "--device", "cpu", tmp_path=tmp_path)
    s = _summary(r)
    assert s["dataset"] == str(root) and s["layout"] == "crops"
    assert s["images"] == 3 and s["plates"] == 3
    assert s["detection_rate"] is None and s["unmatched_boxes"] is None
    assert _rate(s["exact_read_rate"]) and _rate(s["char_accuracy"]) and s["ms_per_image"] > 0

    records = [json.loads(line) for line in pred_path.read_text().splitlines()]
    assert len(records) == 3 and sorted(rec["file"] for rec in records) == sorted(truth)
    for rec in records:
        assert set(rec) == {"file", "text", "confidence"}
        assert rec["text"] is None or isinstance(rec["text"], str)
        assert 0.0 <= rec["confidence"] <= 1.0
    exact = sum(rec["text"] == truth[rec["file"]] for rec in records) / 3
    assert s["exact_read_rate"] == pytest.approx(exact, abs=1e-4)


def test_issuer_scoring_on_a_tiny_fixture():
    """Labels ca, ca, ny, nl; read ca, ny, ny and none: accuracy where given 2/3, coverage 3/4;
    precision ca 1, ny 1/2, nl 0; recall ca 1/2, ny 1, nl 0."""
    f = issuer_figures([("ca", "ca"), ("ca", "ny"), ("ny", "ny"), ("nl", None)])
    assert f["issuer_accuracy"] == round(2 / 3, 4) and f["issuer_coverage"] == 0.75
    assert f["issuer_macro_precision"] == 0.5 and f["issuer_macro_recall"] == 0.5
    assert f["issuer_macro_f1"] == round((2 / 3 + 2 / 3 + 0) / 3, 4)
    assert f["issuer_confused"] == ["ca->ny x1"]


def test_a_region_column_scores_the_issuer(tmp_path):
    _touch_images(tmp_path, "c1.png")
    (tmp_path / "labels.csv").write_text("file,plate,region\nc1.png,AB12CD,NY\n")
    assert load_dataset(tmp_path).labels == {"c1.png": [(None, "AB12CD", "ny")]}
    s = Score()
    s.add_crop("AB12CD", "AB12CD", "ny", None)
    s.add_still([((0, 0, 10, 10), "X1", "ca")], [((0, 0, 10, 10), "X1", "ca")])
    assert s.issuers == [("ny", None), ("ca", "ca")]
