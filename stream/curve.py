"""CurveZMQ on the event and replay sockets: encryption, and only listed clients admitted.

    python -m stream.curve DIR NAME [NAME ...]

writes a key pair per NAME into DIR: `NAME.key` (the public key, to hand to the other side)
and `NAME.key_secret` (stays where it was made). Make one for the server and one per client;
then the server's config names its secret file and a folder holding the clients' `.key`
files (`publisher.curve_secret_key`, `publisher.curve_client_keys`), and each client uses
its own secret file plus the server's public file (`python -m stream.subscribe
--curve-key --server-key`). A client whose key is not in the folder, or that speaks plain
ZeroMQ, gets nothing. Keys are read at start; restart to admit a new client.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from models.errors import AlprError


ZAP_ATTEMPTS = 100  # 20 ms apart


class CurveError(AlprError, ValueError):
    """A key file or folder cannot be used; one line naming it."""


@dataclass(frozen=True)
class Keys:
    public: bytes
    secret: bytes


def _load(path: str | Path, need_secret: bool) -> tuple[bytes, bytes | None]:
    kind = "secret key file (NAME.key_secret)" if need_secret else "public key file (NAME.key)"
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveError(f"cannot read the {kind} {path}: {getattr(e, 'strerror', None) or e}") from None
    if need_secret and secret is None:
        raise CurveError(f"{path} holds no secret key: give the {kind}")
    return public, secret


def load_keys(secret_file: str | Path) -> Keys:
    """The key pair in `secret_file` (as written by this module's command)."""
    public, secret = _load(secret_file, need_secret=True)
    return Keys(public, secret)


def load_public(public_file: str | Path) -> bytes:
    return _load(public_file, need_secret=False)[0]


class Server:
    """The server side: its keys and a ZAP handler that admits the clients in `clients_dir`.

    One per ZeroMQ context (the handler owns the context's ZAP endpoint): both sockets of a
    pipeline share it. `stop()` when the sockets are closed.
    """

    def __init__(self, secret_file: str | Path, clients_dir: str | Path) -> None:
        self.keys = load_keys(secret_file)
        clients = Path(clients_dir)
        if not clients.is_dir():
            raise CurveError(f"client key folder {clients} does not exist")
        for path in clients.glob("*.key"):
            _load(path, need_secret=False)  # a broken file is an error now, not a silent refusal later
        if not any(clients.glob("*.key")):
            raise CurveError(f"client key folder {clients} holds no NAME.key file: no client could connect")
        self._auth = ThreadAuthenticator(zmq.Context.instance())
        # The ZAP endpoint of a handler stopped a moment ago is freed by ZeroMQ's own thread,
        # shortly after its stop() returns.
        for attempt in range(ZAP_ATTEMPTS):
            try:
                self._auth.start()
                break
            except zmq.ZMQError as e:
                self._auth.zap_socket.close(linger=0)
                if e.errno != zmq.EADDRINUSE or attempt == ZAP_ATTEMPTS - 1:
                    raise CurveError(f"cannot start the Curve authenticator: {zmq.strerror(e.errno)}") from None
                time.sleep(0.02)
        self._auth.configure_curve(domain="*", location=str(clients))

    def secure(self, socket: zmq.Socket) -> None:
        """Make `socket` (before it binds) a Curve server that asks the handler about each client."""
        socket.curve_secretkey = self.keys.secret
        socket.curve_publickey = self.keys.public
        socket.curve_server = True

    def stop(self) -> None:
        self._auth.stop()


@dataclass(frozen=True)
class Client:
    """A client's key pair and the server's public key, from their files."""
    keys: Keys
    server_public: bytes

    @classmethod
    def load(cls, secret_file: str | Path, server_public_file: str | Path) -> Client:
        return cls(load_keys(secret_file), load_public(server_public_file))

    def secure(self, socket: zmq.Socket) -> None:
        """Make `socket` (before it connects) a Curve client of the server."""
        socket.curve_secretkey = self.keys.secret
        socket.curve_publickey = self.keys.public
        socket.curve_serverkey = self.server_public


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.curve", description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path, help="folder to write the key files into (made if missing)")
    parser.add_argument("names", nargs="+", metavar="NAME", help="one key pair per name, e.g. server gate1")
    args = parser.parse_args(argv)
    try:
        args.dir.mkdir(parents=True, exist_ok=True)
        for name in args.names:
            if (args.dir / f"{name}.key_secret").exists():
                raise CurveError(f"{args.dir / name}.key_secret exists; not overwriting a key in use")
            public, secret = zmq.auth.create_certificates(args.dir, name)
            Path(secret).chmod(0o600)
            print(f"{public}\n{secret}")
    except (OSError, CurveError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
