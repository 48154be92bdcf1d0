"""Replay: answers "the events after seq N" from the journal, on a ZeroMQ REP socket.

A subscriber that finds a gap in `seq` (it joined late, fell `high_water_mark` behind, or
the publisher restarted) asks for what it missed:

    request  {"after": N, "limit": M}       M optional: 0 to MAX_LIMIT, default MAX_LIMIT
    reply    {"events": [event, ...], "last_seq": K}
             {"error": "one line saying what is wrong"}

`events` are the journal's events with seq > N in seq order, at most M, as published (the
JSON frame; no crops). `last_seq` is the journal's latest seq: below it, ask again after
the last event received. Events pruned by retention are absent, so the seqs returned can
jump. The server is a thread with its own read connection to the journal: it never waits
on the pipeline, and a bad request gets its error and changes nothing.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import zmq

from stream.curve import Server
from stream.journal import JournalReader
from stream.publish import PublishError

MAX_LIMIT = 1000  # events per reply
MAX_REQUEST = 1024  # bytes; a real request is a few dozen
MAX_SEQ = 2 ** 63 - 1  # SQLite's largest integer
POLL_MS = 100  # how soon `stop()` is noticed


def _show(value) -> str:
    """A request value in an error message: JSON, one line, short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(request: dict, key: str, low: int, high: int) -> int:
    value = request[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer from {low} to {high}, got {_show(value)}")
    return value


def parse_request(data: bytes) -> tuple[int, int]:
    """The `(after, limit)` of a request, or ValueError with a one-line reason."""
    if len(data) > MAX_REQUEST:
        raise ValueError(f"request of {len(data)} bytes, at most {MAX_REQUEST}")
    try:
        request = json.loads(data)
    except (ValueError, RecursionError):  # ValueError: bad JSON, bad UTF-8, an integer too long
        raise ValueError('request is not JSON; expected {"after": N, "limit": M}') from None
    if not isinstance(request, dict):
        raise ValueError(f'request must be a JSON object like {{"after": N, "limit": M}}, got {_show(request)}')
    unknown = sorted(set(request) - {"after", "limit"})
    if unknown:
        raise ValueError(f"unknown key {_show(unknown[0])} (known: after, limit)")
    if "after" not in request:
        raise ValueError('request has no "after"')
    after = _integer(request, "after", 0, MAX_SEQ)
    limit = _integer(request, "limit", 0, MAX_LIMIT) if "limit" in request else MAX_LIMIT
    return after, limit


class ReplayServer(threading.Thread):
    """Serves the journal at `path` on a REP socket bound to `endpoint` (the configured
    `publisher.replay_endpoint`), from `start()` until `stop()`.

    Binding happens here, so a bad or busy endpoint raises PublishError (one line naming
    it) before anything runs; a `*` port picks a free one (`endpoint` says which). With
    `curve`, only its clients are answered.
    """

    def __init__(self, path: str | Path, endpoint: str, curve: Server | None = None) -> None:
        super().__init__(name="replay", daemon=True)
        self._journal = JournalReader(path)
        self._stopping = threading.Event()
        # Made here, used by the thread: starting a thread is the memory barrier ZeroMQ
        # asks for when a socket changes threads.
        self._socket = zmq.Context.instance().socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.secure(self._socket)
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as e:
            self._close()
            raise PublishError(f"cannot serve replay on {endpoint}: {zmq.strerror(e.errno)}") from None
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._socket.poll(POLL_MS):
                    # REP lockstep: exactly one reply for every request received
                    reply = self._answer(self._socket.recv_multipart())
                    self._socket.send(json.dumps(reply, separators=(",", ":")).encode())
        finally:
            self._close()

    def _answer(self, frames: list[bytes]) -> dict:
        try:
            if len(frames) != 1:
                raise ValueError(f"request must be one frame, got {len(frames)}")
            after, limit = parse_request(frames[0])
            events = self._journal.after(after, limit)
            # read after the events, so it is never below the last of them
            return {"events": events, "last_seq": self._journal.last_seq()}
        except ValueError as e:  # JournalError included: the journal may be readable again later
            return {"error": str(e)}

    def _close(self) -> None:
        self._socket.close()
        self._journal.close()

    def stop(self) -> None:
        """Stop serving (within POLL_MS) and release the socket and the journal connection."""
        self._stopping.set()
        if self.ident is None:  # never started: nothing else will close them
            self._close()
        else:
            self.join()
