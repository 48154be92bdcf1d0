"""Publish: each plate decision goes out as a versioned JSON event on a ZeroMQ PUB socket.

A message is two frames, the topic `plate.<camera_id>` and the event as UTF-8 JSON, plus a
third frame, the plate crop as JPEG, when `publisher.send_crop` is on. Corrections share
the plate topic (a subscriber to `plate.` gets both) and say what they are in `type`.
The event layout is `stream.wire.PlateEvent` (docs/events.md); change it only with its `SCHEMA_VERSION`.

With a journal (stream/journal.py) each event is written there before it is sent, so a
subscriber can fetch what it missed from the replay server, and seq continues from the
journal's last event across restarts. `publish` returns the event it sent, so whatever
else keeps events (the pipeline's JSONL file) writes exactly what subscribers saw.

Health messages (`send_health`) share the socket under `health.<name>` topics, which a
`plate.` subscriber never sees; they carry no seq and are not journaled (README, "Health").
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import cv2
import numpy as np
import zmq

from config.schema import PublisherConfig
from models.errors import AlprError
from stream.curve import Server
from stream.journal import Journal
from stream.messages import PlateDecision
from stream.wire import (SCHEMA_VERSION, CameraHealth, EventCandidate, EventDirection, EventMatch, PlateEvent,
                         ProcessHealth, Seen)

log = logging.getLogger(__name__)

LINGER_MS = 2000  # on close, how long queued events may still go out before they are dropped
JPEG_QUALITY = 90

_EPOCH = datetime(1970, 1, 1)


class PublishError(AlprError, ValueError):
    """The publisher cannot start; the message is one line naming the endpoint."""


@dataclass(frozen=True)
class Clock:
    """Turns a frame timestamp into wall-clock time: `epoch + timestamp` seconds since 1970.

    0.0 for live sources, whose timestamps already are epoch seconds; for replay the file's
    modification time, so replaying the same file gives the same times on every run.
    """
    epoch: float = 0.0


def _iso(seconds: float) -> str:
    # Whole milliseconds first, then integer date arithmetic: no float rounding in the text.
    ms = round(seconds * 1000)
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def now_iso() -> str:
    """The current UTC time as published: ISO 8601 with milliseconds."""
    return _iso(time.time())


def _seen(seen: tuple[float, int], clock: Clock) -> Seen:
    timestamp, frame = seen
    return Seen(_iso(clock.epoch + timestamp), round(float(timestamp), 6), int(frame))


def event_json(decision: PlateDecision, seq: int, event_id: str, clock: Clock) -> dict:
    """The event for `decision`, as published (`stream.wire.PlateEvent`).

    Numbers are converted to Python floats and ints, since boxes and confidences may arrive
    as numpy scalars, which `json` cannot write.
    """
    issuer = decision.issuer
    return PlateEvent(
        type="plate" if decision.correction_of is None else "correction", schema_version=SCHEMA_VERSION,
        event_id=event_id, seq=seq, camera_id=decision.camera_id, track_id=int(decision.track_id),
        plate=decision.plate, region=decision.region,
        country=issuer.country, country_confidence=_rounded(issuer.country_confidence),
        subdivision=issuer.subdivision, subdivision_confidence=_rounded(issuer.subdivision_confidence),
        confidence=round(float(decision.confidence), 4),
        char_confidences=[round(float(c), 4) for c in decision.char_confidences],
        candidates=[EventCandidate(c.text, round(float(c.score), 4)) for c in decision.candidates],
        box=[round(float(v), 1) for v in decision.box],
        first_seen=_seen(decision.first_seen, clock), last_seen=_seen(decision.last_seen, clock),
        reads=int(decision.reads),
        captured=None if decision.captured is None else _seen(decision.captured, clock),
        direction=None if decision.direction is None else EventDirection(decision.direction.motion,
                                                                          decision.direction.angle),
        match=None if decision.match is None else EventMatch(decision.match.list, decision.match.entry,
                                                             decision.match.distance),
        alert=decision.match is not None and decision.match.action == "alert",
        corrects=decision.correction_of).to_json()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _jpeg(crop: np.ndarray) -> bytes | None:
    """The crop as JPEG, or None (logged) when OpenCV cannot encode it (empty, odd channels)."""
    try:
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    except cv2.error:
        ok = False
    if not ok:
        log.warning("plate crop of shape %s cannot be encoded as JPEG; event sent without it", crop.shape)
        return None
    return buf.tobytes()


class EventPublisher:
    """A bound PUB socket that sends one message per decision.

    Not thread-safe (a ZeroMQ socket belongs to one thread): call it from the publish stage
    only. Subscribers that fall `high_water_mark` messages behind lose events rather than
    slowing the pipeline; `seq` lets them see the gap, and the replay server fills it from
    the journal.
    """

    def __init__(self, config: PublisherConfig, journal: Journal | None = None, curve: Server | None = None) -> None:
        """Bind `config.endpoint` (a `*` port picks a free one; `endpoint` says which).

        With a `journal`, every event is appended to it before it is sent, and seq continues
        from its last event; without one, seq starts at 1. With `curve`, only its clients get
        anything, encrypted.
        """
        self.config = config
        self.journal = journal
        self._next_seq = 1 if journal is None else journal.last_seq() + 1
        self._socket = zmq.Context.instance().socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, config.high_water_mark)
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        if curve is not None:
            curve.secure(self._socket)
        try:
            self._socket.bind(config.endpoint)
        except zmq.ZMQError as e:
            self._socket.close(linger=0)
            # zmq.strerror: the reason alone, without the address pyzmq appends to str(e)
            raise PublishError(f"cannot publish on {config.endpoint}: {zmq.strerror(e.errno)}") from None
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def publish(self, decision: PlateDecision, clock: Clock) -> dict:
        """Journal and send `decision` with the next seq and a fresh event_id; return the event.

        A journal that cannot take the event raises JournalError, and the event is not sent:
        nothing goes out that a subscriber could not fetch again.
        """
        event = event_json(decision, self._next_seq, uuid.uuid4().hex, clock)
        wanted = self.journal is not None or self.config.send_crop
        crop = _jpeg(decision.crop) if wanted and decision.crop is not None else None
        if self.journal is not None:  # with the evidence: the winning read's crop, and its vehicle
            vehicle = _jpeg(decision.vehicle) if decision.vehicle is not None and decision.vehicle.size else None
            self.journal.append(event, {"crop": crop, "vehicle": vehicle})
        self._next_seq += 1
        frames = [f"plate.{decision.camera_id}".encode(), json.dumps(event, separators=(",", ":")).encode()]
        if self.config.send_crop and crop is not None:  # one that will not encode costs the event its picture only
            frames.append(crop)
        self._socket.send_multipart(frames)
        if event["alert"]:  # the same message again for those who listen to alerts alone
            self._socket.send_multipart([f"alert.{decision.camera_id}".encode(), *frames[1:]])
        return event

    @property
    def last_seq(self) -> int:
        """The seq of the latest event (this run's, or with the journal an earlier run's); 0: none yet."""
        return self._next_seq - 1

    def send_health(self, name: str, message: CameraHealth | ProcessHealth | dict) -> None:
        """Send `message` (a `stream.wire` health message or its JSON object) on topic
        `health.<name>`: not journaled, no seq (a lost one is replaced by the next)."""
        body = dataclasses.asdict(message) if dataclasses.is_dataclass(message) else message
        self._socket.send_multipart([f"health.{name}".encode(), json.dumps(body, separators=(",", ":")).encode()])

    def close(self) -> None:
        """Close the socket, giving queued events up to LINGER_MS to leave (the journal is
        its owner's to close)."""
        self._socket.close()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
