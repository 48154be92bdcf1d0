"""The HTTP API and web app end to end: the real server (uvicorn on 127.0.0.1, in a thread)
with the shipped models, real HTTP requests, a generated video as upload and as live camera,
and the pages in a headless Chromium."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
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
from stream.api import create_app

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
    for page in ("/", "/web/upload.js", "/openapi.json"):
        assert requests.get(locked + page, timeout=10).status_code == 200, page
    info = requests.get(f"{locked}/info", timeout=10).json()
    assert info["api_key"] is True and info["max_upload_mb"] == 0.02 and info["cameras"] == []


def test_the_openapi_schema_describes_every_endpoint(base):
    schema = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert {p: set(m) for p, m in schema["paths"].items()} == {
        "/read": {"post"}, "/upload": {"post"}, "/extract/{job_id}": {"get"}, "/extract/{job_id}/image": {"get"},
        "/live/{camera_id}/stream.mjpg": {"get"}, "/live/{camera_id}/plates": {"get"}, "/info": {"get"}}
    assert set(schema["components"]["schemas"]["Plate"]["properties"]) == {
        "text", "confidence", "char_confidences", "box", "detection_confidence", "region", "guess"}
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

    frame = _first_jpeg_part(f"{base}/live/gate/stream.mjpg")
    assert frame is not None and frame.shape == (360, 640, 3)

    feed = _until(f"{base}/live/gate/plates", lambda b: len(b["plates"]) >= len(plates), "the live plates")
    assert feed["camera_id"] == "gate"
    assert sorted(e["plate"] for e in feed["plates"]) == sorted(plates)
    assert all(e["camera_id"] == "gate" for e in feed["plates"])
    last = max(e["seq"] for e in feed["plates"])
    assert requests.get(f"{base}/live/gate/plates", params={"after": last}, timeout=10).json()["plates"] == []


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
