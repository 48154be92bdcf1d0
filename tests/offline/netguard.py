"""Block every non-loopback network connection in this process.

Used by the tests' `no_network` fixture and, through `sitecustomize.py` beside it, by the
Python processes the tests launch. Attempts are recorded in a list (and appended to a
log file when one is given) so a test can fail on them.
"""
from __future__ import annotations

import socket

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", ""}


class NetworkBlocked(OSError):
    pass


def _is_loopback(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like are local
        return True
    host = str(address[0])
    return host in _LOOPBACK or host.startswith("127.") or host.startswith("::ffff:127.")


def install(log_path: str | None = None) -> list:
    """Patch socket connects; returns the list that collects blocked addresses."""
    attempts: list = []

    def guard(real, address_arg: int):
        def wrapper(*args, **kwargs):
            address = args[address_arg]
            if not _is_loopback(address):
                attempts.append(address)
                if log_path:
                    with open(log_path, "a") as f:
                        f.write(f"{address!r}\n")
                raise NetworkBlocked(f"network blocked in tests: connect to {address!r}")
            return real(*args, **kwargs)
        return wrapper

    socket.socket.connect = guard(socket.socket.connect, 1)  # (self, address)
    socket.socket.connect_ex = guard(socket.socket.connect_ex, 1)
    socket.create_connection = guard(socket.create_connection, 0)  # (address, ...)
    return attempts
