"""Vote a track's OCR reads, frame after frame, into one plate per vehicle.

A single read of a moving plate is often wrong in a character or two (blur, glare, a
look-alike pair), but rarely wrong the same way in every frame. `PlateVoter` collects the
reads of each track on one camera, publishes a plate as soon as enough of them agree, and
when the track ends publishes its final plate, or a correction if later frames changed the
verdict. A plate the camera published a moment ago is not published again when a new
track (the tracker lost and re-found the vehicle) reads the same text.

Times are the reads' frame timestamps, never the wall clock, so a replay votes the same
way every time.
"""
from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from config.schema import VotingConfig
from models.formats import LOOKALIKES, match_family
from stream.messages import Candidate, PlateDecision, PlateRead


FamilyOf = Callable[[str], "str | None"]  # plate text -> region family, None when no format fits
_AS_DIGITS = str.maketrans(dict(LOOKALIKES))  # each look-alike letter as its digit


def _part_of(text: str, plate: str) -> bool:
    """Whether `text` is `plate`, or a part of it as a partly hidden plate reads: where the
    plate is cut, letters and their digit look-alikes get mixed up. Whole texts must match
    exactly: two plates one look-alike apart are two vehicles."""
    if len(text) >= len(plate):
        return text == plate
    return text.translate(_AS_DIGITS) in plate.translate(_AS_DIGITS)


@dataclass(frozen=True)
class Vote:
    text: str
    confidence: float  # product of char_confidences
    char_confidences: list[float]  # see `vote`
    candidates: list[Candidate]  # whole-text readings, best first; scores sum to at most 1


def vote(reads: Sequence[PlateRead], family_of: FamilyOf = match_family, top: int = 3) -> Vote:
    """Combine reads with non-empty texts (most confident first) into one plate text.

    The length with the most read confidence wins; among reads of that length each position
    goes to the character with the most per-character confidence. Ties go to the earlier read.
    A voted character's confidence is the share of the position's weight it won times the
    chance that not every read of it was wrong (1 - prod(1 - p)): one unsure read stays
    unsure, agreeing reads raise it, and dissent lowers it.
    """
    length_weight: dict[int, float] = defaultdict(float)
    text_weight: dict[str, float] = defaultdict(float)
    for r in reads:
        length_weight[len(r.text)] += r.confidence
        text_weight[r.text] += r.confidence
    length = max(length_weight, key=length_weight.__getitem__)

    positions: list[dict[str, float]] = [defaultdict(float) for _ in range(length)]
    doubt: list[dict[str, float]] = [defaultdict(lambda: 1.0) for _ in range(length)]
    for r in reads:
        if len(r.text) == length:
            for weights, miss, char, p in zip(positions, doubt, r.text, r.char_confidences):
                weights[char] += p
                miss[char] *= 1.0 - p
    text = "".join(max(w, key=w.__getitem__) for w in positions)

    ranked = sorted(text_weight, key=text_weight.__getitem__, reverse=True)
    if family_of(text) is None:
        # A per-position vote can splice characters of different reads into a text no plate
        # has, while each whole read was decoded against the formats. Then trust the best
        # whole reading of the voted length instead, if it is a plate; only the best one, so
        # a vanity plate that most reads agree on is not swapped for a plate-shaped misread.
        best = next(t for t in ranked if len(t) == length)
        if family_of(best) is not None:
            text = best

    char_confidences = [w.get(c, 0.0) / (sum(w.values()) or 1.0) * (1.0 - miss[c])
                        for w, miss, c in zip(positions, doubt, text)]
    total = sum(text_weight.values()) or 1.0
    candidates = [Candidate(t, text_weight[t] / total) for t in ranked[:top]]
    return Vote(text, math.prod(char_confidences), char_confidences, candidates)


@dataclass
class _Track:
    reads: list[PlateRead]  # most confident first, at most max_reads_per_track
    first_seen: tuple[float, int]
    last_seen: tuple[float, int]
    last_box: tuple[float, float, float, float]  # of the latest read: where the plate has got to
    plate: str | None = None  # what the track was settled as: published by it, or a duplicate
    published: bool = False  # whether this track's own decision published `plate`


class PlateVoter:
    """Votes the reads of one camera's tracks into plate decisions.

    `add` every read; it returns a decision once per track, the first time enough reads
    agree. Call `end_track` when the tracker drops a track: it returns the final decision of
    a track that never got one, or a correction when later reads changed the plate.
    """

    def __init__(self, config: VotingConfig | None = None, family_of: FamilyOf = match_family,
                 seen_once: bool = False):
        """`seen_once`: every track is one still image, so reads cannot be asked to agree."""
        self.config = config or VotingConfig()
        self.family_of = family_of
        self.seen_once = seen_once
        self._tracks: dict[int, _Track] = {}
        self._seen: dict[str, float] = {}  # settled plate -> timestamp its vehicle was last seen

    def add(self, read: PlateRead) -> PlateDecision | None:
        # a read with nothing legible, or whose characters and confidences do not line up,
        # carries no vote
        if not read.text or len(read.char_confidences) != len(read.text):
            return None
        cfg = self.config
        at = (read.timestamp, read.frame_index)
        track = self._tracks.setdefault(read.track_id, _Track([], at, at, read.box))
        if at >= track.last_seen:
            track.last_box = read.box
        track.first_seen, track.last_seen = min(track.first_seen, at), max(track.last_seen, at)
        bisect.insort(track.reads, read, key=lambda r: -r.confidence)
        del track.reads[cfg.max_reads_per_track:]

        if track.plate is not None:
            # the vehicle is still in view: a new track re-finding it must stay a duplicate
            self._saw(track.plate, read.timestamp)
            return None
        if len(track.reads) < cfg.min_reads_to_finalize:
            return None
        v = vote(track.reads, self.family_of, cfg.candidates)
        if not self._agreed(track, v) or not self._publishable(v.text):
            return None
        return self._settle(read.track_id, track, v)

    def settled(self, track_id: int) -> str | None:
        """The plate an open track was settled as (published by it, or a duplicate), else None."""
        track = self._tracks.get(track_id)
        return track.plate if track else None

    def still_seen(self, track_id: int, timestamp: float) -> None:
        """A settled track's plate is in view at `timestamp` (no read needed): a parked or
        queuing vehicle found again after an occlusion stays the same vehicle."""
        track = self._tracks.get(track_id)
        if track is not None and track.plate is not None:
            self._saw(track.plate, timestamp)

    def open_tracks(self) -> list[int]:
        """The tracks with reads and no end yet."""
        return list(self._tracks)

    def end_track(self, track_id: int) -> PlateDecision | None:
        track = self._tracks.pop(track_id, None)
        if track is None:  # never had a usable read
            return None
        v = vote(track.reads, self.family_of, self.config.candidates)
        # A plate-shaped text may end a track on a lenient confidence (a car seen briefly still
        # gets its event); one that fits no format (a vanity plate, or lettering that is no
        # plate) needs the agreement early publication needs.
        if self.family_of(v.text) is not None:
            sure = v.confidence >= self.config.min_final_confidence
        else:
            sure = self._agreed(track, v)
        if v.text == track.plate or not self._publishable(v.text) or not sure:
            return None
        if track.published:
            # the earlier plate was never there: a real vehicle with it must not be deduped
            self._seen.pop(track.plate, None)
            self._saw(v.text, track.last_seen[0])
            return self._decision(track_id, track, v, correction_of=track.plate)
        # never settled, or settled as a duplicate of a plate it turned out not to be
        return self._settle(track_id, track, v)

    def _agreed(self, track: _Track, v: Vote) -> bool:
        agreeing = sum(r.text == v.text for r in track.reads)
        return (agreeing >= self.config.min_agreeing or self.seen_once) and v.confidence >= self.config.min_confidence

    def _publishable(self, text: str) -> bool:
        return not self.config.require_format or self.family_of(text) is not None

    def _saw(self, plate: str, timestamp: float) -> None:
        self._seen[plate] = max(self._seen.get(plate, timestamp), timestamp)

    def _settle(self, track_id: int, track: _Track, v: Vote) -> PlateDecision | None:
        """Settle the track as `v.text`: its decision, or None when the plate is a duplicate."""
        # No open or future track starts before `horizon`, so older sightings can never
        # dedupe anything again (assuming the camera's time does not run backwards).
        horizon = min([track.first_seen[0]] + [t.first_seen[0] for t in self._tracks.values()])
        self._seen = {p: t for p, t in self._seen.items() if horizon - t <= self.config.dedupe_seconds}

        # A text that is part of a plate seen a moment ago is that plate, partly hidden.
        last = max((t for p, t in self._seen.items() if _part_of(v.text, p)), default=None)
        # measured from the track's start: the vehicle re-found, however long reading took
        duplicate = last is not None and track.first_seen[0] - last <= self.config.dedupe_seconds
        self._saw(v.text, track.last_seen[0])
        track.plate, track.published = v.text, not duplicate
        return None if duplicate else self._decision(track_id, track, v)

    def _decision(self, track_id: int, track: _Track, v: Vote, correction_of: str | None = None) -> PlateDecision:
        # the evidence: the most confident read of the winning text (its crop, frame and time)
        best = next((r for r in track.reads if r.text == v.text), track.reads[0])
        return PlateDecision(
            camera_id=best.camera_id, track_id=track_id, plate=v.text,
            region=self.family_of(v.text), confidence=v.confidence,
            char_confidences=v.char_confidences, candidates=v.candidates, reads=len(track.reads),
            first_seen=track.first_seen, last_seen=track.last_seen, box=best.box,
            correction_of=correction_of, crop=best.crop, captured=(best.timestamp, best.frame_index),
            vehicle=best.vehicle, last_box=track.last_box)
