"""The YAML configuration: defaults, a full file, one-line errors naming the key path, a fuzz
test of the validator, and the command line's exit on a bad file. No models are loaded."""
from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.schema import (ApiConfig, CameraConfig, CaptureConfig, Config, ConfigError, DetectorConfig,
                           JournalConfig, LoggingConfig, MetricsConfig, MqttConfig, OcrConfig, PublisherConfig,
                           SinksConfig, TrackerConfig, VotingConfig, WatchlistConfig, WebhookConfig, load_config,
                           parse_config)
from models.formats import FORMATS
from models.recognizer import NETWORK, OCR_DIR

ROOT = Path(__file__).resolve().parent.parent


def error_of(data) -> str:
    """The message of the ConfigError that `parse_config(data)` raises; it must be one line."""
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message, message
    return message


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def cam(**kw) -> dict:
    return {"id": "gate1", "source": "video.mp4", **kw}


# --- defaults and a full file ---------------------------------------------------------------

def test_no_document_gives_every_section_with_its_documented_default():
    c = parse_config(None)
    assert isinstance(c, Config)
    assert c.cameras == []
    assert c.capture == CaptureConfig(stall_seconds=10.0, max_backoff_seconds=10.0)
    assert c.detector == DetectorConfig(weights="auto", imgsz=512, conf=0.4, device="auto", half=True,
                                        detect_every=3)
    assert c.tracker == TrackerConfig(max_age=15, min_hits=2, iou_threshold=0.2)
    assert c.ocr == OcrConfig(weights=str(OCR_DIR / f"{NETWORK}.pth"), min_confidence=0.2, crop_margin=0.06,
                              batch_size=32)
    assert c.voting == VotingConfig(min_reads_to_finalize=3, min_agreeing=2, min_confidence=0.6,
                                    min_final_confidence=0.3, max_reads_per_track=12, candidates=3,
                                    dedupe_seconds=10.0, require_format=False)
    assert c.publisher == PublisherConfig(endpoint="tcp://127.0.0.1:5556", send_crop=False, high_water_mark=1000,
                                          replay_endpoint="tcp://127.0.0.1:5557", health_seconds=5.0,
                                          curve_secret_key="", curve_client_keys="")
    assert c.journal == JournalConfig(enabled=True, path="events.db", retention_days=30.0)
    assert c.logging == LoggingConfig(level="INFO", stats_seconds=5.0)
    assert c.api == ApiConfig(host="127.0.0.1", port=8080, max_upload_mb=100.0, api_key="", min_confidence=0.5,
                              queue_size=8, jobs_kept=100)
    # plate_formats defaults to the table in models/formats.py: every family, every regex, once each
    assert set(c.plate_formats) == {f.family for f in FORMATS}
    for f in FORMATS:
        assert f.regex() in c.plate_formats[f.family]
    assert all(len(v) == len(set(v)) for v in c.plate_formats.values())
    # an empty mapping is the same as no document, and each call gets its own objects
    assert parse_config({}) == c
    parse_config(None).plate_formats.clear()
    assert parse_config(None) == c


FULL_YAML = """\
cameras:
  - id: gate1
    source: rtsp://user:pass@10.0.0.5/stream
    roi: [[0, 300], [1280, 300], [1280, 720], [0, 720]]
    max_fps: 10
  - id: lane_2
    source: 0
  - id: yard-3
    source: /data/yard
    roi: null
    max_fps: 2.5
    tiles: true
    direction: approaching
    dedupe_seconds: 60
capture:
  stall_seconds: 4
  max_backoff_seconds: 60
detector:
  weights: models/detector/other.onnx
  imgsz: 640
  conf: 0.4
  device: cuda:1
  half: false
  detect_every: 2
  zoom_out: false
tracker:
  max_age: 30
  min_hits: 3
  iou_threshold: 0.3
ocr:
  weights: models/ocr/other.pth
  min_confidence: 0.1
  crop_margin: 0.1
  batch_size: 8
  second_reader: false
voting:
  min_reads_to_finalize: 4
  min_agreeing: 3
  min_confidence: 0.7
  min_final_confidence: 0.4
  max_reads_per_track: 20
  candidates: 5
  dedupe_seconds: 30
  require_format: true
plate_formats:
  uk: ['^[A-Z]{2}[0-9]{2}[A-Z]{3}$']
  custom: ['^[0-9]{3}[A-Z]{3}$', '^[A-Z]{3}[0-9]{3}$']
publisher:
  endpoint: ipc:///tmp/plates
  send_crop: true
  high_water_mark: 50
  replay_endpoint: ipc:///tmp/plates-replay
  health_seconds: 0.5
  curve_secret_key: /etc/alpr/server.key_secret
  curve_client_keys: /etc/alpr/clients
journal:
  enabled: false
  path: /var/lib/alpr/events.db
  retention_days: 7
sinks:
  mqtt:
    host: broker.local
    port: 8883
    topic: site/plates
    qos: 2
    username: alpr
    password: secret
    client_id: gate-pc
    tls: true
    ca_file: /dev/null  # the schema checks that these exist; /dev/null does everywhere
    cert_file: /dev/null
    key_file: /dev/null
  webhooks:
    - url: https://example.org/hook
      timeout_seconds: 2
      retries: 3
      max_backoff_seconds: 8
      headers: {Authorization: Bearer t0ken, X-Site: gate}
  csv: /var/lib/alpr/events.csv
  jsonl: /var/lib/alpr/events.jsonl
  queue_size: 50
  nats:
    servers: [tls://nats-0.nats:4222, tls://nats-1.nats:4222]
    stream: PLATES
    subject_prefix: site1.alpr
    replicas: 3
    duplicate_window_seconds: 300
    max_age_days: 14
    timeout_seconds: 3
    health_seconds: 10
    worker: worker-2
    backfill: true
    credentials_file: /dev/null
    username: ""
    password: ""
    tls: true
    ca_file: /dev/null
    cert_file: /dev/null
    key_file: /dev/null
metrics:
  port: 9100
  host: 0.0.0.0
logging:
  level: DEBUG
  stats_seconds: 1
api:
  host: 0.0.0.0
  port: 9000
  max_upload_mb: 250
  api_key: k3y-0123
  min_confidence: 0.3
  queue_size: 4
  jobs_kept: 20
watchlists:
  - name: stolen
    plates: [AB12CDE, "^KL[0-9]{2}XYZ$"]
    file: /dev/null
    max_distance: 1.5
    action: ignore
"""


def test_a_full_file_loads_with_the_values_given(tmp_path):
    from config.schema import NatsConfig

    path = tmp_path / "full.yaml"
    path.write_text(FULL_YAML, encoding="utf-8")
    c = load_config(path)
    assert c.cameras == [
        CameraConfig("gate1", "rtsp://user:pass@10.0.0.5/stream",
                     [[0.0, 300.0], [1280.0, 300.0], [1280.0, 720.0], [0.0, 720.0]], 10.0),
        CameraConfig("lane_2", 0),
        CameraConfig("yard-3", "/data/yard", None, 2.5, True, "approaching", 60.0),
    ]
    assert isinstance(c.cameras[1].source, int)
    assert all(isinstance(v, float) for p in c.cameras[0].roi for v in p)
    assert isinstance(c.cameras[0].max_fps, float)
    assert c.capture == CaptureConfig(4.0, 60.0)
    assert all(isinstance(v, float) for v in (c.capture.stall_seconds, c.capture.max_backoff_seconds))
    assert c.detector == DetectorConfig("models/detector/other.onnx", 640, 0.4, "cuda:1", False, 2, False)
    assert c.tracker == TrackerConfig(30, 3, 0.3)
    assert c.ocr == OcrConfig("models/ocr/other.pth", 0.1, 0.1, 8, False)
    assert c.voting == VotingConfig(4, 3, 0.7, 0.4, 20, 5, 30.0, True)
    assert c.plate_formats == {"uk": ["^[A-Z]{2}[0-9]{2}[A-Z]{3}$"],
                               "custom": ["^[0-9]{3}[A-Z]{3}$", "^[A-Z]{3}[0-9]{3}$"]}
    assert c.publisher == PublisherConfig("ipc:///tmp/plates", True, 50, "ipc:///tmp/plates-replay", 0.5,
                                          "/etc/alpr/server.key_secret", "/etc/alpr/clients")
    assert c.journal == JournalConfig(False, "/var/lib/alpr/events.db", 7.0)
    assert isinstance(c.journal.retention_days, float)
    assert c.logging == LoggingConfig("DEBUG", 1.0)
    assert c.api == ApiConfig("0.0.0.0", 9000, 250.0, "k3y-0123", 0.3, 4, 20)
    assert isinstance(c.api.max_upload_mb, float)
    assert c.sinks == SinksConfig(MqttConfig("broker.local", 8883, "site/plates", 2, "alpr", "secret", "gate-pc",
                                             True, "/dev/null", "/dev/null", "/dev/null"),
                                  [WebhookConfig("https://example.org/hook", 2.0, 3, 8.0,
                                                 {"Authorization": "Bearer t0ken", "X-Site": "gate"})],
                                  "/var/lib/alpr/events.csv", "/var/lib/alpr/events.jsonl", 50,
                                  NatsConfig(["tls://nats-0.nats:4222", "tls://nats-1.nats:4222"], "PLATES",
                                             "site1.alpr", 3, 300.0, 14.0, 3.0, 10.0, "worker-2", True, "/dev/null",
                                             "", "", True, "/dev/null", "/dev/null", "/dev/null"))
    assert isinstance(c.sinks.nats.duplicate_window_seconds, float)
    assert c.metrics == MetricsConfig(9100, "0.0.0.0")
    assert c.watchlists == [WatchlistConfig("stolen", ["AB12CDE", "^KL[0-9]{2}XYZ$"], "/dev/null", 1.5, "ignore")]
    # every key of the schema is covered by the file above
    for f in dataclasses.fields(Config):
        assert f"\n{f.name}:" in "\n" + FULL_YAML
    for section in (CaptureConfig, DetectorConfig, TrackerConfig, OcrConfig, VotingConfig, PublisherConfig,
                    JournalConfig, LoggingConfig, CameraConfig, ApiConfig, SinksConfig, MqttConfig, WebhookConfig,
                    MetricsConfig, NatsConfig):
        for f in dataclasses.fields(section):
            assert f" {f.name}:" in FULL_YAML, f.name


def test_a_partial_section_keeps_the_other_defaults():
    c = parse_config({"detector": {"imgsz": 320}, "voting": {"candidates": 1}})
    assert c.detector.imgsz == 320 and c.detector.conf == 0.4 and c.detector.device == "auto"
    assert c.voting.candidates == 1 and c.voting.min_reads_to_finalize == 3
    assert c.tracker == TrackerConfig()


def test_an_empty_file_means_all_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_config(path) == parse_config(None)
    path.write_text("# only a comment\n", encoding="utf-8")
    assert load_config(path) == parse_config(None)


# --- errors name the key path, on one line --------------------------------------------------

@pytest.mark.parametrize("data, path, words", [
    # unknown keys, at the top and nested
    ({"detectr": {}}, "detectr", "unknown key"),
    ({"detector": {"imgsize": 320}}, "detector.imgsize", "unknown key"),
    ({"cameras": [cam(max_fsp=5)]}, "cameras[0].max_fsp", "unknown key"),
    ({"cameras": [cam(), {"id": "b", "source": 1, "rio": []}]}, "cameras[1].rio", "unknown key"),
    # wrong types
    ({"detector": {"imgsz": "384"}}, "detector.imgsz", "expected an integer"),
    ({"detector": {"imgsz": True}}, "detector.imgsz", "expected an integer"),
    ({"ocr": {"batch_size": 8.0}}, "ocr.batch_size", "expected an integer"),
    ({"detector": {"conf": "high"}}, "detector.conf", "expected a number"),
    ({"detector": {"conf": False}}, "detector.conf", "expected a number"),
    ({"detector": {"half": "yes"}}, "detector.half", "expected true or false"),
    ({"detector": {"half": 1}}, "detector.half", "expected true or false"),
    ({"cameras": [cam(source=1.5)]}, "cameras[0].source", "expected str or int"),
    ({"cameras": [cam(source=True)]}, "cameras[0].source", "expected str or int"),
    ({"cameras": [cam(id=7)]}, "cameras[0].id", "expected a string"),
    ({"detector": [1, 2]}, "detector", "expected a mapping"),
    ({"detector": ["imgsz", 320]}, "detector", "expected a mapping"),
    ({"cameras": {"id": "a", "source": 0}}, "cameras", "expected a list"),
    ({"cameras": [["a", 0]]}, "cameras[0]", "expected a mapping"),
    ({"plate_formats": ["^A$"]}, "plate_formats", "expected a mapping"),
    ({"plate_formats": {"uk": "^A$"}}, "plate_formats.uk", "expected a list"),
    ({"plate_formats": {"uk": ["^A$", 5]}}, "plate_formats.uk[1]", "expected a string"),
    ({"cameras": [cam(roi=[[0, 0], [1, "x"], [2, 2]])]}, "cameras[0].roi", "expected"),
    ({"detector": {"conf": 10 ** 400}}, "detector.conf", "too large"),
    # bad values
    ({"cameras": [cam(max_fps=-5)]}, "cameras[0].max_fps", "must be > 0, got -5.0"),
    ({"cameras": [cam(max_fps=0)]}, "cameras[0].max_fps", "must be > 0"),
    ({"cameras": [cam(source=-1)]}, "cameras[0].source", ">= 0"),
    ({"cameras": [cam(source="  ")]}, "cameras[0].source", "must not be empty"),
    ({"cameras": [cam(id="gate 1")]}, "cameras[0].id", "letters, digits"),
    ({"cameras": [cam(id="")]}, "cameras[0].id", "letters, digits"),
    ({"cameras": [cam(id="process")]}, "cameras[0].id", "reserved"),
    ({"capture": {"stall_seconds": 0}}, "capture.stall_seconds", "must be > 0 and finite, got 0.0"),
    ({"capture": {"stall_seconds": float("inf")}}, "capture.stall_seconds", "finite"),
    ({"capture": {"stall_seconds": float("nan")}}, "capture.stall_seconds", "> 0"),
    ({"capture": {"max_backoff_seconds": -1}}, "capture.max_backoff_seconds", "> 0"),
    ({"capture": {"max_backoff_seconds": "10s"}}, "capture.max_backoff_seconds", "expected a number"),
    ({"capture": {"stall": 5}}, "capture.stall", "unknown key"),
    ({"publisher": {"health_seconds": 0}}, "publisher.health_seconds", "must be > 0, got 0.0"),
    ({"detector": {"imgsz": 300}}, "detector.imgsz", "multiple of 32, got 300"),
    ({"detector": {"imgsz": 0}}, "detector.imgsz", "multiple of 32"),
    ({"detector": {"conf": 0}}, "detector.conf", "between 0 and 1"),
    ({"detector": {"conf": 1.0}}, "detector.conf", "between 0 and 1"),
    ({"detector": {"conf": 1.5}}, "detector.conf", "between 0 and 1"),
    ({"detector": {"conf": float("nan")}}, "detector.conf", "between 0 and 1"),
    ({"detector": {"device": "gpu"}}, "detector.device", "'gpu'"),
    ({"detector": {"device": "cuda:x"}}, "detector.device", "cuda:N"),
    ({"tracker": {"max_age": 0}}, "tracker.max_age", ">= 1"),
    ({"tracker": {"iou_threshold": 1}}, "tracker.iou_threshold", "[0, 1)"),
    ({"ocr": {"crop_margin": 0.6}}, "ocr.crop_margin", "[0, 0.5]"),
    ({"logging": {"level": "VERBOSE"}}, "logging.level", "'VERBOSE'"),
    ({"logging": {"level": "info"}}, "logging.level", "DEBUG, INFO"),
    ({"logging": {"stats_seconds": 0}}, "logging.stats_seconds", "> 0"),
    ({"publisher": {"endpoint": "http://0.0.0.0:80"}}, "publisher.endpoint", "tcp://"),
    ({"publisher": {"endpoint": "127.0.0.1:5556"}}, "publisher.endpoint", "tcp://"),
    ({"publisher": {"high_water_mark": 0}}, "publisher.high_water_mark", ">= 1"),
    ({"publisher": {"replay_endpoint": "localhost:5557"}}, "publisher.replay_endpoint", "tcp://"),
    ({"publisher": {"replay_endpoint": 5557}}, "publisher.replay_endpoint", "expected a string"),
    ({"publisher": {"curve_secret_key": "keys/server.key_secret"}}, "publisher.curve_client_keys", "must be set too"),
    ({"sinks": {"mqtt": {"qos": 3}}}, "sinks.mqtt.qos", "must be 0, 1 or 2, got 3"),
    ({"sinks": {"mqtt": {"topic": "plates/#"}}}, "sinks.mqtt.topic", "without wildcards"),
    ({"sinks": {"mqtt": {"port": 0}}}, "sinks.mqtt.port", "must be 1 to 65535"),
    ({"sinks": {"webhooks": [{"url": "ftp://x"}]}}, "sinks.webhooks[0].url", "http:// or https://"),
    ({"sinks": {"webhooks": [{"timeout_seconds": 1}]}}, "sinks.webhooks[0].url", "required key missing"),
    ({"sinks": {"webhooks": [{"url": "http://x", "retries": -1}]}}, "sinks.webhooks[0].retries", "must be >= 0"),
    ({"sinks": {"queue_size": 0}}, "sinks.queue_size", "must be >= 1"),
    ({"sinks": {"csv": 5}}, "sinks.csv", "expected a string"),
    ({"metrics": {"port": 70000}}, "metrics.port", "must be 0 (off) to 65535"),
    ({"api": {"port": 0}}, "api.port", "must be 1 to 65535, got 0"),
    ({"api": {"host": ""}}, "api.host", "must not be empty"),
    ({"api": {"max_upload_mb": 0}}, "api.max_upload_mb", "must be > 0, got 0.0"),
    ({"api": {"api_key": "two words"}}, "api.api_key", "printable ASCII without spaces"),
    ({"api": {"api_key": "cl\u00e9"}}, "api.api_key", "printable ASCII"),
    ({"api": {"min_confidence": 1.5}}, "api.min_confidence", "[0, 1]"),
    ({"api": {"queue_size": 0}}, "api.queue_size", "must be >= 1"),
    ({"api": {"jobs_kept": 0}}, "api.jobs_kept", "must be >= 1"),
    ({"publisher": {"curve_client_keys": "keys/clients"}}, "publisher.curve_secret_key", "must be set too"),
    ({"journal": {"enabled": "yes"}}, "journal.enabled", "expected true or false"),
    ({"journal": {"path": ""}}, "journal.path", "must not be empty"),
    ({"journal": {"path": None}}, "journal.path", "expected a string"),
    ({"journal": {"retention_days": 0}}, "journal.retention_days", "must be > 0, got 0.0"),
    ({"journal": {"retention_days": -1}}, "journal.retention_days", "> 0"),
    ({"journal": {"retention_days": float("nan")}}, "journal.retention_days", "> 0"),
    ({"journal": {"retention": 7}}, "journal.retention", "unknown key"),
    ({"plate_formats": {"uk": ["^[A-Z]{2}$", "^[A-Z(2}$"]}}, "plate_formats.uk[1]", "bad regex"),
    ({"plate_formats": {"uk": ["a{99999999999}"]}}, "plate_formats.uk[0]", "bad regex"),
    ({"cameras": [cam(), cam(source=0)]}, "cameras", "unique"),
    ({"cameras": [cam(roi=[[0, 0], [10, 10]])]}, "cameras[0].roi", "at least 3"),
    ({"cameras": [cam(roi=[[0, 0], [10, 10], [5, 5, 5]])]}, "cameras[0].roi", "[x, y]"),
    ({"voting": {"max_reads_per_track": 2}}, "voting.max_reads_per_track", "min_reads_to_finalize (3), got 2"),
    ({"voting": {"min_reads_to_finalize": 13}}, "voting.max_reads_per_track", "got 12"),
    ({"voting": {"min_confidence": 1.5}}, "voting.min_confidence", "[0, 1]"),
    ({"voting": {"dedupe_seconds": -1}}, "voting.dedupe_seconds", ">= 0"),
    # required camera keys
    ({"cameras": [{"source": 0}]}, "cameras[0].id", "required key missing"),
    ({"cameras": [cam(), {"id": "b"}]}, "cameras[1].source", "required key missing"),
    # not a mapping at the top
    ([1, 2], "config", "expected a mapping"),
    ("cameras", "config", "expected a mapping"),
])
def test_an_error_names_the_key_path_on_one_line(data, path, words):
    message = error_of(data)
    assert message.startswith(f"{path}: "), message
    assert words in message, message


def test_a_strange_key_is_quoted_so_the_message_stays_one_line():
    assert error_of({"a\nb": 1}).startswith("'a\\nb': unknown key")
    assert error_of({None: 1}).startswith("None: unknown key")
    assert error_of({"plate_formats": {"x\ny": 5}}).startswith("plate_formats.'x\\ny': expected a list")


def _write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_malformed_yaml_names_the_line(tmp_path):
    # a tab where indentation is expected
    path = _write(tmp_path, "detector:\n  imgsz: 384\n\tconf: 0.3\n")
    m = load_error(path)
    assert m.startswith(f"{path}: line 3 column 1 malformed YAML:"), m
    # an unclosed flow sequence: reported where the parser gives up, the next mapping key
    path = _write(tmp_path, "detector:\n  imgsz: 384\ncameras: [1, 2\nlogging:\n  level: INFO\n")
    m = load_error(path)
    assert m.startswith(f"{path}: line 4 ") and "malformed YAML" in m and "']'" in m, m
    # a control character (no problem mark: the line comes from its position)
    path = _write(tmp_path, "detector:\n  device: c\x07pu\n")
    m = load_error(path)
    assert m.startswith(f"{path}: line 2 malformed YAML: unacceptable character"), m
    # a bad explicit tag (PyYAML raises ValueError, not a YAMLError)
    m = load_error(_write(tmp_path, "detector:\n  imgsz: !!int big\n"))
    assert "malformed YAML" in m and "big" in m, m


def test_a_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert load_error(path) == f"config file not found: {path}"


def test_a_file_that_is_not_utf8(tmp_path):
    path = _write(tmp_path, "logging:\n  level: INFO # \xe9t\xe9\n".encode("latin-1"))
    m = load_error(path)
    assert m.startswith(f"config file unreadable: {path}:") and "utf-8" in m, m


def test_a_folder_instead_of_a_file(tmp_path):
    assert load_error(tmp_path).startswith(f"config file unreadable: {tmp_path}:")


def test_a_file_whose_top_level_is_a_list(tmp_path):
    m = load_error(_write(tmp_path, "- id: gate1\n  source: 0\n"))
    assert m.startswith("config: expected a mapping"), m


def test_file_errors_name_the_key_path_too(tmp_path):
    m = load_error(_write(tmp_path, "cameras:\n  - id: a\n    source: 0\n    max_fsp: 5\n"))
    assert m.startswith("cameras[0].max_fsp: unknown key"), m


# --- fuzz: only ConfigError, ever ---------------------------------------------------------------

def _schema_keys() -> list[str]:
    keys = set()
    for t in (Config, CameraConfig, CaptureConfig, DetectorConfig, TrackerConfig, OcrConfig, VotingConfig,
              PublisherConfig, JournalConfig, LoggingConfig, ApiConfig):
        keys.update(f.name for f in dataclasses.fields(t))
    return sorted(keys | {"uk", "eu"})


SCHEMA_KEYS = _schema_keys()
SECTIONS = {f.name: f for f in dataclasses.fields(Config)}

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-5, 1000)
           | st.floats(allow_nan=True, allow_infinity=True) | st.floats(-2, 2)
           | st.text(max_size=12) | st.sampled_from(["auto", "cpu", "cuda:0", "INFO", "tcp://127.0.0.1:1",
                                                    "^[A-Z]{2}$", "([", "a{99999999999}", "0", "rtsp://x",
                                                    10 ** 400, -(10 ** 400), "line\nbreak"]))
keys = st.sampled_from(SCHEMA_KEYS) | st.text(max_size=8) | st.sampled_from([0, 1, None, "a\nb", ""])


def _trees(leaves):
    return st.recursive(leaves, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(keys, children, max_size=5), max_leaves=25)


trees = _trees(scalars)
# Documents shaped like a config: known sections, some with known keys, random values below.
section_values = st.dictionaries(st.sampled_from(SCHEMA_KEYS), trees, max_size=6) | trees
camera_lists = st.lists(st.dictionaries(st.sampled_from(["id", "source", "roi", "max_fps"]) | keys, trees,
                                        max_size=5), max_size=3)
config_like = st.fixed_dictionaries({}, optional={
    **{name: section_values for name in SECTIONS if name not in ("cameras", "plate_formats")},
    "cameras": camera_lists | trees,
    "plate_formats": st.dictionaries(st.text(max_size=4), st.lists(st.text(max_size=10) | trees, max_size=3),
                                     max_size=3) | trees,
})



def _paths(node, prefix=()):
    """Every path (of keys and indexes) into a parsed YAML document, leaves and branches."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


VALID = yaml.safe_load(FULL_YAML)
VALID_PATHS = [p for p in _paths(VALID) if p]


@st.composite
def one_value_changed(draw):
    """The full valid document with one value (anywhere in it) replaced by a random one."""
    doc = copy.deepcopy(VALID)
    *parent, last = draw(st.sampled_from(VALID_PATHS))
    node = doc
    for k in parent:
        node = node[k]
    node[last] = draw(trees)
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(config_like, trees, st.dictionaries(keys, trees, max_size=6), one_value_changed()))
def test_fuzz_any_document_gives_a_config_or_a_one_line_config_error(data):
    try:
        c = parse_config(data)
    except ConfigError as e:
        message = str(e)
        assert message and "\n" not in message
        return
    assert isinstance(c, Config)
    assert all(isinstance(cam.source, (str, int)) for cam in c.cameras)
    assert 0 < c.detector.conf < 1 and c.detector.imgsz % 32 == 0  # what validation promises held


# --- the command line ----------------------------------------------------------------------------

def _run_stream_with_config(tmp_path, text: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bad = _write(tmp_path, text, "BAD.yaml")
    r = subprocess.run([sys.executable, "run_stream.py", "--config", str(bad)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    return r, r.stderr.splitlines()


def test_run_stream_with_a_bad_config_exits_2_with_one_line(tmp_path):
    r, lines = _run_stream_with_config(tmp_path, "cameras:\n  - id: gate1\n    source: 0\n    max_fps: -5\n")
    assert lines == ["error: config: cameras[0].max_fps: must be > 0, got -5.0"], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_run_stream_with_malformed_yaml_exits_2_with_one_line(tmp_path):
    r, lines = _run_stream_with_config(tmp_path, "detector: [1, 2\n")
    assert len(lines) == 1 and lines[0].startswith("error: config:") and "malformed YAML" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_every_example_config_loads():
    examples = sorted((ROOT / "config" / "examples").glob("*.yaml"))
    assert len(examples) >= 4
    for path in examples:
        c = load_config(path)
        assert c.cameras, path


def test_run_stream_with_a_config_without_cameras_exits_2_instead_of_running_the_sample(tmp_path):
    r, lines = _run_stream_with_config(tmp_path, "voting:\n  candidates: 2\n")
    assert r.returncode == 2 and lines == [f"error: config: {tmp_path / 'BAD.yaml'} lists no cameras "
                                           "(add cameras: or give --source)"]
