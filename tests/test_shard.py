"""Shards (stream/shard.py): a stable hash of the camera id picks the worker, the same
everywhere; moving cameras needs nothing but N; --shard parses I/N and a StatefulSet pod's
ordinal."""
from __future__ import annotations

import subprocess
import sys
import zlib

import pytest

from config.schema import CameraConfig
from conftest import ROOT
from stream.shard import ShardError, parse_shard, select, shard_of


@pytest.mark.slow  # runs a command
def test_the_shard_is_crc32_of_the_id_modulo_n_the_same_in_every_process():
    assert shard_of("gate1", 3) == zlib.crc32(b"gate1") % 3
    assert [shard_of("gate1", n) for n in (1, 2, 3, 7)] == [0, 0, 2, 4]  # fixed values: never hash()
    code = "from stream.shard import shard_of; print([shard_of(f'cam{i}', 5) for i in range(20)])"
    runs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")}
    assert len(runs) == 1 and runs.pop().strip() == str([shard_of(f"cam{i}", 5) for i in range(20)])


def test_every_camera_is_in_exactly_one_shard_and_they_spread():
    cameras = [CameraConfig(f"cam{i:03d}", i) for i in range(300)]
    for n in (1, 2, 3, 8):
        shards = [select(cameras, i, n) for i in range(n)]
        assert sorted(c.id for s in shards for c in s) == sorted(c.id for c in cameras)
        assert all(len(s) > 300 / n * 0.6 for s in shards), [len(s) for s in shards]
        assert all(s == sorted(s, key=cameras.index) for s in shards)  # in config order


def test_adding_a_camera_moves_no_other():
    ids = [f"cam{i}" for i in range(50)]
    before = {c: shard_of(c, 4) for c in ids}
    after = {c: shard_of(c, 4) for c in ids + ["new"]}
    assert all(after[c] == before[c] for c in ids)


@pytest.mark.parametrize("text, env, expected", [
    ("0/3", {}, (0, 3)),
    ("2/3", {}, (2, 3)),
    (" 0/1 ", {}, (0, 1)),
    ("auto", {"HOSTNAME": "alpr-worker-2", "ALPR_SHARDS": "3"}, (2, 3)),
    ("auto", {"HOSTNAME": "a-b-c-10", "ALPR_SHARDS": "12"}, (10, 12)),
])
def test_shard_values(text, env, expected):
    assert parse_shard(text, env) == expected


@pytest.mark.parametrize("text, env, words", [
    ("3/3", {}, "0 <= I < N"),
    ("0/0", {}, "N >= 1"),
    ("1", {}, "I/N"),
    ("-1/3", {}, "I/N"),
    ("a/b", {}, "I/N"),
    ("auto", {"ALPR_SHARDS": "3"}, "HOSTNAME"),
    ("auto", {"HOSTNAME": "worker", "ALPR_SHARDS": "3"}, "NAME-ORDINAL"),
    ("auto", {"HOSTNAME": "alpr-worker-0"}, "ALPR_SHARDS"),
    ("auto", {"HOSTNAME": "alpr-worker-3", "ALPR_SHARDS": "3"}, "0 <= I < N"),
])
def test_bad_shard_values_are_one_line_errors(text, env, words):
    with pytest.raises(ShardError) as e:
        parse_shard(text, env)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow  # runs a command
def test_run_stream_refuses_a_bad_shard_in_one_line():
    r = subprocess.run([sys.executable, "run_stream.py", "--shard", "3/3"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["error: shard 3 of 3: needs N >= 1 and 0 <= I < N"]
