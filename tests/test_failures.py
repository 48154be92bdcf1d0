"""A stage that raises stops the pipeline loudly: one log line naming it, every camera failed,
nothing journaled lost, and a non-zero exit from run_stream.py."""
from __future__ import annotations

import logging

import pytest

import run_stream
from config.schema import parse_config
from models.detector import Detection, PlateDetector
from models.issuer import Issuer
from models.recognizer import TextRead
from models.synth.video import render_video
from stream.journal import Journal, JournalError, JournalReader
from stream.pipeline import Models, Pipeline, StageFailed
from stream.publish import EventPublisher
from stream.sinks import FileSink
from stream.vote import PlateVoter
from trackers.kalman import SortTracker

FPS = 10.0
FAIL_AFTER = 15  # calls that work before the injected failure: the first events are out by then


SEGMENT = 6  # detector calls per car


class CarAfterCar:
    """Every SEGMENT calls a new plate box, on the other side of the frame from the last one,
    each a little wider: car after car, whose widths `WidthReader` reads as distinct plates."""

    def __init__(self):
        self.calls = 0

    def detect(self, images, conf, stills=False, weak=None, tiled=None):
        out = []
        for _ in images:
            k, self.calls = self.calls // SEGMENT, self.calls + 1
            x = 5.0 if k % 2 == 0 else 85.0
            out.append([Detection((x, 40.0, x + 50.0 + 2 * k, 70.0), 0.9)])
        return out


class WidthReader:
    def read(self, crops, batch_size):
        return [TextRead(f"AB{c.shape[1]:03d}CD", 0.9, [0.99] * 7, None) for c in crops]

    def issuers(self, crops, texts):
        return [Issuer() for _ in crops]


def failing(fn, error: Exception, after: int = FAIL_AFTER):
    calls = [0]

    def f(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise error
        return fn(*args, **kwargs)
    return f


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("failures") / "gate.mp4"
    render_video(path, seed=3, cars=1, seconds=6.0, fps=FPS, size=(160, 120))
    return path


def _pipeline(video, tmp_path, detector=None, reader=None, sinks=None) -> tuple[Pipeline, list[dict]]:
    config = parse_config({
        "cameras": [{"id": "gate1", "source": str(video)}],
        "voting": {"min_agreeing": 2, "require_format": False},
        "tracker": {"max_age": 2, "min_hits": 1},
        "publisher": {"endpoint": "tcp://127.0.0.1:*", "replay_endpoint": "tcp://127.0.0.1:*"},
        "journal": {"path": str(tmp_path / "events.db")}, **({"sinks": sinks} if sinks else {})})
    events: list[dict] = []
    models = Models(detector or CarAfterCar(), reader or WidthReader())
    return Pipeline(config, on_event=events.append, models=models), events


STAGES = {  # the stage named in the failure, and how it is made to fail
    "detect": ("detect", lambda mp, d, r: mp.setattr(d, "detect", failing(d.detect, RuntimeError("injected")))),
    "tracker": ("track", lambda mp, d, r: mp.setattr(SortTracker, "update",
                                                     failing(SortTracker.update, RuntimeError("injected")))),
    "ocr": ("ocr", lambda mp, d, r: mp.setattr(r, "read", failing(r.read, RuntimeError("injected"), 6))),
    "voter": ("vote", lambda mp, d, r: mp.setattr(PlateVoter, "add",
                                                  failing(PlateVoter.add, RuntimeError("injected"), 6))),
    # the journal and the publisher fail on the second event
    "journal": ("publish", lambda mp, d, r: mp.setattr(Journal, "append",
                                                       failing(Journal.append, JournalError("disk full"), 1))),
    "publisher": ("publish", lambda mp, d, r: mp.setattr(EventPublisher, "publish",
                                                         failing(EventPublisher.publish, RuntimeError("injected"), 1))),
}


@pytest.mark.parametrize("part", list(STAGES))
def test_a_failing_stage_stops_the_pipeline_and_loses_no_journaled_event(video, tmp_path, monkeypatch, caplog, part):
    stage, inject = STAGES[part]
    detector, reader = CarAfterCar(), WidthReader()
    inject(monkeypatch, detector, reader)
    pipeline, events = _pipeline(video, tmp_path, detector, reader)
    with caplog.at_level(logging.ERROR), pytest.raises(StageFailed) as e:
        pipeline.run()
    assert e.value.stage == stage
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pipeline stopped: ")]
    assert lines == [f"pipeline stopped: {e.value}"] and "\n" not in lines[0]
    assert str(e.value).startswith(f"{stage} failed: ")
    assert all(c.state == "failed" and c.last_error == str(e.value) for c in pipeline.captures)
    journaled = JournalReader(tmp_path / "events.db").after(0, 100)
    assert events
    assert [j["event_id"] for j in journaled] == [ev["event_id"] for ev in events]


def test_a_sink_that_fails_to_deliver_does_not_stop_the_pipeline(video, tmp_path, monkeypatch, caplog):
    """A delivery failure (a webhook down, a full disk under a CSV file) is the sink's to log and
    count: the gate keeps getting its events on the other outputs."""
    monkeypatch.setattr(FileSink, "deliver", lambda self, event: 1 / 0)
    pipeline, events = _pipeline(video, tmp_path, sinks={"csv": str(tmp_path / "events.csv")})
    with caplog.at_level(logging.ERROR):
        stats = pipeline.run()
    assert stats["events"] == len(events) >= 1
    assert any("ZeroDivisionError" in r.getMessage() and r.getMessage().startswith("sink ") for r in caplog.records)


def test_run_stream_exits_1_naming_the_stage(video, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(PlateDetector, "detect", failing(PlateDetector.detect, RuntimeError("injected")))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"publisher:\n  endpoint: tcp://127.0.0.1:*\n  replay_endpoint: tcp://127.0.0.1:*\n"
                   f"journal:\n  path: {tmp_path / 'events.db'}\n")
    assert run_stream.main(["--config", str(cfg), "--source", str(video), "--quiet"]) == 1
    assert "error: detect failed: RuntimeError: injected" in capsys.readouterr().err.splitlines()
