"""Parametric stroke glyphs: plate-like letterforms drawn as polylines.

Installed fonts differ from plate typefaces in exactly the glyphs OCR confuses: the US
open-top 4 and shallow M/W, the narrow 0 beside a round O, the angular DIN/FE 'curves'.
Each glyph here is a set of strokes in a unit box (x right, y down); a `Style` says how
round the curves are, how wide and heavy the letters are and which variant of a glyph a
family uses, so one table of skeletons renders US, DIN, UK and Mercosur-like faces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

Point = tuple[float, float]
Stroke = list[Point]


@dataclass(frozen=True)
class Style:
    width: float = 0.55  # glyph box width / height
    weight: float = 0.13  # stroke thickness / height
    round: float = 2.0  # superellipse exponent of curves: 2 = ellipse, 4+ = boxy (FE/Mercosur)
    open_four: bool = False  # US plates: the 4's two strokes do not meet at the top
    m_depth: float = 0.6  # how far the middle vertex of M (and W) reaches, 0..1 of height
    one_base: bool = False  # a foot serif on 1 (some EU faces)
    flat_three: bool = False  # a 3 with a flat top (DIN, UK)
    slash_zero: bool = False  # some US states slash the zero
    narrow_zero: float = 0.85  # width of 0 relative to O
    four_lean: float = 0.12  # open 4: how far right its left stroke starts (0: upright; US faces lean 0-0.5)
    w_foot: float = 0.23  # where W's outer strokes meet the baseline: small = near-vertical sides (US gothic)
    serif_i: bool = False  # US plates: I's serifs span the letter (barely wider than its stem, it reads as T or 1)
    straight_tails: bool = False  # 6 and 9 with straight diagonal tails (boxy US faces, FE, Mercosur)
    short_q: bool = False  # a Q whose tail is a short nick at its foot (boxy US faces): nearly an O
    four_stem: float = 0.0  # open 4: where its right stem starts, 0..1 of height (California's starts near half way)
    i_width: float = 0.5  # serifed I: its box width / a letter's (California's serifs span 0.8-0.9 of a letter)


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: float, steps: int = 24) -> Stroke:
    """Points on a superellipse |x/rx|^n + |y/ry|^n = 1 from angle a0 to a1 (degrees)."""
    pts = []
    for t in np.linspace(math.radians(a0), math.radians(a1), steps):
        c, s = math.cos(t), math.sin(t)
        pts.append((cx + rx * math.copysign(abs(c) ** (2 / n), c), cy + ry * math.copysign(abs(s) ** (2 / n), s)))
    return pts


def _bowl(y0: float, y1: float, right: float, n: float) -> Stroke:
    """The closed-to-the-stem bowl of B, P, R and D from the stem at x=0."""
    ry = (y1 - y0) / 2
    rx = min(ry * 1.1, right * 0.6)
    return [(0, y0), (right - rx, y0)] + _arc(right - rx, y0 + ry, rx, ry, -90, 90, n) + [(0, y1)]


def strokes(ch: str, s: Style) -> list[Stroke]:
    """The skeleton of one character in a unit box."""
    n = s.round
    m = s.m_depth
    if ch == "A":
        return [[(0, 1), (0.5, 0), (1, 1)], [(0.2, 0.66), (0.8, 0.66)]]
    if ch == "B":
        return [[(0, 0), (0, 1)], _bowl(0, 0.47, 0.92, n), _bowl(0.47, 1, 1, n)]
    if ch == "C":
        return [_arc(0.5, 0.5, 0.5, 0.5, -40, -320, n)]
    if ch == "D":
        return [[(0, 0), (0, 1)], _bowl(0, 1, 1, n)]
    if ch == "E":
        return [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.85, 0.5)]]
    if ch == "F":
        return [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.85, 0.5)]]
    if ch == "G":
        return [_arc(0.5, 0.5, 0.5, 0.5, -40, -360, n), [(1, 0.5), (1, 0.56), (0.55, 0.56)]]
    if ch == "H":
        return [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]]
    if ch == "I":
        a, b = (0.0, 1.0) if s.serif_i else (0.25, 0.75)
        return [[(0.5, 0), (0.5, 1)], [(a, 0), (b, 0)], [(a, 1), (b, 1)]]
    if ch == "J":
        return [[(1, 0), (1, 0.68)] + _arc(0.5, 0.68, 0.5, 0.32, 0, 170, n)]
    if ch == "K":
        return [[(0, 0), (0, 1)], [(1, 0), (0, 0.62)], [(0.32, 0.42), (1, 1)]]
    if ch == "L":
        return [[(0, 0), (0, 1), (1, 1)]]
    if ch == "M":
        return [[(0, 1), (0, 0), (0.5, m), (1, 0), (1, 1)]]
    if ch == "N":
        return [[(0, 1), (0, 0), (1, 1), (1, 0)]]
    if ch == "O":
        return [_arc(0.5, 0.5, 0.5, 0.5, 0, 360, n, 40)]
    if ch == "P":
        return [[(0, 0), (0, 1)], _bowl(0, 0.55, 1, n)]
    if ch == "Q":
        tail = [(0.5, 0.86), (0.62, 1.06)] if s.short_q else [(0.58, 0.68), (1, 1.02)]
        return [_arc(0.5, 0.5, 0.5, 0.5, 0, 360, n, 40), tail]
    if ch == "R":
        return [[(0, 0), (0, 1)], _bowl(0, 0.53, 1, n), [(0.45, 0.53), (1, 1)]]
    if ch == "S":
        return [_arc(0.5, 0.255, 0.48, 0.255, -25, -270, n) + _arc(0.5, 0.745, 0.5, 0.255, -90, 155, n)]
    if ch == "T":
        return [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]]
    if ch == "U":
        return [[(0, 0), (0, 0.64)] + _arc(0.5, 0.64, 0.5, 0.36, 180, 0, n) + [(1, 0)]]
    if ch == "V":
        return [[(0, 0), (0.5, 1), (1, 0)]]
    if ch == "W":
        return [[(0, 0), (s.w_foot, 1), (0.5, 1 - m), (1 - s.w_foot, 1), (1, 0)]]
    if ch == "X":
        return [[(0, 0), (1, 1)], [(1, 0), (0, 1)]]
    if ch == "Y":
        return [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]]
    if ch == "Z":
        return [[(0, 0), (1, 0), (0, 1), (1, 1)]]
    if ch == "0":
        ring = [_arc(0.5, 0.5, 0.5, 0.5, 0, 360, n, 40)]
        return ring + [[(0.8, 0.15), (0.2, 0.85)]] if s.slash_zero else ring
    if ch == "1":
        base = [[(0.25, 1), (0.75, 1)]] if s.one_base else []
        return [[(0.15, 0.22), (0.55, 0), (0.55, 1)]] + base
    if ch == "2":
        return [_arc(0.5, 0.28, 0.5, 0.28, -165, 25, n) + [(0, 1), (1, 1)]]
    if ch == "3":
        if s.flat_three:
            top = [[(0.05, 0), (0.95, 0), (0.45, 0.42)]]
            return top + [[(0.45, 0.42)] + _arc(0.5, 0.71, 0.5, 0.29, -80, 155, n)]
        return [_arc(0.5, 0.26, 0.45, 0.26, -160, 90, n) + _arc(0.5, 0.74, 0.5, 0.26, -90, 160, n)]
    if ch == "4":
        if s.open_four:
            # A short stem leaves the bar low, as on California's dies, where the 4 is nearly an L.
            bar = 0.66 + 0.16 * s.four_stem
            top = max(min(0.12, s.four_lean), s.four_stem)
            return [[(s.four_lean, 0), (0, bar), (1, bar)], [(0.72, top), (0.72, 1)]]
        return [[(0.72, 1), (0.72, 0), (0, 0.68), (1, 0.68)]]
    if ch == "5":
        return [[(0.92, 0), (0.1, 0), (0.06, 0.46)] + _arc(0.5, 0.68, 0.5, 0.32, -140, 155, n)]
    if ch == "6":
        tail = [(0.85, 0), (0.03, 0.6)] if s.straight_tails else _arc(0.5, 0.68, 0.5, 0.68, -55, -180, n)
        return [_arc(0.5, 0.68, 0.5, 0.32, 0, 360, n, 36), tail]
    if ch == "7":
        return [[(0, 0), (1, 0), (0.32, 1)]]
    if ch == "8":
        return [_arc(0.5, 0.25, 0.42, 0.25, 0, 360, n, 32), _arc(0.5, 0.74, 0.5, 0.26, 0, 360, n, 32)]
    if ch == "9":
        tail = [(0.97, 0.4), (0.15, 1)] if s.straight_tails else _arc(0.5, 0.32, 0.5, 0.68, 0, 125, n)
        return [_arc(0.5, 0.32, 0.5, 0.32, 0, 360, n, 36), tail]
    raise ValueError(f"no glyph for {ch!r}")


def glyph_width(ch: str, s: Style) -> float:
    """Box width / height of a character in this style (1 and I are narrow on every plate)."""
    if ch == "I" and s.serif_i:
        return s.width * s.i_width
    if ch in "1I":
        return s.width * 0.45
    if ch == "0":
        return s.width * s.narrow_zero
    if ch in "MW":
        return s.width * 1.15
    return s.width


def render_glyph(ch: str, s: Style, height: int) -> np.ndarray:
    """An anti-aliased mask (uint8, ink = 255) of one character, `height` pixels tall."""
    thick = max(1.0, s.weight * height)
    pad = thick / 2 + 1
    w = glyph_width(ch, s) * height
    W, H = int(math.ceil(w + 2 * pad)), int(math.ceil(height + 2 * pad))
    scale = 4  # draw at 4x and shrink: cheap anti-aliasing
    mask = np.zeros((H * scale, W * scale), np.uint8)
    for stroke in strokes(ch, s):
        pts = np.array([[(pad + x * w) * scale, (pad + min(y, 1.02) * height) * scale] for x, y in stroke])
        cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 255, int(round(thick * scale)), cv2.LINE_AA)
    return cv2.resize(mask, (W, H), interpolation=cv2.INTER_AREA)
