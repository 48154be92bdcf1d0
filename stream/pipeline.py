"""The stream pipeline: capture -> detect -> track -> read -> vote -> publish.

Threads connected by bounded queues, as in Frigate's layout:

    capture (one per camera) --frames--> detect+track --ReadJob--> read+vote+publish

The detect thread takes frames from every camera queue (a batch when several are
waiting), runs the detector, updates each camera's tracker and crops the tracks worth
reading. The read thread runs the OCR on those crops in batches, votes per track and
publishes each decision (ZeroMQ, and JSONL when asked). Queues between the stages are
bounded, and the read queue blocks the detect thread when OCR falls behind, so memory
stays flat; live cameras then drop their oldest frames at capture.

The read thread also owns the PUB socket's health messages: every `publisher.health_seconds`
one `health.<camera_id>` per camera and one `health.process` (layout: README, "Health").
`stop()` ends capture; `run()` then processes what is queued, finalizes every open track
(its event is published) and returns.

An exception in either thread stops the pipeline the same way: capture ends, every track that
can still be voted is voted and published, the failure is logged in one line naming its stage,
and `run()` raises `StageFailed` once all is closed.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from config.schema import Config
from models.defaults import project_path
from models.detector import Detection, PlateDetector
from models.images import VideoWriter, letterbox
from models.formats import family_matcher, from_regexes
from models.reader import EXTRA_MARGINS, WEAK_DETECTION, confirmed_tries, overlap
from models.reader import crop as crop_box
from models.recognizer import PlateRecognizer
from stream.capture import Capture, EndOfStream, check_source, is_live, is_stills
from stream.curve import Server
from stream.journal import Journal
from stream.messages import Frame, PlateDecision, PlateRead, Track
from stream.metrics import PipelineMetrics
from stream.publish import Clock, EventPublisher, PublishError, now_iso
from stream.replay import ReplayServer
from stream.sinks import open_sinks
from stream.stats import PipelineStats
from stream.vote import PlateVoter
from stream.watchlist import Watchlists
from stream.wire import SCHEMA_VERSION, CameraHealth, ProcessHealth
from trackers.kalman import SortTracker, direction

log = logging.getLogger(__name__)
# One line per event; a program that prints the events itself (run_stream) turns it down.
events_log = logging.getLogger(f"{__name__}.events")

FRAME_QUEUE = 8  # frames buffered per camera
READ_QUEUE = 16  # frames' worth of crops waiting for OCR
SHARPER = 1.2  # after a plate is decided, a new crop is read only when this much better
EDGE = 2  # px: boxes this close to the frame border are not read
STEADY = 0.12  # a box is read only when its width changed less than this share since the last frame
SINK_CLOSE_S = 5.0  # at shutdown, how long each sink may still deliver what it has queued
IDLE_POLL = 0.2  # s: how often an idle read thread looks whether health messages are due


class StageFailed(Exception):
    """A pipeline stage raised: the pipeline stopped (see the module docstring)."""

    def __init__(self, stage: str, error: BaseException):
        detail = " ".join(str(error).split())
        super().__init__(f"{stage} failed: {type(error).__name__}{': ' + detail if detail else ''}")
        self.stage = stage


@dataclass
class ReadJob:
    """One frame's output of the detect thread, or (frame index -1, see `_ending`) only the
    end of a camera's tracks."""
    frame: Frame
    tracks: list[Track]  # every reported track (for annotation)
    to_read: list[tuple[Track, np.ndarray]]  # tracks whose crop is worth an OCR read
    ended: list[int] = field(default_factory=list)  # track ids that ended at this frame


def _ending(camera_id: str, ended: list[int]) -> ReadJob:
    """A job without a frame that ends tracks: the camera's source ended or went silent."""
    return ReadJob(Frame(camera_id, -1, 0.0, np.zeros((1, 1, 3), np.uint8), 0.0), [], [], ended)


@dataclass
class Models:
    """The loaded networks; several pipelines in one process (evaluation) can share them."""
    detector: PlateDetector
    recognizer: PlateRecognizer


@dataclass
class _TrackState:
    queued: int = 0  # reads sent to OCR
    best_quality: float = 0.0
    last_width: float | None = None  # box width in the track's previous matched frame


def crop_quality(crop: np.ndarray) -> float:
    """Bigger and sharper is better: width times a saturating Laplacian-variance sharpness."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    sharp = cv2.Laplacian(grey, cv2.CV_32F).var()
    return crop.shape[1] * min(1.0, sharp / 400.0)


@contextmanager
def _naming_key(key: str):
    """A PublishError raised inside as `key: message`, so the user knows what to change."""
    try:
        yield
    except PublishError as e:
        raise PublishError(f"{key}: {e}") from None


def vehicle_box(plate: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Around a plate, where its vehicle is: a car is about four plates wide, its plate low on it."""
    x1, y1, x2, y2 = plate
    w = x2 - x1
    return x1 - 1.5 * w, y1 - 2.2 * w, x2 + 1.5 * w, y2 + 0.6 * w


def _annotated(job: ReadJob, labels: dict[int, str]) -> np.ndarray:
    """The frame with its tracks drawn (legend: docs/api.md): a detected plate in green with its
    track id and plate text; a predicted box (the plate missed in this frame, the tracker's
    guess) thin and orange with its id alone, since it may already lie on another car, and not
    at all where it overlaps a detected one."""
    img = job.frame.image.copy()
    detected = [t.box for t in job.tracks if t.matched]
    for t in sorted(job.tracks, key=lambda t: t.matched):  # detected boxes drawn last, on top
        if not t.matched and any(overlap(t.box, b) for b in detected):
            continue
        x1, y1, x2, y2 = (int(v) for v in t.box)
        colour, width = ((0, 220, 0), 2) if t.matched else ((0, 160, 255), 1)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, width)
        label = f"#{t.track_id} {labels.get(t.track_id, '')}".strip() if t.matched else f"#{t.track_id}"
        cv2.putText(img, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
    return img


def _in_roi(box, roi) -> bool:
    if roi is None:
        return True
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return cv2.pointPolygonTest(roi, (cx, cy), False) >= 0


def _check_video_path(path: Path) -> None:
    """Fail before the run, not after it: a video that cannot be written at this path."""
    try:
        probe = VideoWriter(path, 15.0, (64, 48))
        probe.write(np.zeros((48, 64, 3), np.uint8))
        probe.close()
    except OSError:
        raise ValueError(f"cannot write a video to {path} (give an .mp4 or .avi path in an existing folder)") from None
    finally:
        path.unlink(missing_ok=True)


class Pipeline:
    def __init__(self, config: Config, jsonl: Path | None = None, save_video: Path | None = None,
                 realtime: bool = False, on_event=None, models: Models | None = None, on_frame=None):
        """`on_event(event)` is called with every event as published; `on_frame(camera_id,
        image)` with every processed frame, annotated (boxes, track ids, plates), from the
        read thread: keep it quick."""
        if not config.cameras:
            raise ValueError("no cameras configured (give --source or a config with cameras)")
        for cam in config.cameras:
            check_source(cam.source)
        if save_video is not None:
            _check_video_path(Path(save_video))
        if jsonl and not Path(jsonl).parent.is_dir():  # open() would say only "[Errno 2]"
            raise ValueError(f"cannot write events to {jsonl}: no folder {Path(jsonl).parent}")
        self.config = config
        self.stop_event = threading.Event()
        self.queues = {c.id: queue.Queue(FRAME_QUEUE) for c in config.cameras}
        self.captures = [Capture(c.id, c.source, self.queues[c.id], c.max_fps, realtime, self.stop_event,
                                 config.capture.stall_seconds, config.capture.max_backoff_seconds)
                         for c in config.cameras]
        self._capture = {c.camera_id: c for c in self.captures}
        self.roi = {c.id: None if c.roi is None else np.array(c.roi, np.float32) for c in config.cameras}
        # Replay times are seconds into the file; events date them from the file's mtime so
        # the same file gives the same events.
        self.clocks = {c.id: Clock(0.0 if is_live(c.source) else Path(str(c.source)).stat().st_mtime)
                       for c in config.cameras}
        d, o = config.detector, config.ocr
        self.models = models or Models(
            PlateDetector(project_path(d.weights), device=d.device,
                          half=d.half, imgsz=d.imgsz, zoom_out=d.zoom_out),
            PlateRecognizer(project_path(o.weights), device=d.device, formats=from_regexes(config.plate_formats),
                            second_reader=o.second_reader))
        self.detector, self.recognizer = self.models.detector, self.models.recognizer
        self.trackers = {c.id: SortTracker(c.id, config.tracker.max_age, config.tracker.min_hits,
                                           config.tracker.iou_threshold) for c in config.cameras}
        # Each still image is its own scene, seen once: the tracker cannot carry boxes into the
        # next one, so every plate box of an image is a track of that image alone.
        self._stills = {c.id: itertools.count(1) for c in config.cameras if is_stills(c.source)}  # track ids
        family_of = family_matcher(config.plate_formats)
        self.voters = {c.id: PlateVoter(config.voting if c.dedupe_seconds is None else
                                        dataclasses.replace(config.voting, dedupe_seconds=c.dedupe_seconds),
                                        family_of, seen_once=c.id in self._stills) for c in config.cameras}
        self.watchlists = Watchlists(config.watchlists)
        self._direction = {c.id: c.direction for c in config.cameras}
        j, p = config.journal, config.publisher
        self.curve = Server(p.curve_secret_key, p.curve_client_keys) if p.curve_secret_key else None
        self.journal = Journal(j.path, j.retention_days) if j.enabled else None
        # An address in use is most often a second instance on this machine: name the key to change.
        with _naming_key("publisher.endpoint"):
            self.publisher = EventPublisher(p, self.journal, self.curve)
        with _naming_key("publisher.replay_endpoint"):
            # replay answers from the journal: without one there is nothing to serve
            self.replay = ReplayServer(j.path, p.replay_endpoint, self.curve) if self.journal else None
        self.jsonl = open(jsonl, "a", encoding="utf-8") if jsonl else None
        self.sinks = open_sinks(config.sinks, journal=j.path if self.journal else None,
                                cameras=[c.id for c in config.cameras])
        self.save_video = save_video
        self.on_event = on_event
        self.on_frame = on_frame
        self.read_queue: queue.Queue[ReadJob | None] = queue.Queue(READ_QUEUE)
        self.track_state: dict[tuple[str, int], _TrackState] = {}
        self._skipped = {c.id: 0 for c in config.cameras}  # frames since the camera's last detection
        self._tiled = {c.id for c in config.cameras if c.tiles or c.id in self._stills}
        self._detect_every = {c.id: 1 if c.id in self._stills else config.detector.detect_every for c in config.cameras}
        self.decided: set[tuple[str, int]] = set()  # written by the read thread, read by detect
        self.plates: dict[tuple[str, int], str] = {}  # decided text per track, for annotation
        # (camera, track) -> its first whole detected box, written by detect, read by read
        self.first_box: dict[tuple[str, int], tuple] = {}
        # Latency: from the capture of the first frame whose read already gave the plate's
        # final text (the plate became legible) to the event's publication.
        self.first_read: dict[tuple[str, int], dict[str, float]] = {}
        # Seconds spent per stage since start; each is written by one thread only (bench figures).
        self.stats = PipelineStats([c.id for c in config.cameras])
        self.failure: StageFailed | None = None  # the first stage that raised
        # jobs queued by the detect thread and voted by the read thread (replays wait on them)
        self.jobs_queued = self.jobs_read = 0
        self._read_done = threading.Condition()
        self._started = self._health_at = time.monotonic()  # uptime; the last health messages
        self._health_counts: dict[str, tuple[int, int]] = {}  # camera -> (frames in, processed) then
        self._writer: VideoWriter | None = None
        self.metrics = PipelineMetrics(self) if config.metrics.port else None
        if self.metrics:
            self.metrics.start(config.metrics.host, config.metrics.port)

    # --- detect + track -------------------------------------------------------------------
    def _next_frames(self, open_cams: set[str]) -> list[Frame | EndOfStream]:
        """Up to one item per camera that has one waiting; waits briefly when none has.

        Once stopping, a camera with nothing queued is ended here: what it queued before the
        stop is all there is to process, and its capture may be blocked on a stalled source.
        """
        deadline = time.monotonic() + 0.05
        while True:
            stopping = self.stop_event.is_set()
            got = []
            for cam in sorted(open_cams):
                try:
                    got.append(self.queues[cam].get_nowait())
                except queue.Empty:
                    if stopping:
                        got.append(EndOfStream(cam, self._capture[cam].queued))
            if got or time.monotonic() > deadline:
                return got
            time.sleep(0.002)

    def _detect_loop(self) -> None:
        open_cams = set(self.queues)
        last_frame = dict.fromkeys(open_cams, time.monotonic())
        while open_cams:
            items = self._next_frames(open_cams)
            frames = [f for f in items if isinstance(f, Frame)]
            detect = [f for f in frames if self._detect_now(f.camera_id)]
            with self._timed("detect"):
                stills = any(f.camera_id in self._stills for f in detect)
                dets = self.detector.detect([f.image for f in detect], conf=self.config.detector.conf, stills=stills,
                                            weak=WEAK_DETECTION if stills else None,
                                            tiled=[f.camera_id in self._tiled for f in detect]) if detect else []
            found = {id(f): ds for f, ds in zip(detect, dets)}
            self.stats.frames_detected += len(detect)
            now = time.monotonic()
            for frame in frames:
                last_frame[frame.camera_id] = now
                with self._timed("track"):
                    job = self._track(frame, found[id(frame)]) if id(frame) in found else self._coast(frame)
                self._to_read(job)
            for end in (i for i in items if isinstance(i, EndOfStream)):
                open_cams.discard(end.camera_id)
                self._to_read(_ending(end.camera_id, self.trackers[end.camera_id].flush()))
            for cam in open_cams:
                # A live camera silent this long is lost (its capture reconnects): the vehicles
                # in view are gone by the time it is back, and their plates must not wait for it.
                if self._capture[cam].live and now - last_frame[cam] > self.config.capture.stall_seconds:
                    ended = self.trackers[cam].flush()
                    if ended:
                        self._to_read(_ending(cam, ended))
        self._to_read(None)

    def _to_read(self, job: ReadJob | None) -> None:
        """Queue `job` for the read thread, waiting while it is behind; raises the pipeline's
        failure instead where it failed (nothing reads the queue any more)."""
        while True:
            try:
                self.read_queue.put(job, timeout=0.2)
                self.jobs_queued += job is not None
                return
            except queue.Full:
                if self.failure is not None:
                    raise self.failure from None

    def _detect_now(self, cam: str) -> bool:
        """Whether this camera's next frame goes through the detector (`detector.detect_every`)."""
        skipped = self._skipped[cam]
        # Whether a plate is read yet is the read thread's to say. A replay waits for its word,
        # so that the same file gives the same frames detected, tracks and events every time;
        # a live camera takes what is known (its frames would otherwise queue).
        if skipped + 1 < self._detect_every[cam] and self._unread(cam) and not self._capture[cam].live:
            with self._read_done:
                self._read_done.wait_for(lambda: self.jobs_read == self.jobs_queued or self.failure, timeout=5)
        if skipped + 1 >= self._detect_every[cam] or self._unread(cam):
            self._skipped[cam] = 0
            return True
        self._skipped[cam] = skipped + 1
        return False

    def _unread(self, cam: str) -> bool:
        """Whether one of the camera's live tracks has no decided plate yet."""
        return any((cam, tid) not in self.decided for tid in self.trackers[cam].live_ids())

    def _coast(self, frame: Frame) -> ReadJob:
        """A frame the detector skipped: the tracks move on their filters, nothing is read."""
        tracker = self.trackers[frame.camera_id]
        h, w = frame.image.shape[:2]
        return ReadJob(frame, tracker.predict(frame.index, (w, h)), [], tracker.pop_ended())

    def _track(self, frame: Frame, detections: list[Detection]) -> ReadJob:
        cam = frame.camera_id
        # weak boxes (a batch with still images has them) count in stills only, once read (_vote)
        detections = [d for d in detections if _in_roi(d.box, self.roi[cam])
                      and (cam in self._stills or d.confidence >= self.config.detector.conf)]
        h, w = frame.image.shape[:2]
        if cam in self._stills:  # counted in _vote, once the weak boxes are confirmed or not
            tracks = [Track(cam, next(self._stills[cam]), d.box, d.confidence, 1, frame.index, True)
                      for d in detections]
            ended = [t.track_id for t in tracks]  # read now, voted and ended with this image
        else:
            self.stats.detections[cam] += len(detections)
            tracks = self.trackers[cam].update(detections, frame.index, (w, h))
            ended = self.trackers[cam].pop_ended()
        to_read = []
        for t in tracks:
            x1, y1, x2, y2 = t.box
            # A plate cut by the frame edge reads as a confident partial text: wait for all of it.
            if not t.matched or x1 < EDGE or y1 < EDGE or x2 > w - EDGE or y2 > h - EDGE:
                continue
            # the track's first whole box: with its latest read's, its direction of travel
            self.first_box.setdefault((cam, t.track_id), t.box)
            state = self.track_state.setdefault((cam, t.track_id), _TrackState())
            # A plate sliding out from behind something (or into it) changes width from frame
            # to frame and reads as a confident part of itself: read it once its width holds.
            width, last_width, state.last_width = x2 - x1, state.last_width, x2 - x1
            steady = last_width is not None and abs(width - last_width) <= STEADY * max(width, last_width)
            if not steady and cam not in self._stills:  # a still image has no next frame to wait for
                continue
            c = crop_box(frame.image, t.box, self.config.ocr.crop_margin)
            q = crop_quality(c)
            if state.queued >= self.config.voting.max_reads_per_track and q <= state.best_quality:
                continue
            if (cam, t.track_id) in self.decided and q <= state.best_quality * SHARPER:
                continue
            state.queued += 1
            state.best_quality = max(state.best_quality, q)
            to_read.append((t, c))
            if cam in self._stills:  # read at more margins, as the still reader does (_vote)
                to_read += [(t, crop_box(frame.image, t.box, m)) for m in EXTRA_MARGINS]
        for tid in ended:
            self.track_state.pop((cam, tid), None)
        return ReadJob(frame, tracks, to_read, ended)

    # --- read + vote + publish ------------------------------------------------------------
    def _read_loop(self) -> None:
        done = False
        while not done:
            self._health_if_due()
            try:
                jobs = [self.read_queue.get(timeout=IDLE_POLL)]
            except queue.Empty:
                continue
            while len(jobs) < 8:  # batch the OCR over whatever else is waiting
                try:
                    jobs.append(self.read_queue.get_nowait())
                except queue.Empty:
                    break
            if None in jobs:
                done = True
                jobs = jobs[:jobs.index(None)]
            crops = [c for j in jobs for _, c in j.to_read]
            with self._timed("ocr"):
                reads = iter(self.recognizer.read(crops, self.config.ocr.batch_size) if crops else [])
            for job in jobs:
                self._vote(job, [(t, c, next(reads)) for t, c in job.to_read])
            with self._read_done:
                self.jobs_read += len(jobs)
                self._read_done.notify_all()

    def _vote(self, job: ReadJob, reads) -> None:
        f = job.frame
        voter = self.voters[f.camera_id]
        if f.camera_id in self._stills:
            # As the still reader: weak boxes count if their read at the configured margin (each
            # track's first) is a plate, and each plate's most confident read is voted.
            conf = self.config.detector.conf
            tries: dict[int, list] = {}
            for read in reads:
                tries.setdefault(read[0].track_id, []).append(read)
            per_track = list(tries.values())
            keep = confirmed_tries([x[0][0].box for x in per_track], [x[0][0].confidence for x in per_track],
                                   [[r for _, _, r in x] for x in per_track], conf)
            reads = [per_track[i][k] for i, k in keep]
            read = {t.track_id for t, _, _ in reads}
            job.tracks = [t for t in job.tracks if t.confidence >= conf or t.track_id in read]
            self.stats.detections[f.camera_id] += len(job.tracks)
        for track in job.tracks:  # a decided plate still in view (parked, queuing) is still seen
            if track.matched:
                voter.still_seen(track.track_id, f.timestamp)
        for track, crop, r in reads:
            if not r.text or r.confidence < self.config.ocr.min_confidence:
                self.stats.reject(f.camera_id, "unsure" if r.text else "illegible")
                continue
            self.first_read.setdefault((f.camera_id, track.track_id), {}).setdefault(r.text, f.received)
            with self._timed("vote"):
                d = voter.add(PlateRead(f.camera_id, track.track_id, f.index, f.timestamp, r.text, r.confidence,
                                        r.char_confidences, r.region, track.box, crop,
                                        crop_box(f.image, vehicle_box(track.box), 0.0)))
            if d:
                self._publish(d)
            if (plate := voter.settled(track.track_id)) is not None:
                # published, or re-found as a vehicle already published: read, so the detector
                # may slow down for it
                self.decided.add((f.camera_id, track.track_id))
                self.plates[(f.camera_id, track.track_id)] = plate
        # the plates to draw, taken before the tracks that end here (every still image's) forget them
        labels = {t.track_id: self.plates.get((f.camera_id, t.track_id), "") for t in job.tracks}
        for tid in job.ended:
            with self._timed("vote"):
                d = voter.end_track(tid)
            if d:
                self._publish(d)
            self.first_box.pop((f.camera_id, tid), None)
            self.decided.discard((f.camera_id, tid))
            self.first_read.pop((f.camera_id, tid), None)
            self.plates.pop((f.camera_id, tid), None)
        if f.index >= 0:
            self.stats.frames_done += 1
            self.stats.processed[f.camera_id] += 1
            first = f.camera_id == self.config.cameras[0].id  # the saved video is the first camera's
            if self.on_frame or (self.save_video and first):
                img = _annotated(job, labels)
                if self.on_frame:
                    self.on_frame(f.camera_id, img)
                if self.save_video and first:
                    self._write_video(f.camera_id, img)

    @contextmanager
    def _timed(self, stage: str):
        """Time `stage`; an exception from it becomes StageFailed naming it."""
        start = time.perf_counter()
        try:
            yield
        except StageFailed:
            raise
        except Exception as e:
            raise StageFailed(stage, e) from e
        self.stats.stage_seconds[stage] += time.perf_counter() - start

    def _publish(self, d: PlateDecision) -> None:
        if d.crop is not None:  # once per decision, on the crop it was read from
            with self._timed("publish"):
                d = dataclasses.replace(d, issuer=self.recognizer.issuers([d.crop], [d.plate])[0])
        # from boxes of frames the decision has seen, not the detect thread's latest: replay
        # gives the same events however the threads interleave
        if (first := self.first_box.get((d.camera_id, d.track_id))) and d.last_box:
            d = dataclasses.replace(d, direction=direction(first, d.last_box))
        wanted = self._direction[d.camera_id]
        if wanted and d.direction and d.direction.motion not in (wanted, "stationary"):
            log.debug("not published: %s track %d (%s) moves %s", d.plate, d.track_id, d.camera_id, d.direction.motion)
            return
        d = dataclasses.replace(d, match=self.watchlists.match([d.plate, *(c.text for c in d.candidates)]))
        with self._timed("publish"):
            event = self.publisher.publish(d, self.clocks[d.camera_id])
        legible = self.first_read.get((d.camera_id, d.track_id), {}).get(d.plate)
        latency = None if legible is None else time.monotonic() - legible
        self.stats.event(d.camera_id, event["type"], latency)
        if self.metrics and latency is not None:
            self.metrics.latency.observe(latency)
        if self.jsonl:
            self.jsonl.write(json.dumps(event) + "\n")
            self.jsonl.flush()
        for sink in self.sinks:
            sink.put(event)
        if self.on_event:
            self.on_event(event)
        events_log.info("event %d: %s %s track %d (%s, confidence %.2f)%s", event["seq"], event["type"], d.plate,
                 d.track_id, d.camera_id, d.confidence, f", on watchlist {d.match.list}" if d.match else "")

    def _write_video(self, camera_id: str, img: np.ndarray) -> None:
        if self._writer is None:
            fps = next((c.fps for c in self.captures if c.camera_id == camera_id and c.fps), 15.0)
            self._writer = VideoWriter(self.save_video, fps, img.shape[1::-1])
        if img.shape[1::-1] != self._writer.size:  # stills of another size: letterboxed into the first's
            img = letterbox(img, *self._writer.size)[0]
        self._writer.write(img)

    # --- health ---------------------------------------------------------------------------
    def _health_if_due(self, force: bool = False) -> None:
        now = time.monotonic()
        if now - self._health_at < self.config.publisher.health_seconds and not force:
            return
        seconds, self._health_at = now - self._health_at, now
        for c in self.captures:
            done = self.stats.processed[c.camera_id]
            read_before, done_before = self._health_counts.get(c.camera_id, (0, 0))
            self._health_counts[c.camera_id] = (c.read, done)
            self.publisher.send_health(c.camera_id, CameraHealth(
                "health", SCHEMA_VERSION, now_iso(), c.camera_id, c.state, c.state == "streaming",
                fps_in=round((c.read - read_before) / seconds, 2), fps_processed=round((done - done_before) / seconds, 2),
                frames_in=c.read, frames_processed=done, frames_dropped=c.dropped, queue_depth=c.frames.qsize(),
                reconnects=c.reconnects, last_error=c.last_error))
        self.publisher.send_health("process", ProcessHealth(
            "health", SCHEMA_VERSION, now_iso(), round(now - self._started, 1), self.stats.events,
            self.publisher.last_seq))

    # --- running --------------------------------------------------------------------------
    def run(self, progress=None) -> dict:
        """Run until every source ends (or `stop()`); returns the final stats."""
        workers = [threading.Thread(target=self._guarded(self._detect_loop, "detect"), name="detect", daemon=True),
                   threading.Thread(target=self._guarded(self._read_loop, "read"), name="read", daemon=True)]
        if self.replay:
            self.replay.start()
        for t in self.captures + workers:
            t.start()
        start, last_log = time.monotonic(), time.monotonic()
        try:
            while workers[1].is_alive():
                workers[1].join(0.2)
                now = time.monotonic()
                if progress:
                    progress(self)
                if now - last_log >= self.config.logging.stats_seconds:
                    s = self.stats.summary(sum(c.dropped for c in self.captures))
                    log.info("%.1f fps, %d frames, %d events, %d dropped, latency p50 %s ms p95 %s ms",
                             s["frames"] / (now - start), s["frames"], s["events"], s["dropped"],
                             s["latency_ms_p50"], s["latency_ms_p95"])
                    last_log = now
            if self.failure:
                if self.failure.stage not in ("detect", "track"):
                    self._vote_what_is_left()
                self._health_if_due(force=True)  # the cameras, failed
        finally:
            self.close()
        if self.failure:
            raise self.failure
        s = self.stats.summary(sum(c.dropped for c in self.captures))
        s["fps"] = round(s["frames"] / max(1e-9, time.monotonic() - start), 2)
        return s

    def _guarded(self, loop, thread: str):
        """`loop` as a thread's target that turns any exception into the pipeline's failure."""
        def run() -> None:
            try:
                loop()
            except Exception as e:
                self._fail(e if isinstance(e, StageFailed) else StageFailed(thread, e))
                if thread == "detect":  # the read thread still votes and publishes what was read
                    self._end_reading()
        return run

    def _fail(self, failure: StageFailed) -> None:
        """Record the first failure, log it in one line, stop capture and mark every camera failed."""
        if self.failure is None:
            self.failure = failure
            log.error("pipeline stopped: %s", failure)
        self.stop_event.set()
        for c in self.captures:
            c.fail(str(failure))

    def _end_reading(self) -> None:
        """After the detect thread failed: end every camera's tracks and the read thread."""
        jobs = [_ending(cam, tracker.flush()) for cam, tracker in self.trackers.items()]
        read_thread = next((t for t in threading.enumerate() if t.name == "read"), None)
        for job in [*jobs, None]:
            while read_thread is not None and read_thread.is_alive():
                try:
                    self.read_queue.put(job, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _vote_what_is_left(self) -> None:
        """After the read thread failed: vote and publish every open track (each once; a
        publisher that fails again is logged, not retried)."""
        for voter in self.voters.values():
            for tid in voter.open_tracks():
                try:
                    if d := voter.end_track(tid):
                        self._publish(d)
                except Exception as e:
                    log.error("could not publish track %d after the failure: %s: %s", tid, type(e).__name__, e)

    def stop(self) -> None:
        """End capture; `run()` then processes what is queued, publishes every open track and returns."""
        self.stop_event.set()

    def close(self) -> None:
        self.stop_event.set()
        if self._writer is not None:
            self._writer.close()
        if self.jsonl:
            self.jsonl.close()
        self.publisher.close()
        if self.replay:
            self.replay.stop()
        if self.journal:
            self.journal.close()
        if self.curve:
            self.curve.stop()
        deadline = time.monotonic() + SINK_CLOSE_S
        for sink in self.sinks:
            sink.close(deadline)
        if self.metrics:
            self.metrics.close()
