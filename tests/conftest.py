"""Shared fixtures: repo on sys.path, ultralytics offline, a network guard, one PlateReader.

Command-line tests run `python -m models.<tool>` through `run_module`, which puts
`tests/offline/` on PYTHONPATH: its `sitecustomize.py` blocks non-loopback connections in
the child too and logs any attempt, so the CLIs are checked offline as well.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["YOLO_OFFLINE"] = "1"

try:  # keep hypothesis' cache out of the working tree (.cache/ is ignored by git)
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(ROOT / ".cache" / "hypothesis")
except ImportError:
    pass

TESTS = Path(__file__).resolve().parent
HELDOUT_FONT = str(TESTS / "fonts" / "OpenSans-CondBold.ttf")  # never used in training
OFFLINE_DIR = TESTS / "offline"  # holds the sitecustomize.py used by run_module

# Real data beside the checkout (developer and CI machines only; a fresh clone has none).
SHARED = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not present at {SHARED}")


def shared_path(*parts: str) -> Path:
    """A path under SHARED, or skip the calling test (with the reason) when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p


sys.path.insert(0, str(OFFLINE_DIR))
import netguard  # noqa: E402  (found through the path line above)


@pytest.fixture(scope="session")
def no_network():
    """Block every non-loopback connection for the rest of the session; yields the list of
    attempted addresses, so a test can also assert that nothing even tried."""
    yield netguard.install()


@pytest.fixture(scope="session")
def reader(no_network):
    """The shipped models, loaded once (slow) with the network blocked."""
    from models.reader import PlateReader

    return PlateReader(device="cpu")


def offline_env(net_log: Path) -> dict[str, str]:
    """Environment for a child Python: ultralytics offline, network guard installed
    (attempts appended to `net_log`)."""
    env = dict(os.environ)
    env.update(YOLO_OFFLINE="1", ALPR_NET_LOG=str(net_log), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(OFFLINE_DIR), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def run_module(module: str, *args, tmp_path: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m module args...` from the repo root, offline; fails the test if the child
    tried to reach the network."""
    log = tmp_path / f"net-attempts-{module}.log"
    r = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=offline_env(log),
                       capture_output=True, text=True, timeout=timeout)
    attempts = log.read_text() if log.exists() else ""
    assert not attempts, f"{module} tried to reach the network:\n{attempts}"
    return r


# --- the fast subset -------------------------------------------------------------------------
# `pytest -m "not slow"` runs the logic tests alone (under a minute on 2 cores); `slow` marks
# what loads the shipped models, runs a command or the pipeline end to end, or starts a server
# (RTSP, MQTT, a browser). `.ci/run` runs everything.
SLOW_MODULES = {"test_api", "test_bench", "test_capture", "test_errors", "test_label_crops", "test_models",
                "test_pipeline", "test_reconnect", "test_sinks", "test_synth"}
SLOW_FIXTURES = {"reader"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: loads models, runs commands or servers (deselect: -m 'not slow')")


def pytest_collection_modifyitems(items):
    for item in items:
        if (item.module.__name__ in SLOW_MODULES or SLOW_FIXTURES & set(item.fixturenames)
                or "tmp_path" in item.fixturenames and "run_module" in item.function.__code__.co_names):
            item.add_marker(pytest.mark.slow)
