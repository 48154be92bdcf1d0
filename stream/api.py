"""HTTP API and web app: plates in uploaded images and videos, and live views of the cameras.

    python -m stream.api [--config FILE] [--host H] [--port P]

One process loads the models once and shares them (one call at a time per model) between
  - `POST /read`: an image, read at once;
  - `POST /upload`: an image or a video queued as a job for one worker thread; `GET
    /extract/{job_id}` gives its status, progress and, when done, the plates (image) or the
    events of the real Pipeline (video; they go nowhere else: no journal, sinks or subscribers);
  - the configured cameras' Pipeline in a background thread (publisher, journal and sinks as
    configured), watched at `/live/{camera_id}`: the annotated frames as MJPEG and the latest
    plates;
  - `GET /health`: every camera's state, 503 when one is down (for load balancers);
  - `GET /events`, `/events.csv`: the journal searched by plate (fuzzy, `stream.plates`),
    camera and time, newest first, with the plate and vehicle crops stored with an event.
The web app (`stream/web/`) is served at `/`. Layouts, limits and errors: docs/api.md.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import io
import logging
import os
import queue
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader, APIKeyQuery
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import Headers

from config.schema import CameraConfig, Config, ConfigError, JournalConfig, load_config, parse_config
from models.defaults import project_path
from models.errors import AlprError
from models.formats import clean, from_regexes
from models.images import size_problem
from models.reader import PlateReader, PlateReading
from stream.capture import is_live
from stream.journal import JournalError, JournalReader
from stream.pipeline import Models, Pipeline, StageFailed
from stream.plates import near

log = logging.getLogger("stream.api")

IMAGE_TYPES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_TYPES = (".mp4", ".avi", ".mkv", ".mov")
WEB = Path(__file__).resolve().parent / "web"
ANY_LOOPBACK_PORT = "tcp://127.0.0.1:*"  # an upload's pipeline binds its sockets where nobody listens
LIVE_PLATES = 50  # latest events kept per camera for the live pages
FRAME_POLL = 0.04  # s: how often an MJPEG stream looks for a newer frame
JPEG_QUALITY = 80
STOP_WAIT = 10.0  # s: at shutdown, how long the worker and the live pipeline may take to finish
FPS_WINDOW = 5.0  # s: /health's frames per second are counted over this long
EVENTS_PAGE, MAX_EVENTS_PAGE = 50, 1000  # /events: default and largest `limit`
MAX_DISTANCE = 4.0  # /events: largest `max_distance` (beyond it nearly every plate matches)
IMAGES = {"crop": "the plate crop whose read won", "vehicle": "a wider crop around the vehicle"}
CSV_COLUMNS = ("seq", "event_id", "type", "camera_id", "plate", "confidence", "first_seen", "last_seen", "region",
               "country", "subdivision", "track_id", "reads", "corrects")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _utc_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


def annotated(image: np.ndarray, plates: list[PlateReading]) -> bytes:
    """JPEG of the image with each plate's box and text (green), or a red box and "?" for a
    reading below the confidence threshold."""
    img = image.copy()
    for p in plates:
        x1, y1, x2, y2 = (int(v) for v in p.box)
        colour = (0, 200, 0) if p.text else (0, 0, 230)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        label = f"{p.text} {p.confidence:.2f}" if p.text else "?"
        cv2.putText(img, label, (x1, max(14, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
    return _jpeg(img)


class _OneAtATime:
    """A model shared by threads (requests, the job worker, the live pipeline) that lets one
    call in at a time: ultralytics' predictor keeps per-call state and is not thread-safe."""

    def __init__(self, model) -> None:
        self._model, self._lock = model, threading.Lock()

    def __getattr__(self, name: str):
        attr = getattr(self._model, name)
        if not callable(attr):
            return attr

        def locked(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)
        return locked


# --- what the API returns (also its OpenAPI schema) ---------------------------------------------
class Plate(BaseModel):
    """One plate of a still image, as `models.reader` reports it."""
    text: str | None = Field(description="null: a recognition failure (confidence below api.min_confidence)")
    confidence: float
    char_confidences: list[float]
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels")
    detection_confidence: float
    region: str | None
    country: str | None = Field(description="the issuing country, ISO 3166-1 alpha-2 in lower case; null: unknown")
    country_confidence: float | None
    subdivision: str | None = Field(description="the issuing US state, ISO 3166-2 suffix in lower case; null: unknown")
    subdivision_confidence: float | None
    guess: str = Field(description="the best reading, even when not confident enough to report")


class Plates(BaseModel):
    plates: list[Plate]


class Submitted(BaseModel):
    job_id: str


class JobView(BaseModel):
    job_id: str
    kind: Literal["image", "video"]
    filename: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(description="0 to 1; for videos frames processed / frames in the file")
    error: str | None = Field(description="why it failed, one line")
    plates: list[Plate] | None = Field(description="image jobs, once done")
    events: list[dict[str, Any]] | None = Field(description="video jobs, once done: the events as published "
                                                            "(README, Event schema)")


@dataclass
class Job:
    id: str
    kind: str  # image | video
    filename: str
    path: Path  # the upload, deleted once read
    status: str = "queued"  # queued | running | done | failed
    progress: float = 0.0
    error: str | None = None
    plates: list[dict] | None = None  # image jobs, once done
    image: bytes | None = None  # image jobs, once done: annotated JPEG
    events: list[dict] | None = None  # video jobs, once done

    def view(self) -> JobView:
        return JobView(job_id=self.id, kind=self.kind, filename=self.filename, status=self.status,
                       progress=round(self.progress, 4), error=self.error, plates=self.plates, events=self.events)


class Jobs:
    """Uploads queued for one worker thread, which reads them with the shared models; the latest
    `api.jobs_kept` finished jobs stay available."""

    def __init__(self, config: Config, reader: PlateReader, models: Models) -> None:
        self.config, self.reader, self.models = config, reader, models
        self.waiting: queue.Queue[Job] = queue.Queue(config.api.queue_size)
        self.jobs: dict[str, Job] = {}  # in upload order
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pipeline: Pipeline | None = None  # the running video job's
        self.thread = threading.Thread(target=self._work, name="jobs", daemon=True)

    def submit(self, job: Job) -> bool:
        """Queue `job`; False when the queue is full."""
        with self.lock:
            try:
                self.waiting.put_nowait(job)
            except queue.Full:
                return False
            self.jobs[job.id] = job
            finished = [j for j in self.jobs.values() if j.status in ("done", "failed")]
            for old in finished[:max(0, len(finished) - self.config.api.jobs_kept)]:
                del self.jobs[old.id]
        return True

    def get(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"unknown job: {job_id}")
        return job

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                job = self.waiting.get(timeout=0.5)
            except queue.Empty:
                continue
            job.status = "running"
            try:
                self._read_image(job) if job.kind == "image" else self._read_video(job)
                job.progress, job.status = 1.0, "done"
            except Exception as e:  # one bad upload must not end the worker
                log.exception("job %s (%s) failed", job.id, job.filename)
                job.error, job.status = _one_line(e), "failed"
            finally:
                job.path.unlink(missing_ok=True)

    def _read_image(self, job: Job) -> None:
        image = cv2.imread(str(job.path), cv2.IMREAD_COLOR)  # decodable: checked at upload
        plates = self.reader.read(image)
        job.plates, job.image = [p.to_json() for p in plates], annotated(image, plates)

    def _read_video(self, job: Job) -> None:
        # Read as the configured cameras are, and published nowhere: every output section
        # (journal, sinks, metrics, ...) keeps its default, off, and the sockets a free port.
        c, d = self.config, parse_config(None)
        config = dataclasses.replace(
            d, cameras=[CameraConfig("upload", str(job.path))], detector=c.detector, tracker=c.tracker, ocr=c.ocr,
            voting=c.voting, plate_formats=c.plate_formats, logging=c.logging,
            publisher=dataclasses.replace(d.publisher, endpoint=ANY_LOOPBACK_PORT, replay_endpoint=ANY_LOOPBACK_PORT),
            journal=dataclasses.replace(d.journal, enabled=False))
        events: list[dict] = []

        def progress(p: Pipeline) -> None:
            total = p.captures[0].total
            if total:
                job.progress = min(1.0, p.stats.frames_done / total)

        self.pipeline = Pipeline(config, models=self.models, on_event=events.append)
        if self.stopping.is_set():  # stop() came while it was being made
            self.pipeline.stop()
        try:
            self.pipeline.run(progress=progress)
        finally:
            self.pipeline = None
        job.events = events

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.pipeline:
            self.pipeline.stop()
        self.thread.join(STOP_WAIT)


class Live:
    """The configured cameras' Pipeline in a background thread; per camera the latest annotated
    frame (JPEG-encoded only when a viewer asks for it) and the latest events."""

    def __init__(self, config: Config, models: Models) -> None:
        self.cameras = [c.id for c in config.cameras]
        self.live = {c.id: is_live(c.source) for c in config.cameras}
        self.frames: dict[str, tuple[int, np.ndarray, bytes | None]] = {}  # camera -> (number, image, JPEG)
        # camera -> time.monotonic() of its latest frames (for /health's rate), time.time() of the last
        self.frame_times = {c: deque(maxlen=1024) for c in self.cameras}
        self.last_frame: dict[str, float] = {}
        self.events = {c: deque(maxlen=LIVE_PLATES) for c in self.cameras}
        self.lock = threading.Lock()
        # realtime: a file camera plays at its own pace, as a live view should
        self.pipeline = Pipeline(config, realtime=True, models=models, on_event=self._event, on_frame=self._frame)
        self.thread = threading.Thread(target=self._run, name="live", daemon=True)

    def _run(self) -> None:
        try:
            self.pipeline.run()
        except StageFailed:  # logged by the pipeline; /info and the health messages show the cameras failed
            pass

    def states(self) -> dict[str, dict]:
        """Per camera: its capture state (connecting, streaming, reconnecting, ended, failed) and last error."""
        return {c.camera_id: {"state": c.state, "last_error": c.last_error} for c in self.pipeline.captures}

    def health(self) -> dict:
        """/health's body: per camera its state, frames processed per second over the last
        FPS_WINDOW, last frame's time and last error, and whether it is `ok`: a live camera
        while streaming, a file or folder unless failed (one that has ended is done, not down).
        `ok` overall: every camera is, and no pipeline stage failed."""
        now = time.monotonic()
        with self.lock:
            recent = {c: sum(1 for t in times if now - t <= FPS_WINDOW) for c, times in self.frame_times.items()}
            last = dict(self.last_frame)
        cameras = {}
        for c in self.pipeline.captures:
            ok = c.state == "streaming" if self.live[c.camera_id] else c.state != "failed"
            cameras[c.camera_id] = {
                "ok": ok, "live": self.live[c.camera_id], "state": c.state,
                "fps": round(recent[c.camera_id] / FPS_WINDOW, 2),
                "last_frame_time": _utc_text(last[c.camera_id]) if c.camera_id in last else None,
                "last_error": c.last_error}
        failure = self.pipeline.failure
        return {"ok": failure is None and all(c["ok"] for c in cameras.values()),
                "error": None if failure is None else str(failure), "cameras": cameras}

    def _frame(self, camera_id: str, image: np.ndarray) -> None:
        # The pipeline draws each annotated frame anew: keeping a reference is enough.
        now, wall = time.monotonic(), time.time()
        with self.lock:
            number = self.frames[camera_id][0] + 1 if camera_id in self.frames else 1
            self.frames[camera_id] = (number, image, None)
            self.frame_times[camera_id].append(now)
            self.last_frame[camera_id] = wall

    def _event(self, event: dict) -> None:
        with self.lock:
            self.events[event["camera_id"]].append(event)

    def plates(self, camera_id: str, after: int) -> list[dict]:
        with self.lock:
            return [e for e in self.events[camera_id] if e["seq"] > after]

    def _latest_jpeg(self, camera_id: str) -> tuple[int, bytes]:
        with self.lock:
            number, image, jpeg = self.frames[camera_id]
        if jpeg is None:  # encoded once per frame, however many viewers
            jpeg = _jpeg(image)
            with self.lock:
                if self.frames[camera_id][0] == number:
                    self.frames[camera_id] = (number, image, jpeg)
        return number, jpeg

    async def mjpeg(self, camera_id: str):
        """MJPEG parts, each newer frame once; ends after the last frame of a pipeline that ended
        (file sources)."""
        sent = 0
        while True:
            running = self.thread.is_alive()  # before looking at frames: none comes after it ended
            with self.lock:
                number = self.frames[camera_id][0] if camera_id in self.frames else 0
            if number > sent:
                sent, jpeg = await asyncio.to_thread(self._latest_jpeg, camera_id)
                yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
            elif not running:
                return
            else:
                await asyncio.sleep(FRAME_POLL)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.pipeline.stop()
        self.thread.join(STOP_WAIT)


class History:
    """The journal as /events reads it: a read-only connection of its own, used by one request
    at a time, opened by the first request that finds the file (the live pipeline creates it;
    so may another process writing the same journal)."""

    def __init__(self, config: JournalConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self._reader: JournalReader | None = None

    @contextmanager
    def reader(self) -> Iterator[JournalReader]:
        """The reader; 404 without a journal, 503 for one that cannot be read (corrupt...)."""
        if not self.config.enabled:
            raise HTTPException(404, "no journal: journal.enabled is off")
        with self.lock:
            try:
                if self._reader is None:
                    if not Path(self.config.path).is_file():
                        raise HTTPException(404, f"no journal at {self.config.path}")
                    self._reader = JournalReader(self.config.path)
                yield self._reader
            except JournalError as e:
                raise HTTPException(503, str(e)) from None

    def close(self) -> None:
        with self.lock:
            if self._reader is not None:
                self._reader.close()


@dataclass
class Filters:
    """The /events filters, checked: times as events carry them, so that text order is time order."""
    plate: str | None
    camera: str | None
    since: str | None
    until: str | None
    max_distance: float

    def plates(self, reader: JournalReader) -> list[str] | None:
        """The journal's plates within max_distance of `plate`; None: no plate filter."""
        return None if self.plate is None else list(near(self.plate, reader.plates(), self.max_distance))


def _utc_filter(name: str, value: str | None) -> str | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name}: not an ISO 8601 time: {value[:40]!r}") from None
    if t.tzinfo is not None:  # naive: UTC already, as events are
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.isoformat(timespec="milliseconds") + "Z"


def _filters(
        plate: str | None = Query(None, description="a plate, matched within max_distance (stream.plates.distance: "
                                                    "confusable characters such as O/0 cost 0.5); spaces and dashes "
                                                    "are ignored"),
        camera: str | None = Query(None, description="one camera's events"),
        since: str | None = Query(None, description="first seen at or after this ISO 8601 time (UTC unless it has "
                                                    "an offset)"),
        until: str | None = Query(None, description="first seen before this ISO 8601 time"),
        max_distance: float = Query(1.0, ge=0, le=MAX_DISTANCE, description="0: the exact plate")) -> Filters:
    # an empty parameter is no filter: what an HTML form sends for a field left blank
    if plate and not clean(plate):
        raise HTTPException(422, f"plate: no letters or digits in {plate[:40]!r}")
    return Filters(clean(plate) if plate else None, camera or None, _utc_filter("since", since),
                   _utc_filter("until", until), max_distance)


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()


def _csv_row(e: dict) -> str:
    times = {k: (e.get(k) or {}).get("time") for k in ("first_seen", "last_seen")}  # their offset, frame: in JSON
    return _csv_line({**e, **times}.get(k) for k in CSV_COLUMNS)


class _BodyLimit:
    """413 for a request body over `max_mb`, told by its Content-Length before any of it is
    received; 411 for one without a length (chunked), which could not be bounded before
    FastAPI has spooled all of it to disk."""

    def __init__(self, app, max_mb: float) -> None:
        self.app, self.max_mb = app, max_mb

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            length = headers.get("content-length")
            if length is None and "transfer-encoding" in headers:
                error = JSONResponse({"detail": "a request body needs a Content-Length"}, 411)
                return await error(scope, receive, send)
            if length is not None and int(length) > self.max_mb * 2 ** 20:  # the server checked it is a number
                error = JSONResponse({"detail": f"upload too large: the limit is {self.max_mb:g} MB "
                                                f"(api.max_upload_mb)"}, 413)
                return await error(scope, receive, send)
        await self.app(scope, receive, send)


def _upload_kind(filename: str | None, kinds: tuple[str, ...] = ("image", "video")) -> tuple[str, str]:
    """(kind, suffix) of an upload from its file name, or 415."""
    suffix = Path(filename or "").suffix.lower()
    if "image" in kinds and suffix in IMAGE_TYPES:
        return "image", suffix
    if "video" in kinds and suffix in VIDEO_TYPES:
        return "video", suffix
    accepted = ", ".join(s[1:] for s in (IMAGE_TYPES + VIDEO_TYPES if "video" in kinds else IMAGE_TYPES))
    raise HTTPException(415, f"unsupported file type {suffix or '(none)'!r} of {filename!r}: accepted {accepted}")


def _decode_image(data: bytes, filename: str | None) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise HTTPException(422, f"unreadable image (corrupt, or not an image file): {filename}")
    if problem := size_problem(image):
        raise HTTPException(422, f"{problem}: {filename}")
    return image


def _check_video(path: Path, filename: str | None) -> None:
    cap = cv2.VideoCapture(str(path))
    ok = cap.isOpened() and cap.read()[0]
    cap.release()
    if not ok:
        raise HTTPException(422, f"unreadable video (corrupt, or not a video file): {filename}")


def create_app(config: Config) -> FastAPI:
    """The app for a validated config: loads the models, and makes (not yet starts) the job
    worker and, with cameras configured, the live pipeline. AlprError: the one-line reason it
    cannot start."""
    d, o, api = config.detector, config.ocr, config.api
    reader = PlateReader(project_path(d.weights), project_path(o.weights),
                         device=d.device, min_confidence=api.min_confidence,
                         detection_confidence=d.conf, imgsz=d.imgsz, half=d.half,
                         zoom_out=d.zoom_out, second_reader=o.second_reader)
    reader.recognizer.formats = from_regexes(config.plate_formats)  # decode as the Pipeline does
    reader.detector, reader.recognizer = _OneAtATime(reader.detector), _OneAtATime(reader.recognizer)
    models = Models(reader.detector, reader.recognizer)
    jobs = Jobs(config, reader, models)
    live = Live(config, models) if config.cameras else None
    history = History(config.journal)
    uploads = tempfile.TemporaryDirectory(prefix="alpr-uploads-")
    limit_mb = api.max_upload_mb

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        jobs.start()
        if live:
            live.start()
        yield
        jobs.stop()
        if live:
            live.stop()
        history.close()
        uploads.cleanup()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, blank offline. The
    # schema itself is at /openapi.json (docs/api.md describes every endpoint).
    app = FastAPI(title="ALPR", summary="Licence plates in images, videos and live cameras", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.add_middleware(_BodyLimit, max_mb=limit_mb)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, e: RequestValidationError) -> Response:
        detail = "; ".join(f"{'.'.join(str(p) for p in err['loc'][1:]) or err['loc'][0]}: {err['msg']}"
                           for err in e.errors())
        return JSONResponse({"detail": detail}, 422)

    header, query = APIKeyHeader(name="X-API-Key", auto_error=False), APIKeyQuery(name="api_key", auto_error=False)

    def check_key(by_header: str | None = Security(header), by_query: str | None = Security(query)) -> None:
        """The query parameter is for what cannot send headers (an <img> showing MJPEG)."""
        given = by_header if by_header is not None else by_query
        if api.api_key and not (given and secrets.compare_digest(given.encode(), api.api_key.encode())):
            raise HTTPException(401, "missing or wrong API key (header X-API-Key)")

    def camera(camera_id: str) -> Live:
        if live is None or camera_id not in live.cameras:
            raise HTTPException(404, f"unknown camera: {camera_id}")
        return live

    router = APIRouter(dependencies=[Depends(check_key)])

    @router.post("/read", response_model=Plates, summary="Read the plates of an image, at once")
    def read(file: UploadFile) -> dict:
        _upload_kind(file.filename, ("image",))
        plates = reader.read(_decode_image(file.file.read(), file.filename))
        return {"plates": [p.to_json() for p in plates]}

    @router.post("/watchlists/reload", summary="Read the watchlists' files again (as SIGHUP does)")
    def reload_watchlists() -> dict:
        if live is None:
            raise HTTPException(404, "no cameras configured: no watchlists are in use")
        live.pipeline.watchlists.reload()
        return {"reloaded": [w.name for w in config.watchlists]}

    @router.post("/upload", status_code=202, response_model=Submitted, summary="Queue an image or a video")
    def upload(file: UploadFile) -> dict:
        kind, suffix = _upload_kind(file.filename)
        job_id = uuid.uuid4().hex
        job = Job(job_id, kind, file.filename, Path(uploads.name) / f"{job_id}{suffix}")
        try:
            with open(job.path, "wb") as out:
                shutil.copyfileobj(file.file, out)
            if kind == "image":
                _decode_image(job.path.read_bytes(), file.filename)
            else:
                _check_video(job.path, file.filename)
            if not jobs.submit(job):
                raise HTTPException(503, f"busy: {api.queue_size} uploads are waiting already (api.queue_size)")
        except BaseException:
            job.path.unlink(missing_ok=True)
            raise
        return {"job_id": job.id}

    @router.get("/extract/{job_id}", response_model=JobView, summary="A job's status and results")
    def extract(job_id: str) -> JobView:
        return jobs.get(job_id).view()

    @router.get("/extract/{job_id}/image", summary="An image job's image with its plates marked (JPEG)",
                response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    def extract_image(job_id: str) -> Response:
        job = jobs.get(job_id)
        if job.kind != "image":
            raise HTTPException(404, f"job {job_id} is a video: no annotated image")
        if job.image is None:
            raise HTTPException(409, f"job {job_id} is {job.status}: no image")
        return Response(job.image, media_type="image/jpeg")

    @router.get("/live/{camera_id}/stream.mjpg", summary="A camera's annotated frames (MJPEG)",
                response_class=StreamingResponse)
    def live_stream(camera_id: str) -> StreamingResponse:
        return StreamingResponse(camera(camera_id).mjpeg(camera_id),
                                 media_type="multipart/x-mixed-replace; boundary=frame")

    @router.get("/live/{camera_id}/plates", summary="A camera's latest events with seq > after")
    def live_plates(camera_id: str, after: int = 0) -> dict:
        return {"camera_id": camera_id, "plates": camera(camera_id).plates(camera_id, after)}

    @router.get("/events", summary="Events from the journal, newest first, filtered; `next`: the `after` of the "
                                   "next page (null: no more)")
    def events(f: Filters = Depends(_filters), limit: int = Query(EVENTS_PAGE, ge=1, le=MAX_EVENTS_PAGE),
               after: int | None = Query(None, ge=1, description="events with seq < after (a page's `next`)")) -> dict:
        with history.reader() as reader:
            found = reader.search(f.plates(reader), f.camera, f.since, f.until, after, limit)
            images = reader.image_names([e["event_id"] for e in found if "event_id" in e])
        return {"events": found, "images": images, "next": found[-1]["seq"] if len(found) == limit else None}

    @router.get("/events.csv", summary="Events from the journal as CSV, newest first, filtered as /events",
                response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
    def events_csv(f: Filters = Depends(_filters), limit: int | None = Query(None, ge=1, description="default: all"),
                   after: int | None = Query(None, ge=1)) -> StreamingResponse:
        def page(reader: JournalReader, before: int | None, left: int | None) -> list[dict]:
            size = min(left or MAX_EVENTS_PAGE, MAX_EVENTS_PAGE)
            return reader.search(plates, f.camera, f.since, f.until, before, size)

        # The first page is read before answering, so a missing journal is a 404, not a cut CSV.
        with history.reader() as reader:
            plates = f.plates(reader)
            first = page(reader, after, limit)

        def lines(events: list[dict], left: int | None) -> Iterator[str]:
            yield _csv_line(CSV_COLUMNS)
            while events:
                yield "".join(_csv_row(e) for e in events)
                left = None if left is None else left - len(events)
                if len(events) < MAX_EVENTS_PAGE or left == 0:
                    return
                with history.reader() as reader:  # a page at a time: other requests use the connection between
                    events = page(reader, events[-1]["seq"], left)
        return StreamingResponse(lines(first, limit), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="events.csv"'})

    def event_image(name: str):
        def image(event_id: str) -> Response:
            with history.reader() as reader:
                jpeg = reader.image(event_id, name)
            if jpeg is None:
                raise HTTPException(404, f"no {name} image for event {event_id}")
            # an event's images never change; private: the API key may guard them
            return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
        return image

    for name, what in IMAGES.items():
        router.add_api_route(f"/events/{{event_id}}/{name}.jpg", event_image(name), methods=["GET"],
                             summary=f"An event's {what} (JPEG), when stored with it", response_class=Response,
                             responses={200: {"content": {"image/jpeg": {}}}})

    app.include_router(router)

    # Open without the key: the pages (they hold no data), the camera list and limits they show.
    @app.get("/info", summary="Cameras with a live view; upload limits")
    def info() -> dict:
        return {"cameras": live.cameras if live else [], "camera_states": live.states() if live else {},
                "max_upload_mb": limit_mb, "api_key": bool(api.api_key),
                "image_types": [s[1:] for s in IMAGE_TYPES], "video_types": [s[1:] for s in VIDEO_TYPES]}

    # Open too: load balancers poll it, and it tells no more than /info does.
    @app.get("/health", summary="Every camera's state; 503 when a live camera is not streaming or any failed",
             responses={503: {"description": "a camera is down, or the pipeline failed"}})
    def health() -> JSONResponse:
        body = live.health() if live else {"ok": True, "error": None, "cameras": {}}
        return JSONResponse(body, 200 if body["ok"] else 503)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html")

    @app.get("/history", include_in_schema=False)
    def history_page() -> FileResponse:
        return FileResponse(WEB / "history.html")

    @app.get("/live/{camera_id}", include_in_schema=False)
    def live_page(camera_id: str) -> FileResponse:
        camera(camera_id)
        return FileResponse(WEB / "live.html")

    app.mount("/web", StaticFiles(directory=WEB), name="web")
    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn
    import zmq

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, help="YAML config (README: Configuration); its api section")
    ap.add_argument("--host", help="bind address (default: api.host)")
    ap.add_argument("--port", type=int, help="port (default: api.port)")
    args = ap.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else parse_config(None)
        config.api.host = args.host if args.host is not None else config.api.host
        config.api.port = args.port if args.port is not None else config.api.port
        config.api.validate("api.")
    except ConfigError as e:
        print(f"error: config: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        app = create_app(config)
    except (AlprError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # An open MJPEG stream never ends by itself: shutdown closes it after this long.
    uvicorn.run(app, host=config.api.host, port=config.api.port, log_level=config.logging.level.lower(),
                timeout_graceful_shutdown=3)
    # The live pipeline's last events may still wait in ZeroMQ's queue: term() lets them out
    # (every socket is closed by now and lingers LINGER_MS at most).
    zmq.Context.instance().term()
    return 0


if __name__ == "__main__":
    code = main()
    # As run_stream.py does: a live camera's reader thread may still be blocked in OpenCV, and
    # one that comes back while the interpreter finalizes aborts the process.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
