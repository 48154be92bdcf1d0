"""The benchmark command on the shipped sample: real pipeline, figures that add up."""
from __future__ import annotations

import json

import cv2

from conftest import ROOT, run_module
from models.synth.video import render_video

SAMPLE = ROOT / "samples" / "traffic.mp4"
TRUTH = json.loads((ROOT / "samples" / "traffic.json").read_text())


def test_bench_two_streams_reports_every_figure(tmp_path):
    r = run_module("stream.bench", "--streams", "2", "--stalled-subscriber", "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    frames = int(cv2.VideoCapture(str(SAMPLE)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert b["frames"] == 2 * frames and b["dropped"] == 0
    assert b["events"] >= len(TRUTH) and b["fps"] > 0
    assert set(b["stage_ms_per_frame"]) == {"decode", "detect", "track", "ocr", "vote", "publish"}
    assert b["stage_ms_per_frame"]["detect"] > 0 and b["stage_ms_per_frame"]["ocr"] > 0
    assert 0 < b["latency_ms_p50"] <= b["latency_ms_p95"]
    assert 0 < b["rss_mb"]["start"] <= b["rss_mb"]["peak"] and b["rss_mb"]["end"] <= b["rss_mb"]["peak"]
    assert b["max_queue"]["frames"] <= 8 and b["max_queue"]["read"] <= 16
    assert b["hardware"]["cores"] >= 1 and b["hardware"]["device"] in ("cpu", "cuda:0")


def test_bench_runs_the_peer_on_the_same_video(tmp_path):
    video = tmp_path / "short.mp4"
    cars = render_video(video, seed=5, cars=2, seconds=3.0, fps=10.0, size=(640, 360))
    (tmp_path / "plates.json").write_text(json.dumps([c.plate for c in cars]))
    r = run_module("stream.bench", "--source", video, "--truth", tmp_path / "plates.json", "--peer", "--json",
                   tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["peer"]["frames"] == b["frames"] == 30 and b["peer"]["fps"] > 0
    assert b["truth_plates"] == 2 and b["plates_read"] == 2 and 0 <= b["peer"]["plates_read"] <= 2


def test_bench_bad_arguments_are_one_line_errors(tmp_path):
    r = run_module("stream.bench", "--source", tmp_path / "missing.mp4", tmp_path=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == f"error: source not found: {tmp_path / 'missing.mp4'}"
    r = run_module("stream.bench", "--streams", "0", tmp_path=tmp_path)
    assert r.returncode == 2 and "--streams must be >= 1" in r.stderr
