"""Subscribe: print a pipeline's events, one JSON object per line.

    python -m stream.subscribe ENDPOINT [--topic plate.] [--count N] [--timeout S]
                                        [--replay ENDPOINT [--after N]]
                                        [--curve-key CLIENT.key_secret --server-key SERVER.key]
    python -m stream.subscribe --journal events.db [--camera ID] [--plate TEXT] [--since T] [--until T]
                                                   [--count N]
    python -m stream.subscribe nats://HOST:4222[,nats://HOST2:4222...] [--stream ALPR] [--durable NAME]
                                                   [--prefix alpr] [--topic plate.] [--count N] [--timeout S]

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

With a nats:// (or tls://) ENDPOINT it reads a NATS JetStream stream that workers publish to
(stream/nats_sink.py, docs/deploy.md) through a durable pull consumer named `--durable`
(default `subscribe`): the server remembers what it acknowledged, so a subscriber started
again goes on after the last event it printed (the first time: from the stream's start).
`--topic` maps to subjects under `--prefix`: `plate.` (default: every event) to
`alpr.plate.>`, `plate.gate1` to `alpr.plate.gate1`, `alert.` and `health.` likewise. Each
event_id is printed once (a retry that JetStream stored twice is dropped).

From Python, `receive(endpoint, topic, count, timeout)` returns the events as a list, and
`events(...)` yields them; both take `replay_endpoint`, `after` and `curve` too.
`nats_events(servers, ...)` yields a JetStream stream's events.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import closing
from itertools import islice

import zmq

from models.errors import AlprError
from models.formats import clean
from stream.curve import Client

log = logging.getLogger(__name__)

RESYNC_S = 1.0  # with a replay endpoint: this long without a live event, ask it for anything missed
REQUEST_TIMEOUT_MS = 2000  # a replay request unanswered this long is sent again on a fresh socket
ATTEMPTS = 3  # requests for a gap before giving up on the replay endpoint
NATS_SCHEMES = ("nats://", "tls://")
NATS_CONNECT_S = 5.0  # NATS: no server reached within this long at start is an error
NATS_BATCH = 100  # messages fetched at a time from the durable consumer
NATS_ACK_WAIT_S = 30.0  # a fetched message not acknowledged this long is delivered again
DEDUPE_IDS = 100_000  # event_ids remembered for dropping a duplicate


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


def nats_subjects(topic: str, prefix: str = "alpr") -> list[str]:
    """The JetStream subjects for a ZeroMQ-style topic prefix: `plate.` -> `alpr.plate.>`,
    `plate.gate1` -> `alpr.plate.gate1`."""
    kind, _, rest = topic.partition(".")
    if not kind or not all(c.isalnum() or c in "-_" for c in kind + rest):
        raise SubscribeError(f"topic {topic!r} is not KIND. or KIND.CAMERA (e.g. plate. or plate.gate1)")
    return [f"{prefix}.{kind}.{rest or '>'}"]


def nats_events(servers: str | list[str], stream: str = "ALPR", durable: str = "subscribe", topic: str = "plate.",
                timeout: float | None = None, prefix: str = "alpr", dedupe: bool = True) -> Iterator[dict]:
    """Yield the events of JetStream `stream` under `topic` (see `nats_subjects`) through the
    durable pull consumer `durable`, created when missing (from the stream's first message), in
    the stream's order, each event_id once (`dedupe`), and stop after `timeout` seconds without
    one (None: never). A message is acknowledged once the next is asked for or the iterator is
    closed; the ones fetched and not yet yielded then are handed back at once (NAK), so the
    consumer's next reader gets them without waiting. SubscribeError: no server reached, no
    such stream, or a durable of that name with other subjects."""
    import nats
    import nats.errors
    from nats.js.errors import APIError

    from stream.capture import redact

    urls = servers.split(",") if isinstance(servers, str) else list(servers)
    subjects = nats_subjects(topic, prefix)
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    errors: list[str] = []

    async def error(e: Exception) -> None:
        errors.append(f"{type(e).__name__}: {e}")

    nc = None
    fetched: list = []  # this batch's messages not yet acknowledged; the first was yielded
    taken = False  # the first of `fetched` has been yielded
    try:
        try:
            nc = run(asyncio.wait_for(nats.connect(urls, connect_timeout=2, reconnect_time_wait=1,
                                                   max_reconnect_attempts=-1, error_cb=error), NATS_CONNECT_S))
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as e:
            why = errors[-1] if errors else f"{type(e).__name__}: {e}"
            raise SubscribeError(f"cannot reach NATS at {redact(','.join(urls))}: {redact(why)}") from None
        js = nc.jetstream()
        sub = run(_bind(js, stream, durable, subjects, time.monotonic() + NATS_CONNECT_S))
        seen: OrderedDict[str, None] = OrderedDict()
        quiet_since = time.monotonic()
        while True:
            left = math.inf if timeout is None else quiet_since + timeout - time.monotonic()
            if left <= 0:
                return
            try:
                fetched = run(sub.fetch(NATS_BATCH, timeout=max(0.05, min(1.0, left))))
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.Error, APIError) as e:  # reconnecting, a consumer leader moving: again
                log.debug("fetch: %s", e)
                time.sleep(0.2)
                continue
            while fetched:
                message = fetched[0]
                try:
                    event = json.loads(message.data)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    event = None
                    log.warning("%s: a message that is not JSON on %s: skipped", stream, message.subject)
                event_id = event.get("event_id") if isinstance(event, dict) else None
                fresh = event is not None and not (dedupe and event_id in seen)
                if fresh and dedupe and isinstance(event_id, str):
                    seen[event_id] = None
                    if len(seen) > DEDUPE_IDS:
                        seen.popitem(last=False)
                if fresh:
                    taken = True
                    yield event
                    quiet_since = time.monotonic()
                run(message.ack())
                fetched.pop(0)
                taken = False
    finally:
        if nc is not None and not nc.is_closed:
            try:
                if taken and fetched:  # yielded: the caller has it
                    run(fetched.pop(0).ack())
                for message in fetched:
                    run(message.nak())
                run(asyncio.wait_for(nc.close(), 2.0))
            except Exception as e:  # noqa: BLE001  (leaving: unacknowledged ones come again)
                log.debug("closing the NATS connection: %s", e)
        run(_cancel_all())  # a connect given up on leaves tasks of its own
        loop.close()


async def _bind(js, stream: str, durable: str, subjects: list[str], deadline: float):
    """The pull subscription of durable consumer `durable`, made when missing; JetStream
    unavailable (a leader being elected) is asked again until the monotonic `deadline`."""
    import nats.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

    while True:
        try:
            try:
                info = await js.consumer_info(stream, durable)
                have = info.config.filter_subjects or [info.config.filter_subject]
                if sorted(have) != sorted(subjects):
                    raise SubscribeError(f"durable {durable!r} of stream {stream} reads "
                                         f"{', '.join(map(str, have))}, not {', '.join(subjects)}: give another "
                                         "--durable")
            except NotFoundError:
                try:
                    await js.add_consumer(stream, ConsumerConfig(
                        durable_name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                        ack_wait=NATS_ACK_WAIT_S, filter_subject=subjects[0]))
                except NotFoundError:
                    raise SubscribeError(f"NATS has no stream {stream!r}") from None
            return await js.pull_subscribe_bind(durable, stream=stream)
        except (ServiceUnavailableError, nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            if time.monotonic() > deadline:
                raise SubscribeError(f"JetStream does not answer for stream {stream!r}: {type(e).__name__}") from None
            await asyncio.sleep(0.25)
        except APIError as e:
            raise SubscribeError(f"JetStream refused durable {durable!r} of stream {stream!r}: "
                                 f"{e.description or e}") from None


async def _cancel_all() -> None:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
    parser.add_argument("--stream", help="with a nats:// ENDPOINT: the JetStream stream (default ALPR)")
    parser.add_argument("--durable", help="with a nats:// ENDPOINT: the durable consumer, which resumes after "
                        "its last acknowledged event (default subscribe)")
    parser.add_argument("--prefix", help="with a nats:// ENDPOINT: the workers' subject prefix (default alpr)")
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
    nats_mode = args.endpoint is not None and args.endpoint.startswith(NATS_SCHEMES)
    if not nats_mode and any(v is not None for v in (args.stream, args.durable, args.prefix)):
        parser.error("--stream, --durable and --prefix go with a nats:// ENDPOINT")
    if nats_mode and any(v is not None for v in (args.replay, args.curve_key)):
        parser.error("--replay and --curve-key go with a ZeroMQ (tcp://) ENDPOINT")
    if nats_mode:
        try:
            stream = nats_events(args.endpoint, args.stream or "ALPR", args.durable or "subscribe", args.topic,
                                 args.timeout, args.prefix or "alpr")
            with closing(stream):
                for event in islice(stream, args.count):
                    print(json.dumps(event, ensure_ascii=False, separators=(",", ":")), flush=True)
        except (AlprError, ValueError) as e:  # ValueError: nats-py on a bad stream or durable name
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        return 0
    if args.journal is not None:
        from stream.journal import JournalError

        try:
            plate = clean(args.plate) if args.plate else None
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
