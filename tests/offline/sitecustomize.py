"""Imported at start-up by the Python processes the tests launch (tests/offline is put on
their PYTHONPATH): non-loopback connections raise, and each attempt is appended to the
file named by $ALPR_NET_LOG so the test can fail on it."""
import os
import socket

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", ""}


def _is_loopback(address) -> bool:
    if not isinstance(address, tuple):
        return True
    host = str(address[0])
    return host in _LOOPBACK or host.startswith("127.") or host.startswith("::ffff:127.")


def _blocked(address):
    log = os.environ.get("ALPR_NET_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{address!r}\n")
    return OSError(f"network blocked in tests: {address!r}")


_connect, _connect_ex, _create = socket.socket.connect, socket.socket.connect_ex, socket.create_connection


def _guard_connect(self, address):
    if not _is_loopback(address):
        raise _blocked(address)
    return _connect(self, address)


def _guard_connect_ex(self, address):
    if not _is_loopback(address):
        raise _blocked(address)
    return _connect_ex(self, address)


def _guard_create(address, *args, **kwargs):
    if not _is_loopback(address):
        raise _blocked(address)
    return _create(address, *args, **kwargs)


socket.socket.connect = _guard_connect
socket.socket.connect_ex = _guard_connect_ex
socket.create_connection = _guard_create
