"""Shards: the cameras of one configuration split across N workers, each running its own.

Camera `c` belongs to shard `crc32(c) % N` (CRC-32 of its id as UTF-8: the same on every
machine, Python version and run, unlike `hash()`). Every worker is given the whole camera
list and the same N; worker i runs the cameras of shard i. Adding or removing a camera changes
no other camera's shard; changing N moves cameras between workers and needs nothing else.

`run_stream.py --shard i/N` runs shard i of N; `--shard auto` takes i from a StatefulSet pod's
host name (`$HOSTNAME`, `name-<ordinal>`) and N from `$ALPR_SHARDS` (deploy/k8s/).
"""
from __future__ import annotations

import os
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import TypeVar

from models.errors import AlprError

SHARDS_ENV = "ALPR_SHARDS"  # N for --shard auto

T = TypeVar("T")


class ShardError(AlprError, ValueError):
    """A --shard value that cannot be used; one line."""


def shard_of(camera_id: str, shards: int) -> int:
    """The shard, 0 to shards - 1, that runs camera `camera_id`."""
    if shards < 1:
        raise ShardError(f"the number of shards must be >= 1, got {shards}")
    return zlib.crc32(camera_id.encode("utf-8")) % shards


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """`i/N` -> (i, N); `auto` -> the ordinal at the end of $HOSTNAME and $ALPR_SHARDS."""
    env = os.environ if environ is None else environ
    if text == "auto":
        host = env.get("HOSTNAME", "")
        m = re.fullmatch(r".+-(\d+)", host)
        if m is None:
            raise ShardError(f"--shard auto needs $HOSTNAME as NAME-ORDINAL (a StatefulSet pod), got {host!r}")
        n = env.get(SHARDS_ENV, "")
        if not n.isdigit():
            raise ShardError(f"--shard auto needs ${SHARDS_ENV}, the number of shards, got {n!r}")
        index, shards = int(m.group(1)), int(n)
    else:
        m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if m is None:
            raise ShardError(f"--shard must be I/N (e.g. 0/3) or auto, got {text!r}")
        index, shards = int(m.group(1)), int(m.group(2))
    if shards < 1 or not 0 <= index < shards:
        raise ShardError(f"shard {index} of {shards}: needs N >= 1 and 0 <= I < N")
    return index, shards


def select(items: Sequence[T], index: int, shards: int, key=lambda c: c.id) -> list[T]:
    """The items (cameras, by `key`: their id) of shard `index` of `shards`, in their order."""
    return [c for c in items if shard_of(key(c), shards) == index]
