"""CurveZMQ on real sockets: listed clients get events and replays, anyone else nothing."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import zmq

from config.schema import PublisherConfig
from conftest import run_module
from stream.curve import Client, CurveError, Server
from stream.journal import Journal
from stream.publish import EventPublisher
from stream.replay import ReplayServer
from stream.subscribe import receive
from test_publish import ANY_PORT, REPLAY, decision, publish_until

QUIET_S = 1.5  # an unlisted client hears nothing for this long while events go out


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Key pairs made by the command: a server, a listed client and one not listed."""
    d = tmp_path_factory.mktemp("keys")
    r = run_module("stream.curve", d, "server", "gate", "stranger", tmp_path=d)
    assert r.returncode == 0, r.stderr
    clients = d / "clients"
    clients.mkdir()
    (clients / "gate.key").write_bytes((d / "gate.key").read_bytes())
    return d


@pytest.fixture
def server(keys):
    s = Server(keys / "server.key_secret", keys / "clients")
    yield s
    s.stop()


@pytest.fixture
def publisher(server):
    with EventPublisher(PublisherConfig(endpoint=ANY_PORT), curve=server) as p:
        yield p


def client(keys, name: str) -> Client:
    return Client.load(keys / f"{name}.key_secret", keys / "server.key")


def test_keygen_writes_a_pair_per_name_and_never_overwrites(keys, tmp_path):
    public, secret = (keys / "gate.key").read_text(), (keys / "gate.key_secret").read_text()
    assert "public-key" in public and "secret-key" not in public and "secret-key" in secret
    assert (keys / "gate.key_secret").stat().st_mode & 0o077 == 0
    r = run_module("stream.curve", keys, "gate", tmp_path=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "gate.key_secret exists" in r.stderr
    assert (keys / "gate.key_secret").read_text() == secret


def test_a_listed_client_receives_events(keys, publisher):
    with ThreadPoolExecutor(1) as pool:
        got = pool.submit(receive, publisher.endpoint, count=3, timeout=10, curve=client(keys, "gate"))
        sent = publish_until(publisher, got.done)
    events = got.result()
    assert len(events) == 3 and all(e in sent for e in events)


@pytest.mark.parametrize("name", ["stranger", None])
def test_an_unlisted_or_plain_client_receives_nothing(keys, publisher, name):
    curve = client(keys, name) if name else None
    with ThreadPoolExecutor(1) as pool:
        got = pool.submit(receive, publisher.endpoint, timeout=QUIET_S, curve=curve)
        sent = publish_until(publisher, got.done)
    assert len(sent) >= QUIET_S / 0.05 * 0.8 and got.result() == []


def test_replay_answers_only_listed_clients(keys, server, tmp_path):
    journal = Journal(tmp_path / "events.db")
    journal.append({"seq": 1, "camera_id": "cam0", "plate": "AB12CDE"})
    replay = ReplayServer(journal.path, ANY_PORT, curve=server)
    replay.start()
    try:
        def ask(curve: Client | None) -> dict | None:
            req = zmq.Context.instance().socket(zmq.REQ)
            req.setsockopt(zmq.LINGER, 0)
            if curve:
                curve.secure(req)
            req.connect(replay.endpoint)
            try:
                req.send(b'{"after": 0}')
                return json.loads(req.recv()) if req.poll(int(QUIET_S * 1000)) else None
            finally:
                req.close()

        assert [e["plate"] for e in ask(client(keys, "gate"))["events"]] == ["AB12CDE"]
        assert ask(client(keys, "stranger")) is None
        assert ask(None) is None
    finally:
        replay.stop()
        journal.close()


def test_bad_keys_fail_in_one_line_naming_the_file(keys, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.key").write_text("not a certificate\n")
    cases = [
        (lambda: Server(tmp_path / "missing.key_secret", keys / "clients"), "missing.key_secret"),
        (lambda: Server(keys / "server.key", keys / "clients"), "holds no secret key"),
        (lambda: Server(keys / "server.key_secret", tmp_path / "nowhere"), "does not exist"),
        (lambda: Server(keys / "server.key_secret", empty), "holds no NAME.key file"),
        (lambda: Server(keys / "server.key_secret", broken), "x.key"),
        (lambda: Client.load(keys / "gate.key_secret", tmp_path / "missing.key"), "missing.key"),
    ]
    for make, words in cases:
        with pytest.raises(CurveError) as e:
            make()
        assert words in str(e.value) and "\n" not in str(e.value)


def test_subscriber_command_reports_a_bad_key_in_one_line(tmp_path):
    r = run_module("stream.subscribe", "tcp://127.0.0.1:5999", "--curve-key", tmp_path / "no.key_secret",
                   "--server-key", tmp_path / "server.key", tmp_path=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "no.key_secret" in r.stderr
