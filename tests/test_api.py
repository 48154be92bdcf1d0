"""The HTTP API and web app end to end: the real server (uvicorn on 127.0.0.1, in a thread)
with the shipped models, real HTTP requests, a generated video as upload and as live camera,
a loopback RTSP camera taken down and back (/health), a journal filled here (history search
and crops), and the pages in a headless Chromium."""
from __future__ import annotations

import csv
import io
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
import uvicorn

from config.schema import parse_config
from conftest import ROOT, offline_env, run_module
from models.reader import load_image
from models.synth.video import render_video
import stream.api
from stream.api import create_app
from stream.journal import Journal
from stream.wire import SCHEMA_VERSION
from test_reconnect import free_port, h264, rtsp_server  # noqa: F401  (fixtures: the loopback RTSP camera)

STREET = ROOT / "samples" / "street.jpg"
WAIT_S = 120  # the longest a job or the live camera may take on a slow, busy 2-core machine
KEY = "s3cret-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(app):
    """Serve `app` with uvicorn on a free loopback port; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _config(tmp_path: Path, **sections):
    return parse_config({"detector": {"device": "cpu"}, "logging": {"level": "WARNING"},
                         "publisher": {"endpoint": "tcp://127.0.0.1:*", "replay_endpoint": "tcp://127.0.0.1:*"},
                         "journal": {"path": str(tmp_path / "events.db")}, **sections})


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A small generated video with two cars; seed 1 because the pipeline, run as
    run_stream.py --source runs it, reads both plates exactly."""
    path = tmp_path_factory.mktemp("video") / "cars.mp4"
    truth = render_video(path, seed=1, cars=2, seconds=5.0, fps=12.0, size=(640, 360))
    return path, [c.plate for c in truth]


@pytest.fixture(scope="module")
def base(no_network, video, tmp_path_factory):
    """The server with the video as live camera "gate" and room for one waiting upload."""
    tmp = tmp_path_factory.mktemp("api")
    config = _config(tmp, cameras=[{"id": "gate", "source": str(video[0])}], api={"queue_size": 1})
    with _serving(create_app(config)) as url:
        yield url


@pytest.fixture(scope="module")
def locked(no_network, tmp_path_factory):
    """A server with an API key and a 20 KB upload limit (street.jpg is 46 KB)."""
    config = _config(tmp_path_factory.mktemp("locked"), api={"api_key": KEY, "max_upload_mb": 0.02})
    with _serving(create_app(config)) as url:
        yield url


def _post(url: str, name: str, data: bytes, **kwargs) -> requests.Response:
    return requests.post(url, files={"file": (name, data)}, timeout=WAIT_S, **kwargs)


def _until(url: str, done, what: str, **kwargs) -> dict:
    """GET `url` every 0.1 s until done(json) holds; returns that JSON."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        body = requests.get(url, timeout=10, **kwargs).json()
        if done(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {body}")


def _finished(job: dict) -> bool:
    return job["status"] in ("done", "failed")


def _png(width: int = 64, height: int = 48) -> bytes:
    return cv2.imencode(".png", np.full((height, width, 3), 127, np.uint8))[1].tobytes()


# --- still images -------------------------------------------------------------------------------

def test_an_image_read_at_once_or_as_a_job_gives_the_readers_plates(base, reader):
    expected = [p.to_json() for p in reader.read(load_image(STREET))]
    assert any(p["text"] for p in expected) and any(p["text"] is None for p in expected)  # reads and a failure

    r = _post(f"{base}/read", "street.jpg", STREET.read_bytes())
    assert r.status_code == 200, r.text
    assert r.json() == {"plates": expected}

    r = _post(f"{base}/upload", "Street.JPG", STREET.read_bytes())
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    job = _until(f"{base}/extract/{job_id}", _finished, "the image job")
    assert job == {"job_id": job_id, "kind": "image", "filename": "Street.JPG", "status": "done", "progress": 1.0,
                   "error": None, "plates": expected, "events": None}

    r = requests.get(f"{base}/extract/{job_id}/image", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    drawn, original = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR), load_image(STREET)
    assert drawn.shape == original.shape
    x1, y1, x2, y2 = (int(v) for v in expected[0]["box"])  # a read plate: its box is drawn green
    b, g, red = drawn[y1:y2 + 1, x1].astype(int).mean(axis=0)
    assert g > 150 and b < 100 and red < 100, (b, g, red)


# --- videos and the job queue -------------------------------------------------------------------

def test_a_video_job_reports_progress_and_the_generated_plates_while_the_queue_is_bounded(base, video):
    path, plates = video
    r = _post(f"{base}/upload", "cars.mp4", path.read_bytes())
    assert r.status_code == 202, r.text
    job_url = f"{base}/extract/{r.json()['job_id']}"
    _until(job_url, lambda j: j["status"] == "running", "the video job to start")

    # one upload may wait (api.queue_size: 1) while the video runs; the next is refused
    waiting = _post(f"{base}/upload", "street.jpg", STREET.read_bytes())
    assert waiting.status_code == 202
    waiting_url = f"{base}/extract/{waiting.json()['job_id']}"
    assert requests.get(waiting_url, timeout=10).json()["status"] == "queued"
    refused = _post(f"{base}/upload", "street.jpg", STREET.read_bytes())
    assert refused.status_code == 503 and "api.queue_size" in refused.json()["detail"]

    progress = []
    job = _until(job_url, lambda j: progress.append(j["progress"]) or _finished(j), "the video job")
    assert job["status"] == "done" and job["kind"] == "video" and job["plates"] is None, job
    assert progress == sorted(progress) and any(0 < p < 1 for p in progress), progress
    events = sorted(job["events"], key=lambda e: e["first_seen"]["frame"])
    assert [e["plate"] for e in events] == plates
    for e in events:
        assert e["type"] == "plate" and e["camera_id"] == "upload" and len(e["char_confidences"]) == len(e["plate"])
        assert len(e["box"]) == 4 and e["first_seen"]["frame"] <= e["last_seen"]["frame"]
        assert set(e["first_seen"]) == {"time", "offset", "frame"} and isinstance(e["track_id"], int)
    assert [e["seq"] for e in job["events"]] == list(range(1, len(events) + 1))  # no journal: its own numbering

    assert _until(waiting_url, _finished, "the queued image job")["status"] == "done"
    r = requests.get(f"{job_url}/image", timeout=10)
    assert r.status_code == 404 and "video" in r.json()["detail"]


# --- errors -------------------------------------------------------------------------------------

def _detail(r: requests.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail
    return detail


def test_bad_uploads_and_unknown_ids_are_one_line_errors(base, video):
    assert "'.gif'" in _detail(_post(f"{base}/upload", "anim.gif", b"GIF89a..."), 415)
    assert "accepted jpg" in _detail(_post(f"{base}/read", "cars.mp4", video[0].read_bytes()), 415)
    assert "'(none)'" in _detail(_post(f"{base}/read", "noextension", _png()), 415)
    assert "unreadable image" in _detail(_post(f"{base}/read", "broken.jpg", b"\xff\xd8\xff" + b"x" * 500), 422)
    assert "unreadable image" in _detail(_post(f"{base}/upload", "empty.png", b""), 422)
    assert "unreadable video" in _detail(_post(f"{base}/upload", "broken.mp4", b"\x00\x00\x00\x18ftypmp42" * 50), 422)
    assert _detail(requests.post(f"{base}/read", data={"other": "1"}, timeout=10), 422) == "file: Field required"
    assert _detail(requests.get(f"{base}/extract/nope", timeout=10), 404) == "unknown job: nope"
    assert _detail(requests.get(f"{base}/extract/nope/image", timeout=10), 404) == "unknown job: nope"
    assert _detail(requests.get(f"{base}/live/nope/plates", timeout=10), 404) == "unknown camera: nope"


def test_the_size_limit_and_the_api_key(locked):
    headers = {"X-API-Key": KEY}
    # too large: refused from its Content-Length, key or not
    assert "0.02 MB" in _detail(_post(f"{locked}/upload", "street.jpg", STREET.read_bytes(), headers=headers), 413)
    # no key, a wrong key: 401 on every API call
    for kwargs in ({}, {"headers": {"X-API-Key": "wrong"}}, {"params": {"api_key": "wrong"}}):
        assert "API key" in _detail(_post(f"{locked}/read", "small.png", _png(), **kwargs), 401)
        _detail(requests.get(f"{locked}/extract/nope", timeout=10, **kwargs), 401)
    # the right key, in the header or the query
    r = _post(f"{locked}/read", "small.png", _png(), headers=headers)
    assert r.status_code == 200 and r.json() == {"plates": []}
    assert _detail(requests.get(f"{locked}/extract/nope", params={"api_key": KEY}, timeout=10), 404)
    # pages, the limits they show and the schema stay open
    for page in ("/", "/history", "/web/upload.js", "/web/history.js", "/openapi.json"):
        assert requests.get(locked + page, timeout=10).status_code == 200, page
    for page in ("/docs", "/redoc"):  # their scripts come from a CDN: no page rather than a blank one
        assert requests.get(locked + page, timeout=10).status_code == 404, page
    info = requests.get(f"{locked}/info", timeout=10).json()
    assert info["api_key"] is True and info["max_upload_mb"] == 0.02 and info["cameras"] == []
    health = requests.get(f"{locked}/health", timeout=10)  # for load balancers, which hold no key
    assert health.status_code == 200 and health.json() == {"ok": True, "error": None, "cameras": {}}
    # no journal file (no camera wrote one): the history answers why
    for path in ("/events", "/events.csv", f"/events/{1:032x}/crop.jpg"):
        detail = _detail(requests.get(locked + path, headers=headers, timeout=10), 404)
        assert detail.startswith("no journal at ") and detail.endswith("events.db"), detail


def test_the_openapi_schema_describes_every_endpoint(base):
    schema = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert {p: set(m) for p, m in schema["paths"].items()} == {
        "/read": {"post"}, "/upload": {"post"}, "/extract/{job_id}": {"get"}, "/extract/{job_id}/image": {"get"},
        "/live/{camera_id}/stream.mjpg": {"get"}, "/live/{camera_id}/plates": {"get"}, "/info": {"get"},
        "/health": {"get"}, "/events": {"get"}, "/events.csv": {"get"}, "/events/{event_id}/crop.jpg": {"get"},
        "/events/{event_id}/vehicle.jpg": {"get"}, "/watchlists/reload": {"post"}}
    assert set(schema["components"]["schemas"]["Plate"]["properties"]) == {
        "text", "confidence", "char_confidences", "box", "detection_confidence", "region", "guess", "country",
        "country_confidence", "subdivision", "subdivision_confidence"}
    assert {p["name"] for p in schema["paths"]["/events"]["get"]["parameters"]} == {
        "plate", "camera", "since", "until", "max_distance", "limit", "after"}
    assert "202" in schema["paths"]["/upload"]["post"]["responses"]


# --- live cameras -------------------------------------------------------------------------------

def _first_jpeg_part(url: str) -> np.ndarray:
    """The first image of an MJPEG stream (multipart/x-mixed-replace)."""
    with requests.get(url, stream=True, timeout=WAIT_S) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        raw = r.raw
        assert raw.readline() == b"--frame\r\n"
        headers = {}
        while (line := raw.readline()) != b"\r\n":
            name, value = line.decode().split(":", 1)
            headers[name.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = raw.read(int(headers["content-length"]))
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_a_live_camera_streams_annotated_frames_and_its_plates(base, video):
    _, plates = video
    assert requests.get(f"{base}/live/gate", timeout=10).status_code == 200
    assert _detail(requests.get(f"{base}/live/nope", timeout=10), 404) == "unknown camera: nope"
    assert _detail(requests.get(f"{base}/live/nope/stream.mjpg", timeout=10), 404) == "unknown camera: nope"
    assert requests.get(f"{base}/info", timeout=10).json()["cameras"] == ["gate"]
    health = requests.get(f"{base}/health", timeout=10)  # a file camera is fine while it plays and once it ended
    assert health.status_code == 200, health.text
    gate = health.json()["cameras"]["gate"]
    assert gate["ok"] and not gate["live"] and gate["state"] in ("connecting", "streaming", "ended"), gate

    frame = _first_jpeg_part(f"{base}/live/gate/stream.mjpg")
    assert frame is not None and frame.shape == (360, 640, 3)

    feed = _until(f"{base}/live/gate/plates", lambda b: len(b["plates"]) >= len(plates), "the live plates")
    assert feed["camera_id"] == "gate"
    assert sorted(e["plate"] for e in feed["plates"]) == sorted(plates)
    assert all(e["camera_id"] == "gate" for e in feed["plates"])
    last = max(e["seq"] for e in feed["plates"])
    assert requests.get(f"{base}/live/gate/plates", params={"after": last}, timeout=10).json()["plates"] == []


def _until_health(url: str, status: int, done, seconds: float) -> dict:
    """GET /health every 0.1 s until it answers `status` with a body for which done(body) holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/health", timeout=10)
        if r.status_code == status and done(r.json()):
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"/health did not answer {status} within {seconds:g} s: {r.status_code} {r.text}")


def test_health_is_503_while_a_live_camera_is_down_and_200_once_it_is_back(no_network, rtsp_server, tmp_path):
    port = free_port()
    server = rtsp_server(port)
    config = _config(tmp_path, cameras=[{"id": "door", "source": f"rtsp://127.0.0.1:{port}/x"}],
                     capture={"stall_seconds": 2.0, "max_backoff_seconds": 1.0})
    with _serving(create_app(config)) as url:
        up = _until_health(url, 200, lambda b: b["cameras"]["door"]["fps"] > 0, WAIT_S)["cameras"]["door"]
        assert up["ok"] and up["live"] and up["state"] == "streaming", up
        seen = datetime.fromisoformat(up["last_frame_time"])  # ISO 8601 UTC, "Z"
        assert seen.tzinfo is not None and abs(datetime.now(timezone.utc) - seen) < timedelta(seconds=30)

        server.kill()  # an outage: the stream is gone and the port refuses connections
        server.wait()
        down = _until_health(url, 503, lambda b: True, 30)
        door = down["cameras"]["door"]
        assert not down["ok"] and not door["ok"] and door["state"] in ("reconnecting", "connecting"), down
        assert door["last_error"] and "\n" not in door["last_error"]

        rtsp_server(port)
        back = _until_health(url, 200, lambda b: True, WAIT_S)
        assert back["ok"] and back["cameras"]["door"]["state"] == "streaming", back


# --- the journal: history search and evidence -----------------------------------------------------

def _plate_event(seq: int, camera: str, plate: str, first_seen: str) -> dict:
    """An event as published (the keys the history reads; the journal keeps whatever it is given)."""
    at = {"time": first_seen, "offset": float(seq), "frame": seq}
    return {"type": "plate", "schema_version": SCHEMA_VERSION, "event_id": f"{seq:032x}", "seq": seq,
            "camera_id": camera, "track_id": seq, "plate": plate, "region": "eu", "country": None,
            "subdivision": None, "confidence": 0.9, "char_confidences": [0.9] * len(plate),
            "candidates": [{"text": plate, "score": 0.9}], "box": [10.0, 20.0, 110.0, 45.0], "first_seen": at,
            "last_seen": at, "reads": 5}


# seq, camera, plate, first seen: AB12CDE twice and misread once (A812CDE), MN90PQR five times
HISTORY = [(1, "gate", "AB12CDE", "2026-03-01T08:00:00.000Z"), (2, "yard", "XY34ZZZ", "2026-03-01T09:00:00.000Z"),
           (3, "gate", "AB12CDE", "2026-03-02T08:00:00.000Z"), (4, "gate", "A812CDE", "2026-03-02T10:00:00.000Z"),
           (5, "yard", "QR56STU", "2026-03-03T08:00:00.000Z"),
           *[(s, "gate", "MN90PQR", f"2026-03-04T{s:02d}:00:00.000Z") for s in range(6, 11)]]


def _picture(text: str, width: int, height: int) -> bytes:
    image = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(image, text, (4, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.fixture(scope="module")
def journaled(no_network, tmp_path_factory):
    """A server with an API key and no camera over a journal of HISTORY; events 1 and 3 stored
    with their plate and vehicle crops, 2 with its plate crop. Yields (URL, {event_id: crops})."""
    tmp = tmp_path_factory.mktemp("journaled")
    journal, stored = Journal(tmp / "events.db"), {}
    for seq, camera, plate, first_seen in HISTORY:
        crops = {"crop": _picture(plate, 160, 40), "vehicle": _picture(plate, 320, 240)} if seq in (1, 3) else \
            {"crop": _picture(plate, 160, 40)} if seq == 2 else None
        journal.append(_plate_event(seq, camera, plate, first_seen), crops)
        stored[f"{seq:032x}"] = crops or {}
    journal.close()
    with _serving(create_app(_config(tmp, api={"api_key": KEY}))) as url:
        yield url, stored


def _seqs(r: requests.Response) -> list[int]:
    assert r.status_code == 200, r.text
    return [e["seq"] for e in r.json()["events"]]


def test_the_journal_is_searched_by_fuzzy_plate_camera_and_time_newest_first_in_pages(journaled, monkeypatch):
    url, stored = journaled

    def get(path: str, **params) -> requests.Response:
        return requests.get(url + path, params=params, headers={"X-API-Key": KEY}, timeout=10)

    assert "API key" in _detail(requests.get(f"{url}/events", timeout=10), 401)
    # B/8 and 1/I are easily confused: half a difference each, within the default max_distance 1
    r = get("/events", plate="A8I2CDE")
    assert _seqs(r) == [4, 3, 1] and r.json()["next"] is None
    assert r.json()["images"] == {f"{1:032x}": ["crop", "vehicle"], f"{3:032x}": ["crop", "vehicle"]}
    assert r.json()["events"][2] == _plate_event(*HISTORY[0])  # as published
    assert _seqs(get("/events", plate="a812-cde", max_distance=0)) == [4]
    assert _seqs(get("/events", plate="AB12CDE", max_distance=0.5)) == [4, 3, 1]
    assert _seqs(get("/events", plate="XY34ZZ")) == [2]  # a character missed: 1
    assert _seqs(get("/events", plate="XY34Z")) == []
    assert _seqs(get("/events", camera="yard")) == [5, 2]
    assert _seqs(get("/events", since="2026-03-02", until="2026-03-02T10:00Z")) == [3]
    # an offset is converted (08:00 UTC); empty parameters, as a form sends them, filter nothing
    assert _seqs(get("/events", since="2026-03-02T09:00+01:00", until="2026-03-03", plate="", camera="")) == [4, 3]
    pages, after = [], None
    while True:
        body = get("/events", limit=4, **({"after": after} if after else {})).json()
        pages.append([e["seq"] for e in body["events"]])
        if (after := body["next"]) is None:
            break
    assert pages == [[10, 9, 8, 7], [6, 5, 4, 3], [2, 1]]

    r = get("/events.csv", plate="A8I2CDE")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    assert [(row["seq"], row["plate"], row["camera_id"], row["first_seen"], row["event_id"])
            for row in csv.DictReader(io.StringIO(r.text))] == [
        (str(s), p, c, t, f"{s:032x}") for s, c, p, t in (HISTORY[3], HISTORY[2], HISTORY[0])]
    monkeypatch.setattr(stream.api, "MAX_EVENTS_PAGE", 3)  # the CSV is read from the journal 3 events at a time

    def csv_seqs(**params) -> list[int]:
        return [int(row["seq"]) for row in csv.DictReader(io.StringIO(get("/events.csv", **params).text))]
    assert csv_seqs() == list(range(10, 0, -1)) and csv_seqs(limit=4) == [10, 9, 8, 7]
    assert csv_seqs(limit=5, after=9) == [8, 7, 6, 5, 4] and csv_seqs(camera="yard", limit=3) == [5, 2]

    for event_id, crops in stored.items():
        for name in ("crop", "vehicle"):
            r = get(f"/events/{event_id}/{name}.jpg")
            if name in crops:
                assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content == crops[name]
            else:
                assert _detail(r, 404) == f"no {name} image for event {event_id}"
    assert "API key" in _detail(requests.get(f"{url}/events/{1:032x}/crop.jpg", timeout=10), 401)

    assert _detail(get("/events", since="yesterday"), 422) == "since: not an ISO 8601 time: 'yesterday'"
    assert _detail(get("/events", plate="--"), 422) == "plate: no letters or digits in '--'"
    assert _detail(get("/events", plate="AB", max_distance=5), 422).startswith("max_distance: ")
    assert _detail(get("/events", limit=0), 422).startswith("limit: ")
    assert _detail(get("/events.csv", after=0), 422).startswith("after: ")


# --- the web app in a browser -------------------------------------------------------------------

def _chromium():
    webdriver = pytest.importorskip("selenium.webdriver")
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)  # the last ones: no name resolves but loopback, nothing is fetched
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def test_the_upload_page_shows_the_plates_of_a_dropped_image_and_the_live_page_its_plates(base, reader, video):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    texts = [p.text for p in reader.read(load_image(STREET)) if p.text]
    browser = _chromium()
    try:
        browser.get(f"{base}/")
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, 'a[href="/live/gate"]'))
        browser.find_element(By.ID, "file").send_keys(str(STREET))
        table = browser.find_element(By.ID, "plates")
        WebDriverWait(browser, WAIT_S).until(lambda b: table.is_displayed() and all(t in table.text for t in texts))
        assert "unreadable (best guess" in table.text  # the failure is listed as one
        image = browser.find_element(By.ID, "annotated")
        assert image.is_displayed() and browser.execute_script("return arguments[0].naturalWidth", image) > 0
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []  # no script errors

        browser.get(f"{base}/live/gate")
        rows = browser.find_element(By.CSS_SELECTOR, "#plates tbody")
        WebDriverWait(browser, WAIT_S).until(lambda b: all(p in rows.text for p in video[1]))
        health = browser.find_element(By.ID, "health")  # the status line
        WebDriverWait(browser, 30).until(lambda b: health.text.startswith("gate: "))
    finally:
        browser.quit()


def test_the_history_page_finds_a_misread_plate_and_shows_its_crops(journaled):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, stored = journaled
    browser = _chromium()
    cells = "return [...document.querySelectorAll('#events tbody tr')].map((r) => r.cells[0].textContent)"
    try:
        browser.get(f"{url}/")  # the site's storage: the key, as the pages' key field keeps it
        browser.execute_script("localStorage.setItem('alpr-api-key', arguments[0])", KEY)
        browser.get(f"{url}/history")
        WebDriverWait(browser, 30).until(lambda b: len(b.execute_script(cells)) == len(HISTORY))  # the latest
        plate = browser.find_element(By.ID, "plate")
        plate.send_keys("a8i2 cde")
        browser.find_element(By.CSS_SELECTOR, '#search button[type="submit"]').click()
        WebDriverWait(browser, 30).until(lambda b: b.execute_script(cells) == ["A812CDE", "AB12CDE", "AB12CDE"])
        thumbs = "return [...document.querySelectorAll('#events img.thumb')].map((i) => i.naturalWidth)"
        WebDriverWait(browser, 30).until(lambda b: b.execute_script(thumbs) == [160, 160])  # events 3 and 1

        browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")[2].find_element(By.TAG_NAME, "button").click()
        detail = browser.find_element(By.ID, "detail")
        sizes = "return ['crop', 'vehicle'].map((n) => document.getElementById(`detail-${n}`).naturalWidth)"
        WebDriverWait(browser, 30).until(lambda b: detail.is_displayed() and b.execute_script(sizes) == [160, 320])
        assert f"{1:032x}" in detail.text and "2026-03-01T08:00:00.000Z" in detail.text and "gate" in detail.text
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []  # no script errors
    finally:
        browser.quit()


# --- the command --------------------------------------------------------------------------------

def test_the_command_serves_until_sigint_and_stops_on_a_bad_config_with_one_line(video, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("api:\n  max_upload_mb: 0\n")
    r = run_module("stream.api", "--config", bad, tmp_path=tmp_path, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "error: config: api.max_upload_mb: must be > 0, got 0.0"
    r = run_module("stream.api", "--port", "70000", tmp_path=tmp_path, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "error: config: api.port: must be 1 to 65535, got 70000"

    config = tmp_path / "api.yaml"
    config.write_text(f"cameras:\n  - id: gate\n    source: {video[0]}\n"
                      "publisher:\n  endpoint: tcp://127.0.0.1:*\n  replay_endpoint: tcp://127.0.0.1:*\n"
                      f"journal:\n  path: {tmp_path / 'events.db'}\nlogging:\n  level: WARNING\n")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stream.api", "--config", str(config), "--port", str(port)],
                            cwd=ROOT, env=offline_env(tmp_path / "net.log"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            try:
                info = requests.get(f"http://127.0.0.1:{port}/info", timeout=5).json()
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert info["cameras"] == ["gate"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert not (tmp_path / "net.log").exists()
