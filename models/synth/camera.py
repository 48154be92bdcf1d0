"""What a camera does to a plate: mounting, perspective, size, optics, light and compression.

`mount` puts a flat plate on a piece of car body (frame, screws), `outline` says where that
piece lands for a pose of its plate, and `warp` projects it into an image with a random
pose; `degrade` applies the photometric side (blur, motion, noise, low light, IR, glare,
shadow, dirt, JPEG); `dealer_frame` covers a plate's edges as dealers' frames do.
`ocr_crop` chains them into one OCR training sample: a detector-like box around the plate
at 15-400 px plate width.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from models.synth.plates import Plate, small_text


def rand_color(rng: np.random.Generator, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def mount(rng: np.random.Generator, plate: Plate) -> tuple[np.ndarray, np.ndarray]:
    """The plate on a patch of car body; returns the image and the plate's 4 corners in it."""
    p = plate.image.copy()
    h, w = p.shape[:2]
    for sx in (0.2, 0.8):  # screws
        if rng.random() < 0.5:
            cx, cy = int(w * (sx + rng.uniform(-0.05, 0.05))), int(h * rng.uniform(0.06, 0.14))
            r = max(2, int(h * rng.uniform(0.025, 0.045)))
            cv2.circle(p, (cx, cy), r, rand_color(rng, 60, 220), -1)
            cv2.circle(p, (cx, cy), r, (40, 40, 40), 1)
    m = int(h * rng.uniform(0.3, 0.9))
    body = np.empty((h + 2 * m, w + 2 * m, 3), np.uint8)
    body[:] = rand_color(rng)
    if rng.random() < 0.5:  # bumper shading
        t = np.linspace(rng.uniform(0.5, 1.2), rng.uniform(0.5, 1.2), body.shape[0], dtype=np.float32)[:, None, None]
        body = np.clip(body * t, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:  # a plate holder frame, often with dealer text
        f = int(h * rng.uniform(0.06, 0.18))
        col = rand_color(rng, 0, 80) if rng.random() < 0.7 else rand_color(rng, 150, 255)
        cv2.rectangle(body, (m - f, m - f), (m + w + f, m + h + f), col, -1)
        if rng.random() < 0.5:
            small_text(rng, body, "DRIVE HAPPY AUTO" if rng.random() < 0.5 else "MOTORS.COM",
                        (m + w // 5, m + h, m + w - w // 5, m + h + f), rand_color(rng, 170, 255))
    if rng.random() < 0.3:  # characters of other badges or text near the plate
        small_text(rng, body, "".join(rng.choice(list("ABCDEHKLMNRSTVXZ"), int(rng.integers(3, 8)))),
                    (m, max(0, m - int(h * 0.5)), m + w, max(1, m - int(h * 0.1))), rand_color(rng))
    body[m:m + h, m:m + w] = p
    corners = np.array([[m, m], [m + w, m], [m + w, m + h], [m, m + h]], np.float32)
    return body, corners


DEALERS = ("DRIVE HAPPY AUTO", "MOTORS.COM", "CAPITOL TOYOTA", "HONDA OF MISSION VALLEY", "BMW OF SAN DIEGO",
           "FORD COUNTRY", "AUTO NATION", "CARMAX")


def dealer_frame(rng: np.random.Generator, body: np.ndarray, corners: np.ndarray, family: str) -> None:
    """A dealer's frame over `mount`'s plate: unlike the holder there, its bars cover the
    plate's own edges, on US plates the state name and slogan up to the characters' feet
    (where E and F, O and Q differ), with the dealer's name on the bottom bar."""
    (x0, y0), (x1, y1) = corners[0], corners[2]
    h = y1 - y0
    top, bottom = (rng.uniform(0.04, 0.22), rng.uniform(0.06, 0.19)) if family == "us" else rng.uniform(0.02, 0.09, 2)
    side, out = rng.uniform(0.01, 0.04) * h, rng.uniform(0.03, 0.1) * h
    dark = rng.random() < 0.7
    col = rand_color(rng, 0, 80) if dark else rand_color(rng, 150, 255)
    for bx0, by0, bx1, by1 in ((x0 - out, y0 - out, x1 + out, y0 + top * h), (x0 - out, y1 - bottom * h, x1 + out, y1 + out),
                               (x0 - out, y0 - out, x0 + side, y1 + out), (x1 - side, y0 - out, x1 + out, y1 + out)):
        cv2.rectangle(body, (int(bx0), int(by0)), (int(bx1), int(by1)), col, -1)
    if bottom > 0.08 and rng.random() < 0.6:
        small_text(rng, body, DEALERS[rng.integers(len(DEALERS))],
                   (int(x0 + 0.15 * (x1 - x0)), int(y1 - bottom * h * 0.8), int(x1 - 0.15 * (x1 - x0)), int(y1 + out * 0.5)),
                   rand_color(rng, 170, 255) if dark else rand_color(rng, 0, 60))


def outline(body: np.ndarray, corners: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Where the 4 corners of `mount`'s whole image land when its plate `corners` land on `dst`."""
    h, w = body.shape[:2]
    H = cv2.getPerspectiveTransform(corners, dst.astype(np.float32))
    return cv2.perspectiveTransform(np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32), H)[0]


def pose(rng: np.random.Generator, corners: np.ndarray, plate_w: float) -> np.ndarray:
    """Where the 4 plate corners land when the plate is `plate_w` px wide in the image."""
    w = np.linalg.norm(corners[1] - corners[0])
    h = np.linalg.norm(corners[3] - corners[0])
    s = plate_w / w
    pts = (corners - corners.mean(0)) * s
    yaw = math.radians(rng.normal(0, 15))
    pitch = math.radians(rng.normal(0, 10))
    # Perspective: the far side of a yawed plate shrinks, a pitched plate foreshortens.
    pts[:, 0] *= math.cos(yaw)
    pts[:, 1] *= math.cos(pitch)
    depth = np.sign(pts[:, 0]) * math.sin(yaw) * 0.5 + np.sign(pts[:, 1]) * math.sin(pitch) * 0.5 * h / w
    pts *= (1 + depth * rng.uniform(0.1, 0.4))[:, None]
    a = math.radians(rng.normal(0, 4))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    pts = pts @ rot.T + rng.normal(0, 0.012 * plate_w, (4, 2))
    return pts.astype(np.float32)


def warp(img: np.ndarray, src: np.ndarray, dst: np.ndarray, size: tuple[int, int], border: tuple) -> np.ndarray:
    H = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    # Shrinking a lot in one warp aliases; pre-blur in proportion to the shrink, as optics do.
    scale = np.linalg.norm(dst[1] - dst[0]) / max(1e-6, np.linalg.norm(src[1] - src[0]))
    if scale < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), 0.4 / scale)
    return cv2.warpPerspective(img, H, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def degrade(rng: np.random.Generator, img: np.ndarray, scale: float = 1.0, severity: float = 1.0) -> np.ndarray:
    """Photometric damage. `scale` is the typical plate height in px (effects are sized to it);
    `severity` (0..1) scales how likely the harsh effects are."""
    out = img.astype(np.float32)
    h, w = out.shape[:2]
    if rng.random() < 0.25 * severity:  # shadow across part of the plate
        poly = (rng.random((4, 2)) * [w, h] * 1.4 - [0.2 * w, 0.2 * h]).astype(np.int32)
        mask = np.zeros((h, w), np.float32)
        cv2.fillConvexPoly(mask, poly, 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), 1 + scale * 0.05)
        out *= 1 - mask[..., None] * rng.uniform(0.3, 0.7)
    if rng.random() < 0.15 * severity:  # glare
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.5) * max(w, h)
        yy, xx = np.mgrid[0:h, 0:w]
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)).astype(np.float32)
        out += g[..., None] * rng.uniform(60, 160)
    if rng.random() < 0.2 * severity:  # dirt
        for _ in range(int(rng.integers(3, 15))):
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            r = max(1, int(rng.uniform(0.01, 0.04) * scale))
            cv2.circle(out, c, r, (out[c[1], c[0]] * rng.uniform(0.3, 0.8)).tolist(), -1)
    # exposure, contrast, colour cast
    out = out * rng.uniform(0.7, 1.25) + rng.uniform(-30, 30)
    out += rng.normal(0, 12, 3)
    if rng.random() < 0.15 * severity:  # night: dark, with sensor gain
        out = out * rng.uniform(0.25, 0.6)
    out = np.clip(out, 0, 255)
    if rng.random() < 0.12:  # IR camera: grey, the retro-reflective plate glows
        g = cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
        g = np.clip((g - g.mean()) * rng.uniform(1.2, 2.2) + rng.uniform(100, 180), 0, 255)
        out = np.repeat(g[..., None], 3, 2)
    gamma = rng.uniform(0.6, 1.6)
    out = 255 * (out / 255) ** gamma
    k = rng.random() / max(severity, 1e-3)
    if k < 0.35:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 0.5 + scale * 0.015))
    elif k < 0.5:  # motion blur
        L = int(rng.integers(3, max(4, int(3 + scale * 0.08))))
        kern = np.zeros((L, L), np.float32)
        kern[L // 2] = 1
        kern = cv2.warpAffine(kern, cv2.getRotationMatrix2D((L / 2 - 0.5, L / 2 - 0.5), rng.uniform(0, 180), 1), (L, L))
        out = cv2.filter2D(out, -1, kern / max(kern.sum(), 1e-6))
    out += rng.normal(0, rng.uniform(0, 12) if rng.random() > 0.3 * severity else rng.uniform(12, 30), out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        q = int(rng.uniform(95 - 80 * severity, 95))
        out = cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)
    return out


# Share of OCR crops boxed at the number's characters alone, as some detectors and labelled sets
# box plates (`models.reader` also reads such crops inside a border, CROP_BORDER).
NUMBER_BOXED = 0.1


def ocr_crop(rng: np.random.Generator, plate: Plate) -> np.ndarray:
    """A detector-like crop (BGR) of the plate as a camera would see it."""
    body, corners = mount(rng, plate)
    if rng.random() < 0.25:
        dealer_frame(rng, body, corners, plate.family)
    plate_w = math.exp(rng.uniform(math.log(36), math.log(320)))
    dst = pose(rng, corners, plate_w)
    x0, y0 = dst.min(0)
    x1, y1 = dst.max(0)
    bw, bh = x1 - x0, y1 - y0
    if rng.random() < NUMBER_BOXED:
        a, b, c, d = plate.serial_box
        pts = np.array([[[a, b], [c, b], [c, d], [a, d]]], np.float32) + corners[0]
        pts = cv2.perspectiveTransform(pts, cv2.getPerspectiveTransform(corners, dst))[0]
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        m = rng.uniform(-0.01, 0.10, 4) * [x1 - x0, y1 - y0, x1 - x0, y1 - y0]
    else:  # detector boxes are loose or tight by a few percent on each side
        m = rng.uniform(-0.03, 0.16, 4) * [bw, bh, bw, bh]
    cx0, cy0, cx1, cy1 = x0 - m[0], y0 - m[1], x1 + m[2], y1 + m[3]
    size = (max(8, int(round(cx1 - cx0))), max(8, int(round(cy1 - cy0))))
    bcorners = np.array([[0, 0], [body.shape[1], 0], [body.shape[1], body.shape[0]], [0, body.shape[0]]], np.float32)
    crop = warp(body, bcorners, outline(body, corners, dst - [cx0, cy0]), size, rand_color(rng))
    # A spread of severities: clean samples teach the letterforms, harsh ones robustness.
    crop = degrade(rng, crop, bh, severity=rng.uniform(0.1, 1.0))
    if plate_w < 60 and rng.random() < 0.3:  # tiny plates come upscaled from small boxes
        f = rng.uniform(0.5, 1.0)
        small = cv2.resize(crop, (max(4, int(size[0] * f)), max(4, int(size[1] * f))), interpolation=cv2.INTER_AREA)
        crop = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
    return crop
