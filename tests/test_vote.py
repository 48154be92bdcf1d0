"""Multi-frame plate voting: hand-made reads, no models."""
from __future__ import annotations

import math

import numpy as np
import pytest

from config.schema import ConfigError, VotingConfig, parse_config
from stream.messages import PlateRead
from stream.vote import PlateVoter, vote

# Never finalize early: for tests of what end_track decides on its own.
NO_EARLY = VotingConfig(min_reads_to_finalize=99, max_reads_per_track=99)


def read(text: str, p: float | list[float] = 0.9, *, track: int = 1, frame: int = 0,
         t: float | None = None, box=(0.0, 0.0, 100.0, 30.0)) -> PlateRead:
    """A read of `text` with per-character confidence `p` (one value or one per character);
    frames are 0.1 s apart unless `t` is given."""
    chars = p if isinstance(p, list) else [p] * len(text)
    return PlateRead("cam0", track, frame, frame / 10 if t is None else t, text, math.prod(chars), chars,
                     None, box)


def feed(voter: PlateVoter, texts: list[str], p: float = 0.9, *, track: int = 1, start: int = 0,
         t0: float = 0.0) -> list:
    """Add one read per text on consecutive frames; the decisions `add` returned."""
    return [voter.add(read(s, p, track=track, frame=start + i, t=t0 + i / 10)) for i, s in enumerate(texts)]


def test_majority_wins_over_a_more_confident_misread():
    reads = [read("A812CDE", 0.95)] + [read("AB12CDE", 0.8) for _ in range(3)]
    v = vote(reads)
    assert v.text == "AB12CDE"
    assert v.char_confidences[1] == pytest.approx(2.4 / (2.4 + 0.95) * (1 - 0.2 ** 3))
    assert v.confidence == pytest.approx(math.prod(v.char_confidences))


def test_errors_in_different_positions_still_yield_the_truth():
    # No read is right, each is wrong in another place; the most confident read lost a
    # character, but its length is outvoted and it does not shift the positions.
    reads = [read("AB12CD", 0.95), read("XB12CDE"), read("AX12CDE"), read("AB12CXE")]
    v = vote(reads)
    assert v.text == "AB12CDE"
    assert "AB12CDE" not in [c.text for c in v.candidates]
    assert v.char_confidences[0] == pytest.approx(2 / 3 * (1 - 0.1 ** 2))


def test_spliced_vote_gives_way_to_the_best_format_reading():
    # Position 1 votes '8' (two reads sure of it, unsure elsewhere) but 'A8C1234' is no plate:
    # the best whole reading 'ABC1234' (LLL-DDDD) is taken instead.
    sure_b = read("ABC1234", [0.95, 0.5, 0.95, 0.95, 0.95, 0.95, 0.95])
    sure_8 = read("A8C1234", [0.3, 0.9, 0.3, 0.3, 0.3, 0.3, 0.3])
    v = vote([sure_b, sure_8, sure_8])
    assert v.text == "ABC1234"
    assert v.candidates[0].text == "ABC1234"
    assert v.char_confidences[1] == pytest.approx(0.5 / 2.3 * (1 - 0.5))


def test_vanity_plate_most_reads_agree_on_is_kept():
    v = vote([read("A8C1234", 0.8) for _ in range(3)] + [read("ABC1234", 0.8)])
    assert v.text == "A8C1234"


def test_early_finalization_fires_exactly_once_per_track():
    voter = PlateVoter()
    best = read("AB12CDE", 0.99, frame=1, box=(1.0, 2.0, 3.0, 4.0))
    decisions = [voter.add(read("AB12CDE", frame=0)), voter.add(best), voter.add(read("AB12CDE", frame=2))]
    decisions += feed(voter, ["AB12CDE"] * 5, start=3)
    published = [d for d in decisions if d is not None]
    assert decisions[2] is published[0] and len(published) == 1
    d = published[0]
    assert (d.plate, d.region, d.reads, d.correction_of) == ("AB12CDE", "eu", 3, None)
    assert d.first_seen == (0.0, 0) and d.last_seen == (0.2, 2)
    assert d.box == best.box
    assert d.confidence == pytest.approx((1 - 0.1 * 0.01 * 0.1) ** 7)  # three agreeing reads
    assert voter.end_track(1) is None  # finalized, unchanged: no second decision


def test_confident_disagreement_blocks_early_finalization():
    voter = PlateVoter()
    # two reads agree, but half the weight at the last position is against them
    assert feed(voter, ["AB12CDE", "AB12CDF", "AB12CDG", "AB12CDE"]) == [None] * 4
    d = voter.end_track(1)
    assert d is not None and d.plate == "AB12CDE"
    assert d.confidence == pytest.approx(0.5 * (1 - 0.1 ** 2) * (1 - 0.1 ** 4) ** 6)


def test_end_track_publishes_an_unfinalized_track_then_forgets_it():
    voter = PlateVoter()
    assert feed(voter, ["AB12CDE", "AB12CDE"], start=4, t0=7.0) == [None, None]
    d = voter.end_track(1)
    assert d is not None
    assert (d.plate, d.reads, d.first_seen, d.last_seen) == ("AB12CDE", 2, (7.0, 4), (7.1, 5))
    assert voter.end_track(1) is None


def test_end_track_corrects_a_plate_later_reads_overturned():
    voter = PlateVoter()
    early = [d for d in feed(voter, ["AB12COE"] * 3) if d is not None]
    assert [d.plate for d in early] == ["AB12COE"]
    assert feed(voter, ["AB12CDE"] * 5, p=0.95, start=3, t0=0.3) == [None] * 5
    d = voter.end_track(1)
    assert d is not None and d.plate == "AB12CDE" and d.correction_of == "AB12COE"
    assert d.first_seen == (0.0, 0) and d.last_seen == (0.7, 7)


def test_one_unsure_read_stays_unsure_and_agreement_raises_confidence():
    alone = vote([read("AB12CDE", 0.5)])
    assert alone.confidence == pytest.approx(0.5 ** 7)
    agreed = vote([read("AB12CDE", 0.5) for _ in range(3)])
    assert agreed.confidence == pytest.approx((1 - 0.5 ** 3) ** 7) and agreed.confidence > alone.confidence


def test_empty_reads_are_ignored():
    voter = PlateVoter()
    assert voter.add(read("", [], frame=0)) is None
    assert voter.end_track(1) is None
    feed(voter, ["", "AB12CDE", ""], track=2)
    d = voter.end_track(2)
    assert d is not None and d.reads == 1 and d.first_seen == (0.1, 1)


def test_same_plate_within_dedupe_window_is_the_same_vehicle():
    voter = PlateVoter(VotingConfig(dedupe_seconds=10.0))
    assert any(feed(voter, ["AB12CDE"] * 3, track=1, t0=0.0))  # seen until 0.2
    assert voter.settled(1) == "AB12CDE"
    assert voter.end_track(1) is None
    assert not any(feed(voter, ["AB12CDE"] * 3, track=2, t0=5.0))  # re-found: seen until 5.2
    assert voter.settled(2) == "AB12CDE"  # settled as a duplicate: the pipeline may slow its detector
    assert voter.end_track(2) is None and voter.settled(2) is None
    # 14 s after track 1 but within 10 s of track 2's sighting
    assert not any(feed(voter, ["AB12CDE"] * 3, track=3, t0=14.0))
    assert voter.end_track(3) is None
    later = [d for d in feed(voter, ["AB12CDE"] * 3, track=4, t0=30.0) if d is not None]
    assert [d.track_id for d in later] == [4]


def test_dedupe_window_is_extended_while_the_vehicle_stays_in_view():
    voter = PlateVoter()
    assert any(feed(voter, ["AB12CDE"] * 3, track=1, t0=0.0))
    voter.add(read("AB12CDE", track=1, frame=200, t=20.0))  # parked at the gate
    voter.end_track(1)
    assert not any(feed(voter, ["AB12CDE"] * 3, track=2, t0=25.0))
    assert voter.end_track(2) is None


def test_dedupe_is_per_plate_and_applies_to_end_track_decisions():
    voter = PlateVoter(NO_EARLY)
    feed(voter, ["AB12CDE"] * 2, track=1)
    assert voter.end_track(1) is not None
    feed(voter, ["AB12CDE"] * 2, track=2, t0=3.0)
    assert voter.end_track(2) is None
    feed(voter, ["KL34MNP"] * 2, track=3, t0=3.0)
    assert voter.end_track(3) is not None


def test_candidates_are_ranked_normalised_and_cut_to_top_n():
    reads = [read("AB12CDE", 0.9)] * 3 + [read("AB12CDF", 0.9)] * 2 + [read("AB12COE", 0.8), read("AB12C0E", 0.5)]
    v = vote(reads, top=3)
    assert [c.text for c in v.candidates] == ["AB12CDE", "AB12CDF", "AB12COE"]
    total = sum(r.confidence for r in reads)
    assert v.candidates[0].score == pytest.approx(3 * 0.9 ** 7 / total)
    scores = [c.score for c in v.candidates]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) < 1.0  # the fourth reading's share is not listed
    assert sum(c.score for c in vote(reads, top=10).candidates) == pytest.approx(1.0)


def test_max_reads_per_track_keeps_only_the_most_confident():
    voter = PlateVoter(VotingConfig(min_agreeing=99, max_reads_per_track=3))
    feed(voter, ["AB12CDE"] * 5, p=0.95)
    # many weaker reads that would outvote the first ones if they were all kept
    feed(voter, ["AB12CDF"] * 40, p=0.9, start=5)
    d = voter.end_track(1)
    assert d is not None and d.plate == "AB12CDE" and d.reads == 3
    assert d.first_seen == (0.0, 0) and d.last_seen[1] == 44
    assert [c.text for c in d.candidates] == ["AB12CDE"]


def test_require_format_never_publishes_a_non_plate():
    strict = PlateVoter(VotingConfig(require_format=True))
    assert feed(strict, ["HELLO7"] * 4) == [None] * 4
    assert strict.end_track(1) is None
    assert any(feed(strict, ["AB12CDE"] * 3, track=2))

    lenient = PlateVoter()
    d = next(d for d in feed(lenient, ["HELLO7"] * 4) if d is not None)
    assert d.plate == "HELLO7" and d.region is None


def test_config_rejects_a_read_bound_below_the_finalization_count():
    with pytest.raises(ConfigError, match="voting.max_reads_per_track"):
        parse_config({"voting": {"min_reads_to_finalize": 5, "max_reads_per_track": 4}})


def test_a_track_whose_final_vote_is_too_unsure_publishes_nothing():
    voter = PlateVoter(VotingConfig(min_final_confidence=0.3))
    feed(voter, ["AB12CDE"], p=0.8)  # 0.8 ** 7 = 0.21
    assert voter.end_track(1) is None
    feed(voter, ["AB12CDE"], p=0.9, track=2, t0=100.0)  # 0.9 ** 7 = 0.48
    assert voter.end_track(2) is not None


def test_a_part_of_a_plate_just_seen_is_that_plate_partly_hidden():
    voter = PlateVoter(NO_EARLY)
    feed(voter, ["AB12CDE"] * 3)
    assert voter.end_track(1).plate == "AB12CDE"
    feed(voter, ["12CDE"] * 3, track=2, t0=1.0)  # the same car, half behind a pole
    assert voter.end_track(2) is None
    feed(voter, ["12CDE"] * 3, track=3, t0=30.0)  # long after: a car of its own
    assert voter.end_track(3).plate == "12CDE"


def test_a_text_fitting_no_format_needs_agreement_to_end_a_track_with_an_event():
    voter = PlateVoter(NO_EARLY)
    feed(voter, ["CO"], p=0.95)  # one confident read of lettering on a truck
    assert voter.end_track(1) is None
    feed(voter, ["AB12CDE"], p=0.95, track=2)  # one read, but plate-shaped: a car seen briefly
    assert voter.end_track(2).plate == "AB12CDE"
    feed(voter, ["HELLO7"] * 2, p=0.95, track=3)  # a vanity plate two reads agree on
    assert voter.end_track(3).plate == "HELLO7"


def test_a_still_image_needs_no_agreement_it_cannot_have():
    voter = PlateVoter(seen_once=True)
    voter.add(read("HELLO7", 0.95))  # a vanity plate, in the one photo there is of it
    assert voter.end_track(1).plate == "HELLO7"
    voter.add(read("CO", 0.7, track=2))  # 0.7 ** 2 = 0.49: below min_confidence
    assert voter.end_track(2) is None


def test_a_part_misread_at_the_cut_is_still_that_plate_but_a_whole_look_alike_is_another():
    voter = PlateVoter(NO_EARLY)
    feed(voter, ["AB12CDE"] * 3)
    assert voter.end_track(1).plate == "AB12CDE"
    feed(voter, ["812CDE"] * 3, track=2, t0=1.0)  # half hidden, its B read as 8 where it is cut
    assert voter.end_track(2) is None
    feed(voter, ["A812CDE"] * 3, track=3, t0=2.0)  # a whole plate: another car
    assert voter.end_track(3).plate == "A812CDE"


def test_a_decision_carries_the_winning_reads_crop_and_frame():
    """The most confident read is of another text: the evidence is the winning text's best read."""
    voter = PlateVoter(VotingConfig(min_reads_to_finalize=3, min_agreeing=2, min_confidence=0.0))
    reads = [read("AB12CDE", 0.9, frame=1), read("AB12CDF", 0.99, frame=2), read("AB12CDE", 0.9, frame=3)]
    reads[0].crop, reads[1].crop, reads[2].crop = (np.full((4, 8, 3), k, np.uint8) for k in (1, 2, 3))
    decisions = [d for r in reads if (d := voter.add(r))]
    assert len(decisions) == 1 and decisions[0].plate == "AB12CDE"
    assert decisions[0].captured[1] in (1, 3) and decisions[0].crop[0, 0, 0] == decisions[0].captured[1]
