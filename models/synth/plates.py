"""Render licence plates: US, EU, UK and Brazilian designs, one or two rows of characters.

`render_plate(rng)` returns a flat, frontal plate image and its text; `camera.py` then
puts it through a camera. Characters come from the parametric stroke glyphs in
`glyphs.py` (plate-like letterforms) or from one of the free fonts in `fonts/`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.formats import ALPHABET, DIGITS, FORMATS, LETTERS, PlateFormat
from models.issuer import FORMAT_COUNTRIES, from_words
from models.synth.glyphs import Style, render_glyph

FONT_DIR = Path(__file__).parent / "fonts"
TRAIN_FONTS = tuple(sorted(str(p) for p in FONT_DIR.glob("*.[ot]tf")))
FAMILIES = ("us", "eu", "uk", "br")
# Share of two-row plates per family. About a quarter of Brazil's vehicles are motorcycles,
# whose plates are stacked (grey or Mercosur).
TWO_ROWS = {"us": 0.12, "eu": 0.12, "uk": 0.12, "br": 0.25}

US_STATES = (
    "CALIFORNIA", "California", "TEXAS", "Texas", "NEW YORK", "New York", "FLORIDA", "Florida", "ILLINOIS",
    "OHIO", "Ohio", "GEORGIA", "ARIZONA", "Arizona", "NEVADA", "Nevada", "OREGON", "WASHINGTON", "Washington",
    "COLORADO", "Colorado", "UTAH", "IDAHO", "MONTANA", "Montana", "NEW JERSEY", "New Jersey", "VIRGINIA",
    "Virginia", "MARYLAND", "Maryland", "MICHIGAN", "Pure Michigan", "MINNESOTA", "WISCONSIN", "INDIANA",
    "KENTUCKY", "Kentucky", "TENNESSEE", "Tennessee", "ALABAMA", "LOUISIANA", "Louisiana", "NEW MEXICO",
    "OKLAHOMA", "KANSAS", "NEBRASKA", "IOWA", "MISSOURI", "Missouri", "ARKANSAS", "VERMONT", "MAINE",
    "Massachusetts", "CONNECTICUT", "Connecticut", "PENNSYLVANIA", "Pennsylvania", "DELAWARE", "ALASKA",
    "HAWAII", "Hawaii", "N. CAROLINA", "NORTH CAROLINA", "SOUTH CAROLINA", "WYOMING", "NORTH DAKOTA",
    "SOUTH DAKOTA", "RHODE ISLAND", "WEST VIRGINIA", "MISSISSIPPI", "NEW HAMPSHIRE", "DIST. OF COLUMBIA",
)
US_SLOGANS = (
    "dmv.ca.gov", "DMV.CA.GOV", "THE LONE STAR STATE", "Sunshine State", "LAND OF LINCOLN", "EMPIRE STATE",
    "Garden State", "Live Free or Die", "FIRST IN FLIGHT", "Famous Potatoes", "Grand Canyon State",
    "THE SILVER STATE", "Great Lakes", "VIRGINIA IS FOR LOVERS", "Peach State", "America's Dairyland",
    "Wild, Wonderful", "The Show Me State", "THE NATURAL STATE", "Heart of Dixie", "SPORTSMAN'S PARADISE",
    "Explore Minnesota", "visitPA.com", "The First State", "Ocean State", "Big Sky Country", "Aloha State",
    "Green Mountain State", "Vacationland", "Constitution State", "Treasure State", "SEPT", "JUN 2027",
    "Centennial State", "Life Elevated", "Keep It Wild", "DRIVE SAFELY", "IN GOD WE TRUST", "",
)
BR_CITIES = ("SP - SAO PAULO", "RJ - RIO DE JANEIRO", "MG - BELO HORIZONTE", "PR - CURITIBA", "RS - PORTO ALEGRE",
             "BA - SALVADOR", "SC - FLORIANOPOLIS", "GO - GOIANIA", "PE - RECIFE", "DF - BRASILIA")
EU_CODES = {"germany": "D", "netherlands": "NL", "romania": "RO", "france": "F", "italy": "I", "spain": "E",
            "poland": "PL", "stacked": "RO"}

# Ink colours as BGR.
DARK_INKS = ((20, 20, 20), (30, 25, 15), (90, 30, 10), (120, 40, 20), (20, 20, 140), (30, 90, 20), (60, 20, 90))


@dataclass
class Plate:
    image: np.ndarray  # H x W x 3 BGR, frontal, the plate filling the image
    text: str  # A-Z0-9 as read left to right, top row first
    family: str
    two_rows: bool
    serial_box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the number's characters in `image`
    issuer: str | None = None  # who issued it, as `models.evaluate` labels it: US state, else country


def _style(rng: np.random.Generator, family: str) -> Style:
    u = rng.uniform
    if family == "us":
        s = Style(u(0.42, 0.58), u(0.09, 0.15), u(1.8, 2.8), rng.random() < 0.75, u(0.3, 0.65),
                  rng.random() < 0.1, rng.random() < 0.25, rng.random() < 0.1, u(0.72, 0.92), u(0.0, 0.5),
                  u(0.06, 0.25), serif_i=True)
        # California's 6 and 9 end in straight strokes and its Q's tail is a nick; the EU's DIN-like and the UK's
        # faces curve them. Derived, not drawn, so that no draw is added to seeded scenes: the 4's stem (0 to
        # 0.7) and the serifed I's width (0.5 to 0.95 of a letter) take the low digits of earlier draws, which
        # are uniform and unrelated to their values. (A wider I still widens its plate, and so can shift the
        # draws that follow it.)
        boxy = s.round >= 2.3
        return replace(s, straight_tails=boxy, short_q=boxy, four_stem=0.7 * (s.w_foot * 1000 % 1),
                       i_width=0.5 + 0.45 * (s.m_depth * 1000 % 1))
    if family == "uk":
        return Style(u(0.56, 0.68), u(0.12, 0.17), u(1.9, 2.6), rng.random() < 0.2, u(0.65, 1.0),
                     rng.random() < 0.2, rng.random() < 0.85, False, u(0.85, 0.98))
    if family == "br" or rng.random() < 0.3:  # Mercosur and German FE faces are angular
        return Style(u(0.48, 0.6), u(0.11, 0.16), u(3.5, 7.0), False, u(0.55, 0.95),
                     rng.random() < 0.3, rng.random() < 0.6, False, u(0.8, 0.95), straight_tails=True)
    return Style(u(0.48, 0.6), u(0.1, 0.15), u(2.0, 3.4), rng.random() < 0.1, u(0.55, 0.95),
                 rng.random() < 0.35, rng.random() < 0.7, False, u(0.8, 0.97))


@functools.lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _font_glyph(ch: str, font_path: str, height: int) -> np.ndarray:
    """One character from a font as a mask whose cap height is `height` pixels."""
    size = int(height * 1.45)
    font = _font(font_path, size)
    cap_top = font.getbbox("H", anchor="ls")[1]
    scale = height / max(1, -cap_top)
    font = _font(font_path, max(6, int(round(size * scale))))
    x0, y0, x1, y1 = font.getbbox(ch, anchor="ls")
    img = Image.new("L", (x1 - x0 + 4, height + height // 5 + 4), 0)
    ImageDraw.Draw(img).text((2 - x0, height + 2), ch, font=font, fill=255, anchor="ls")
    return np.asarray(img)


def _text_line(rng: np.random.Generator, text: str, height: int, style: Style | None, font: str | None) -> np.ndarray:
    """A mask of one row of plate text; spaces are gaps and dashes are drawn."""
    pieces = []
    gap = max(1, int(height * rng.uniform(0.06, 0.16)))
    for ch in text:
        if ch == " ":
            pieces.append(np.zeros((1, int(height * rng.uniform(0.25, 0.5))), np.uint8))
        elif ch == "-":
            w = int(height * rng.uniform(0.2, 0.35))
            t = max(1, int(height * rng.uniform(0.08, 0.13)))
            m = np.zeros((height, w + 2), np.uint8)
            cv2.rectangle(m, (1, height // 2 - t // 2), (w, height // 2 + t // 2), 255, -1)
            pieces.append(m)
        elif style is not None:
            pieces.append(render_glyph(ch, style, height))
        else:
            pieces.append(_font_glyph(ch, font, height))
        pieces.append(np.zeros((1, gap), np.uint8))
    H = max(p.shape[0] for p in pieces)
    line = np.zeros((H, sum(p.shape[1] for p in pieces)), np.uint8)
    x = 0
    for p in pieces:
        y = (H - p.shape[0]) // 2
        line[y:y + p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1]
    ys, xs = np.nonzero(line)
    return line[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _paste_text(canvas: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], color,
                squeeze: float = 0.0) -> tuple[int, int, int, int]:
    """Fit a text mask into box (x0, y0, x1, y1), centred, keeping its aspect within limits;
    returns where the text landed (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    h, w = mask.shape
    s = min(bh / h, bw / w)
    nw, nh = max(1, int(w * s)), max(1, int(h * s))
    if nh < bh * 0.75 and squeeze > 0:  # a long text is squeezed rather than shrunk, as issuers do
        nh = int(min(bh, nh / (1 - squeeze)))
    m = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    ox, oy = x0 + (bw - nw) // 2, y0 + (bh - nh) // 2
    # Clip to the canvas: scene text may run off the frame.
    cx0, cy0 = max(ox, 0), max(oy, 0)
    cx1, cy1 = min(ox + nw, canvas.shape[1]), min(oy + nh, canvas.shape[0])
    if cx1 > cx0 and cy1 > cy0:
        m = m[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox]
        region = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
        canvas[cy0:cy1, cx0:cx1] = (region * (1 - m) + np.array(color, np.float32) * m).astype(np.uint8)
    return ox, oy, ox + nw, oy + nh


def small_text(rng: np.random.Generator, canvas, text: str, box, color) -> None:
    if text:
        font = TRAIN_FONTS[rng.integers(len(TRAIN_FONTS))]
        _paste_text(canvas, _text_line(rng, text, 40, None, font), box, color)


def _number(rng: np.random.Generator, fmt: PlateFormat) -> str:
    """A plate number printed with the format's separators ('|' between rows)."""
    prefix = fmt.prefixes[rng.integers(len(fmt.prefixes))] if fmt.prefixes else ""
    out = list(prefix)
    for k in fmt.pattern[len(prefix):]:
        if k == "L":
            out.append(fmt.letters[rng.integers(len(fmt.letters))])
        elif k == "D":
            out.append(DIGITS[rng.integers(10)])
        elif k == "A":
            out.append(ALPHABET[rng.integers(36)])
        else:
            out.append(k)
    return "".join(out)


def _vanity(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 8))
    pool = LETTERS if rng.random() < 0.6 else ALPHABET
    s = "".join(pool[rng.integers(len(pool))] for _ in range(n))
    if n >= 4 and rng.random() < 0.3:
        i = int(rng.integers(1, n))
        s = s[:i] + " " + s[i:]
    return s


def _background(rng: np.random.Generator, h: int, w: int, base) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    if rng.random() < 0.6:  # printed gradients and sheen
        top = np.array(base, np.float32) + rng.uniform(-40, 40, 3)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = img * t + top * (1 - t)
    if rng.random() < 0.25:  # a scenic print behind the numbers (many US plates)
        for _ in range(int(rng.integers(1, 4))):
            c = np.array(base, np.float32) + rng.uniform(-90, 40, 3)
            cy = rng.uniform(0.3, 1.2) * h
            cv2.ellipse(img, (int(rng.uniform(0, w)), int(cy)), (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.1, 0.4) * h)),
                        0, 0, 360, c.tolist(), -1)
        img = cv2.GaussianBlur(img, (0, 0), h * 0.03 + 0.5)
    return np.clip(img, 0, 255).astype(np.uint8)


def _eu_band(rng, img, x0, x1, code: str) -> None:
    h = img.shape[0]
    cv2.rectangle(img, (x0, 0), (x1, h), (150 + int(rng.integers(-20, 20)), 50, 0), -1)
    cx, cy, r = (x0 + x1) // 2, int(h * 0.3), (x1 - x0) * 0.3
    for k in range(12):
        a = 2 * math.pi * k / 12
        cv2.circle(img, (int(cx + r * math.cos(a)), int(cy + r * math.sin(a))), max(1, int(r * 0.14)), (0, 210, 240), -1)
    small_text(rng, img, code, (x0 + 2, int(h * 0.6), x1 - 2, int(h * 0.92)), (245, 245, 245))


def render_plate(rng: np.random.Generator, family: str | None = None, fonts: tuple[str, ...] = TRAIN_FONTS,
                 glyph_prob: float = 0.6, two_row_prob: float | None = None) -> Plate:
    """A random plate of `family` (random if None); `fonts` are used when not drawing stroke glyphs;
    two rows with `two_row_prob` (default TWO_ROWS for the family)."""
    family = family or FAMILIES[rng.choice(4, p=[0.4, 0.3, 0.15, 0.15])]
    two_row_prob = TWO_ROWS[family] if two_row_prob is None else two_row_prob
    candidates = [f for f in FORMATS if f.family == family]
    stacked = [f for f in candidates if f.two_rows]
    flat = [f for f in candidates if not f.two_rows]
    fmt = stacked[rng.integers(len(stacked))] if stacked and rng.random() < two_row_prob else flat[rng.integers(len(flat))]
    if family == "us" and not fmt.two_rows and rng.random() < 0.15:
        number = _vanity(rng)
    else:
        number = _number(rng, fmt)
    if family == "us" and not fmt.two_rows and rng.random() < 0.3:
        number = number.replace("-", " ") if rng.random() < 0.5 else number.replace(" ", "")
    style = _style(rng, family) if rng.random() < glyph_prob or not fonts else None
    font = None if style else fonts[rng.integers(len(fonts))]
    ink = DARK_INKS[rng.integers(len(DARK_INKS))] if family == "us" else (20, 20, 20)
    rows = number.split("|")

    if family == "us":
        H = 150 if not fmt.two_rows else 200
        W = 300 if not fmt.two_rows else 220
        light = rng.random() < 0.85
        base = tuple(int(v) for v in (rng.uniform(200, 255, 3) if light else rng.uniform(20, 200, 3)))
        if not light:
            ink = (245, 245, 245) if rng.random() < 0.5 else (20, 20, 20)
        img = _background(rng, H, W, base)
        top_col = DARK_INKS[rng.integers(len(DARK_INKS))] if light else (240, 240, 240)
        state = US_STATES[rng.integers(len(US_STATES))]
        issuer = from_words([state]).subdivision
        small_text(rng, img, state, (int(W * rng.uniform(0.15, 0.3)), int(H * 0.04),
                    int(W * rng.uniform(0.7, 0.85)), int(H * rng.uniform(0.16, 0.24))), top_col)
        small_text(rng, img, US_SLOGANS[rng.integers(len(US_SLOGANS))], (int(W * 0.2), int(H * 0.84), int(W * 0.8),
                    int(H * 0.96)), top_col)
        text_box = (int(W * 0.05), int(H * 0.26), int(W * 0.95), int(H * 0.8))
        for sx in (0.04, 0.8):  # registration stickers
            if rng.random() < 0.5:
                x = int(W * (sx + rng.uniform(0, 0.06)))
                cv2.rectangle(img, (x, int(H * 0.05)), (x + int(W * 0.12), int(H * 0.22)),
                              tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
    elif family == "eu":
        issuer = FORMAT_COUNTRIES[fmt.name.split("-")[0]]
        two = fmt.two_rows
        H, W = (200, 280) if two else (110, 520)
        yellow = fmt.name.startswith("netherlands") and rng.random() < 0.7
        img = _background(rng, H, W, (20, 200, 240) if yellow else (235, 235, 235))
        band = int(W * (0.09 if not two else 0.14))
        _eu_band(rng, img, 0, band, EU_CODES.get(fmt.name.split("-")[0], "EU"))
        right = W - (band if fmt.name in ("france", "italy") else 0)
        if right < W:
            cv2.rectangle(img, (right, 0), (W, H), (150, 50, 0), -1)
        text_box = (band + int(W * 0.03), int(H * 0.12), right - int(W * 0.03), int(H * 0.88))
        if fmt.name.startswith("germany") and not two and rng.random() < 0.8:
            # German registration seals sit in the first gap; they are not characters.
            parts = number.split(" ")
            number = parts[0] + "  " + " ".join(parts[1:])
    elif family == "uk":
        issuer = "gb"
        two = fmt.two_rows
        H, W = (203, 285) if two else (111, 520)
        img = _background(rng, H, W, (20, 200, 250) if rng.random() < 0.55 else (240, 240, 240))
        band = 0
        if rng.random() < 0.4:
            band = int(W * (0.08 if not two else 0.13))
            color = (150, 50, 0) if rng.random() < 0.6 else (40, 120, 20)
            cv2.rectangle(img, (0, 0), (band, H), color, -1)
            small_text(rng, img, "UK" if rng.random() < 0.6 else "GB", (2, int(H * 0.55), band - 2, int(H * 0.9)),
                        (245, 245, 245))
        if rng.random() < 0.3:
            small_text(rng, img, "AUTO PLATES LEEDS", (int(W * 0.3), int(H * 0.9), int(W * 0.7), int(H * 0.98)), ink)
        text_box = (band + int(W * 0.04), int(H * 0.1), W - int(W * 0.04), int(H * 0.9))
    else:  # Brazil
        issuer = "br"
        two = fmt.two_rows
        mercosur = fmt.name.startswith("mercosur")
        H, W = (170, 200) if two else (130, 400)
        img = _background(rng, H, W, (245, 245, 245) if mercosur else (150, 150, 150))
        top = int(H * 0.22)
        if mercosur:
            cv2.rectangle(img, (0, 0), (W, top), (140, 60, 0), -1)
            small_text(rng, img, "BRASIL", (int(W * 0.3), 2, int(W * 0.7), top - 2), (250, 250, 250))
            cv2.rectangle(img, (int(W * 0.88), 3), (int(W * 0.97), top - 3), (40, 140, 40), -1)
        else:
            small_text(rng, img, BR_CITIES[rng.integers(len(BR_CITIES))], (int(W * 0.15), 3, int(W * 0.85), top - 2), ink)
        text_box = (int(W * 0.05), top + int(H * 0.04), int(W * 0.95), H - int(H * 0.07))

    x0, y0, x1, y1 = text_box
    if len(rows) == 1:
        serial = _paste_text(img, _text_line(rng, rows[0], 64, style, font), text_box, ink, squeeze=rng.uniform(0, 0.3))
    else:
        mid = y0 + int((y1 - y0) * rng.uniform(0.4, 0.5))
        gap = int((y1 - y0) * 0.04)
        a = _paste_text(img, _text_line(rng, rows[0], 64, style, font), (x0, y0, x1, mid - gap), ink, squeeze=0.3)
        b = _paste_text(img, _text_line(rng, rows[1], 64, style, font), (x0, mid + gap, x1, y1), ink, squeeze=0.3)
        serial = (min(a[0], b[0]), a[1], max(a[2], b[2]), b[3])
    if rng.random() < 0.7:  # embossed rim
        cv2.rectangle(img, (1, 1), (img.shape[1] - 2, img.shape[0] - 2), ink if family == "us" else (30, 30, 30),
                      max(1, int(img.shape[0] * rng.uniform(0.01, 0.03))))
    return Plate(img, "".join(c for c in number if c.isalnum()), family, len(rows) > 1, serial, issuer)
