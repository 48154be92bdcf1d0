"""The wire contract: the messages subscribers receive, as typed dataclasses, and their JSON schema.

`PlateEvent` goes out on `plate.<camera_id>` (and to every sink and the journal);
`CameraHealth` and `ProcessHealth` on `health.<camera_id>` and `health.process`. Their JSON
schemas are derived from these classes (`json_schema`), written to docs/ by

    python -m stream.wire > docs/event.schema.json

and a test checks what is sent against them. Change a message only with `SCHEMA_VERSION`.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass
from typing import Literal

# 2: PlateEvent's country, subdivision and their confidences, captured, direction, match and
# alert added
SCHEMA_VERSION = 2


@dataclass
class Seen:
    time: str  # ISO 8601 UTC with milliseconds
    offset: float  # seconds into the source (a file's own clock; 0-based)
    frame: int  # the frame's index in its source


@dataclass
class EventCandidate:
    text: str
    score: float


@dataclass
class EventDirection:
    motion: Literal["approaching", "receding", "crossing", "stationary"]
    angle: float | None  # degrees counter-clockwise from the image's right (90: up); null when stationary


@dataclass
class EventMatch:
    list: str  # the watchlist's name
    entry: str  # the listed text or regex
    distance: float  # edits (a confusable pair: half of one); 0 for a regex


@dataclass
class PlateEvent:
    type: Literal["plate", "correction"]  # a correction replaces the track's earlier plate
    schema_version: int
    event_id: str  # 32 hex digits, unique: the key to de-duplicate on
    seq: int  # 1, 2, 3 ... per journal, in publication order
    camera_id: str
    track_id: int  # per camera and run
    plate: str  # A-Z0-9
    region: str | None  # format family: us, eu, uk, br
    country: str | None  # ISO 3166-1 alpha-2, lower case
    country_confidence: float | None
    subdivision: str | None  # ISO 3166-2 suffix, lower case (US states)
    subdivision_confidence: float | None
    confidence: float
    char_confidences: list[float]
    candidates: list[EventCandidate]
    box: list[float]  # x1, y1, x2, y2 pixels of the frame
    first_seen: Seen
    last_seen: Seen
    reads: int  # OCR reads voted
    captured: Seen | None  # the frame whose read won the vote (its crop is the event's evidence)
    direction: EventDirection | None  # which way the plate moved while it was read
    match: EventMatch | None  # the watchlist entry the plate (or a runner-up reading) matched
    alert: bool  # a match on a list whose action is alert: also sent on topic alert.<camera_id>
    corrects: str | None = None  # a correction's earlier plate; absent from plate events

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        if self.corrects is None:
            del d["corrects"]
        return d


@dataclass
class CameraHealth:
    type: Literal["health"]
    schema_version: int
    time: str
    camera_id: str
    state: str  # connecting | streaming | reconnecting | ended | failed
    is_streaming: bool
    fps_in: float
    fps_processed: float
    frames_in: int
    frames_processed: int
    frames_dropped: int
    queue_depth: int
    reconnects: int
    last_error: str | None


@dataclass
class ProcessHealth:
    type: Literal["health"]
    schema_version: int
    time: str
    uptime_seconds: float
    events_published: int
    last_seq: int


def _schema_of(hint) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [_schema_of(a) for a in args if a is not type(None)]
        return {"anyOf": [*inner, {"type": "null"}]} if type(None) in args else {"anyOf": inner}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _schema_of(args[0])}
    if dataclasses.is_dataclass(hint):
        return json_schema(hint)
    return {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}[hint]}


def json_schema(cls) -> dict:
    """The JSON schema of a message class: every field, typed; those without a default required."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return {"type": "object", "title": cls.__name__, "additionalProperties": False,
            "properties": {f.name: _schema_of(hints[f.name]) for f in fields},
            "required": [f.name for f in fields if f.default is dataclasses.MISSING]}


def schemas() -> dict:
    return {"schema_version": SCHEMA_VERSION,
            "messages": {c.__name__: json_schema(c) for c in (PlateEvent, CameraHealth, ProcessHealth)}}


def problems(value, schema: dict, where: str = "$") -> list[str]:
    """Where `value` breaks `schema` (the subset `json_schema` writes); empty when it fits."""
    if "anyOf" in schema:
        return [] if any(not problems(value, s, where) for s in schema["anyOf"]) else [f"{where}: {value!r} fits no type"]
    if "enum" in schema:
        return [] if value in schema["enum"] else [f"{where}: {value!r} not one of {schema['enum']}"]
    kind = schema["type"]
    ok = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "null": type(None),
          "array": list, "object": dict}[kind]
    if not isinstance(value, ok) or (kind in ("integer", "number") and isinstance(value, bool)):
        return [f"{where}: {value!r} is not {kind}"]
    if kind == "array":
        return [p for i, v in enumerate(value) for p in problems(v, schema["items"], f"{where}[{i}]")]
    if kind == "object":
        out = [f"{where}: missing {k}" for k in schema["required"] if k not in value]
        out += [f"{where}: unexpected {k}" for k in value if k not in schema["properties"]]
        return out + [p for k, v in value.items() if k in schema["properties"]
                      for p in problems(v, schema["properties"][k], f"{where}.{k}")]
    return []


if __name__ == "__main__":
    json.dump(schemas(), sys.stdout, indent=2)
    print()
