"""Benchmark the real pipeline on a video file and print what it costs.

    python -m stream.bench [--source VIDEO] [--streams N] [--loop K] [--device auto|cpu|cuda[:N]]
                           [--weights DETECTOR] [--detect-every K] [--realtime] [--stalled-subscriber]
                           [--peer] [--truth PLATES.json] [--json]

Runs `stream.pipeline.Pipeline` (the same code as run_stream.py, publishing on loopback
ports of its own, journal in a temporary folder) on VIDEO (default: the shipped sample),
as N cameras reading a copy each, the file played K times over (joined with ffmpeg: a soak),
as fast as it goes or, with `--realtime`, paced to the file's clock. It prints:

- the hardware and the detector's runtime;
- end-to-end frames per second (every camera's frames, over the wall time of the run);
- time per frame in each stage: decode (reading the file), detect, track, OCR, vote, publish;
- event latency p50/p95: from the capture of the first frame whose read gave the plate its
  published text (the plate became legible) to the event's publication;
- memory: resident size after the models loaded, at the end, and the peak; with CUDA the
  peak GPU memory too;
- the deepest the frame and read queues got (bounded: FRAME_QUEUE, READ_QUEUE).

`--stalled-subscriber` connects a subscriber that never reads, to show that a stuck consumer
costs the pipeline no memory (ZeroMQ's high-water mark). `--peer` then runs the single-frame
peer of stream/peer.py on the same file in the same process, for frames per second side by
side. Plates read: how many of the truth's plates (`--truth`, a JSON list of plates or of
objects with a "plate"; default VIDEO.json when it exists, as for the sample) the first
camera published, and the peer read in any frame. `--json`: the same as one JSON object.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import zmq

from config.schema import CameraConfig, DetectorConfig, parse_config
from models.errors import AlprError
from models.formats import clean
from stream.capture import SourceError
from stream.peer import run_peer
from stream.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "traffic.mp4"
SAMPLE_S = 0.2  # how often memory and queue depths are sampled


def _hardware(device: str) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
            "gpu": gpu, "device": device, "torch": torch.__version__}


def _looped(source: Path, times: int, folder: Path) -> Path:
    """`source` played `times` times over, as one file (stream copy: no re-encoding)."""
    if times == 1:
        return source
    if shutil.which("ffmpeg") is None:
        raise SourceError("--loop needs ffmpeg on the PATH")
    out = folder / f"looped{source.suffix}"
    r = subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", str(times - 1), "-i", str(source), "-c", "copy",
                        str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SourceError(f"ffmpeg cannot loop {source}: {r.stderr.strip().splitlines()[-1:]}")
    return out


class _Sampler(threading.Thread):
    """Resident memory and queue depths every SAMPLE_S while the pipeline runs."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.pipeline = pipeline
        self.stop = threading.Event()
        self.max_frame_queue = self.max_read_queue = 0

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            self.max_frame_queue = max([self.max_frame_queue, *(q.qsize() for q in self.pipeline.queues.values())])
            self.max_read_queue = max(self.max_read_queue, self.pipeline.read_queue.qsize())


def _truth(path: Path | None) -> list[str] | None:
    if path is None or not path.is_file():
        return None
    try:
        items = json.loads(path.read_text())
        return [clean(i["plate"] if isinstance(i, dict) else i) for i in items]
    except (ValueError, TypeError, KeyError):
        raise ValueError(f"{path}: expected a JSON list of plates or of objects with a \"plate\"") from None


def run(source: Path, streams: int, loop: int, device: str, weights: str, detect_every: int, realtime: bool,
        stalled_subscriber: bool, peer: bool = False, truth_file: Path | None = None) -> dict:
    import torch

    truth = _truth(truth_file or source.with_suffix(".json"))
    with tempfile.TemporaryDirectory(prefix="alpr-bench-") as tmp:
        video = _looped(source, loop, Path(tmp))
        raw = {"detector": {"device": device, "weights": weights, "detect_every": detect_every},
               "publisher": {"endpoint": "tcp://127.0.0.1:*", "replay_endpoint": "tcp://127.0.0.1:*"},
               "journal": {"path": str(Path(tmp) / "events.db")}}
        config = parse_config(raw)
        config.cameras = [CameraConfig(f"cam{i}", str(video)) for i in range(streams)]
        pipeline = Pipeline(config, realtime=realtime)
        published: set[str] = set()
        pipeline.on_event = lambda e: published.add(e["plate"]) if e["camera_id"] == "cam0" else None
        stalled = None
        if stalled_subscriber:
            stalled = zmq.Context.instance().socket(zmq.SUB)
            stalled.setsockopt(zmq.SUBSCRIBE, b"")
            stalled.setsockopt(zmq.RCVHWM, 1)
            stalled.connect(pipeline.publisher.endpoint)
        proc = psutil.Process()
        rss_start = proc.memory_info().rss
        sampler = _Sampler(pipeline)
        sampler.start()
        start = time.perf_counter()
        stats = pipeline.run()
        seconds = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
        if stalled is not None:
            stalled.close(linger=0)
        frames = max(1, stats["frames"])
        stages = {"decode": sum(c.decode_seconds for c in pipeline.captures), **pipeline.stats.stage_seconds}
        cuda = torch.cuda.is_available() and str(pipeline.detector.device).startswith("cuda")
        gpu_peak = round(torch.cuda.max_memory_allocated() / 2 ** 20) if cuda else None
        rss_end = proc.memory_info().rss
        peer_run = run_peer(source) if peer else None
        return {
            "hardware": _hardware(str(pipeline.detector.device)),
            "detector": {"weights": str(pipeline.detector.weights), "imgsz": pipeline.detector.imgsz,
                         "half": pipeline.detector.half, "detect_every": detect_every},
            "source": str(source), "streams": streams, "loop": loop, "realtime": realtime,
            "stalled_subscriber": stalled_subscriber,
            "frames": stats["frames"], "frames_detected": stats["frames_detected"], "seconds": round(seconds, 2), "fps": round(stats["frames"] / seconds, 2),
            "stage_ms_per_frame": {k: round(1000 * v / frames, 2) for k, v in stages.items()},
            "events": stats["events"], "dropped": stats["dropped"],
            "latency_ms_p50": stats["latency_ms_p50"], "latency_ms_p95": stats["latency_ms_p95"],
            "plates_read": None if truth is None else sum(p in published for p in set(truth)),
            "truth_plates": None if truth is None else len(set(truth)),
            "rss_mb": {"start": round(rss_start / 2 ** 20), "end": round(rss_end / 2 ** 20),
                       # ru_maxrss is in KiB on Linux
                       "peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)},
            "gpu_peak_mb": gpu_peak,
            "max_queue": {"frames": sampler.max_frame_queue, "read": sampler.max_read_queue},
            "peer": None if peer_run is None else {
                "frames": peer_run.frames, "seconds": round(peer_run.seconds, 2), "fps": round(peer_run.fps, 2),
                "plates_read": None if truth is None else sum(p in peer_run.texts for p in set(truth)),
                "distinct_texts": len(peer_run.texts)},
        }


def report(r: dict) -> str:
    hw, st = r["hardware"], r["stage_ms_per_frame"]
    return "\n".join([
        f"hardware: {hw['cpu']}, {hw['cores']} cores, {hw['memory_gb']} GB, GPU {hw['gpu'] or 'none'}; "
        f"device {hw['device']}, torch {hw['torch']}",
        f"detector: {r['detector']['weights']} at {r['detector']['imgsz']} px{', fp16' if r['detector']['half'] else ''}"
        f", every {r['detector']['detect_every']} frame(s) once tracks are read",
        f"source: {r['source']} x {r['streams']} stream(s), played {r['loop']} time(s), "
        f"{'paced to its clock' if r['realtime'] else 'as fast as possible'}"
        f"{', with a stalled subscriber' if r['stalled_subscriber'] else ''}",
        f"{r['frames']} frames in {r['seconds']} s: {r['fps']} fps end to end, {r['dropped']} dropped, "
        f"{r['frames_detected']} through the detector",
        "ms per frame: " + ", ".join(f"{k} {v}" for k, v in st.items()),
        f"{r['events']} events, latency p50 {r['latency_ms_p50']} ms, p95 {r['latency_ms_p95']} ms",
        f"memory (RSS MB): start {r['rss_mb']['start']}, end {r['rss_mb']['end']}, peak {r['rss_mb']['peak']}"
        + (f"; GPU peak {r['gpu_peak_mb']} MB" if r["gpu_peak_mb"] is not None else ""),
        f"deepest queues: frames {r['max_queue']['frames']}, read {r['max_queue']['read']}",
        *([] if r["plates_read"] is None else [f"plates read (first camera): {r['plates_read']}/{r['truth_plates']}"]),
        *([] if r["peer"] is None else [
            f"peer (platedet + rapidocr, every frame): {r['peer']['frames']} frames in {r['peer']['seconds']} s: "
            f"{r['peer']['fps']} fps; plates read {r['peer']['plates_read']}/{r['truth_plates']} "
            f"({r['peer']['distinct_texts']} distinct texts); ours/peer fps: "
            f"{round(r['fps'] / max(r['peer']['fps'], 1e-9), 1)}x"]),
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stream.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=SAMPLE, help="a video file (default: the shipped sample)")
    ap.add_argument("--streams", type=int, default=1, help="cameras, each reading the file")
    ap.add_argument("--loop", type=int, default=1, help="play the file this many times over (needs ffmpeg)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--weights", default="auto", help="detector weights (.pt, .onnx, .engine; default auto)")
    ap.add_argument("--detect-every", type=int, default=DetectorConfig().detect_every,
                    help="detector.detect_every (see README)")
    ap.add_argument("--realtime", action="store_true", help="pace each stream to the file's clock")
    ap.add_argument("--stalled-subscriber", action="store_true", help="attach a subscriber that never reads")
    ap.add_argument("--peer", action="store_true", help="also run the single-frame peer (stream/peer.py)")
    ap.add_argument("--truth", type=Path, help="plates in the video (default: VIDEO.json when present)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    for name in ("streams", "loop"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        result = run(args.source, args.streams, args.loop, args.device, args.weights, args.detect_every,
                     args.realtime, args.stalled_subscriber, args.peer, args.truth)
    except (AlprError, OSError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else report(result), flush=True)
    zmq.Context.instance().term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
