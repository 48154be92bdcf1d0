"""Event publishing over a real ZeroMQ PUB/SUB on loopback: no models.

Every receive has a timeout, so a lost message fails the test instead of hanging it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from config.schema import PublisherConfig
from conftest import ROOT, offline_env, run_module
from models.issuer import Issuer
from stream.journal import Journal
from stream.messages import Candidate, PlateDecision
from stream.publish import SCHEMA_VERSION, Clock, EventPublisher, PublishError, event_json
from stream.subscribe import receive
from stream.wire import CameraHealth, problems, schemas

ANY_PORT = "tcp://127.0.0.1:*"  # the publisher binds a free port and reports it in .endpoint
REPLAY = Clock(epoch=1_700_000_000.0)  # 2023-11-14T22:13:20Z
WAIT_MS = 5000
KEYS = {"type", "schema_version", "event_id", "seq", "camera_id", "track_id", "plate", "region", "country",
        "country_confidence", "subdivision", "subdivision_confidence", "confidence", "char_confidences", "candidates",
        "box", "first_seen", "last_seen", "reads", "captured", "direction", "match", "alert"}
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def decision(camera: str = "cam0", track: int = 1, **changes) -> PlateDecision:
    fields = dict(camera_id=camera, track_id=track, plate="AB12CDE", region="uk", confidence=0.812345,
                  char_confidences=[0.99, 0.95, 0.9, 0.97, 0.99, 0.98, 0.96],
                  candidates=[Candidate("AB12CDE", 0.71234), Candidate("A812CDE", 0.2)], reads=5,
                  first_seen=(12.3456, 3), last_seen=(12.9, 9), box=(10.04, 20.0, 110.06, 45.5))
    return PlateDecision(**{**fields, **changes})


@pytest.fixture
def publisher():
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT)) as p:
        yield p


@pytest.fixture
def crop_publisher():
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT, send_crop=True)) as p:
        yield p


def joined(endpoint: str, topic: bytes = b"plate.") -> zmq.Socket:
    """A SUB socket on `endpoint` that is already receiving. A PUB drops what it sends before
    a subscriber has joined (the slow joiner), so wait for the connection's handshake, then
    give the subscription that follows it a moment to reach the publisher."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    monitor = sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    sub.connect(endpoint)
    assert monitor.poll(WAIT_MS), f"no handshake with {endpoint}"
    recv_monitor_message(monitor)
    sub.disable_monitor()
    monitor.close()
    time.sleep(0.2)
    return sub


def recv(sub: zmq.Socket) -> list[bytes]:
    assert sub.poll(WAIT_MS), "no message within 5 s"
    return sub.recv_multipart()


def publish_until(publisher: EventPublisher, done, deadline: float = 30) -> list[dict]:
    """Publish an event every 50 ms until `done()`; for subscribers whose joining moment is
    unknown (another thread or process), which then see some run of consecutive events."""
    sent = []
    end = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < end, "subscriber did not finish in time"
        sent.append(publisher.publish(decision(track=len(sent) + 1), REPLAY))
        time.sleep(0.05)
    return sent


def test_events_arrive_in_order_under_their_camera_topics(publisher):
    sub = joined(publisher.endpoint)
    cameras = ["cam0", "gate-2", "cam0", "north_1", "gate-2"]
    sent = [publisher.publish(decision(camera=c, track=i), REPLAY) for i, c in enumerate(cameras)]
    got = [recv(sub) for _ in cameras]
    sub.close()
    assert [e["seq"] for e in sent] == [1, 2, 3, 4, 5]
    assert [f[0] for f in got] == [f"plate.{c}".encode() for c in cameras]
    assert all(len(f) == 2 for f in got)
    assert [json.loads(f[1]) for f in got] == sent


def test_a_subscriber_gets_only_its_topic(publisher):
    sub = joined(publisher.endpoint, b"plate.gate")
    for camera in ["cam0", "gate", "cam1", "gate"]:
        publisher.publish(decision(camera=camera), REPLAY)
    got = [json.loads(recv(sub)[1]) for _ in range(2)]
    assert [(e["camera_id"], e["seq"]) for e in got] == [("gate", 2), ("gate", 4)]
    assert not sub.poll(200)
    sub.close()


def test_health_goes_to_health_topics_unnumbered_and_never_to_plate_subscribers(publisher):
    plates, everything = joined(publisher.endpoint), joined(publisher.endpoint, b"")
    publisher.send_health("cam0", {"type": "health", "camera_id": "cam0"})
    sent = publisher.publish(decision(), REPLAY)
    publisher.send_health("process", {"type": "health", "last_seq": publisher.last_seq})
    got = [recv(everything) for _ in range(3)]
    assert [f[0] for f in got] == [b"health.cam0", b"plate.cam0", b"health.process"]
    assert json.loads(got[2][1]) == {"type": "health", "last_seq": 1}  # health takes no seq of its own
    assert json.loads(recv(plates)[1]) == sent and not plates.poll(200)
    assert publisher.publish(decision(), REPLAY)["seq"] == 2
    plates.close()
    everything.close()


def test_event_carries_every_documented_key_with_its_type(publisher):
    sub = joined(publisher.endpoint)
    # numpy scalars, as the tracker and reader produce them, must still make valid JSON
    d = decision(box=tuple(np.float32(v) for v in (10.04, 20.0, 110.06, 45.5)), confidence=np.float64(0.812345),
                 track_id=np.int64(7))
    publisher.publish(d, REPLAY)
    e = json.loads(recv(sub)[1])
    sub.close()
    assert set(e) == KEYS
    assert e["type"] == "plate" and e["schema_version"] == SCHEMA_VERSION == 2
    assert re.fullmatch(r"[0-9a-f]{32}", e["event_id"])
    assert e["seq"] == 1 and e["camera_id"] == "cam0" and e["track_id"] == 7
    assert e["plate"] == "AB12CDE" and e["region"] == "uk" and e["reads"] == 5
    assert e["confidence"] == 0.8123
    assert e["char_confidences"] == [0.99, 0.95, 0.9, 0.97, 0.99, 0.98, 0.96]
    assert e["candidates"] == [{"text": "AB12CDE", "score": 0.7123}, {"text": "A812CDE", "score": 0.2}]
    assert e["box"] == [10.0, 20.0, 110.1, 45.5]
    assert e["first_seen"] == {"time": "2023-11-14T22:13:32.346Z", "offset": 12.3456, "frame": 3}
    assert e["last_seen"] == {"time": "2023-11-14T22:13:32.900Z", "offset": 12.9, "frame": 9}
    for seen in (e["first_seen"], e["last_seen"]):
        assert ISO_MS.fullmatch(seen["time"])
        assert isinstance(seen["offset"], float) and isinstance(seen["frame"], int)
    assert all(isinstance(v, float) for v in [e["confidence"], *e["char_confidences"], *e["box"]])


def test_live_timestamps_already_are_epoch_time():
    d = decision(region=None, first_seen=(1_700_000_000.25, 0), last_seen=(1_700_000_001.0, 30))
    e = event_json(d, 1, "x", Clock())
    assert e["first_seen"] == {"time": "2023-11-14T22:13:20.250Z", "offset": 1_700_000_000.25, "frame": 0}
    assert e["last_seen"]["time"] == "2023-11-14T22:13:21.000Z"
    assert e["region"] is None and json.loads(json.dumps(e))["region"] is None


def test_crop_frame_only_with_send_crop(publisher, crop_publisher):
    crop = np.random.default_rng(0).integers(0, 256, (24, 96, 3), dtype=np.uint8)
    plain, with_crop = joined(publisher.endpoint), joined(crop_publisher.endpoint)
    publisher.publish(decision(crop=crop), REPLAY)
    crop_publisher.publish(decision(crop=crop), REPLAY)
    crop_publisher.publish(decision(), REPLAY)  # no crop to send
    assert len(recv(plain)) == 2
    frames = recv(with_crop)
    assert len(frames) == 3
    image = cv2.imdecode(np.frombuffer(frames[2], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == crop.shape
    assert len(recv(with_crop)) == 2
    plain.close()
    with_crop.close()


def test_a_crop_that_cannot_be_encoded_still_sends_the_event(crop_publisher, caplog):
    sub = joined(crop_publisher.endpoint)
    crop_publisher.publish(decision(crop=np.zeros((0, 0, 3), np.uint8)), REPLAY)
    frames = recv(sub)
    sub.close()
    assert len(frames) == 2 and json.loads(frames[1])["plate"] == "AB12CDE"
    assert "cannot be encoded" in caplog.text


def test_correction_event(publisher):
    sub = joined(publisher.endpoint)
    publisher.publish(decision(plate="AB12CDF"), REPLAY)
    publisher.publish(decision(plate="AB12CDE", correction_of="AB12CDF"), REPLAY)
    first, second = (json.loads(recv(sub)[1]) for _ in range(2))
    sub.close()
    assert first["type"] == "plate" and "corrects" not in first
    assert second["type"] == "correction" and second["corrects"] == "AB12CDF" and second["plate"] == "AB12CDE"
    assert set(second) == KEYS | {"corrects"} and second["seq"] == 2


def test_same_decision_and_clock_give_the_same_event_but_its_id():
    events = []
    for _ in range(2):  # two runs of a replay: a fresh publisher each
        with EventPublisher(PublisherConfig(endpoint=ANY_PORT)) as p:
            events.append([p.publish(decision(track=t), REPLAY) for t in (1, 2)])
    assert events[0][0]["event_id"] != events[1][0]["event_id"]
    strip = [[{k: v for k, v in e.items() if k != "event_id"} for e in run] for run in events]
    assert strip[0] == strip[1]
    assert json.dumps(strip[0]) == json.dumps(strip[1])  # key order too
    assert event_json(decision(), 4, "id", REPLAY) == event_json(decision(), 4, "id", REPLAY)


def test_seq_continues_from_the_journal(tmp_path):
    journal = Journal(tmp_path / "events.db")
    for run in range(2):  # a restart: a new publisher on the same journal
        with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as p:
            assert [p.publish(decision(), REPLAY)["seq"] for _ in range(3)] == [3 * run + 1, 3 * run + 2, 3 * run + 3]
    assert [e["seq"] for e in journal.after(0, 10)] == [1, 2, 3, 4, 5, 6]
    journal.close()


def test_second_publisher_on_the_same_endpoint_fails_in_one_line(publisher):
    with pytest.raises(PublishError) as e:
        EventPublisher(PublisherConfig(endpoint=publisher.endpoint))
    msg = str(e.value)
    assert publisher.endpoint in msg and "in use" in msg and "\n" not in msg, msg


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:notaport", "tcp://256.0.0.1:5556", "tcp:/missing"])
def test_bad_endpoint_fails_in_one_line(endpoint):
    with pytest.raises(PublishError) as e:
        EventPublisher(PublisherConfig(endpoint=endpoint))
    assert str(e.value).startswith(f"cannot publish on {endpoint}: ") and "\n" not in str(e.value)


def test_receive_returns_consecutive_events(publisher):
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(receive, publisher.endpoint, "plate.", 3, 10.0)
        sent = publish_until(publisher, future.done)
        got = future.result()
    assert len(got) == 3
    assert got == [e for e in sent if e["seq"] in range(got[0]["seq"], got[0]["seq"] + 3)]


def test_receive_stops_after_timeout_without_events(publisher):
    start = time.monotonic()
    assert receive(publisher.endpoint, timeout=0.3) == []
    assert time.monotonic() - start < 3


def test_subscribe_cli_prints_events_as_json_lines(publisher, tmp_path):
    net_log = tmp_path / "net-attempts.log"
    child = subprocess.Popen([sys.executable, "-m", "stream.subscribe", publisher.endpoint, "--count", "3",
                              "--timeout", "20"], cwd=ROOT, env=offline_env(net_log),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sent = publish_until(publisher, lambda: child.poll() is not None)
        out, err = child.communicate(timeout=10)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert not net_log.exists(), net_log.read_text()
    got = [json.loads(line) for line in out.splitlines()]
    assert len(got) == 3
    assert got == [e for e in sent if e["seq"] in range(got[0]["seq"], got[0]["seq"] + 3)]


def test_subscribe_cli_exits_after_timeout(publisher, tmp_path):
    r = run_module("stream.subscribe", publisher.endpoint, "--timeout", 0.3, tmp_path=tmp_path, timeout=30)
    assert r.returncode == 0 and r.stdout == "", r.stderr


def test_subscribe_cli_bad_endpoint(tmp_path):
    r = run_module("stream.subscribe", "tcp://127.0.0.1:notaport", "--timeout", 1, tmp_path=tmp_path, timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: cannot subscribe to tcp://127.0.0.1:notaport") and r.stderr.count("\n") == 1


def test_what_is_sent_fits_the_published_json_schema(publisher):
    """docs/event.schema.json is `python -m stream.wire`'s output, and events (a plate and a
    correction) and health messages as sent fit it."""
    assert json.loads((ROOT / "docs" / "event.schema.json").read_text()) == schemas()
    messages = schemas()["messages"]
    sub = joined(publisher.endpoint, b"")
    publisher.publish(decision(), REPLAY)
    publisher.publish(decision(correction_of="AB12CDF", issuer=Issuer("gb", 0.6)), REPLAY)
    publisher.send_health("cam0", CameraHealth("health", SCHEMA_VERSION, "2026-12-07T10:00:00.000Z", "cam0",
                                               "streaming", True, 12.5, 12.0, 100, 99, 1, 0, 0, None))
    got = [json.loads(recv(sub)[1]) for _ in range(3)]
    sub.close()
    assert [problems(m, messages[k]) for m, k in zip(got, ["PlateEvent", "PlateEvent", "CameraHealth"])] == [[], [], []]
    assert "corrects" not in got[0] and got[1]["corrects"] == "AB12CDF" and got[1]["country"] == "gb"
    assert problems({**got[0], "plate": 7}, messages["PlateEvent"]) == ["$.plate: 7 is not string"]
    assert problems({k: v for k, v in got[0].items() if k != "seq"}, messages["PlateEvent"]) == ["$: missing seq"]
