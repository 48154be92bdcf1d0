"""Subscribe: print a pipeline's events, one JSON object per line.

    python -m stream.subscribe ENDPOINT [--topic plate.] [--count N] [--timeout S]
                                        [--replay ENDPOINT [--after N]]
                                        [--curve-key CLIENT.key_secret --server-key SERVER.key]
    python -m stream.subscribe --journal events.db [--camera ID] [--plate TEXT] [--since T] [--until T]
                                                   [--count N]

Connects a ZeroMQ SUB socket to the publisher's endpoint and prints each event's JSON
(the topic and any crop frame are left out: the JSON names the camera) until `--count`
events have arrived or none has for `--timeout` seconds; by default it runs until
interrupted. A subscriber only receives what is published after it has connected, so
start it before the events you want, or give `--replay` (the pipeline's
`publisher.replay_endpoint`): then every event is printed exactly once and in seq order,
whatever the live socket missed being fetched from the pipeline's journal, starting from
the journal's end, or with `--after N` from the event after seq N (`--after 0`: all it
holds). For a publisher with CurveZMQ on, give this client's secret key file and the
server's public key file (stream/curve.py). A bad endpoint or key is a one-line `error:`
and exit status 2.

With `--journal` it reads a journal file directly, with no pipeline running: the events it
holds in seq order, those of one camera, plate (A-Z0-9, as published) or time of first sight
(`--since` and `--until`, ISO 8601 UTC like 2026-12-07T10:00, or a prefix of it; `--until` is
exclusive) only.

From Python, `receive(endpoint, topic, count, timeout)` returns the events as a list, and
`events(...)` yields them; both take `replay_endpoint`, `after` and `curve` too.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from itertools import islice

import zmq

from models.errors import AlprError
from stream.curve import Client

log = logging.getLogger(__name__)

RESYNC_S = 1.0  # with a replay endpoint: this long without a live event, ask it for anything missed
REQUEST_TIMEOUT_MS = 2000  # a replay request unanswered this long is sent again on a fresh socket
ATTEMPTS = 3  # requests for a gap before giving up on the replay endpoint


class SubscribeError(AlprError, ValueError):
    """The endpoint cannot be used, or sent something that is not an event; one line."""


def _event(endpoint: str, frames: list[bytes]) -> dict:
    try:
        return json.loads(frames[1])
    except (IndexError, UnicodeDecodeError, json.JSONDecodeError):
        raise SubscribeError(f"{endpoint} sent a message that is not an event "
                             f"(topic {frames[0][:40]!r})") from None


def _is_event(event) -> bool:
    return (isinstance(event, dict) and isinstance(event.get("seq"), int)
            and isinstance(event.get("camera_id"), str))


class _Replay:
    """A REQ socket to a replay endpoint (see stream/replay.py)."""

    def __init__(self, endpoint: str, curve: Client | None) -> None:
        self.endpoint = endpoint
        self.curve = curve
        self._socket = self._connect()

    def _connect(self) -> zmq.Socket:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            self.curve.secure(socket)
        try:
            socket.connect(self.endpoint)
        except zmq.ZMQError as e:
            socket.close()
            raise SubscribeError(f"cannot request replay from {self.endpoint}: {zmq.strerror(e.errno)}") from None
        return socket

    def fetch(self, after: int, limit: int | None, attempts: int) -> dict | None:
        """The reply to `{"after": after, "limit": limit}` (limit None: the server's most),
        or None when `attempts` requests in a row went unanswered."""
        request = {"after": after} if limit is None else {"after": after, "limit": limit}
        for _ in range(attempts):
            self._socket.send(json.dumps(request).encode())
            if self._socket.poll(REQUEST_TIMEOUT_MS):
                return self._check(self._socket.recv())
            # REQ/REP lockstep: a REQ socket whose reply never came cannot send again
            self._socket.close()
            self._socket = self._connect()
        return None

    def _check(self, data: bytes) -> dict:
        try:
            reply = json.loads(data)
        except ValueError:
            reply = None
        if isinstance(reply, dict) and isinstance(reply.get("error"), str):
            raise SubscribeError(f"replay {self.endpoint} refused the request: {reply['error']}")
        if not (isinstance(reply, dict) and isinstance(reply.get("last_seq"), int)
                and isinstance(reply.get("events"), list) and all(_is_event(e) for e in reply["events"])):
            raise SubscribeError(f"replay {self.endpoint} sent something that is not a replay reply")
        return reply

    def close(self) -> None:
        self._socket.close()


class _InOrder:
    """Each event once, in seq order: live events pass, a gap is filled from the replay
    first, and what the replay already gave is dropped when it arrives live."""

    def __init__(self, replay: _Replay, topic: str, last: int | None) -> None:
        self.replay = replay
        self.topic = topic
        self.last = last  # seq of the last event passed (or skipped as another topic's); None: not yet known

    def catch_up(self, attempts: int = 1) -> Iterator[dict]:
        """The journal's events after `last`; before the first event, learn where the journal
        ends instead. An unanswered request ends it quietly for one attempt (the publisher
        may be restarting) and with SubscribeError for more."""
        while True:
            reply = self.replay.fetch(self.last or 0, 0 if self.last is None else None, attempts)
            if reply is None:
                if attempts > 1:
                    raise SubscribeError(f"replay {self.replay.endpoint} did not answer "
                                         f"{attempts} requests for the events after seq {self.last}")
                return
            if self.last is None:
                self.last = reply["last_seq"]
                return
            fresh = [e for e in reply["events"] if e["seq"] > self.last]
            for event in fresh:
                yield from self._pass(event)
            if not fresh or self.last >= reply["last_seq"]:
                return

    def live(self, event: dict) -> Iterator[dict]:
        seq = event["seq"]
        if self.last is None:
            self.last = seq - 1
        if seq > self.last + 1:
            yield from self.catch_up(ATTEMPTS)
        if seq > self.last:  # otherwise the replay gave it already
            yield from self._pass(event)

    def _pass(self, event: dict) -> Iterator[dict]:
        if event["seq"] > self.last + 1:
            log.warning("events %d to %d are lost: not in the journal (pruned, or published without one)",
                        self.last + 1, event["seq"] - 1)
        self.last = event["seq"]
        if f"plate.{event['camera_id']}".startswith(self.topic):  # the replay gives every topic
            yield event


def events(endpoint: str, topic: str = "plate.", timeout: float | None = None,
           replay_endpoint: str | None = None, after: int | None = None,
           curve: Client | None = None) -> Iterator[dict]:
    """Yield the events published on `endpoint` under topics starting with `topic`, and stop
    after `timeout` seconds without one (None: never). Close the iterator to disconnect.
    `curve`: this client's keys, for a publisher with CurveZMQ on.

    With `replay_endpoint` each event comes exactly once and in seq order: a gap in seq is
    filled from the replay first, and the replay is also asked after RESYNC_S without a live
    event (and before giving up at `timeout`), since events lost at the end of a burst leave
    no gap to see. It starts with the events after seq `after`, or where the journal ends
    when `after` is None.
    """
    if after is not None and replay_endpoint is None:
        raise ValueError("after needs a replay_endpoint to fetch from")
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.secure(socket)
    replay = None
    try:
        try:
            socket.connect(endpoint)
        except zmq.ZMQError as e:
            raise SubscribeError(f"cannot subscribe to {endpoint}: {zmq.strerror(e.errno)}") from None
        socket.setsockopt_string(zmq.SUBSCRIBE, topic)
        if replay_endpoint is None:
            wait_ms = None if timeout is None else round(timeout * 1000)
            while socket.poll(wait_ms):
                yield _event(endpoint, socket.recv_multipart())
            return
        replay = _Replay(replay_endpoint, curve)
        order = _InOrder(replay, topic, after)
        quiet_since = resync_at = time.monotonic()  # resync at once: the backlog, or where the journal ends
        while True:
            now = time.monotonic()
            give_up_at = math.inf if timeout is None else quiet_since + timeout
            if now >= min(resync_at, give_up_at):
                caught_up = False
                for event in order.catch_up():
                    caught_up = True
                    quiet_since = time.monotonic()
                    yield event
                if not caught_up and now >= give_up_at:
                    return
                resync_at = time.monotonic() + RESYNC_S
            elif socket.poll(max(1, math.ceil(1000 * (min(resync_at, give_up_at) - now)))):
                frames = socket.recv_multipart()
                event = _event(endpoint, frames)
                if frames[0].startswith(b"health."):  # no seq, never journaled: passed on as it comes
                    yield event
                    continue
                if not _is_event(event):
                    raise SubscribeError(f"{endpoint} sent an event without an integer seq and a camera_id")
                for e in order.live(event):
                    quiet_since = time.monotonic()
                    yield e
                resync_at = time.monotonic() + RESYNC_S
    finally:
        socket.close()
        if replay is not None:
            replay.close()


def receive(endpoint: str, topic: str = "plate.", count: int | None = None, timeout: float = 5.0,
            replay_endpoint: str | None = None, after: int | None = None,
            curve: Client | None = None) -> list[dict]:
    """The next `count` events (None: all of them), or fewer if none arrives for `timeout` seconds."""
    with closing(events(endpoint, topic, timeout, replay_endpoint, after, curve)) as stream:
        return list(islice(stream, count))


def journal_events(path: str, camera: str | None = None, plate: str | None = None, since: str | None = None,
                   until: str | None = None) -> Iterator[dict]:
    """The events a journal file holds, in seq order, filtered as the module docstring says."""
    from stream.journal import JournalReader

    reader = JournalReader(path)
    try:
        seq = 0
        while page := reader.after(seq, 1000):
            seq = page[-1]["seq"]
            for e in page:
                seen = e["first_seen"]["time"]
                if ((camera is None or e["camera_id"] == camera) and (plate is None or e["plate"] == plate)
                        and (since is None or seen >= since) and (until is None or seen < until)):
                    yield e
    finally:
        reader.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.subscribe", description=__doc__.split("\n")[0])
    parser.add_argument("endpoint", nargs="?", help="the publisher's endpoint, e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--journal", metavar="FILE", help="read this journal file instead (no pipeline needed)")
    parser.add_argument("--camera", help="with --journal: this camera's events only")
    parser.add_argument("--plate", help="with --journal: this plate's events only")
    parser.add_argument("--since", metavar="TIME", help="with --journal: first seen at or after (ISO 8601 UTC)")
    parser.add_argument("--until", metavar="TIME", help="with --journal: first seen before (ISO 8601 UTC)")
    parser.add_argument("--topic", default="plate.",
                        help="topic prefix to receive (default plate.: every camera; plate.CAM for one; "
                             "health. for health messages)")
    parser.add_argument("--count", type=int, help="exit after this many events")
    parser.add_argument("--timeout", type=float, help="exit after this many seconds without an event")
    parser.add_argument("--replay", metavar="ENDPOINT",
                        help="the pipeline's replay endpoint (e.g. tcp://127.0.0.1:5557): fetch what the "
                             "live socket misses, so every event is printed once, in order")
    parser.add_argument("--after", type=int, metavar="N",
                        help="with --replay: start with the events after seq N (0: all the journal holds)")
    parser.add_argument("--curve-key", metavar="FILE", help="this client's secret key file (NAME.key_secret), "
                        "for a publisher with CurveZMQ on; needs --server-key")
    parser.add_argument("--server-key", metavar="FILE", help="the publisher's public key file (NAME.key)")
    args = parser.parse_args(argv)
    for name in ("count", "timeout"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name} must be > 0, got {getattr(args, name)}")
    if args.after is not None and (args.replay is None or args.after < 0):
        parser.error(f"--after needs --replay and must be >= 0, got {args.after}")
    if (args.curve_key is None) != (args.server_key is None):
        parser.error("--curve-key and --server-key go together")
    if (args.endpoint is None) == (args.journal is None):
        parser.error("give an ENDPOINT or --journal FILE (one of them)")
    if args.journal is None and any((args.camera, args.plate, args.since, args.until)):
        parser.error("--camera, --plate, --since and --until go with --journal")
    if args.journal is not None:
        from stream.journal import JournalError

        try:
            plate = "".join(c for c in args.plate.upper() if c.isalnum()) if args.plate else None
            for event in islice(journal_events(args.journal, args.camera, plate, args.since, args.until), args.count):
                print(json.dumps(event, ensure_ascii=False, separators=(",", ":")), flush=True)
        except JournalError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        curve = Client.load(args.curve_key, args.server_key) if args.curve_key else None
        with closing(events(args.endpoint, args.topic, args.timeout, args.replay, args.after, curve)) as stream:
            for event in islice(stream, args.count):
                print(json.dumps(event, ensure_ascii=False, separators=(",", ":")), flush=True)
    except AlprError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
