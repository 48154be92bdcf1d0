"""Which state or country issued a plate: from the words printed on it, else its number's format.

The second reader (`models.ppocr`) reads the plate crop's top and bottom bands, where US plates
print their state's name or slogan and Mercosur plates BRASIL. The letters it reads are matched
against the table in `models/issuers/words.yaml`, allowing one wrong, missing or extra letter
in five (none in names of five letters or fewer); the top band (the state's name) is believed
before the bottom one (a slogan), and of the entries that match in a band the longest wins, so
WEST VIRGINIA is not VIRGINIA and ARKANSAS is not KANSAS. Without such a word, a number
whose format only one country uses (Romania's county codes, a Dutch side code, the UK's
LLDD LLL) names that country; a format several countries share names none.

    python -m models.issuer CROP [...]   # the issuer of plate crops (a quick look)
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from models.formats import FORMATS, clean

WORDS = yaml.safe_load((Path(__file__).parent / "issuers" / "words.yaml").read_text())
# The bands read for words, as shares of the crop's height: US plates print the state at the
# top and a slogan at the bottom; a two-row plate's rows are the number itself.
BANDS = ((0.0, 0.3), (0.72, 1.0))
FORMAT_CONFIDENCE = 0.6  # a country named by the number's format alone
# The country of each built-in format, by its name's first word; the US's generic formats
# (LLL DDDD, DDD LLL, ...) name none, since many countries issue those shapes too (Argentina's
# older plates are LLLDDD) and the table knows only some of them.
FORMAT_COUNTRIES = {"california": "us", "germany": "de", "netherlands": "nl", "romania": "ro", "france": "fr",
                    "italy": "it", "spain": "es", "poland": "pl", "stacked": "ro", "uk": "gb", "brazil": "br",
                    "mercosur": "br"}


@dataclass(frozen=True)
class Issuer:
    country: str | None = None  # ISO 3166-1 alpha-2, lower case
    country_confidence: float | None = None
    subdivision: str | None = None  # ISO 3166-2 suffix, lower case (US states)
    subdivision_confidence: float | None = None


# (letters, country, subdivision) for every word of the table
_ENTRIES = [(clean(w), c, None) for c, words in WORDS["countries"].items() for w in words]
_ENTRIES += [(clean(w), "us", s) for s, words in WORDS["us"].items() for w in words]


def substring_distance(word: str, text: str) -> int:
    """The fewest edits that make `word` a substring of `text` (Sellers' algorithm)."""
    prev = list(range(len(word) + 1))
    best = prev[-1]
    for t in text:
        cur = [0]
        for i, w in enumerate(word, 1):
            cur.append(min(prev[i] + 1, cur[i - 1] + 1, prev[i - 1] + (w != t)))
        prev = cur
        best = min(best, cur[-1])
    return best


def _near(word: str, text: str) -> int | None:
    """The edits that make `word` a substring of `text`, if within the allowance (module docstring)."""
    allowed = len(word) // 5 if len(word) > 5 else 0
    # With k edits, one of k + 1 pieces of the word is in the text unchanged: a cheap test first.
    piece = len(word) // (allowed + 1)
    if not any(word[i * piece:(i + 1) * piece] in text for i in range(allowed + 1)):
        return None
    d = substring_distance(word, text)
    return d if d <= allowed else None


def from_words(texts: list[str]) -> Issuer | None:
    """The issuer named in the first of `texts` (bands, top first) where a table word matches:
    the longest such word, with 1 - edits / length for confidence."""
    for text in (clean(t) for t in texts):
        found = [(len(word) - d, 1 - d / len(word), country, sub) for word, country, sub in _ENTRIES
                 if (d := _near(word, text)) is not None]
        if found:
            _, score, country, sub = max(found)
            return Issuer(country, round(score, 3), sub, round(score, 3) if sub else None)
    return None


def from_format(text: str) -> Issuer:
    """The country of the built-in formats that `text` fits, where they all agree."""
    countries = {FORMAT_COUNTRIES.get(f.name.split("-")[0]) for f in FORMATS if f.matches(text)}
    if len(countries) == 1 and None not in countries:
        return Issuer(countries.pop(), FORMAT_CONFIDENCE)
    return Issuer()


def bands(crop: np.ndarray) -> list[np.ndarray]:
    """The crop's top and bottom bands (BANDS), where issuers print their words."""
    h = crop.shape[0]
    return [crop[int(a * h):max(int(a * h) + 1, int(b * h))] for a, b in BANDS]


def read_issuers(crops: list[np.ndarray], texts: list[str], words_of=None) -> list[Issuer]:
    """The issuer of each plate crop, whose number reads `texts`; `words_of(images) -> texts`
    reads the bands (the second reader's `words`); without it, by format alone."""
    words = words_of([b for c in crops for b in bands(c)]) if words_of and crops else []
    return [(from_words(words[k * len(BANDS):(k + 1) * len(BANDS)]) if words else None) or from_format(text)
            for k, text in enumerate(texts)]


def main() -> int:
    import cv2

    from models.ppocr import PPOCRRecognizer
    from models.recognizer import CHARSET

    pp = PPOCRRecognizer(CHARSET)
    for path in sys.argv[1:]:
        crop = cv2.imread(path)
        print(path, pp.words(bands(crop)), read_issuers([crop], [""], pp.words)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
