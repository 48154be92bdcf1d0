"""Score the whole pipeline on labelled video: one event per car, with the exact plate.

    python -m stream.evaluate CLIPS_DIR            # holds truth.json: [{"clip": file, "plates": [text, ...]}]
    python -m stream.evaluate VIDEO --plate TEXT   # one video, the plates it shows
    options: [--realtime] [--config FILE]

Each clip is replayed through the real pipeline (its ZeroMQ socket on a free loopback
port). A car is right when exactly one final event carries its plate (a correction
replaces its track's earlier event); every other final event is counted as extra. With
`--realtime` the replay is paced to the video clock, so the latency from the plate first
being read right to its event is what a live camera would see. The last line printed is
the figures as one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from config.schema import CameraConfig, load_config, parse_config
from models.errors import AlprError, ModelError
from models.formats import clean


def _truth(path: Path, plates: list[str] | None) -> list[tuple[Path, list[str]]]:
    if path.is_dir():
        truth = path / "truth.json"
        if not truth.is_file():
            raise ModelError(f"no truth.json in {path}")
        try:
            items = json.loads(truth.read_text())
            return [(path / i["clip"], [clean(p) for p in i["plates"]]) for i in items]
        except (ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{truth}: expected [{{\"clip\": file, \"plates\": [text, ...]}}]: {e}") from None
    if not plates:
        raise ModelError("give --plate TEXT (one per plate in the video) for a single video")
    return [(path, [clean(p) for p in plates])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", type=Path)
    ap.add_argument("--plate", action="append", help="a plate shown in VIDEO (repeat for several)")
    ap.add_argument("--realtime", action="store_true", help="pace replay to the video clock (for latency)")
    ap.add_argument("--config", type=Path)
    args = ap.parse_args()
    from stream.pipeline import Pipeline  # heavy imports after argument errors

    try:
        clips = _truth(args.path, args.plate)
        base = load_config(args.config) if args.config else parse_config(None)
    except AlprError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    base.publisher.endpoint = "tcp://127.0.0.1:*"
    base.journal.enabled = False  # scoring runs are not events to keep (nor to number after the real ones)
    base.logging.stats_seconds = 1e9
    cars = right = extra = frames = 0
    latencies, seconds, models = [], 0.0, None
    for clip, plates in clips:
        base.cameras = [CameraConfig("eval", str(clip))]
        try:
            pipeline = Pipeline(base, realtime=args.realtime, models=models)
        except AlprError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        models = pipeline.models
        finals: dict[int, str] = {}
        pipeline.on_event = lambda e: finals.__setitem__(e["track_id"], e["plate"])
        stats = pipeline.run()
        got = list(finals.values())
        ok = [p for p in plates if got.count(p) == 1]
        n_extra = len(got) - len(ok)
        cars, right, extra, frames = cars + len(plates), right + len(ok), extra + n_extra, frames + stats["frames"]
        latencies += pipeline.stats.latencies
        seconds += stats["frames"] / max(stats["fps"], 1e-9)
        print(f"{clip.name}: truth {plates} events {got} -> {'OK' if len(ok) == len(plates) and not n_extra else 'WRONG'}",
              flush=True)
    lat = np.array(latencies) * 1000
    r = {"clips": len(clips), "cars": cars, "cars_exactly_one_right_event": right, "extra_events": extra,
         "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
         "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
         "fps": round(frames / max(seconds, 1e-9), 1), "realtime": args.realtime}
    print(f"cars with exactly one right event: {right}/{cars}; extra events: {extra}; "
          f"latency p50 {r['latency_ms_p50']} ms, p95 {r['latency_ms_p95']} ms; {r['fps']} fps")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
