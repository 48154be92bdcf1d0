"""Full scenes for the detector: cars with plates, several per frame, and plate-like distractors.

`render_scene(rng)` returns a BGR frame and the plates (box, text) in it. Frames may have no
plate at all; distractors (road signs, truck lettering, camera timestamps, shop signs)
carry text that is not a plate, so the detector learns the difference. `render_closeup(rng)`
is a gate camera's view: one car close enough that its plate may fill most of the frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from models.synth.camera import degrade, mount, outline, pose, rand_color
from models.synth.plates import TRAIN_FONTS, Plate, render_plate, small_text

SIGN_WORDS = ("STOP", "EXIT 12", "PARKING", "NO PARKING", "SPEED LIMIT 35", "ONE WAY", "BUS ONLY", "PIZZA",
              "ACME LOGISTICS", "CALL 555-0199", "OPEN 24H", "HOTEL", "A4 MUNCHEN 23", "E40", "KM 12",
              "DHL", "SALE 50%", "TAXI", "POLICE", "PHARMACY", "M25 NORTH", "RUA 7", "LANE 3", "GATE B2")


Box = tuple[float, float, float, float]  # x1, y1, x2, y2 pixels


@dataclass
class ScenePlate:
    box: Box
    text: str


def street_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    sky, ground = np.array(rand_color(rng, 60, 230), np.float32), np.array(rand_color(rng, 30, 160), np.float32)
    horizon = rng.uniform(0.2, 0.6)
    t = np.clip((np.linspace(0, 1, h) - horizon) * 8 + 0.5, 0, 1).astype(np.float32)[:, None, None]
    img[:] = sky * (1 - t) + ground * t
    for _ in range(int(rng.integers(3, 15))):  # buildings, poles, lane marks, bushes
        c = rand_color(rng)
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        k = rng.random()
        if k < 0.5:
            cv2.rectangle(img, (x, y), (x + int(rng.uniform(10, w / 2)), y + int(rng.uniform(10, h / 2))), c, -1)
        elif k < 0.8:
            cv2.ellipse(img, (x, y), (int(rng.uniform(5, w / 4)), int(rng.uniform(5, h / 4))), 0, 0, 360, c, -1)
        else:
            cv2.line(img, (x, y), (int(rng.uniform(0, w)), int(rng.uniform(0, h))), c, int(rng.integers(1, 8)))
    img += rng.normal(0, rng.uniform(2, 12), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def paste_warped(img: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """Warp the whole of `src` onto the quad `dst` of `img` (in place)."""
    h, w = src.shape[:2]
    quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    H = cv2.getPerspectiveTransform(quad, dst.astype(np.float32))
    scale = np.linalg.norm(dst[1] - dst[0]) / w
    if scale < 0.5:
        src = cv2.GaussianBlur(src, (0, 0), 0.4 / scale)
    size = (img.shape[1], img.shape[0])
    warped = cv2.warpPerspective(src, H, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), H, size, flags=cv2.INTER_LINEAR)
    m = mask.astype(np.float32)[..., None] / 255
    img[:] = (img * (1 - m) + warped * m).astype(np.uint8)


def paste_plate(rng: np.random.Generator, img: np.ndarray, plate: Plate, dst: np.ndarray) -> None:
    """Put `plate` on the quad `dst` of `img`, half the time with what surrounds it on a car (a
    recess or holder of another colour, dealer text, screws; `mount`). Its box is the plate's
    own: a detector that learnt only bare plates boxes a US plate with its recess around it."""
    if rng.random() < 0.5:
        paste_warped(img, plate.image, dst)
        return
    body, corners = mount(rng, plate)
    paste_warped(img, body, outline(body, corners, dst))


def draw_car(rng: np.random.Generator, img: np.ndarray, cx: float, cy: float, car_w: float) -> None:
    """A car seen from behind or in front: body, glass, lights, bumper (plate drawn later)."""
    h = car_w * rng.uniform(0.6, 0.9)
    x0, y0, x1, y1 = int(cx - car_w / 2), int(cy - h * 0.75), int(cx + car_w / 2), int(cy + h * 0.25)
    body = rand_color(rng)
    cv2.rectangle(img, (x0, y0 + int(h * 0.35)), (x1, y1), body, -1)
    roof = np.array([[x0 + car_w * 0.12, y0 + h * 0.38], [x0 + car_w * 0.25, y0], [x1 - car_w * 0.25, y0],
                     [x1 - car_w * 0.12, y0 + h * 0.38]], np.int32)
    cv2.fillConvexPoly(img, roof, body)
    glass = np.array([[x0 + car_w * 0.18, y0 + h * 0.34], [x0 + car_w * 0.28, y0 + h * 0.05],
                      [x1 - car_w * 0.28, y0 + h * 0.05], [x1 - car_w * 0.18, y0 + h * 0.34]], np.int32)
    cv2.fillConvexPoly(img, glass, rand_color(rng, 0, 90))
    light = (30, 30, 200) if rng.random() < 0.6 else (220, 220, 220)
    ly = int(y0 + h * 0.45)
    cv2.rectangle(img, (x0 + 2, ly), (x0 + int(car_w * 0.18), ly + int(h * 0.12)), light, -1)
    cv2.rectangle(img, (x1 - int(car_w * 0.18), ly), (x1 - 2, ly + int(h * 0.12)), light, -1)
    cv2.rectangle(img, (x0, y1 - int(h * 0.12)), (x1, y1), rand_color(rng, 0, 80), -1)
    if rng.random() < 0.4:  # a badge or model name, which is not a plate
        small_text(rng, img, str(rng.choice(["TOYOTA", "VW", "FORD", "KIA", "A4", "320d", "HYBRID"])),
                   (int(cx - car_w * 0.12), int(y0 + h * 0.4), int(cx + car_w * 0.12), int(y0 + h * 0.5)),
                   (200, 200, 200))


def _distractor(rng: np.random.Generator, img: np.ndarray, occupied) -> None:
    H, W = img.shape[:2]
    k = rng.random()
    if k < 0.3:  # camera timestamp overlay
        text = f"2026-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}"
        if rng.random() < 0.5:
            text += f" CAM{rng.integers(1, 20):02d}"
        y = int(rng.choice([0.02, 0.92]) * H)
        small_text(rng, img, text, (int(W * 0.02), y, int(W * rng.uniform(0.3, 0.5)), y + int(H * 0.05)),
                   (255, 255, 255) if rng.random() < 0.7 else (0, 255, 255))
        return
    # a sign or lettered panel: coloured board with text, sometimes plate-sized
    bw = rng.uniform(0.05, 0.35) * W
    bh = bw * rng.uniform(0.2, 0.8)
    x, y = rng.uniform(0, W - bw), rng.uniform(0, H - bh)
    if any(x < x2 and x + bw > x1 and y < y2 and y + bh > y1 for x1, y1, x2, y2 in occupied):
        return
    board = np.empty((int(bh) + 2, int(bw) + 2, 3), np.uint8)
    board[:] = rand_color(rng)
    words = str(rng.choice(SIGN_WORDS)) if rng.random() < 0.7 else "".join(
        rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789 "), int(rng.integers(4, 10))))
    small_text(rng, board, words, (2, 2, board.shape[1] - 2, board.shape[0] - 2), rand_color(rng))
    paste_warped(img, board, np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]], np.float32))


def render_scene(rng: np.random.Generator, size: tuple[int, int] | None = None,
                 background: np.ndarray | None = None, occupied: list[Box] = (),
                 fonts: tuple[str, ...] = TRAIN_FONTS, widths: tuple[float, float] | None = None
                 ) -> tuple[np.ndarray, list[ScenePlate]]:
    """A frame (BGR) and the plates drawn in it. `background`, if given, is drawn on: a real
    frame whose own plates (`occupied`) the caller labels and this function keeps clear.
    `widths`: the plates' width range in px (log-uniform; default 15 px to 400 or 0.6 of the frame)."""
    if background is not None:
        img = background.copy()
    else:
        W, H = size or [(640, 480), (960, 540), (640, 640), (800, 600)][rng.integers(4)]
        img = street_background(rng, H, W)
    H, W = img.shape[:2]
    for _ in range(int(rng.integers(0, 4))):
        _distractor(rng, img, occupied)
    plates: list[ScenePlate] = []
    n = 0 if rng.random() < 0.1 else int(rng.integers(1, 5))
    for _ in range(n):
        plate = render_plate(rng, fonts=fonts)
        lo, hi = widths or (15, min(400, W * 0.6))
        plate_w = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        cx, cy = rng.uniform(0.1, 0.9) * W, rng.uniform(0.25, 0.95) * H
        reach = plate_w * 2.5  # a car drawn here must not cover a plate already placed
        if any(x1 - reach < cx < x2 + reach and y1 - reach < cy < y2 + reach
               for x1, y1, x2, y2 in [*occupied, *(p.box for p in plates)]):
            continue
        if rng.random() < 0.8:
            draw_car(rng, img, cx, cy - plate_w * 0.1, plate_w * rng.uniform(3.2, 4.5))
        h, w = plate.image.shape[:2]
        dst = pose(rng, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32), plate_w) + [cx, cy]
        paste_plate(rng, img, plate, dst)
        x1, y1 = dst.min(0)
        x2, y2 = dst.max(0)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(W, x2), min(H, y2)
        if x2 - x1 > 4 and y2 - y1 > 3:
            plates.append(ScenePlate((float(x1), float(y1), float(x2), float(y2)), plate.text))
    img = degrade(rng, img, scale=12.0)
    return img, plates


def render_closeup(rng: np.random.Generator, size: tuple[int, int] = (640, 480), widths: tuple[float, float] = (60, 600),
                   fonts: tuple[str, ...] = TRAIN_FONTS) -> tuple[np.ndarray, list[ScenePlate]]:
    """A frame with one plate `widths` px wide (log-uniform), whole, on a car around it."""
    W, H = size
    img = street_background(rng, H, W)
    plate = render_plate(rng, fonts=fonts)
    h, w = plate.image.shape[:2]
    plate_w = math.exp(rng.uniform(math.log(widths[0]), math.log(min(widths[1], 0.95 * W))))
    dst = pose(rng, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32), plate_w)
    dst *= min(1.0, 0.98 * W / np.ptp(dst[:, 0]), 0.9 * H / np.ptp(dst[:, 1]))  # a pose may not take it out of view
    (x1, y1), (x2, y2) = dst.min(0), dst.max(0)
    dst += [rng.uniform(-x1, W - x2), rng.uniform(-y1, H - y2)]
    cx, cy = dst.mean(0)
    draw_car(rng, img, cx, cy - plate_w * 0.1, plate_w * rng.uniform(3.2, 4.5))
    paste_plate(rng, img, plate, dst)
    (x1, y1), (x2, y2) = dst.min(0), dst.max(0)
    return degrade(rng, img, scale=12.0), [ScenePlate((float(x1), float(y1), float(x2), float(y2)), plate.text)]
