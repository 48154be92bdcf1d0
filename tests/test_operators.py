"""What operators use every day: watchlists and alerts, a parked car's single event, the evidence
kept with an event. Stand-in models; real sockets, videos and journals."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
import zmq

from config.schema import WatchlistConfig, parse_config
from models.detector import Detection
from models.issuer import Issuer
from models.recognizer import TextRead
from stream.messages import Match
from stream.journal import JournalReader
from stream.pipeline import Models, Pipeline
from stream.watchlist import Watchlists


def test_a_plate_one_confusable_character_off_a_listed_one_matches():
    lists = Watchlists([WatchlistConfig("stolen", ["AB12-CDE", "^XY[0-9]{3}$"]),
                        WatchlistConfig("staff", ["KL55MNO"], action="ignore")])
    assert lists.match(["A812CDE"]) == Match("stolen", "AB12CDE", 0.5, "alert")  # B/8
    assert lists.match(["AB12CDX"]) == Match("stolen", "AB12CDE", 1.0, "alert")  # any other edit: 1
    assert lists.match(["AX12CDX"]) is None  # two edits
    assert lists.match(["QQ1ZZZ", "XY123"]) == Match("stolen", "^XY[0-9]{3}$", 0.0, "alert")  # a runner-up
    assert lists.match(["KL55MN0"]) == Match("staff", "KL55MNO", 0.5, "ignore")


def test_a_reloaded_list_file_takes_effect(tmp_path):
    path = tmp_path / "stolen.csv"
    path.write_text("plate,note\nAB12CDE,red van\n")
    lists = Watchlists([WatchlistConfig("stolen", file=str(path))])
    assert lists.match(["AB12CDE"]) and not lists.match(["ZZ99ZZZ"])
    path.write_text("ZZ99ZZZ\n")
    lists.reload()
    assert lists.match(["ZZ99ZZZ"]) and not lists.match(["AB12CDE"])
    path.unlink()  # an unreadable file keeps what was loaded
    lists.reload()
    assert lists.match(["ZZ99ZZZ"])


class FixedBox:
    """One plate box, except in the frames of `gaps` (an occlusion)."""

    def __init__(self, gaps=range(0)):
        self.calls, self.gaps = 0, gaps

    def detect(self, images, conf, stills=False, weak=None, tiled=None):
        out = []
        for _ in images:
            out.append([] if self.calls in self.gaps else [Detection((40.0, 40.0, 120.0, 70.0), 0.9)])
            self.calls += 1
        return out


class Reads:
    def __init__(self, text: str):
        self.text = text

    def read(self, crops, batch_size):
        return [TextRead(self.text, 0.9, [0.99] * len(self.text), "uk") for _ in crops]

    def issuers(self, crops, texts):
        return [Issuer("gb", 0.6) for _ in crops]


def _video(path, seconds: float, fps: float = 5.0):
    """A still scene: the plate's crop never gets sharper, so it is read only until decided."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (160, 120))
    frame = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for _ in range(int(seconds * fps)):
        writer.write(frame)
    writer.release()
    return path


class Hook(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):
        type(self).bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("action", ["alert", "ignore"])
def test_a_listed_plate_alerts_on_its_topic_and_on_a_webhook_unless_ignored(tmp_path, action):
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Hook,), {"bodies": []}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = parse_config({
        "cameras": [{"id": "gate", "source": str(_video(tmp_path / "gate.mp4", 3.0))}],
        "publisher": {"endpoint": "tcp://127.0.0.1:*", "replay_endpoint": "tcp://127.0.0.1:*"},
        "journal": {"path": str(tmp_path / "events.db")},
        "sinks": {"webhooks": [{"url": f"http://127.0.0.1:{server.server_address[1]}/hook"}]},
        "watchlists": [{"name": "stolen", "plates": ["AB12CDE"], "action": action}]})
    pipeline = Pipeline(config, models=Models(FixedBox(), Reads("A812CDE")))
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"alert.")
    sub.connect(pipeline.publisher.endpoint)
    try:
        pipeline.run()
        alerts = [json.loads(sub.recv_multipart()[1]) for _ in range(1) if sub.poll(3000)]
    finally:
        sub.close(linger=0)
        server.shutdown()
        server.server_close()
    (event,) = server.RequestHandlerClass.bodies
    assert event["plate"] == "A812CDE" and event["match"] == {"list": "stolen", "entry": "AB12CDE", "distance": 0.5}
    assert event["alert"] is (action == "alert")
    assert alerts == ([event] if action == "alert" else [])


def test_a_car_parked_for_a_minute_gives_one_event(tmp_path):
    """In view for 60 s, hidden for a few seconds halfway (a new track finds it again, some 30 s
    after its plate was last read): one event; dedupe counts from when it was last in view."""
    video = _video(tmp_path / "parked.mp4", 60.0)
    config = parse_config({
        "cameras": [{"id": "yard", "source": str(video)}],
        "tracker": {"max_age": 3},
        "publisher": {"endpoint": "tcp://127.0.0.1:*", "replay_endpoint": "tcp://127.0.0.1:*"},
        "journal": {"path": str(tmp_path / "events.db")}})
    events: list[dict] = []
    # once read, every third frame is detected: calls 50-55 are some 30 s in; the track ends
    detector = FixedBox(gaps=range(50, 56))
    pipeline = Pipeline(config, on_event=events.append, models=Models(detector, Reads("KL55MNO")))
    pipeline.run()
    assert [(e["plate"], e["track_id"]) for e in events] == [("KL55MNO", 1)]
    assert events[0]["direction"] == {"motion": "stationary", "angle": None}


class BrightnessReader(Reads):
    """Reads AB12CDE, more surely the brighter the crop; the darkest frames read another text."""

    def read(self, crops, batch_size):
        out = []
        for c in crops:
            level = float(c.mean()) / 255
            text = "AB12CDE" if level > 0.2 else "AB12CDF"
            out.append(TextRead(text, 0.5 + 0.45 * level, [0.9] * 7, "uk"))
        return out


def test_the_crop_kept_with_an_event_is_the_one_whose_read_won(tmp_path):
    """Frame k is grey level 20 + 10 k, so a crop tells its frame; the brightest read of the
    winning text is the evidence, and its frame is the event's `captured`."""
    path = tmp_path / "ramp.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (160, 120))
    for k in range(20):
        writer.write(np.full((120, 160, 3), 20 + 10 * k, np.uint8))
    writer.release()
    config = parse_config({
        "cameras": [{"id": "gate", "source": str(path)}],
        "voting": {"min_reads_to_finalize": 99, "max_reads_per_track": 99},  # the track's end decides
        "publisher": {"endpoint": "tcp://127.0.0.1:*", "replay_endpoint": "tcp://127.0.0.1:*"},
        "journal": {"path": str(tmp_path / "events.db")}})
    events: list[dict] = []
    Pipeline(config, on_event=events.append, models=Models(FixedBox(), BrightnessReader("-"))).run()
    (event,) = events
    frame = event["captured"]["frame"]
    reader = JournalReader(tmp_path / "events.db")
    crop = cv2.imdecode(np.frombuffer(reader.image(event["event_id"], "crop"), np.uint8), cv2.IMREAD_COLOR)
    vehicle = cv2.imdecode(np.frombuffer(reader.image(event["event_id"], "vehicle"), np.uint8), cv2.IMREAD_COLOR)
    reader.close()
    assert event["plate"] == "AB12CDE" and abs(crop.mean() - (20 + 10 * frame)) < 4
    assert vehicle.shape[1] > crop.shape[1] and abs(vehicle.mean() - crop.mean()) < 4  # the same frame, wider
