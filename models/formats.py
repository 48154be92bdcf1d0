"""Plate number formats per region family.

One table serves three jobs: the generator draws plate numbers from it, the OCR decoder
uses its letter/digit positions to settle look-alike pairs (`LOOKALIKES`),
and the pipeline tags a read with the family whose format it matches.

A pattern is written with `L` (letter), `D` (digit), `A` (either), a space or a dash
(separators as printed) and `|` (row break of a two-row plate).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALPHABET = DIGITS + LETTERS
# (letter, digit) pairs that plate typefaces draw alike. Where a format says a letter or a
# digit stands, the decoder reads such a glyph as the pair's member of that kind.
LOOKALIKES = (("O", "0"), ("D", "0"), ("Q", "0"), ("I", "1"), ("Z", "2"), ("A", "4"), ("L", "4"), ("S", "5"),
              ("G", "6"), ("B", "8"))

# Characters some issuers never use; the generator avoids them so it does not teach
# shapes that real plates of that family do not have.
_NO_IOQ = LETTERS.replace("I", "").replace("O", "").replace("Q", "")
# Romania's county codes: the serial letters skip I and O, but the counties do not (IF, IS, OT).
_RO_COUNTIES = tuple("AB AR AG BC BH BN BT BV BR BZ CS CL CJ CT CV DB DJ GL GR GJ HR HD IL IS IF MM MH MS NT OT "
                     "PH SM SJ SB SV TR TM TL VS VL VN".split())


@dataclass(frozen=True)
class PlateFormat:
    family: str  # "us", "eu", "uk", "br"
    name: str
    pattern: str
    letters: str = LETTERS  # letters this issuer prints
    prefixes: tuple[str, ...] = ()  # region codes the number starts with (the generator draws one), if any

    @property
    def classes(self) -> str:
        """The pattern with separators removed: one L/D/A per character."""
        return "".join(c for c in self.pattern if c in "LDA")

    @property
    def two_rows(self) -> bool:
        return "|" in self.pattern

    def matches(self, text: str) -> bool:
        if len(text) != len(self.classes) or self.prefixes and not text.startswith(self.prefixes):
            return False
        for c, k in zip(text, self.classes):
            if k == "L" and c not in LETTERS or k == "D" and c not in DIGITS:
                return False
        return True

    def regex(self) -> str:
        """A regex over A-Z0-9 text (separators dropped), for config files; the region codes
        the number starts with, if any, as a group of alternatives."""
        head = f"({'|'.join(self.prefixes)})" if self.prefixes else ""
        rest = self.classes[len(self.prefixes[0]) if self.prefixes else 0:]
        return "^" + head + "".join({"L": "[A-Z]", "D": "[0-9]", "A": "[A-Z0-9]"}[k] for k in rest) + "$"


FORMATS: tuple[PlateFormat, ...] = (
    # United States: every state differs; these are the common shapes. Vanity plates
    # (any 2-7 characters) are generated separately and match no format. Many states print
    # I, O and Q too, so serial letters take the whole alphabet.
    PlateFormat("us", "california", "DLLL DDD", LETTERS),
    PlateFormat("us", "california-commercial", "DLDDDDD", LETTERS),  # trucks and vans
    PlateFormat("us", "LLL-DDDD", "LLL-DDDD", LETTERS),
    PlateFormat("us", "LLL DDDD", "LLL DDDD", LETTERS),
    PlateFormat("us", "LLL-DDD", "LLL-DDD", LETTERS),
    PlateFormat("us", "DDD-LLL", "DDD-LLL", LETTERS),
    PlateFormat("us", "DLL-DDDD", "DLL DDDD", LETTERS),
    PlateFormat("us", "DDD LDD", "DDD LDD", LETTERS),
    PlateFormat("us", "LL DDDDD", "LL DDDDD", LETTERS),
    PlateFormat("us", "DDDDLL", "DDDD LL", LETTERS),
    PlateFormat("us", "LDD LLL", "LDD LLL", LETTERS),
    PlateFormat("us", "stacked", "DLL|DDDD", LETTERS),
    # Europe.
    PlateFormat("eu", "germany", "LL LL DDDD", LETTERS),
    PlateFormat("eu", "germany-1", "L LL DDD", LETTERS),
    PlateFormat("eu", "germany-3", "LLL L DDDD", LETTERS),
    # The Netherlands: named by side code. 1-3 are on cars from before 1978, 12-14 are issued now.
    *(PlateFormat("eu", f"netherlands-{n}", p, _NO_IOQ) for n, p in enumerate(
        ("LL-DD-DD", "DD-DD-LL", "DD-LL-DD", "LL-DD-LL", "LL-LL-DD", "DD-LL-LL", "DD-LLL-D", "D-LLL-DD",
         "LL-DDD-L", "L-DDD-LL", "LLL-DD-L", "L-DD-LLL", "D-LL-DDD", "DDD-LL-D"), start=1)),
    PlateFormat("eu", "romania", "LL DD LLL", _NO_IOQ, _RO_COUNTIES),
    PlateFormat("eu", "romania-b", "L DDD LLL", _NO_IOQ, ("B",)),
    PlateFormat("eu", "romania-b2", "L DD LLL", _NO_IOQ, ("B",)),
    PlateFormat("eu", "france", "LL-DDD-LL", _NO_IOQ),
    PlateFormat("eu", "italy", "LL DDDLL", _NO_IOQ),
    PlateFormat("eu", "spain", "DDDD LLL", _NO_IOQ),
    PlateFormat("eu", "poland", "LL DDDDD", LETTERS),
    PlateFormat("eu", "stacked", "LL|DDDLL", _NO_IOQ, _RO_COUNTIES),
    # United Kingdom (2001 scheme), rear/front and the square two-row plate.
    PlateFormat("uk", "uk", "LLDD LLL", _NO_IOQ),
    PlateFormat("uk", "uk-stacked", "LLDD|LLL", _NO_IOQ),
    # Brazil: the grey pre-2018 plate and the Mercosur plate, and their motorcycle layouts.
    PlateFormat("br", "brazil-grey", "LLL-DDDD", LETTERS),
    PlateFormat("br", "mercosur", "LLLDLDD", LETTERS),
    PlateFormat("br", "mercosur-moto", "LLL|DLDD", LETTERS),
    PlateFormat("br", "brazil-grey-moto", "LLL|DDDD", LETTERS),  # motorcycles before Mercosur
)


def clean(text: str) -> str:
    """The scoring form of a plate text: upper-case A-Z0-9 only."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def match_family(text: str, formats: tuple[PlateFormat, ...] = FORMATS) -> str | None:
    """The family of the first format `text` (cleaned) matches, those naming region codes
    first (where a shape is shared, the code is the stronger evidence: Romania's `LL DD LLL`
    is also the UK's), else None."""
    for f in sorted(formats, key=lambda f: not f.prefixes):
        if f.matches(text):
            return f.family
    return None


_CLASS_RE = re.compile(r"\[(A-Z|0-9|A-Z0-9|0-9A-Z)\](?:\{(\d+)(?:,(\d+))?\})?")
# A leading group of region codes, as `PlateFormat.regex` writes them: `(AB|AG|B)`.
_PREFIX_RE = re.compile(r"\(([A-Z0-9]+(?:\|[A-Z0-9]+)*)\)")
MAX_TEMPLATES = 64  # per regex; Germany's lengths, `[A-Z]{1,3}[A-Z]{1,2}[0-9]{1,4}`, make 24


def from_regexes(patterns: dict[str, list[str]]) -> tuple[PlateFormat, ...]:
    """Formats for the decoder from config regexes (family -> regexes over A-Z0-9 text).

    Regexes that are a plain sequence of [A-Z], [0-9] and [A-Z0-9] (with {n} or {m,n}
    counts), after an optional group of region codes of one length, as `PlateFormat.regex`
    writes them, become decoding templates, one per length a count range allows (at most
    MAX_TEMPLATES); anything else still tags and filters plates (`family_matcher`) but
    cannot guide the decoder.
    """
    out = []
    for family, regexes in patterns.items():
        for rx in regexes:
            body = rx.removeprefix("^").removesuffix("$")
            codes, pos = _region_codes(body)
            options = ["".join(_kind(c) for c in zip(*codes))]
            for m in _CLASS_RE.finditer(body):
                lo = int(m.group(2) or 1)
                hi = int(m.group(3) or lo)
                if m.start() != pos or not lo <= hi or len(options) * (hi - lo + 1) > MAX_TEMPLATES:
                    break
                kind = {"A-Z": "L", "0-9": "D"}.get(m.group(1), "A")
                options = [o + kind * n for o in options for n in range(lo, hi + 1)]
                pos = m.end()
            if pos == len(body):
                out += [PlateFormat(family, rx, classes, prefixes=codes) for classes in dict.fromkeys(options) if classes]
    return tuple(out)


def _region_codes(body: str) -> tuple[tuple[str, ...], int]:
    """The region codes of a regex body's leading group, if it has one and they are of one
    length, and where the rest of the body starts."""
    m = _PREFIX_RE.match(body)
    codes = tuple(m.group(1).split("|")) if m else ()
    return (codes, m.end()) if len({len(c) for c in codes}) == 1 else ((), 0)


def _kind(chars: tuple[str, ...]) -> str:
    """The class (L, D or A) of one position of region codes: what its characters are."""
    return "L" if all(c in LETTERS for c in chars) else "D" if all(c in DIGITS for c in chars) else "A"


def family_matcher(patterns: dict[str, list[str]]):
    """text -> the first family one of whose regexes matches the whole text, else None; those
    starting with a group of region codes are tried first, as in `match_family`."""
    compiled = [(family, re.compile(rx)) for family, regexes in patterns.items() for rx in regexes]
    compiled.sort(key=lambda c: not _region_codes(c[1].pattern.removeprefix("^"))[0])

    def family_of(text: str) -> str | None:
        return next((family for family, rx in compiled if rx.fullmatch(text)), None)

    return family_of
