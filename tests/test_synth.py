"""The synthetic-data generator and the plate-format table (no models needed)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import HELDOUT_FONT
from models.formats import ALPHABET, FORMATS, PlateFormat, clean, match_family
from models.synth.camera import dealer_frame, mount
from models.synth.glyphs import Style, render_glyph
from models.synth.plates import FAMILIES, TRAIN_FONTS, Plate, _style, render_plate
from models.synth.scenes import render_closeup, render_scene
from models.train_ocr import sample

PLATE_TEXT = re.compile(r"^[A-Z0-9]+$")


def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def family_formats(family: str, two_rows: bool | None = None) -> list[PlateFormat]:
    return [f for f in FORMATS if f.family == family and (two_rows is None or f.two_rows == two_rows)]


# --- determinism ------------------------------------------------------------------------------

def test_training_fonts_are_present_and_heldout_font_is_not_among_them():
    assert len(TRAIN_FONTS) >= 3
    assert all(not f.endswith("OpenSans-CondBold.ttf") for f in TRAIN_FONTS)


@pytest.mark.parametrize("seed", [1, 2024])
def test_render_plate_is_deterministic_per_seed(seed):
    a, b = render_plate(rng(seed)), render_plate(rng(seed))
    assert a.text == b.text and a.family == b.family and a.two_rows == b.two_rows
    assert a.image.shape == b.image.shape
    assert a.image.tobytes() == b.image.tobytes()


def test_render_plate_differs_between_seeds():
    plates = [render_plate(rng(s)) for s in range(6)]
    assert len({p.text for p in plates}) > 1
    assert len({p.image.tobytes() for p in plates}) == len(plates)


def test_ocr_sample_is_deterministic_per_seed():
    (ca, ta), (cb, tb) = sample(rng(77)), sample(rng(77))
    assert ta == tb
    assert ca.shape == cb.shape and ca.tobytes() == cb.tobytes()
    cc, tc = sample(rng(78))
    assert tc != ta or cc.shape != ca.shape or cc.tobytes() != ca.tobytes()


def test_ocr_sample_is_a_bgr_crop_with_a_clean_label():
    for s in range(8):
        crop, text = sample(rng([5, s]))
        assert crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3
        assert crop.shape[0] >= 8 and crop.shape[1] >= 8
        assert PLATE_TEXT.match(text), text


def test_render_scene_is_deterministic_per_seed():
    (ia, pa), (ib, pb) = render_scene(rng(31)), render_scene(rng(31))
    assert [(p.box, p.text) for p in pa] == [(p.box, p.text) for p in pb]
    assert ia.shape == ib.shape and ia.tobytes() == ib.tobytes()
    ic, pc = render_scene(rng(32))
    assert [p.box for p in pc] != [p.box for p in pa] or ic.shape != ia.shape or ic.tobytes() != ia.tobytes()


# --- plates -----------------------------------------------------------------------------------

def test_every_glyph_variant_renders_every_character():
    variants = [Style(), Style(open_four=True, four_lean=0.5), Style(flat_three=True, slash_zero=True, one_base=True),
                Style(round=5.0), Style(w_foot=0.06, m_depth=0.3), Style(serif_i=True), Style(straight_tails=True),
                Style(short_q=True)]
    for s in variants:
        for ch in ALPHABET:
            mask = render_glyph(ch, s, 40)
            assert mask.shape[0] >= 40 and mask.max() == 255, (ch, s)
    # A variant is another shape, not the same one under another flag.
    assert not np.array_equal(render_glyph("4", Style(), 40), render_glyph("4", Style(open_four=True), 40))
    assert not np.array_equal(render_glyph("I", Style(), 40), render_glyph("I", Style(serif_i=True), 40))
    assert not np.array_equal(render_glyph("6", Style(), 40), render_glyph("6", Style(straight_tails=True), 40))
    assert not np.array_equal(render_glyph("Q", Style(), 40), render_glyph("Q", Style(short_q=True), 40))


def test_straight_tails_and_short_q_only_on_faces_that_draw_them():
    """Boxy US faces, FE and Mercosur end 6 and 9 in straight strokes, and boxy US faces end Q in a nick;
    DIN-like EU and UK faces curve the tails and cross the Q's ring with its tail."""
    rng = np.random.default_rng(0)
    short_qs = 0
    for _ in range(200):
        us, uk, br = _style(rng, "us"), _style(rng, "uk"), _style(rng, "br")
        assert us.straight_tails == (us.round >= 2.3) and not uk.straight_tails and br.straight_tails
        assert us.short_q == us.straight_tails and not uk.short_q and not br.short_q
        short_qs += us.short_q
    assert 0 < short_qs < 200
    eu = [_style(rng, "eu") for _ in range(200)]
    assert all(s.straight_tails == (s.round >= 3.5) for s in eu) and 0 < sum(s.straight_tails for s in eu) < 200
    assert not any(s.short_q for s in eu)


def test_short_tailed_q_leaves_the_o_only_at_its_foot():
    """California's Q ends in a nick at the ring's foot, nearly an O; the other tail reaches into the ring."""
    o = render_glyph("O", Style(), 40)
    short, long = (np.flatnonzero((render_glyph("Q", Style(short_q=q), 40) != o).any(axis=1))[0] for q in (True, False))
    assert short > long + 4  # the first row where the Q leaves the O


def test_us_open_fours_range_from_full_stems_to_californias_short_one():
    """California's 4 is nearly an L: its stem starts about half way down; other US dies run it to the top."""
    def stem_top(stem: float) -> int:
        mask = render_glyph("4", Style(open_four=True, four_lean=0.0, four_stem=stem), 40)
        x = int(np.argmax(mask[-8:].sum(axis=0)))  # below the bar only the stem has ink
        return int(np.flatnonzero(mask[:, x] > 127)[0])
    assert stem_top(0.7) > stem_top(0.0) + 20
    stems = [_style(np.random.default_rng(i), "us").four_stem for i in range(200)]
    assert min(stems) < 0.1 and max(stems) > 0.6


def test_us_faces_serif_the_i_across_the_letter():
    """California's I has serifs nearly a letter wide; barely wider than the stem it is a T or a 1."""
    def ink_width(i_width: float) -> int:
        return int((render_glyph("I", Style(serif_i=True, i_width=i_width), 64).max(0) > 128).sum())
    assert ink_width(0.9) > ink_width(0.5) + 10
    for seed in range(5):
        style = _style(np.random.default_rng(seed), "us")
        i = render_glyph("I", style, 64)
        ink_cols = np.nonzero(i.max(0) > 128)[0]
        stem = (i[i.shape[0] // 2] > 128).sum()
        assert style.serif_i and ink_cols.size > 2.5 * stem
    widths = [_style(np.random.default_rng(i), "us").i_width for i in range(200)]
    assert min(widths) < 0.55 and max(widths) > 0.9


def test_dealer_frame_covers_a_us_plates_edges_up_to_its_text_but_not_the_text():
    rng = np.random.default_rng(3)
    plate = render_plate(rng, family="us")
    body, corners = mount(rng, plate)
    before = body.copy()
    dealer_frame(rng, body, corners, "us")
    (x0, y0), (x1, y1) = corners[0].astype(int), corners[2].astype(int)
    h = y1 - y0
    assert (body[y0:y0 + int(0.04 * h)] != before[y0:y0 + int(0.04 * h)]).any()  # top bar over the state name
    assert (body[y1 - int(0.06 * h):y1] != before[y1 - int(0.06 * h):y1]).any()  # bottom bar
    text_rows = slice(y0 + int(0.23 * h), y1 - int(0.2 * h))  # US text sits in 0.26-0.8 of the height
    inner = slice(x0 + int(0.05 * h), x1 - int(0.05 * h))
    assert (body[text_rows, inner] == before[text_rows, inner]).all()


def test_the_serial_box_holds_the_number_rows_and_not_the_plate_around_them():
    r = rng(15)
    for family in FAMILIES:
        for p in [render_plate(r, family=family) for _ in range(30)]:
            h, w = p.image.shape[:2]
            x0, y0, x1, y1 = p.serial_box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert x1 - x0 > 0.2 * w and (y1 - y0) > (0.5 if p.two_rows else 0.25) * h, (family, p.serial_box, (w, h))
            if family == "us" and not p.two_rows:  # the state name above and the slogan below stay out
                assert y0 > 0.2 * h and y1 < 0.85 * h, p.serial_box


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_renders_valid_plates(family):
    r = rng([11, FAMILIES.index(family)])
    for _ in range(12):
        p = render_plate(r, family=family)
        assert isinstance(p, Plate)
        assert p.family == family
        assert p.image.dtype == np.uint8 and p.image.ndim == 3 and p.image.shape[2] == 3
        assert p.image.shape[0] >= 100 and p.image.shape[1] >= 150
        assert PLATE_TEXT.match(p.text), p.text
        assert 2 <= len(p.text) <= 8
        if family != "us":  # only US has vanity plates outside the format table
            assert any(f.matches(p.text) for f in family_formats(family)), (family, p.text)


@pytest.mark.parametrize("family", FAMILIES)
def test_two_row_plates_of_each_family(family):
    r = rng([12, FAMILIES.index(family)])
    for _ in range(4):
        p = render_plate(r, family=family, two_row_prob=1.0)
        assert p.two_rows is True
        assert any(f.matches(p.text) for f in family_formats(family, two_rows=True)), (family, p.text)
        # Two-row plates are squarer than the one-row plates of the same family.
        assert p.image.shape[1] / p.image.shape[0] < 1.6
    for _ in range(4):
        assert render_plate(r, family=family, two_row_prob=0.0).two_rows is False


def test_a_quarter_of_brazilian_plates_are_motorcycles_of_either_layout():
    r = rng(14)
    plates = [render_plate(r, family="br") for _ in range(200)]
    stacked = {f.name: sum(f.matches(p.text) for p in plates if p.two_rows) for f in family_formats("br", two_rows=True)}
    assert 0.18 <= sum(p.two_rows for p in plates) / len(plates) <= 0.32
    assert set(stacked) == {"mercosur-moto", "brazil-grey-moto"} and min(stacked.values()) > 10, stacked


def test_two_row_plates_occur_with_default_settings():
    plates = [render_plate(rng([13, i])) for i in range(120)]
    two = [p for p in plates if p.two_rows]
    assert 0 < len(two) < len(plates) // 2
    assert {p.family for p in plates} == set(FAMILIES)


def test_heldout_font_renders_when_glyphs_are_off():
    r = rng(14)
    for _ in range(6):
        p = render_plate(r, fonts=(HELDOUT_FONT,), glyph_prob=0.0)
        assert PLATE_TEXT.match(p.text)
        assert p.image.std() > 10  # something was printed on it


# --- scenes -----------------------------------------------------------------------------------

def test_scene_boxes_are_inside_the_image():
    total = 0
    for i in range(8):
        img, plates = render_scene(rng([15, i]))
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        H, W = img.shape[:2]
        for p in plates:
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H, (img.shape, p.box)
            assert PLATE_TEXT.match(p.text), p.text
        total += len(plates)
    assert total > 0


def test_closeups_hold_one_whole_plate_of_the_asked_width_and_repeat_per_seed():
    widths = []
    for i in range(12):
        img, plates = render_closeup(rng([17, i]))
        assert img.shape == (480, 640, 3) and len(plates) == 1
        x1, y1, x2, y2 = plates[0].box
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480, plates[0].box
        assert PLATE_TEXT.match(plates[0].text), plates[0].text
        widths.append(x2 - x1)
    assert min(widths) < 200 and max(widths) > 300  # log-uniform over 60-600 px, posed
    (ia, pa), (ib, pb) = render_closeup(rng(18)), render_closeup(rng(18))
    assert pa == pb and ia.tobytes() == ib.tobytes()


def test_scene_with_fixed_size_and_heldout_font():
    img, plates = render_scene(rng(16), size=(320, 240), fonts=(HELDOUT_FONT,))
    assert img.shape == (240, 320, 3)
    assert all(0 <= p.box[0] < p.box[2] <= 320 and 0 <= p.box[1] < p.box[3] <= 240 for p in plates)


# --- formats ----------------------------------------------------------------------------------

def _fmt(family: str, name: str) -> PlateFormat:
    return next(f for f in FORMATS if f.family == family and f.name == name)


def test_format_matches_basic_cases():
    uk = _fmt("uk", "uk")
    assert uk.classes == "LLDDLLL" and not uk.two_rows
    assert uk.matches("AB12CDE")
    assert not uk.matches("AB1OCDE")  # letter O in a digit position
    assert not uk.matches("AB12CD")  # too short
    assert not uk.matches("AB12CDEF")  # too long
    assert not uk.matches("AB 12CDE")  # separators are not part of the matched text
    stacked = _fmt("uk", "uk-stacked")
    assert stacked.two_rows and stacked.matches("AB12CDE")
    merc = _fmt("br", "mercosur")
    assert merc.matches("ABC1D23") and not merc.matches("ABC1234")
    assert _fmt("br", "brazil-grey").matches("ABC1234")
    assert _fmt("uk", "uk").regex() == "^[A-Z][A-Z][0-9][0-9][A-Z][A-Z][A-Z]$"


def test_match_family_basic_cases():
    assert match_family("ABC1D23") == "br"  # Mercosur
    assert match_family("7ABC123") == "us"  # California
    assert match_family("AB12CDE") in ("uk", "eu")  # UK shape (also Romanian)
    assert match_family("ABCD12345") is None
    assert match_family("") is None
    assert match_family("AB12CDE", formats=tuple(f for f in FORMATS if f.family == "uk")) == "uk"


def test_clean_basic_cases():
    assert clean("xs-nb-23") == "XSNB23"
    assert clean(" LS15 EBC ") == "LS15EBC"
    assert clean("ab|12.c_d") == "AB12CD"
    assert clean("") == ""
    assert clean("äö-!") == ""


@settings(max_examples=60, deadline=None, database=None)
@given(st.text(max_size=20))
def test_clean_keeps_only_upper_alphanumerics_and_is_idempotent(s):
    c = clean(s)
    assert set(c) <= set(ALPHABET)
    assert clean(c) == c


@settings(max_examples=150, deadline=None, database=None)
@given(st.sampled_from(FORMATS), st.text(alphabet=ALPHABET, min_size=0, max_size=9))
def test_matches_agrees_with_regex(fmt, text):
    assert fmt.matches(text) == bool(re.fullmatch(fmt.regex(), text))
