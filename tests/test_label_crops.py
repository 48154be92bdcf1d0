"""The teacher that labels real crops for OCR training (models.label_crops), on generated frames."""
from __future__ import annotations

import csv
import re

import cv2
import numpy as np
import pytest

from models import label_crops
from models.errors import ModelError
from models.label_crops import _one_edit, label
from models.synth.plates import TRAIN_FONTS, render_plate

pytest.importorskip("rapidocr_onnxruntime", reason="the teacher is installed by setup.sh (requirements-peer.txt)")


def _yolo_folder(root, n: int) -> list[str]:
    """n frames in the detect-romanian layout, each with one clean EU plate and its box."""
    rng = np.random.default_rng(22)
    texts = []
    for split in ("train", "valid"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
    for i in range(n):
        plate = render_plate(rng, family="eu", fonts=TRAIN_FONTS[:1], glyph_prob=0.0, two_row_prob=0.0)
        frame = np.full((360, 640, 3), 90, np.uint8)
        ph, pw = plate.image.shape[:2]
        x, y = 100, 120
        frame[y:y + ph, x:x + pw] = plate.image
        split = "train" if i % 2 else "valid"
        cv2.imwrite(str(root / split / "images" / f"f{i}.jpg"), frame)
        (root / split / "labels" / f"f{i}.txt").write_text(
            f"0 {(x + pw / 2) / 640} {(y + ph / 2) / 360} {pw / 640} {ph / 360}\n")
        texts.append(plate.text)
    return texts


def test_teacher_keeps_confident_format_valid_reads(tmp_path):
    texts = _yolo_folder(tmp_path / "real", 10)
    counts = label(tmp_path / "real", tmp_path / "out")
    assert counts["crops"] == 10
    kept = []
    for split in ("train", "val"):
        rows = list(csv.reader((tmp_path / "out" / split / "labels.csv").read_text().splitlines()))
        assert rows[0] == ["file", "plate"]
        for file, plate in rows[1:]:
            assert (tmp_path / "out" / split / "images" / file).is_file()
            kept.append(plate)
    right = [k for k in kept if k in texts]
    # the teacher is right about most of what it keeps (on real crops about nine in ten)
    assert len(right) >= 2 and len(right) >= 0.6 * len(kept), f"the teacher kept {kept} of {texts}"
    assert counts["train"] + counts["val"] == len(kept)


def test_hand_labels_take_precedence_over_the_teacher(tmp_path, monkeypatch):
    texts = _yolo_folder(tmp_path / "real", 4)
    hand = tmp_path / "hand.csv"
    # f1 is a train frame (odd); its plate relabelled, as a person corrects the teacher
    hand.write_text("file,plate\ntrain_f1_0.png,IF05TAC\n")
    monkeypatch.setattr(label_crops, "HAND_LABELS", hand)
    label(tmp_path / "real", tmp_path / "out")
    labels = {}
    for split in ("train", "val"):
        labels |= dict(list(csv.reader((tmp_path / "out" / split / "labels.csv").read_text().splitlines()))[1:])
    assert labels["train_f1_0.png"] == "IF05TAC" != texts[1]
    assert len(labels) >= 2  # the other frames still go to the teacher


def test_shipped_hand_labels_are_well_formed():
    rows = list(csv.reader(label_crops.HAND_LABELS.read_text().splitlines()))
    assert rows[0] == ["file", "plate"]
    files = [r[0] for r in rows[1:]]
    assert len(files) == len(set(files)) > 0
    assert all(re.fullmatch(r"(train|valid)_.+_\d+\.png", f) for f in files)
    assert all(re.fullmatch(r"[A-Z0-9]{4,8}", r[1]) for r in rows[1:])


def test_no_frames_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelError, match="no frames in"):
        label(tmp_path, tmp_path / "out")


def test_one_edit():
    assert _one_edit("B310YLV", "B310VLV") and _one_edit("B19FLN", "B198FLN") and _one_edit("B198FLN", "B19FLN")
    assert not _one_edit("B310VLV", "B310VLV") and not _one_edit("AB12CD", "BA12CD") and not _one_edit("AB", "ABCD")
