"""Imported at start-up by the Python processes the tests launch (tests/offline is put on
their PYTHONPATH): non-loopback connections raise, and each attempt is appended to the
file named by $ALPR_NET_LOG so the test can fail on it."""
import os

import netguard

netguard.install(os.environ.get("ALPR_NET_LOG"))
