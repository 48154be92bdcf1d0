"""Subscribe: print a pipeline's events, one JSON object per line.

    python -m stream.subscribe ENDPOINT [--topic plate.] [--count N] [--timeout S]

Connects a ZeroMQ SUB socket to the publisher's endpoint and prints each event's JSON
(the topic and any crop frame are left out: the JSON names the camera) until `--count`
events have arrived or none has for `--timeout` seconds; by default it runs until
interrupted. A subscriber only receives what is published after it has connected, so
start it before the events you want. A bad endpoint is a one-line `error:` and exit
status 2.

From Python, `receive(endpoint, topic, count, timeout)` returns the events as a list.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import closing
from itertools import islice

import zmq


class SubscribeError(ValueError):
    """The endpoint cannot be used, or sent something that is not an event; one line."""


def events(endpoint: str, topic: str = "plate.", timeout: float | None = None) -> Iterator[dict]:
    """Yield the events published on `endpoint` under topics starting with `topic`, and stop
    after `timeout` seconds without one (None: never). Close the iterator to disconnect."""
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        try:
            socket.connect(endpoint)
        except zmq.ZMQError as e:
            raise SubscribeError(f"cannot subscribe to {endpoint}: {zmq.strerror(e.errno)}") from None
        socket.setsockopt_string(zmq.SUBSCRIBE, topic)
        wait_ms = None if timeout is None else round(timeout * 1000)
        while socket.poll(wait_ms):
            frames = socket.recv_multipart()
            try:
                event = json.loads(frames[1])
            except (IndexError, UnicodeDecodeError, json.JSONDecodeError):
                raise SubscribeError(f"{endpoint} sent a message that is not an event "
                                     f"(topic {frames[0][:40]!r})") from None
            yield event
    finally:
        socket.close()


def receive(endpoint: str, topic: str = "plate.", count: int | None = None,
            timeout: float = 5.0) -> list[dict]:
    """The next `count` events (None: all of them), or fewer if none arrives for `timeout` seconds."""
    with closing(events(endpoint, topic, timeout)) as stream:
        return list(islice(stream, count))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.subscribe", description=__doc__.split("\n")[0])
    parser.add_argument("endpoint", help="the publisher's endpoint, e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--topic", default="plate.",
                        help="topic prefix to receive (default plate.: every camera; plate.CAM for one)")
    parser.add_argument("--count", type=int, help="exit after this many events")
    parser.add_argument("--timeout", type=float, help="exit after this many seconds without an event")
    args = parser.parse_args(argv)
    for name in ("count", "timeout"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name} must be > 0, got {getattr(args, name)}")
    try:
        with closing(events(args.endpoint, args.topic, args.timeout)) as stream:
            for event in islice(stream, args.count):
                print(json.dumps(event, ensure_ascii=False, separators=(",", ":")), flush=True)
    except SubscribeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
