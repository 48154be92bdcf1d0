"""Plate texts compared the way cameras misread them: for searching the journal and for
watchlists.

`distance(a, b)` is the edit distance (Levenshtein) between two plates where a character
swapped for one it is easily mistaken for costs CONFUSABLE_COST and any other substitution,
insertion or deletion costs 1. The confusable groups are those of OCR and of people typing
what they saw: O 0 D Q, I 1 T, B 8, S 5, Z 2, G 6 (any two of one group). So "A8C123"
is 0.5 from "ABC123", "AB0I23" 1.0 from "ABD123", and "ABC12" 1.0 from "ABC123". Both
texts are compared in upper case and without anything but A-Z and 0-9 (spaces, dashes),
as plates are published. It is a metric (symmetric, triangle inequality), so "within 1 of a
watchlist entry" means the same from either side.
"""
from __future__ import annotations

from collections.abc import Iterable

from models.formats import clean

CONFUSABLE_COST = 0.5
CONFUSABLE = ("O0DQ", "I1T", "B8", "S5", "Z2", "G6")
_GROUP = {c: i for i, group in enumerate(CONFUSABLE) for c in group}


def _substitution(x: str, y: str) -> float:
    if x == y:
        return 0.0
    group = _GROUP.get(x)
    return CONFUSABLE_COST if group is not None and group == _GROUP.get(y) else 1.0


def distance(a: str, b: str) -> float:
    """The confusable-aware edit distance between plates `a` and `b` (module docstring):
    0 for the same plate, CONFUSABLE_COST per confusable substitution, 1 per other edit."""
    a, b = clean(a), clean(b)
    previous = [float(j) for j in range(len(b) + 1)]  # one row of the classic table at a time
    for i, x in enumerate(a, 1):
        current = [float(i)]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + _substitution(x, y)))
        previous = current
    return previous[-1]


def near(text: str, plates: Iterable[str], max_distance: float) -> dict[str, float]:
    """The `plates` within `max_distance` of `text`, with their distances."""
    text = clean(text)
    found = {}
    for plate in plates:
        # every insertion or deletion costs 1: plates whose lengths differ by more are skipped
        # without the table, most of a journal's plates on a long search
        if abs(len(plate) - len(text)) <= max_distance and (d := distance(text, plate)) <= max_distance:
            found[plate] = d
    return found
