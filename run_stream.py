"""Run the plate stream processor.

    python run_stream.py [--config FILE] [--source SRC] [--jsonl PATH] [--save-video PATH] [--realtime]
                         [--shard I/N|auto]

With no arguments it replays the bundled sample video (`samples/traffic.mp4`, made by the
project's generator) and prints every event it publishes. `--source` replaces the
config's cameras with one (a file, folder of images, rtsp:// or http(s):// URL, or a webcam
index). Events go to the ZeroMQ PUB socket of `publisher.endpoint` (topic
`plate.<camera_id>`), to stdout as JSON lines, and with `--jsonl` to a file as well.
`--shard I/N` runs only the config's cameras of shard I of N (stream/shard.py; docs/deploy.md).
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
import time
from pathlib import Path

from config.schema import CameraConfig, ConfigError, load_config, parse_config
from models.errors import AlprError

ROOT = Path(__file__).resolve().parent
SAMPLE = ROOT / "samples" / "traffic.mp4"
SHUTDOWN_SECONDS = 10.0  # after a stop signal, the longest the drain may take before the process exits anyway
GRACE_SECONDS = 1.0  # a second signal sooner than this is the first one again (sent to the process group)

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
    second one (but the same signal again within GRACE_SECONDS), or a drain longer than
    SHUTDOWN_SECONDS, exits at once with a non-zero
    status. Every event published by then is in the journal. Before the pipeline is running
    (models loading) nothing has been seen: the process exits 0 at once."""

    def __init__(self) -> None:
        self.pipeline = None
        self._stopping, self._first = 0.0, 0  # monotonic time and number of the first signal
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if self.pipeline is None:
            log.info("%s before the pipeline started: exiting", name)
            _exit(0)
        if self._stopping:
            # `timeout` or a supervisor may signal the whole process group, so the same signal
            # can come twice for one request: a repeat within GRACE_SECONDS is not a second one.
            if signum == self._first and time.monotonic() - self._stopping < GRACE_SECONDS:
                log.info("%s again within %g s: the same request, still stopping", name, GRACE_SECONDS)
                return
            log.error("%s again: exiting without finishing the shutdown", name)
            _exit(128 + signum)
        self._stopping, self._first = time.monotonic(), signum
        log.info("%s: stopping; publishing every open track (%s again to exit at once)", name, name)
        self.pipeline.stop()
        timer = threading.Timer(SHUTDOWN_SECONDS, self._give_up)
        timer.daemon = True
        timer.start()

    @staticmethod
    def _give_up() -> None:
        log.error("shutdown did not finish within %g s: exiting", SHUTDOWN_SECONDS)
        _exit(1)


class _Console:
    """What a person at a terminal sees: one progress line on stderr (file sources) that log
    lines and events clear before they print, and events as readable lines. Piped, stdout
    carries one JSON event per line and nothing else; logs always go to stderr."""

    def __init__(self) -> None:
        self.bar_shown = False
        self.readable = sys.stdout.isatty()

    def clear(self) -> None:
        if self.bar_shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
            self.bar_shown = False

    def progress(self, pipeline) -> None:
        total = sum(c.total or 0 for c in pipeline.captures)
        if total:
            pct = min(100, int(100 * pipeline.stats.frames_done / total))
            events = f"{pipeline.stats.events} event{'' if pipeline.stats.events == 1 else 's'}"
            print(f"\r\033[K[{'#' * (pct // 4):<25}] {pct:3d}% {pipeline.stats.frames_done}/{total} frames, {events}",
                  end="", file=sys.stderr, flush=True)
            self.bar_shown = True

    def event(self, e: dict) -> None:
        try:
            self._print(e)
        except BrokenPipeError:  # the reader went away (`| head`): the run goes on, unprinted
            sys.stdout = open(os.devnull, "w")
            log.warning("stdout closed: events are no longer printed (they are still published)")

    def _print(self, e: dict) -> None:
        if not self.readable:
            print(json.dumps(e), flush=True)
            return
        self.clear()
        issuer = "/".join(filter(None, (e.get("country"), e.get("subdivision"))))
        where = f"{e['region'] or '?'}{' ' + issuer if issuer else ''}"
        moving = f" {e['direction']['motion']}" if e.get("direction") else ""
        alert = f"  ALERT {e['match']['list']}" if e.get("alert") else ""
        print(f"{e['first_seen']['time'][11:19]}  {e['camera_id']}  {e['type']:<10} {e['plate']:<10} {where:<10} "
              f"confidence {e['confidence']:.2f}  track {e['track_id']}{moving}{alert}", flush=True)

    def handler(self) -> logging.Handler:
        """A stderr log handler that clears the progress line first."""
        console = self

        class Handler(logging.StreamHandler):
            def emit(self, record):
                console.clear()
                super().emit(record)
        handler = Handler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        return handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, help="YAML config (see README: Configuration)")
    ap.add_argument("--source", help="one source replacing the config's cameras")
    ap.add_argument("--jsonl", type=Path, help="also append every event to this file")
    ap.add_argument("--save-video", type=Path, help="write an annotated video here")
    ap.add_argument("--realtime", action="store_true", help="pace file replay to the file's own clock")
    ap.add_argument("--quiet", action="store_true", help="do not print events on stdout")
    ap.add_argument("--shard", metavar="I/N|auto",
                    help="run only the cameras of shard I of N (stream/shard.py: CRC-32 of the id modulo N); "
                         "auto: I from $HOSTNAME's -ORDINAL (a StatefulSet pod), N from $ALPR_SHARDS")
    args = ap.parse_args(argv)

    try:
        config = load_config(args.config) if args.config else parse_config(None)
        if args.source is not None:
            source: str | int = int(args.source) if args.source.isdigit() else args.source
            config.cameras = [CameraConfig("cam0", source)]
        elif args.config and not config.cameras:  # a config without cameras is a mistake, not a demo
            raise ConfigError(f"{args.config} lists no cameras (add cameras: or give --source)")
        elif not config.cameras:
            config.cameras = [CameraConfig("sample", str(SAMPLE))]
    except ConfigError as e:
        print(f"error: config: {e}", file=sys.stderr)
        return 2
    shard = None
    if args.shard is not None:
        from stream.shard import ShardError, parse_shard, select

        try:
            shard = parse_shard(args.shard)
        except ShardError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        every = [c.id for c in config.cameras]
        config.cameras = select(config.cameras, *shard)
    console = _Console()
    logging.basicConfig(level=config.logging.level, handlers=[console.handler()])
    if shard is not None:
        log.info("shard %d/%d: %d of %d cameras: %s", *shard, len(config.cameras), len(every),
                 ", ".join(c.id for c in config.cameras) or "none")
        if not config.cameras:  # not an error: N may exceed what the hash gives this worker
            log.warning("shard %d/%d has no cameras: idle until stopped", *shard)
            _Shutdown()  # SIGINT, SIGTERM: exit 0
            while True:
                signal.pause()

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
    on_event = None if args.quiet else console.event
    if on_event:  # each event is printed on stdout: not again in the log
        logging.getLogger("stream.pipeline.events").setLevel(logging.WARNING)
    try:
        pipeline = Pipeline(config, jsonl=args.jsonl, save_video=args.save_video, realtime=args.realtime,
                            on_event=on_event)
    except (AlprError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shutdown.pipeline = pipeline
    if hasattr(signal, "SIGHUP"):  # the watchlists' files again, without a restart
        signal.signal(signal.SIGHUP, lambda *_: pipeline.watchlists.reload())
    files = not any(is_live(c.source) for c in config.cameras)
    try:
        stats = pipeline.run(progress=console.progress if files and sys.stderr.isatty() else None)
    except StageFailed as e:  # logged where it happened; what could be published was
        console.clear()
        print(f"error: {e}", file=sys.stderr)
        zmq.Context.instance().term()
        return 1
    console.clear()
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
    try:
        _exit(main())
    except KeyboardInterrupt:  # Ctrl-C while loading, before the signal handlers: no traceback
        print("interrupted", file=sys.stderr)
        _exit(130)
