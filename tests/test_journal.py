"""Durable events: the SQLite journal, the replay server and the subscriber's backfill.

Real SQLite files in tmp_path and real ZeroMQ on loopback (free ports); no models. Every
wait has a timeout, so a lost message fails the test instead of hanging it.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

import stream.journal
from config.schema import PublisherConfig
from conftest import ROOT, offline_env, run_module
from stream.journal import DAY, Journal, JournalError
from stream.publish import EventPublisher, PublishError
from stream.replay import MAX_LIMIT, MAX_SEQ, ReplayServer, parse_request
from stream.subscribe import receive
from test_publish import REPLAY, decision, publish_until

ANY_PORT = "tcp://127.0.0.1:*"
WAIT_MS = 5000


def event(seq: int, camera: str = "cam0") -> dict:
    return {"seq": seq, "camera_id": camera, "plate": f"AB{seq:02d}CDE", "confidence": 0.5}


def seqs(events: list[dict]) -> list[int]:
    return [e["seq"] for e in events]


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "events.db")
    yield j
    j.close()


@pytest.fixture
def replay(journal):
    server = ReplayServer(journal.path, ANY_PORT)
    server.start()
    yield server
    server.stop()


def ask(endpoint: str, *frames: bytes) -> dict:
    """One request to a replay server (a fresh REQ socket), its reply parsed."""
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(endpoint)
    try:
        req.send_multipart(list(frames))
        assert req.poll(WAIT_MS), f"no reply from {endpoint} within 5 s"
        return json.loads(req.recv())
    finally:
        req.close()


def bound(make, seconds: float = 5.0):
    """`make()`, retried while its endpoint is still in use: ZeroMQ's I/O thread frees the
    port of a closed socket a moment after `close()` returns."""
    end = time.monotonic() + seconds
    while True:
        try:
            return make()
        except PublishError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


# --- the journal ------------------------------------------------------------------------------

def test_append_after_and_last_seq(journal):
    assert journal.last_seq() == 0 and journal.after(0, 10) == []
    written = [event(s, camera=f"cam{s % 2}") for s in range(1, 6)]
    for e in written:
        journal.append(e)
    assert journal.last_seq() == 5
    assert journal.after(0, 10) == written
    assert seqs(journal.after(2, 2)) == [3, 4]
    assert journal.after(5, 10) == [] and journal.after(0, 0) == []
    with sqlite3.connect(journal.path) as db:  # the columns, and the JSON as published (compact)
        assert db.execute("SELECT seq, camera_id, json FROM events WHERE seq = 2").fetchone() == (
            2, "cam0", json.dumps(written[1], separators=(",", ":")))
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_seq_continues_after_reopening(tmp_path):
    path = tmp_path / "events.db"
    j = Journal(path)
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), j) as p:
        first = [p.publish(decision(track=t), REPLAY) for t in (1, 2, 3)]
    j.close()
    j = Journal(path)
    assert j.last_seq() == 3
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), j) as p:
        later = p.publish(decision(track=4), REPLAY)
    assert later["seq"] == 4
    assert j.after(0, 10) == first + [later]  # what publish returned is what was journaled
    j.close()


def test_an_event_the_journal_refuses_is_not_sent(journal):
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as p:
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(p.endpoint)
        journal.append(event(1))  # seq 1 taken behind the publisher's back
        with pytest.raises(JournalError) as info:
            p.publish(decision(), REPLAY)
        assert str(info.value) == f"journal {journal.path} already holds seq 1: is another pipeline writing to it?"
        assert not sub.poll(300)
        sub.close()


def test_a_missing_folder_is_created(tmp_path):
    j = Journal(tmp_path / "a" / "b" / "events.db")
    j.append(event(1))
    assert j.last_seq() == 1
    j.close()


def _other_sqlite(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()


@pytest.mark.parametrize("make, words", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"this is not SQLite at all\n" * 200), "file is not a database"),
    (lambda p: p.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20), "journal"),
    (_other_sqlite, "no such column"),
])
def test_an_unusable_file_fails_in_one_line_naming_it(tmp_path, make, words):
    path = tmp_path / "events.db"
    make(path)
    with pytest.raises(JournalError) as info:
        Journal(path)
    message = str(info.value)
    assert str(path) in message and words in message and "\n" not in message, message


def test_a_folder_that_cannot_be_made_fails_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "events.db"
    with pytest.raises(JournalError) as info:
        Journal(path)
    assert str(info.value) == f"cannot create folder {path.parent} for journal {path}: File exists"


_CHILD = """
import sys
from stream.journal import Journal
journal = Journal(sys.argv[1])
seq = journal.last_seq()
while True:
    seq += 1
    journal.append({"seq": seq, "camera_id": "cam0", "plate": "AB12CDE"})
    print(seq, flush=True)  # acknowledged: append has returned
"""


def test_a_killed_writer_loses_nothing_it_acknowledged(tmp_path):
    path = tmp_path / "events.db"
    last = 0
    for _ in range(2):  # the second run continues the first's seq
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(60, child.kill)  # bounds the blocking reads below
        watchdog.start()
        try:
            lines = [child.stdout.readline() for _ in range(25)]
            os.kill(child.pid, signal.SIGKILL)
            lines += child.stdout.readlines()
            child.wait(10)
        finally:
            watchdog.cancel()
            child.kill()
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        acknowledged = [int(line) for line in lines if line.endswith("\n")]  # a line cut by the kill is no ack
        assert len(acknowledged) >= 25 and acknowledged == list(range(last + 1, last + 1 + len(acknowledged)))
        j = Journal(path)
        # every acknowledged event is there; one more may be, appended but killed before its print
        assert seqs(j.after(0, 10 ** 6)) == list(range(1, j.last_seq() + 1))
        assert j.last_seq() - acknowledged[-1] in (0, 1)
        last = j.last_seq()
        j.close()


def test_retention_prunes_old_events_but_never_the_latest(tmp_path, monkeypatch):
    path = tmp_path / "events.db"
    j = Journal(path)
    for s in (1, 2, 3):
        j.append(event(s))
    j.close()
    time.sleep(0.3)
    j = Journal(path, retention_days=0.1 / DAY)  # 0.1 s: all three are old, pruned on opening
    assert seqs(j.after(0, 10)) == [3] and j.last_seq() == 3  # the latest stays: seq continues
    j.append(event(4))
    time.sleep(0.3)
    j.append(event(5))
    assert seqs(j.after(0, 10)) == [3, 4, 5]  # while running, at most every PRUNE_SECONDS
    monkeypatch.setattr(stream.journal, "PRUNE_SECONDS", 0.0)
    time.sleep(0.3)
    j.append(event(6))
    assert seqs(j.after(0, 10)) == [6]
    j.close()
    j = Journal(path)  # the default 30 days keeps recent events
    j.append(event(7))
    assert seqs(j.after(0, 10)) == [6, 7]
    j.close()


# --- the replay server ------------------------------------------------------------------------

def test_replay_answers_ranges(journal, replay):
    assert ask(replay.endpoint, b'{"after": 0}') == {"events": [], "last_seq": 0}
    written = [event(s) for s in range(1, 8)]
    for e in written:
        journal.append(e)
    assert ask(replay.endpoint, b'{"after": 0}') == {"events": written, "last_seq": 7}
    assert ask(replay.endpoint, b'{"after": 2, "limit": 3}') == {"events": written[2:5], "last_seq": 7}
    assert ask(replay.endpoint, b'{"after": 7}') == {"events": [], "last_seq": 7}
    assert ask(replay.endpoint, b'{"after": 0, "limit": 0}') == {"events": [], "last_seq": 7}
    assert ask(replay.endpoint, json.dumps({"after": MAX_SEQ, "limit": MAX_LIMIT}).encode())["events"] == []


BAD_REQUESTS = [
    (b"", "not JSON"),
    (b"garbage", "not JSON"),
    (b"\xff\xfe\xfd", "not JSON"),
    (b"{'after': 1}", "not JSON"),
    (b"[" * 600, "not JSON"),  # too deep for the parser
    (b" " * 2000, "request of 2000 bytes, at most 1024"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"after"', "must be a JSON object"),
    (b"{}", 'no "after"'),
    (b'{"limit": 5}', 'no "after"'),
    (b'{"after": 1, "since": 2}', 'unknown key "since" (known: after, limit)'),
    (b'{"after": -1}', "after must be an integer from 0 to 9223372036854775807, got -1"),
    (b'{"after": "3"}', 'after must be an integer from 0 to 9223372036854775807, got "3"'),
    (b'{"after": 1.5}', "after must be an integer"),
    (b'{"after": true}', "after must be an integer"),
    (b'{"after": null}', "after must be an integer"),
    (b'{"after": 1e400}', "got Infinity"),
    (b'{"after": 99999999999999999999999999}', "got 99999999999999999999999999"),
    (b'{"after": ' + b"9" * 900 + b"}", "..."),  # shortened in the message
    (b'{"after": 1, "limit": 1001}', "limit must be an integer from 0 to 1000, got 1001"),
    (b'{"after": 1, "limit": -1}', "limit must be an integer from 0 to 1000"),
    (b'{"after": 1, "limit": [5]}', "limit must be an integer"),
]


def test_replay_answers_garbage_with_one_line_errors_and_keeps_serving(journal, replay):
    journal.append(event(1))
    for request, words in BAD_REQUESTS:
        reply = ask(replay.endpoint, request)
        assert set(reply) == {"error"}, (request, reply)
        assert words in reply["error"] and "\n" not in reply["error"] and len(reply["error"]) < 200, (request, reply)
        assert ask(replay.endpoint, b'{"after": 0}') == {"events": [event(1)], "last_seq": 1}
    assert ask(replay.endpoint, b'{"after": 0}', b"more") == {"error": "request must be one frame, got 2"}
    assert ask(replay.endpoint, b'{"after": 0}')["last_seq"] == 1


def test_replay_stops_promptly_and_frees_its_endpoint(journal):
    server = ReplayServer(journal.path, ANY_PORT)
    server.start()
    assert ask(server.endpoint, b'{"after": 0}') == {"events": [], "last_seq": 0}
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 1.0 and not server.is_alive()
    again = bound(lambda: ReplayServer(journal.path, server.endpoint))  # never started: stop() releases it
    again.stop()
    bound(lambda: ReplayServer(journal.path, server.endpoint)).stop()


def test_replay_endpoint_errors_are_one_line(journal, replay):
    with pytest.raises(PublishError) as info:
        ReplayServer(journal.path, replay.endpoint)
    assert str(info.value) == f"cannot serve replay on {replay.endpoint}: Address already in use"
    with pytest.raises(PublishError) as info:
        ReplayServer(journal.path, "tcp://127.0.0.1:notaport")
    assert str(info.value).startswith("cannot serve replay on tcp://127.0.0.1:notaport: ")
    with pytest.raises(JournalError) as info:
        ReplayServer(journal.path.parent / "missing.db", ANY_PORT)
    assert str(info.value) == f"no journal at {journal.path.parent / 'missing.db'}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-3, 2 ** 64) | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)
request_like = st.fixed_dictionaries({}, optional={"after": json_values, "limit": json_values}) | st.dictionaries(
    st.sampled_from(["after", "limit", "since"]) | st.text(max_size=6), json_values, max_size=3)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1100) | json_values.map(lambda v: json.dumps(v).encode())
       | request_like.map(lambda v: json.dumps(v).encode()))
def test_fuzz_parse_request_gives_valid_values_or_a_one_line_value_error(data):
    try:
        after, limit = parse_request(data)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert type(after) is int and type(limit) is int  # never a bool or a float
    assert 0 <= after <= MAX_SEQ and 0 <= limit <= MAX_LIMIT
    request = json.loads(data)
    assert after == request["after"] and limit == request.get("limit", MAX_LIMIT)


# --- the subscriber's backfill ----------------------------------------------------------------

def test_a_late_subscriber_gets_every_event_once_in_order(journal, replay):
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as pub:
        sent = [pub.publish(decision(track=t), REPLAY) for t in range(1, 6)]  # before it subscribes
        with ThreadPoolExecutor(1) as pool:
            got = pool.submit(receive, pub.endpoint, "plate.", 10, 10.0, replay.endpoint, 0)
            for t in range(6, 11):  # while it joins: the first ones reach it only through the replay
                time.sleep(0.02)
                sent.append(pub.publish(decision(track=t), REPLAY))
            assert seqs(got.result(timeout=30)) == list(range(1, 11))
            assert got.result() == sent


def test_health_messages_pass_a_replaying_subscriber_unordered(journal, replay):
    # health carries no seq: a subscriber to every topic passes it on as it comes, and it
    # neither breaks nor shifts the ordering of events
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as pub:
        with ThreadPoolExecutor(1) as pool:
            got = pool.submit(receive, pub.endpoint, "", 4, 10.0, replay.endpoint, 0)
            time.sleep(1.0)  # joined (what is sent before is lost to it: health is not replayed)
            sent = [pub.publish(decision(track=1), REPLAY)]
            pub.send_health("cam0", {"type": "health", "camera_id": "cam0"})
            sent.append(pub.publish(decision(track=2), REPLAY))
            pub.send_health("process", {"type": "health", "last_seq": pub.last_seq})
            messages = got.result(timeout=30)
    assert [m for m in messages if m.get("type") != "health"] == sent
    assert [m for m in messages if m.get("type") == "health"] == [{"type": "health", "camera_id": "cam0"},
                                                                  {"type": "health", "last_seq": 2}]


def test_a_publisher_restart_continues_seq_and_the_subscriber_misses_nothing(journal, replay):
    config = PublisherConfig(endpoint=ANY_PORT)
    sent = []
    with ThreadPoolExecutor(1) as pool:
        with EventPublisher(config, journal) as first:
            endpoint = first.endpoint
            got = pool.submit(receive, endpoint, "plate.", 12, 10.0, replay.endpoint, 0)
            for t in range(1, 5):
                time.sleep(0.1)
                sent.append(first.publish(decision(track=t), REPLAY))
        # while it is down, events 5-8 go out where nobody listens: journaled, never received live
        with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as elsewhere:
            sent += [elsewhere.publish(decision(track=t), REPLAY) for t in range(5, 9)]
        with bound(lambda: EventPublisher(PublisherConfig(endpoint=endpoint), journal)) as restarted:
            for t in range(9, 13):
                time.sleep(0.1)
                sent.append(restarted.publish(decision(track=t), REPLAY))
            received = got.result(timeout=30)
    assert seqs(sent) == list(range(1, 13))
    assert received == sent


def test_events_that_never_arrive_live_come_from_the_replay(journal, replay, monkeypatch):
    """Events lost at the end of a burst leave no gap to see: a quiet spell makes it ask."""
    answered = threading.Event()
    answer = ReplayServer._answer

    def spy(self, frames):
        reply = answer(self, frames)
        answered.set()
        return reply

    monkeypatch.setattr(ReplayServer, "_answer", spy)
    for s in (1, 2):
        journal.append(event(s))
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as silent, ThreadPoolExecutor(2) as pool:
        # after=None: from where the journal ends when it starts (2), so 1 and 2 are not for it
        from_end = pool.submit(receive, silent.endpoint, "plate.", 2, 10.0, replay.endpoint)
        assert answered.wait(10)  # it knows where the journal ends
        from_zero = pool.submit(receive, silent.endpoint, "plate.", 4, 10.0, replay.endpoint, 0)
        for s in (3, 4):  # journaled, never sent live
            journal.append(event(s))
        assert from_end.result(timeout=30) == [event(3), event(4)]
        assert from_zero.result(timeout=30) == [event(s) for s in (1, 2, 3, 4)]


def test_a_topic_filter_applies_to_replayed_events_too(journal, replay):
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as pub:
        sent = [pub.publish(decision(camera=f"cam{t % 2}", track=t), REPLAY) for t in range(1, 7)]
        assert receive(pub.endpoint, "plate.cam1", 3, 5.0, replay.endpoint, 0) == sent[0::2]
        assert receive(pub.endpoint, "plate.", 2, 5.0, replay.endpoint, 4) == sent[4:]


def test_subscribe_cli_replays_after_n_then_follows(journal, replay, tmp_path):
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as pub:
        sent = [pub.publish(decision(track=t), REPLAY) for t in range(1, 6)]
        r = run_module("stream.subscribe", pub.endpoint, "--replay", replay.endpoint, "--after", 2, "--count", 3,
                       "--timeout", 20, tmp_path=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line) for line in r.stdout.splitlines()] == sent[2:]


class _Subscriber:
    """`python -m stream.subscribe` as a consumer process: the events it prints, as they come."""

    def __init__(self, endpoint: str, replay_endpoint: str, after: int, tmp_path):
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.subscribe", endpoint, "--replay", replay_endpoint,
                                      "--after", str(after)], cwd=ROOT, env=offline_env(tmp_path / "net.log"),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by a kill was never handled
                self.events.append(json.loads(line))

    def wait_for(self, n: int) -> None:
        """Until this consumer has handled `n` events (30 s at most)."""
        end = time.monotonic() + 30
        while len(self.events) < n:
            assert time.monotonic() < end, f"the subscriber printed {len(self.events)} of {n} events in 30 s"
            time.sleep(0.05)

    def stop(self, sig: int) -> list[dict]:
        self.proc.send_signal(sig)
        self.proc.wait(10)
        self.reader.join(10)
        self.proc.stdout.close()
        return self.events


def test_a_killed_subscriber_restarted_after_its_last_seq_gets_every_event_once_in_order(journal, replay, tmp_path):
    """The consumer remembers the last seq it handled; SIGKILLed mid-stream, it starts again
    from there, and the events published while it was dead come from the replay."""
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), journal) as pub:
        first = _Subscriber(pub.endpoint, replay.endpoint, 0, tmp_path)
        sent = publish_until(pub, lambda: len(first.events) >= 5)
        handled = first.stop(signal.SIGKILL)
        sent += [pub.publish(decision(track=t), REPLAY) for t in range(5)]  # nobody listens
        second = _Subscriber(pub.endpoint, replay.endpoint, handled[-1]["seq"], tmp_path)
        backlog = len(sent) - len(handled)
        sent += publish_until(pub, lambda: len(second.events) >= backlog + 5)  # live again: five more
        second.wait_for(len(sent) - len(handled))  # and what went out meanwhile
        handled += second.stop(signal.SIGTERM)
    assert seqs(sent) == list(range(1, len(sent) + 1))
    assert handled == sent


@pytest.mark.parametrize("args, words", [
    (["--after", "0"], "--after needs --replay"),
    (["--replay", "tcp://127.0.0.1:5557", "--after", "-1"], "must be >= 0, got -1"),
])
def test_subscribe_cli_bad_after(tmp_path, args, words):
    r = run_module("stream.subscribe", "tcp://127.0.0.1:5556", *args, tmp_path=tmp_path, timeout=30)
    assert r.returncode == 2 and words in r.stderr, r.stderr


def test_subscribe_cli_bad_replay_endpoint(tmp_path):
    r = run_module("stream.subscribe", "tcp://127.0.0.1:5556", "--replay", "tcp://127.0.0.1:notaport",
                   "--timeout", 1, tmp_path=tmp_path, timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: cannot request replay from tcp://127.0.0.1:notaport")
    assert r.stderr.count("\n") == 1


def test_subscribe_reads_a_journal_without_a_pipeline(tmp_path):
    """Events of a stopped pipeline, from its journal file, filtered by camera, plate and time."""
    path = tmp_path / "events.db"
    publisher = EventPublisher(PublisherConfig(endpoint="tcp://127.0.0.1:*"), Journal(path))
    for k, (cam, plate) in enumerate([("gate", "AB12CDE"), ("yard", "XY34ZZZ"), ("gate", "CD56EFG")]):
        publisher.publish(decision(cam, k + 1, plate=plate, first_seen=(10.0 * k, k)), REPLAY)
    publisher.close()

    def read(*args):
        return run_module("stream.subscribe", "--journal", path, *args, tmp_path=tmp_path, timeout=30)

    every = read()
    assert every.returncode == 0 and [json.loads(x)["plate"] for x in every.stdout.splitlines()] == [
        "AB12CDE", "XY34ZZZ", "CD56EFG"]
    assert [json.loads(x)["seq"] for x in read("--camera", "gate").stdout.splitlines()] == [1, 3]
    assert [json.loads(x)["plate"] for x in read("--plate", "cd56-efg").stdout.splitlines()] == ["CD56EFG"]
    # REPLAY's epoch is 2023-11-14T22:13:20Z: the events were first seen 0, 10 and 20 s after it
    assert [json.loads(x)["seq"] for x in read("--since", "2023-11-14T22:13:25", "--until",
                                               "2023-11-14T22:13:40").stdout.splitlines()] == [2]
    r = run_module("stream.subscribe", "--journal", tmp_path / "none.db", tmp_path=tmp_path, timeout=30)
    assert r.returncode == 2 and r.stderr == f"error: no journal at {tmp_path / 'none.db'}\n"


# --- evidence and history search ----------------------------------------------------------------

from stream.journal import JournalReader  # noqa: E402
from stream.plates import distance, near  # noqa: E402


def seen_event(seq: int, camera: str, plate: str, day: int, hour: int) -> dict:
    return {**event(seq, camera), "event_id": f"{seq:032x}", "plate": plate,
            "first_seen": {"time": f"2026-03-{day:02d}T{hour:02d}:00:00.000Z", "offset": 0.0, "frame": seq}}


def test_crops_stored_with_an_event_come_back_and_go_with_it(tmp_path, monkeypatch):
    path = tmp_path / "events.db"
    j = Journal(path)
    j.append(seen_event(1, "gate", "AB12CDE", 1, 8), {"crop": b"\xff\xd8plate", "vehicle": b"\xff\xd8car"})
    j.append(seen_event(2, "gate", "XY34ZZZ", 1, 9), {"crop": b"\xff\xd8other", "vehicle": None})  # None: left out
    j.append(seen_event(3, "gate", "CD56EFG", 1, 10))  # no crops: as before
    ids = [f"{s:032x}" for s in (1, 2, 3)]
    assert j.image(ids[0], "crop") == b"\xff\xd8plate" and j.image(ids[0], "vehicle") == b"\xff\xd8car"
    assert j.image(ids[1], "vehicle") is None and j.image(ids[2], "crop") is None and j.image("nope", "crop") is None
    assert j.image_names([*ids, "nope"]) == {ids[0]: ["crop", "vehicle"], ids[1]: ["crop"]}
    # a refused event leaves no image behind: they are written in one transaction
    with pytest.raises(JournalError):
        j.append({**seen_event(3, "gate", "ZZ99ZZZ", 1, 11), "event_id": "f" * 32}, {"crop": b"\xff\xd8lost"})
    assert j.image("f" * 32, "crop") is None and j.last_seq() == 3
    reader = JournalReader(path)  # another connection: they are on disk
    assert reader.image(ids[0], "vehicle") == b"\xff\xd8car"
    reader.close()
    # pruned with their events, but for the latest one's
    j.append(seen_event(4, "yard", "AB12CDE", 1, 12), {"crop": b"\xff\xd84"})
    monkeypatch.setattr(stream.journal, "PRUNE_SECONDS", 0.0)
    j.retention_days = 0.1 / DAY
    time.sleep(0.3)
    j.append(seen_event(5, "yard", "AB12CDE", 1, 13), {"crop": b"\xff\xd85"})
    assert seqs(j.after(0, 10)) == [5] and j.image_names([*ids, f"{4:032x}", f"{5:032x}"]) == {f"{5:032x}": ["crop"]}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT seq FROM images").fetchall() == [(5,)]
    j.close()


def test_search_filters_by_plates_camera_and_first_sight_newest_first_from_a_cursor(journal):
    for e in [seen_event(1, "gate", "AB12CDE", 1, 8), seen_event(2, "yard", "XY34ZZZ", 1, 9),
              seen_event(3, "gate", "AB12CDE", 2, 8), seen_event(4, "gate", "A812CDE", 2, 10),
              seen_event(5, "yard", "QR56STU", 3, 8)]:
        journal.append(e)
    assert sorted(journal.plates()) == ["A812CDE", "AB12CDE", "QR56STU", "XY34ZZZ"]
    assert seqs(journal.search()) == [5, 4, 3, 2, 1]
    assert seqs(journal.search(limit=2)) == [5, 4] and seqs(journal.search(before_seq=4, limit=2)) == [3, 2]
    assert seqs(journal.search(["AB12CDE", "A812CDE"])) == [4, 3, 1] and journal.search([]) == []
    assert seqs(journal.search(camera="yard")) == [5, 2] and journal.search(camera="nope") == []
    assert seqs(journal.search(since="2026-03-02T08:00:00.000Z", until="2026-03-03")) == [4, 3]
    assert seqs(journal.search(["AB12CDE"], "gate", "2026-03-01T09", None, 3, 10)) == []
    assert seqs(journal.search(["AB12CDE"], "gate", "2026-03-01", None, 10, 10)) == [3, 1]


def test_a_journal_written_before_images_is_read_as_one_without_them(tmp_path):
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as db:  # the layout of the first journals: no images, no JSON indexes
        db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, time REAL NOT NULL, camera_id TEXT NOT NULL, "
                   "json TEXT NOT NULL)")
        db.execute("INSERT INTO events VALUES (1, 0, 'gate', ?)", (json.dumps(seen_event(1, "gate", "AB12CDE", 1, 8)),))
    db.close()
    reader = JournalReader(path)
    assert seqs(reader.search(["AB12CDE"])) == [1] and reader.image(f"{1:032x}", "crop") is None
    assert reader.image_names([f"{1:032x}"]) == {}
    reader.close()
    j = Journal(path)  # the writer adds what is missing, and keeps the events
    j.append(seen_event(2, "gate", "AB12CDE", 1, 9), {"crop": b"\xff\xd8"})
    assert seqs(j.search(["AB12CDE"])) == [2, 1] and j.image(f"{2:032x}", "crop") == b"\xff\xd8"
    j.close()


@pytest.mark.parametrize("a, b, expected", [
    ("AB12CDE", "AB12CDE", 0.0), ("ab-12 cde", "AB12CDE", 0.0),  # compared as published
    ("ABC123", "A8C123", 0.5), ("O0DQ", "0DQO", 2.0), ("I1T", "1TI", 1.5), ("S5Z2G6", "5S2Z6G", 3.0),
    ("ABD123", "AB0I23", 1.0), ("ABC123", "ABC12", 1.0), ("ABC123", "XBC123", 1.0), ("AB", "BA", 2.0),
    ("", "AB", 2.0), ("AB12CDE", "XY34ZZZ", 7.0)])
def test_plate_distance_counts_confusable_characters_half(a, b, expected):
    assert distance(a, b) == expected == distance(b, a)


plate_texts = st.text(alphabet="ABDGIOQSTZ0125678X", max_size=8)


@settings(max_examples=300, deadline=None)
@given(plate_texts, plate_texts, plate_texts)
def test_plate_distance_is_a_metric(a, b, c):
    assert (distance(a, b) == 0) == (a == b)
    assert distance(a, b) == distance(b, a) <= max(len(a), len(b))
    assert distance(a, c) <= distance(a, b) + distance(b, c)


def test_near_finds_the_plates_within_a_distance():
    plates = ["AB12CDE", "A812CDE", "AB12CD", "XY34ZZZ", "AB12CDEFG"]
    assert near("a8i2-cde", plates, 1) == {"AB12CDE": 1.0, "A812CDE": 0.5}
    assert near("AB12CDE", plates, 0) == {"AB12CDE": 0.0}
    assert near("AB12CDE", plates, 2) == {"AB12CDE": 0.0, "A812CDE": 0.5, "AB12CD": 1.0, "AB12CDEFG": 2.0}
