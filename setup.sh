#!/usr/bin/env bash
# Make the project's virtual environment at .venv/ and install the runtime into it;
# `--dev` also the tests' tools (requirements-dev.txt) and the benchmark's peer.
# Safe to run again: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
if [ "${1:-}" = "--dev" ]; then
    .venv/bin/python -m pip install -q -r requirements-dev.txt
    # The benchmark's peer (stream/peer.py), without its own pins, which clash with ours.
    .venv/bin/python -m pip install -q --no-deps -r requirements-peer.txt
fi
