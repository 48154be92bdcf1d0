"""Watchlists: which listed plate an event is, tolerating the characters OCR confuses.

Each list (`watchlists:` in the config) holds plate texts and regexes, from the config and
from the first column of a CSV file that `reload()` reads again (SIGHUP, the API). A decision
matches a text entry when one of its vote's candidates (not only the winner: the listed plate
may be the runner-up) is within the list's `max_distance` (`stream.plates.distance`: a
confusable pair costs half an edit), and a regex entry when a candidate matches it whole. The
closest match over every list wins; ties go to the list named first.
"""
from __future__ import annotations

import csv
import logging
import re
import threading

from config.schema import WatchlistConfig
from models.formats import clean
from stream.messages import Match
from stream.plates import distance

log = logging.getLogger(__name__)
REGEX_CHARS = set("^$[]().*+?{}|\\")


class _List:
    def __init__(self, config: WatchlistConfig) -> None:
        self.config = config
        self.texts: list[str] = []
        self.regexes: list[tuple[str, re.Pattern]] = []

    def load(self) -> None:
        entries = list(self.config.plates)
        if self.config.file:
            with open(self.config.file, newline="", encoding="utf-8-sig") as f:
                entries += [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
        texts, regexes = [], []
        for entry in entries:
            if REGEX_CHARS & set(entry):
                regexes.append((entry, re.compile(entry)))
            elif clean(entry):
                texts.append(clean(entry))
        self.texts, self.regexes = texts, regexes  # swapped whole: matching never sees half a list

    def match(self, candidates: list[str]) -> Match | None:
        best = None
        for text in candidates:
            for entry, rx in self.regexes:
                if rx.fullmatch(text):
                    return Match(self.config.name, entry, 0.0, self.config.action)
            for entry in self.texts:
                if abs(len(entry) - len(text)) <= self.config.max_distance:
                    d = distance(entry, text)
                    if d <= self.config.max_distance and (best is None or d < best.distance):
                        best = Match(self.config.name, entry, d, self.config.action)
        return best


class Watchlists:
    def __init__(self, configs: list[WatchlistConfig]) -> None:
        self._lists = [_List(c) for c in configs]
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """Read every list's file again; a list whose file cannot be read keeps its entries."""
        with self._lock:
            for lst in self._lists:
                try:
                    lst.load()
                except (OSError, UnicodeDecodeError, csv.Error, re.error) as e:
                    log.error("watchlist %s: cannot reload %s: %s", lst.config.name, lst.config.file, e)
            if self._lists:
                log.info("watchlists loaded: %s", ", ".join(
                    f"{lst.config.name} ({len(lst.texts) + len(lst.regexes)})" for lst in self._lists))

    def match(self, candidates: list[str]) -> Match | None:
        """The closest listed entry to any of `candidates` (the vote's texts, best first)."""
        with self._lock:
            found = [m for lst in self._lists if (m := lst.match(candidates))]
        return min(found, key=lambda m: m.distance) if found else None
