"""Generated traffic video with known plates: the pipeline's test input and demo sample.

    python -m models.synth.video OUT.mp4 [--seed S] [--cars N] [--seconds T] [--fps F] [--size WxH]
                                 [--truth DIR/truth.json] [--gate]

Cars drive across a static street in two lanes, in both directions, so their paths
cross; a pole in the foreground hides each car for a few frames. The cars' plates and
the frames where each is visible are returned (and printed as JSON by the command).
`--gate`: instead, one car drives up to a gate camera until its plate fills 75-95 % of the
frame's width (at the start 80 px to half the frame wide), waits there and backs off again,
over `--seconds`.
With `--truth` the clip is also entered in a `truth.json` that `python -m stream.evaluate
DIR` scores (OUT.mp4 in DIR), listing the cars whose whole plate is in view for at least
LEGIBLE_SECONDS.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from models.images import VideoWriter
from models.synth.camera import degrade
from models.synth.plates import render_plate
from models.synth.scenes import draw_car, paste_warped, street_background


LEGIBLE_SECONDS = 0.6  # from the first to the last frame with the whole plate in view


@dataclass
class VideoCar:
    plate: str
    first_frame: int  # first frame with the whole plate in view
    last_frame: int
    heading: str = ""  # "right" or "left": which way it drives across the frame


def render_video(path: Path | str, seed: int = 0, cars: int = 4, seconds: float = 8.0, fps: float = 15.0,
                 size: tuple[int, int] = (960, 540)) -> list[VideoCar]:
    rng = np.random.default_rng(seed)
    W, H = size
    n_frames = int(seconds * fps)
    background = street_background(rng, H, W)
    pole_x = int(W * rng.uniform(0.35, 0.65))
    plan = []
    for i in range(cars):
        plate = render_plate(rng, two_row_prob=0.0)
        plate_w = rng.uniform(120, 160)
        lane_y = H * (0.55 if i % 2 == 0 else 0.8)
        direction = 1 if i % 2 == 0 else -1
        # Staggered entries so each car is alone in its lane; speed: crossing in ~2.5-4 s.
        duration = rng.uniform(2.5, 4.0) * fps
        start = int(i * n_frames / (cars + 1) * 0.9)
        plan.append((plate, plate_w, lane_y, direction, duration, start, int(rng.integers(1 << 30))))
    writer = _writer(path, fps, size)
    seen: dict[int, list[int]] = {}
    for f in range(n_frames):
        img = background.copy()
        for i, (plate, plate_w, lane_y, direction, duration, start, car_seed) in enumerate(plan):
            t = (f - start) / duration
            if not 0 <= t <= 1:
                continue
            car_w = plate_w * 3.6
            span = W + car_w
            cx = -car_w / 2 + t * span if direction > 0 else W + car_w / 2 - t * span
            draw_car(np.random.default_rng(car_seed), img, cx, lane_y - plate_w * 0.1, car_w)
            dst = _upright(plate.image, cx, lane_y, plate_w)
            paste_warped(img, plate.image, dst)
            hidden = dst[0, 0] < pole_x + 25 and dst[1, 0] > pole_x - 25
            if dst[0, 0] >= 0 and dst[1, 0] <= W and not hidden:
                seen.setdefault(i, []).append(f)
        cv2.rectangle(img, (pole_x - 25, 0), (pole_x + 25, H), (90, 90, 95), -1)  # the occluding pole
        img = np.clip(img.astype(np.int16) + rng.normal(0, 3, img.shape).astype(np.int16), 0, 255).astype(np.uint8)
        writer.write(img)
    writer.close()
    return [VideoCar(plan[i][0].text, fr[0], fr[-1], "right" if plan[i][3] > 0 else "left")
            for i, fr in sorted(seen.items())]


def render_gate_video(path: Path | str, seed: int = 0, seconds: float = 5.0, fps: float = 12.0,
                      size: tuple[int, int] = (640, 480)) -> list[VideoCar]:
    rng = np.random.default_rng(seed)
    W, H = size
    background = street_background(rng, H, W)
    plate = render_plate(rng)
    car_seed = int(rng.integers(1 << 30))
    far, near = rng.uniform(80, 0.5 * W), rng.uniform(0.75, 0.95) * W
    x0, y0 = rng.uniform(0.35, 0.65) * W, rng.uniform(0.45, 0.6) * H
    writer = _writer(path, fps, size)
    n = int(seconds * fps)
    for f in range(n):
        t = f / n  # drives up in the first 40 %, waits 30 %, backs off in the last 30 %
        s = min(t / 0.4, 1.0) if t < 0.7 else max(0.0, 1 - (t - 0.7) / 0.3)
        plate_w = far * (near / far) ** s
        cx, cy = x0 + (W / 2 - x0) * s, y0 + (H * 0.45 - y0) * s
        img = background.copy()
        draw_car(np.random.default_rng(car_seed), img, cx, cy - plate_w * 0.1, plate_w * 3.6)
        paste_warped(img, plate.image, _upright(plate.image, cx, cy, plate_w))
        writer.write(degrade(np.random.default_rng([seed, f]), img, scale=2.0, severity=0.5))
    writer.close()
    return [VideoCar(plate.text, 0, n - 1)]


def _writer(path: Path | str, fps: float, size: tuple[int, int]) -> VideoWriter:
    return VideoWriter(path, fps, size)


def _upright(plate: np.ndarray, cx: float, cy: float, plate_w: float) -> np.ndarray:
    """The corners of `plate` drawn upright, `plate_w` wide, centred on (cx, cy)."""
    h, w = plate.shape[:2]
    ph = plate_w * h / w
    return np.array([[cx - plate_w / 2, cy - ph / 2], [cx + plate_w / 2, cy - ph / 2],
                     [cx + plate_w / 2, cy + ph / 2], [cx - plate_w / 2, cy + ph / 2]], np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cars", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--size", type=_size, default=(960, 540), help="WIDTHxHEIGHT (default 960x540)")
    ap.add_argument("--truth", type=Path, help="enter the clip in this truth.json (stream.evaluate's layout)")
    ap.add_argument("--gate", action="store_true", help="one car driving up to a gate camera (see above)")
    args = ap.parse_args()
    if args.gate:
        truth = render_gate_video(args.out, args.seed, args.seconds, args.fps, args.size)
    else:
        truth = render_video(args.out, args.seed, args.cars, args.seconds, args.fps, args.size)
    print(json.dumps([asdict(c) for c in truth]))
    if args.truth:
        clips = [c for c in json.loads(args.truth.read_text()) if c["clip"] != args.out.name] if args.truth.exists() else []
        plates = [c.plate for c in truth if c.last_frame - c.first_frame >= LEGIBLE_SECONDS * args.fps]
        args.truth.write_text(json.dumps(clips + [{"clip": args.out.name, "plates": plates}], indent=1))


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 960x540, got {text!r}") from None
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError(f"frame size {text} is too small (at least 64x64)")
    return w, h


if __name__ == "__main__":
    main()
