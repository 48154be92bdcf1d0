"""The configuration: one schema of typed dataclasses with defaults, loaded from YAML.

Every knob is a field below, with its default and a comment; the README's configuration
reference is this file. `load_config(path)` validates as it builds: an unknown key, a
wrong type or a bad value raises `ConfigError` with a one-line message naming the key
path (e.g. `cameras[1].max_fps: must be > 0, got -5`).
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from models.defaults import IMGSZ, MIN_CONFIDENCE, NETWORK, OCR_DIR
from models.errors import AlprError
from models.formats import FORMATS


class ConfigError(AlprError, ValueError):
    pass


def _check(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{path}: {message}")


def _check_file(value: str, path: str) -> None:
    """A file named in the config must be there. Exists, not is_file: a named pipe (a secret
    store's) serves as well; relative paths are relative to the working directory, as the
    sinks read them."""
    try:
        found = Path(value).exists() and not Path(value).is_dir()
    except (OSError, ValueError):  # a name too long, a NUL in it
        found = False
    _check(found, path, f"no such file: {value!r}")


def _key(k) -> str:
    """A mapping key as it appears in a key path: one line, never ambiguous."""
    return k if isinstance(k, str) and k.isprintable() else repr(k)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _default_formats() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in FORMATS:
        out.setdefault(f.family, [])
        if f.regex() not in out[f.family]:
            out[f.family].append(f.regex())
    return out


@dataclass
class CameraConfig:
    id: str  # names the camera in events (topic plate.<id>) and logs
    source: str | int  # rtsp:// http(s):// URL, webcam index, video file, image file or folder of images
    roi: list[list[float]] | None = None  # polygon [[x, y], ...] in pixels; plates outside are ignored
    max_fps: float | None = None  # process at most this many frames per second (None: every frame)
    # Also detect in overlapping tiles at near native scale (models.detector.TILE_SCALE), for
    # small plates in large frames (a 60 px plate in 1080p is 16 px at the network's 512): a
    # traffic camera's overview. Costs six more network calls per detected 1080p frame, two
    # per 720p one. Image files and folders are always read so.
    tiles: bool = False
    # Publish only plates moving this way (approaching, receding or crossing): an entry or an
    # exit lane. A plate whose direction is not yet clear (stationary) is published. None: all.
    direction: str | None = None
    dedupe_seconds: float | None = None  # this camera's voting.dedupe_seconds (a garage's queue: longer)

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(self.id != "" and all(c.isalnum() or c in "-_" for c in self.id), f"{path}id",
               f"must be letters, digits, - or _, got {self.id!r}")
        _check(self.id != "process", f"{path}id", "'process' is reserved (health.process is the process's topic)")
        _check(not isinstance(self.source, str) or self.source.strip() != "", f"{path}source", "must not be empty")
        _check(not isinstance(self.source, int) or self.source >= 0, f"{path}source",
               f"a webcam index must be >= 0, got {self.source}")
        if self.roi is not None:
            _check(len(self.roi) >= 3 and all(len(p) == 2 for p in self.roi), f"{path}roi",
                   "must be a polygon of at least 3 [x, y] points")
        _check(self.max_fps is None or self.max_fps > 0, f"{path}max_fps", f"must be > 0, got {self.max_fps}")
        _check(self.direction in (None, "approaching", "receding", "crossing"), f"{path}direction",
               f"must be approaching, receding, crossing or null, got {self.direction!r}")
        _check(self.dedupe_seconds is None or self.dedupe_seconds >= 0, f"{path}dedupe_seconds",
               f"must be >= 0, got {self.dedupe_seconds}")


@dataclass
class CaptureConfig:
    """How live cameras (URLs, webcams) are kept up; replay sources are not affected."""
    # no frame for this long (connecting included): the camera is lost, its open tracks are
    # published, and it is connected again
    stall_seconds: float = 10.0
    max_backoff_seconds: float = 10.0  # pauses between reconnects double from 0.5 s up to this

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        for name in ("stall_seconds", "max_backoff_seconds"):
            # finite: they become OpenCV timeouts in milliseconds
            _check(0 < getattr(self, name) < float("inf"), f"{path}{name}",
                   f"must be > 0 and finite, got {getattr(self, name)}")


@dataclass
class DetectorConfig:
    # auto: the shipped ONNX export on CPU, a TensorRT engine (else PyTorch fp16) on CUDA;
    # or a file: .pt (PyTorch), .onnx (ONNX Runtime), .engine (TensorRT)
    weights: str = "auto"
    imgsz: int = IMGSZ  # network input size (pixels, multiple of 32)
    # minimum detection confidence; in still images, weaker boxes (down to 0.1) count when they
    # read as a confident plate of a known format (models.reader.WEAK_DETECTION)
    conf: float = MIN_CONFIDENCE
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    half: bool = True  # fp16 on CUDA (ignored on CPU)
    # Detect on every k-th frame of a camera once each of its tracks has been read (the
    # tracker carries the boxes in between); every frame while one is unread. 1: every frame.
    # Image files and folders are always detected on every image.
    detect_every: int = 3
    # A second, cheaper pass on the frame shrunk to 112 px wide, for plates wider than a third
    # of it, which the first pass boxes only in part (gate close-ups); in video on CPU only where
    # the first pass saw nothing or something wide (models/detector.py). Off: about 5 ms less
    # per such frame on CPU, for cameras that never see a plate that close.
    zoom_out: bool = True

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(self.imgsz >= 32 and self.imgsz % 32 == 0, f"{path}imgsz", f"must be a multiple of 32, got {self.imgsz}")
        _check(0 < self.conf < 1, f"{path}conf", f"must be between 0 and 1, got {self.conf}")
        _check(self.detect_every >= 1, f"{path}detect_every", f"must be >= 1, got {self.detect_every}")
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:") and self.device[5:].isdigit(),
               f"{path}device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass
class TrackerConfig:
    max_age: int = 15  # frames a track survives without a detection
    min_hits: int = 2  # detections before a track is reported
    iou_threshold: float = 0.2  # minimum IoU to match a detection to a track

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(self.max_age >= 1, f"{path}max_age", f"must be >= 1, got {self.max_age}")
        _check(self.min_hits >= 1, f"{path}min_hits", f"must be >= 1, got {self.min_hits}")
        _check(0 <= self.iou_threshold < 1, f"{path}iou_threshold", f"must be in [0, 1), got {self.iou_threshold}")


@dataclass
class OcrConfig:
    weights: str = str(OCR_DIR / f"{NETWORK}.pth")
    min_confidence: float = 0.2  # reads below this are not voted (too unsure to help)
    crop_margin: float = 0.06  # padding around the detector box, share of its size per side
    batch_size: int = 32
    # Also read with PP-OCRv4, a pretrained general text recognizer, every crop ours is not
    # sure of, and combine the two reads (models.recognizer.combine): plates in typefaces our
    # network never saw read far better. It costs about 18 ms per crop so read on a 2-core CPU.
    second_reader: bool = True

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(0 <= self.min_confidence < 1, f"{path}min_confidence", f"must be in [0, 1), got {self.min_confidence}")
        _check(0 <= self.crop_margin <= 0.5, f"{path}crop_margin", f"must be in [0, 0.5], got {self.crop_margin}")
        _check(self.batch_size >= 1, f"{path}batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass
class VotingConfig:
    min_reads_to_finalize: int = 3  # reads before a plate may be finalized early
    min_agreeing: int = 2  # reads that must agree exactly with the leading text
    min_confidence: float = 0.6  # voted confidence needed to finalize early
    # below this a track's final vote is not a plate: no event. A text that fits no plate format
    # needs min_agreeing and min_confidence even then.
    min_final_confidence: float = 0.3
    max_reads_per_track: int = 12  # best reads kept per track (bounds memory)
    candidates: int = 3  # alternatives listed in each event
    dedupe_seconds: float = 10.0  # same plate, same camera, within this time: same vehicle, no new event
    require_format: bool = False  # publish only plates matching one of plate_formats

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        for name in ("min_reads_to_finalize", "min_agreeing", "max_reads_per_track", "candidates"):
            _check(getattr(self, name) >= 1, f"{path}{name}", f"must be >= 1, got {getattr(self, name)}")
        # otherwise the kept reads could never reach the early-finalization count
        _check(self.max_reads_per_track >= self.min_reads_to_finalize, f"{path}max_reads_per_track",
               f"must be >= min_reads_to_finalize ({self.min_reads_to_finalize}), got {self.max_reads_per_track}")
        for name in ("min_confidence", "min_final_confidence"):
            _check(0 <= getattr(self, name) <= 1, f"{path}{name}", f"must be in [0, 1], got {getattr(self, name)}")
        _check(self.dedupe_seconds >= 0, f"{path}dedupe_seconds", f"must be >= 0, got {self.dedupe_seconds}")


@dataclass
class PublisherConfig:
    endpoint: str = "tcp://127.0.0.1:5556"  # ZeroMQ PUB bind address (loopback unless you mean otherwise)
    send_crop: bool = False  # add the plate crop as a JPEG third frame
    high_water_mark: int = 1000  # messages queued per subscriber before ZeroMQ drops
    # ZeroMQ REP bind address answering "events after seq N" from the journal (needs journal.enabled)
    replay_endpoint: str = "tcp://127.0.0.1:5557"
    health_seconds: float = 5.0  # period of the health.<camera_id> and health.process messages on endpoint
    # CurveZMQ on both sockets (README, "Security"): the server's secret key file and a folder of
    # the public .key files of the clients let in, both made by `python -m stream.curve`. Both or neither.
    curve_secret_key: str = ""
    curve_client_keys: str = ""

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        for name in ("endpoint", "replay_endpoint"):
            _check(getattr(self, name).split("://")[0] in ("tcp", "ipc", "inproc"), f"{path}{name}",
                   f"must be tcp://, ipc:// or inproc://, got {getattr(self, name)!r}")
        _check(self.high_water_mark >= 1, f"{path}high_water_mark", f"must be >= 1, got {self.high_water_mark}")
        _check(self.health_seconds > 0, f"{path}health_seconds", f"must be > 0, got {self.health_seconds}")
        _check(bool(self.curve_secret_key) == bool(self.curve_client_keys),
               f"{path}curve_client_keys" if self.curve_secret_key else f"{path}curve_secret_key",
               "must be set too: Curve needs the server's secret key and the clients' public keys")


@dataclass
class JournalConfig:
    enabled: bool = True  # write every event to an SQLite journal before publishing it
    path: str = "events.db"  # the journal file; a relative path is relative to the working directory
    retention_days: float = 30.0  # events older than this are deleted (the latest one is always kept)

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(self.path.strip() != "", f"{path}path", "must not be empty")
        _check(self.retention_days > 0, f"{path}retention_days", f"must be > 0, got {self.retention_days}")


@dataclass
class MqttConfig:
    host: str = ""  # broker host name or address; empty: no MQTT
    port: int = 1883  # 8883 is the usual TLS port
    topic: str = "alpr/plates"  # each event goes to <topic>/<camera_id>
    # 0 | 1 | 2; with 1 and 2 events wait (up to sinks.queue_size) while the broker is away, and
    # count as delivered once the broker confirmed them (at 0: once written to the connection)
    qos: int = 1
    username: str = ""
    password: str = field(default="", repr=False)  # never printed, the config's repr included
    client_id: str = ""  # empty: one is made up per run
    tls: bool = False  # connect over TLS, checking the broker's certificate against ca_file
    ca_file: str = ""  # CA certificates (PEM) the broker's certificate must chain to; empty: the system's
    cert_file: str = ""  # client certificate (PEM), for brokers that require one
    key_file: str = ""  # its private key (PEM, unencrypted); empty: it is in cert_file

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(1 <= self.port <= 65535, f"{path}port", f"must be 1 to 65535, got {self.port}")
        _check(self.qos in (0, 1, 2), f"{path}qos", f"must be 0, 1 or 2, got {self.qos}")
        _check(self.topic.strip("/") != "" and not set(self.topic) & set("+#"), f"{path}topic",
               f"must be a topic without wildcards, got {self.topic!r}")
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value:
                _check(self.tls, f"{path}{name}", "needs tls: true")
                _check_file(value, f"{path}{name}")
        _check(not self.key_file or self.cert_file, f"{path}key_file", "needs cert_file too")


@dataclass
class WebhookConfig:
    url: str  # http:// or https:// address that receives each event as a JSON POST
    timeout_seconds: float = 5.0  # per attempt
    retries: int = 5  # attempts after the first failed one, pauses doubling from 0.5 s
    max_backoff_seconds: float = 30.0  # longest pause between attempts
    # sent with every POST, e.g. {Authorization: "Bearer ..."}; values are never logged
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        scheme = repr(self.url.split("://")[0]) if "://" in self.url else "none"  # the rest may hold a token
        _check(self.url.startswith(("http://", "https://")), f"{path}url",
               f"must start with http:// or https://, got scheme {scheme}")
        _check(self.timeout_seconds > 0, f"{path}timeout_seconds", f"must be > 0, got {self.timeout_seconds}")
        _check(self.retries >= 0, f"{path}retries", f"must be >= 0, got {self.retries}")
        _check(self.max_backoff_seconds > 0, f"{path}max_backoff_seconds",
               f"must be > 0, got {self.max_backoff_seconds}")
        for name, value in self.headers.items():
            # what HTTP carries on one header line; the value is not shown (it is often a secret)
            _check(re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) is not None, f"{path}headers.{_key(name)}",
                   "must be a header name (letters, digits, -)")
            _check(value.isascii() and value.isprintable(), f"{path}headers.{_key(name)}",
                   "must be printable ASCII on one line (value not shown)")


@dataclass
class NatsConfig:
    """NATS JetStream (docs/deploy.md): every event on <subject_prefix>.plate.<camera_id> (an
    alert also on <subject_prefix>.alert.<camera_id>) with its event_id as message id, so a
    retry is stored once; this worker's health on <subject_prefix>.health.<worker>. Events are
    sent from the journal: what NATS has not acknowledged is sent again, in seq order, after a
    restart or a reconnect."""
    servers: list[str] = field(default_factory=list)  # nats:// or tls:// URLs of the cluster's servers; empty: no NATS
    stream: str = "ALPR"  # the JetStream stream; created when missing (subjects <subject_prefix>.>)
    subject_prefix: str = "alpr"  # the first subject tokens, e.g. alpr or site1.alpr
    replicas: int = 1  # copies of the stream a new stream is created with (3 for a 3-node cluster); 1 to 5
    # a message id JetStream saw this recently is not stored again (retries, a worker restarted)
    duplicate_window_seconds: float = 120.0
    max_age_days: float = 0.0  # a new stream drops messages older than this; 0: keeps them
    timeout_seconds: float = 5.0  # wait this long for JetStream's acknowledgement, then send again
    health_seconds: float = 5.0  # period of the worker's health message
    worker: str = ""  # names this worker in <subject_prefix>.health.<worker>; empty: the host name
    # a journal this sink never sent from: false: send its events from now on; true: all it holds
    backfill: bool = False
    credentials_file: str = ""  # a NATS .creds file (user JWT and NKey seed); empty: none
    username: str = ""
    password: str = field(default="", repr=False)  # never printed, the config's repr included
    tls: bool = False  # check the servers' certificates against ca_file (tls:// URLs imply it)
    ca_file: str = ""  # CA certificates (PEM) the servers' certificates must chain to; empty: the system's
    cert_file: str = ""  # client certificate (PEM), for servers that require one
    key_file: str = ""  # its private key (PEM, unencrypted); empty: it is in cert_file

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        for i, url in enumerate(self.servers):
            scheme = repr(url.split("://")[0]) if "://" in url else "none"  # the rest may hold a password
            _check(url.startswith(("nats://", "tls://", "ws://", "wss://")), f"{path}servers[{i}]",
                   f"must start with nats://, tls://, ws:// or wss://, got scheme {scheme}")
        _check(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.stream) is not None, f"{path}stream",
               f"must be 1 to 64 letters, digits, - or _, got {self.stream!r}")
        _check(re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", self.subject_prefix) is not None,
               f"{path}subject_prefix", f"must be dot-separated tokens of letters, digits, - or _, "
               f"got {self.subject_prefix!r}")
        _check(1 <= self.replicas <= 5, f"{path}replicas", f"must be 1 to 5, got {self.replicas}")
        for name in ("duplicate_window_seconds", "timeout_seconds", "health_seconds"):
            _check(0 < getattr(self, name) < float("inf"), f"{path}{name}",
                   f"must be > 0 and finite, got {getattr(self, name)}")
        _check(0 <= self.max_age_days < float("inf"), f"{path}max_age_days",
               f"must be >= 0 and finite, got {self.max_age_days}")
        _check(re.fullmatch(r"[A-Za-z0-9_-]*", self.worker) is not None, f"{path}worker",
               f"must be letters, digits, - or _, got {self.worker!r}")
        _check(not self.password or self.username, f"{path}password", "needs username too")
        _check(not (self.credentials_file and self.username), f"{path}credentials_file",
               "give credentials_file or username, not both")
        for name in ("credentials_file", "ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value:
                _check(name == "credentials_file" or self.tls or any(u.startswith(("tls://", "wss://"))
                                                                     for u in self.servers),
                       f"{path}{name}", "needs tls: true")
                _check_file(value, f"{path}{name}")
        _check(not self.key_file or self.cert_file, f"{path}key_file", "needs cert_file too")


@dataclass
class SinksConfig:
    """Where events go besides the ZeroMQ socket (README, "Sinks"); each is optional."""
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    webhooks: list[WebhookConfig] = field(default_factory=list)
    csv: str = ""  # append one row per event to this file; empty: off
    jsonl: str = ""  # append one JSON line per event to this file; empty: off
    queue_size: int = 1000  # events waiting per sink; when full its oldest is dropped (counted, logged)
    nats: NatsConfig = field(default_factory=NatsConfig)  # NATS JetStream; off without servers

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(self.queue_size >= 1, f"{path}queue_size", f"must be >= 1, got {self.queue_size}")


@dataclass
class MetricsConfig:
    port: int = 0  # serve Prometheus metrics at http://<host>:<port>/metrics; 0: off
    host: str = "127.0.0.1"  # bind address of the metrics server

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(0 <= self.port <= 65535, f"{path}port", f"must be 0 (off) to 65535, got {self.port}")


@dataclass
class LoggingConfig:
    level: str = "INFO"  # DEBUG | INFO | WARNING | ERROR
    stats_seconds: float = 5.0  # period of the FPS / latency log line

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(self.level in ("DEBUG", "INFO", "WARNING", "ERROR"), f"{path}level",
               f"must be DEBUG, INFO, WARNING or ERROR, got {self.level!r}")
        _check(self.stats_seconds > 0, f"{path}stats_seconds", f"must be > 0, got {self.stats_seconds}")


@dataclass
class ApiConfig:
    """The HTTP API and web app (`python -m stream.api`)."""
    host: str = "127.0.0.1"  # bind address: loopback unless you mean to open it (then set api_key)
    port: int = 8080
    max_upload_mb: float = 100.0  # bigger uploads are refused (413) before they are received
    # required in the X-API-Key header (or an api_key query parameter) of every API call; "" = none
    api_key: str = ""
    min_confidence: float = 0.5  # still images: reads below this are recognition failures (text null)
    queue_size: int = 8  # uploads waiting for the worker (one job runs at a time); more are refused (503)
    jobs_kept: int = 100  # finished jobs whose results stay available; the oldest are forgotten

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        _check(self.host.strip() != "", f"{path}host", "must not be empty")
        _check(1 <= self.port <= 65535, f"{path}port", f"must be 1 to 65535, got {self.port}")
        _check(self.max_upload_mb > 0, f"{path}max_upload_mb", f"must be > 0, got {self.max_upload_mb}")
        # it travels in an HTTP header, which carries printable ASCII and trims spaces
        _check(self.api_key.isascii() and self.api_key.isprintable() and " " not in self.api_key,
               f"{path}api_key", "must be printable ASCII without spaces")
        _check(0 <= self.min_confidence <= 1, f"{path}min_confidence", f"must be in [0, 1], got {self.min_confidence}")
        _check(self.queue_size >= 1, f"{path}queue_size", f"must be >= 1, got {self.queue_size}")
        _check(self.jobs_kept >= 1, f"{path}jobs_kept", f"must be >= 1, got {self.jobs_kept}")


@dataclass
class WatchlistConfig:
    """Plates to look out for (stream/watchlist.py): each event is matched against every list."""
    name: str  # names the list in the event's `match`
    # plate texts (A-Z0-9; dashes and spaces ignored) or regexes over that text (an entry with
    # any of ^$[]().*+?{}| is a regex)
    plates: list[str] = field(default_factory=list)
    file: str = ""  # also the first column of this CSV file (reloaded on SIGHUP); empty: none
    # a text entry matches a plate this many edits away at most; a confusable pair (O/0/D/Q,
    # I/1/T, B/8, S/5, Z/2, G/6) costs half an edit
    max_distance: float = 1.0
    action: str = "alert"  # alert: also on topic alert.<camera_id> and to every sink; ignore: never alert

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "watchlists[0]."
        _check(self.name.strip() != "", f"{path}name", "must not be empty")
        _check(self.action in ("alert", "ignore"), f"{path}action", f"must be alert or ignore, got {self.action!r}")
        _check(self.max_distance >= 0, f"{path}max_distance", f"must be >= 0, got {self.max_distance}")
        _check(bool(self.plates) or self.file != "", f"{path}plates", "give plates, a file, or both")
        if self.file:
            _check_file(self.file, f"{path}file")
        for i, entry in enumerate(self.plates):
            try:
                re.compile(entry)
            except (re.error, OverflowError, RecursionError) as e:
                raise ConfigError(f"{path}plates[{i}]: bad regex {entry!r}: {e}") from None


@dataclass
class Config:
    cameras: list[CameraConfig] = field(default_factory=list)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    voting: VotingConfig = field(default_factory=VotingConfig)
    # family -> regexes over A-Z0-9 text; tag each plate with its family, and with
    # voting.require_format reject what matches none. Sequences of [A-Z], [0-9] and
    # [A-Z0-9] with {n} or {m,n} counts, after an optional group of region codes, also
    # guide the OCR decoder (README, "Configuration").
    plate_formats: dict[str, list[str]] = field(default_factory=_default_formats)
    publisher: PublisherConfig = field(default_factory=PublisherConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    watchlists: list[WatchlistConfig] = field(default_factory=list)

    def validate(self, path: str) -> None:  # path: the key prefix, e.g. "cameras[0]."
        ids = [c.id for c in self.cameras]
        names = [w.name for w in self.watchlists]
        _check(len(names) == len(set(names)), f"{path}watchlists", f"list names must be unique, got {names}")
        _check(len(ids) == len(set(ids)), f"{path}cameras", f"camera ids must be unique, got {ids}")
        for family, patterns in self.plate_formats.items():
            for i, p in enumerate(patterns):
                try:
                    re.compile(p)
                except (re.error, OverflowError, RecursionError) as e:  # a{99999999999}, (((...))) too deep
                    raise ConfigError(f"{path}plate_formats.{_key(family)}[{i}]: bad regex {p!r}: {e}") from None


def _type_name(t) -> str:
    return getattr(t, "__name__", str(t)).replace("NoneType", "null")


def _build(t, value, path: str):
    """Convert a YAML value to type `t`, or raise ConfigError naming `path`."""
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(t)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _build(option, value, path)
            except ConfigError:
                pass
        raise ConfigError(f"{path}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}")
    if dataclasses.is_dataclass(t):
        _check(isinstance(value, dict), path or "config", f"expected a mapping, got {value!r}")
        hints = typing.get_type_hints(t)
        names = {f.name for f in dataclasses.fields(t)}
        prefix = f"{path}." if path else ""
        for key in value:
            _check(key in names, f"{prefix}{_key(key)}", f"unknown key (known: {', '.join(sorted(names))})")
        kwargs = {k: _build(hints[k], v, f"{prefix}{k}") for k, v in value.items()}
        try:
            obj = t(**kwargs)
        except TypeError as e:  # a required key is missing
            missing = [f.name for f in dataclasses.fields(t) if f.name not in kwargs
                       and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
            raise ConfigError(f"{prefix}{missing[0] if missing else ''}: required key missing") from e
        obj.validate(prefix)
        return obj
    if origin is list:
        _check(isinstance(value, list), path, f"expected a list, got {value!r}")
        (item,) = typing.get_args(t)
        return [_build(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _check(isinstance(value, dict), path, f"expected a mapping, got {value!r}")
        kt, vt = typing.get_args(t)
        return {_build(kt, k, f"{path}.{_key(k)}"): _build(vt, v, f"{path}.{_key(k)}") for k, v in value.items()}
    if t is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), path, f"expected a number, got {value!r}")
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range
            raise ConfigError(f"{path}: number too large, got {value!r}") from None
    if t is int:
        _check(isinstance(value, int) and not isinstance(value, bool), path, f"expected an integer, got {value!r}")
        return value
    if t is bool:
        _check(isinstance(value, bool), path, f"expected true or false, got {value!r}")
        return value
    if t is str:
        _check(isinstance(value, str), path, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported schema type {t} at {path}")


def parse_config(data) -> Config:
    """Validate a parsed YAML document (None = all defaults)."""
    return _build(Config, {} if data is None else data, "")


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file unreadable: {path}: {e}") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: e.g. `!!int abc`
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" line {mark.line + 1} column {mark.column + 1}"
        elif isinstance(getattr(e, "position", None), int):  # ReaderError: a control character
            where = f" line {text.count(chr(10), 0, e.position) + 1}"
        else:
            where = ""
        problem = getattr(e, "problem", None) or e
        if isinstance(e, yaml.reader.ReaderError):
            problem = str(e).splitlines()[0]  # the rest is its position, given above as a line
        raise ConfigError(f"{path}:{where} malformed YAML: {_one_line(problem)}") from None
    return parse_config(data)
