"""Run the plate stream processor.

    python run_stream.py [--config FILE] [--source SRC] [--jsonl PATH] [--save-video PATH] [--realtime]

With no arguments it replays the bundled sample video (`samples/traffic.mp4`, made by the
project's generator) and prints every event it publishes. `--source` replaces the
config's cameras with one (a file, folder of images, rtsp:// or http(s):// URL, or a webcam
index). Events go to the ZeroMQ PUB socket of `publisher.endpoint` (topic
`plate.<camera_id>`), to stdout as JSON lines, and with `--jsonl` to a file as well.
For a file source the command exits 0 after the last frame, once every event is out.
Exit status 2: bad input (config, source, weights); 1: a stage of the pipeline failed while
running (after publishing what could still be voted).
Live cameras run until SIGINT or SIGTERM: then capture stops, what is queued is processed,
every open track is finalized and published, and the command exits 0 (within
SHUTDOWN_SECONDS; a second signal exits at once, non-zero).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from config.schema import CameraConfig, ConfigError, load_config, parse_config
from models.errors import AlprError

ROOT = Path(__file__).resolve().parent
SAMPLE = ROOT / "samples" / "traffic.mp4"
SHUTDOWN_SECONDS = 10.0  # after a stop signal, the longest the drain may take before the process exits anyway

log = logging.getLogger("run_stream")


def _exit(code: int) -> None:
    """Flush our output and end the process without Python's finalization.

    A live camera's reader thread may still be blocked in OpenCV (a stalled or unreachable
    camera, abandoned for a new connection); one that comes back while the interpreter
    finalizes aborts the process. Everything of ours is closed or flushed by then.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class _Shutdown:
    """SIGINT and SIGTERM: the first stops the pipeline (`run()` then drains and returns); a
    second one, or a drain longer than SHUTDOWN_SECONDS, exits at once with a non-zero
    status. Every event published by then is in the journal. Before the pipeline is running
    (models loading) nothing has been seen: the process exits 0 at once."""

    def __init__(self) -> None:
        self.pipeline = None
        self._stopping = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if self.pipeline is None:
            log.info("%s before the pipeline started: exiting", name)
            _exit(0)
        if self._stopping:
            log.error("%s again: exiting without finishing the shutdown", name)
            _exit(128 + signum)
        self._stopping = True
        log.info("%s: stopping; publishing every open track (%s again to exit at once)", name, name)
        self.pipeline.stop()
        timer = threading.Timer(SHUTDOWN_SECONDS, self._give_up)
        timer.daemon = True
        timer.start()

    @staticmethod
    def _give_up() -> None:
        log.error("shutdown did not finish within %g s: exiting", SHUTDOWN_SECONDS)
        _exit(1)


def _progress_bar(total_frames: int | None):
    """A one-line progress bar on stderr for file sources."""
    last = [-1]

    def show(pipeline) -> None:
        total = total_frames or sum(c.total or 0 for c in pipeline.captures)
        if not total:
            return
        pct = min(100, int(100 * pipeline.frames_done / total))
        if pct != last[0]:
            last[0] = pct
            bar = "#" * (pct // 4)
            print(f"\r[{bar:<25}] {pct:3d}% {pipeline.frames_done}/{total} frames, {pipeline.events} events",
                  end="", file=sys.stderr, flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, help="YAML config (see README: Configuration)")
    ap.add_argument("--source", help="one source replacing the config's cameras")
    ap.add_argument("--jsonl", type=Path, help="also append every event to this file")
    ap.add_argument("--save-video", type=Path, help="write an annotated video here")
    ap.add_argument("--realtime", action="store_true", help="pace file replay to the file's own clock")
    ap.add_argument("--quiet", action="store_true", help="do not print events on stdout")
    args = ap.parse_args(argv)

    try:
        config = load_config(args.config) if args.config else parse_config(None)
        if args.source is not None:
            source: str | int = int(args.source) if args.source.isdigit() else args.source
            config.cameras = [CameraConfig("cam0", source)]
        elif not config.cameras:
            config.cameras = [CameraConfig("sample", str(SAMPLE))]
    except ConfigError as e:
        print(f"error: config: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)

    import cv2
    import zmq

    from stream.capture import is_live
    from stream.pipeline import Pipeline, StageFailed

    if config.logging.level != "DEBUG":
        # The capture logs a lost camera once, as a state change; FFmpeg's and OpenCV's own
        # messages would repeat it on every reconnect attempt. Their settings win when given.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
        if "OPENCV_LOG_LEVEL" not in os.environ:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    shutdown = _Shutdown()
    on_event = None if args.quiet else (lambda e: print(json.dumps(e), flush=True))
    try:
        pipeline = Pipeline(config, jsonl=args.jsonl, save_video=args.save_video, realtime=args.realtime,
                            on_event=on_event)
    except (AlprError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shutdown.pipeline = pipeline
    files = not any(is_live(c.source) for c in config.cameras)
    try:
        stats = pipeline.run(progress=_progress_bar(None) if files and sys.stderr.isatty() else None)
    except StageFailed as e:  # logged where it happened; what could be published was
        print(f"\nerror: {e}" if files and sys.stderr.isatty() else f"error: {e}", file=sys.stderr)
        zmq.Context.instance().term()
        return 1
    if files and sys.stderr.isatty():
        print(file=sys.stderr)
    log.info("done: %s", json.dumps(stats))
    # The last events may still wait in ZeroMQ's queue: term() lets them out (every socket
    # is closed by now and lingers LINGER_MS at most).
    zmq.Context.instance().term()
    # Events a sink did not deliver (given up, dropped, or unconfirmed at close; each was
    # logged): summed up whatever the log level, so that a lost broker is never silent.
    where = "replay them from the journal" if config.journal.enabled else "lost: the journal is off"
    for s in pipeline.sinks:
        if lost := s.failed + s.dropped + s.undelivered:
            print(f"warning: sink {s.label}: {lost} of {s.received} events not delivered ({where})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    _exit(main())
