"""SortTracker on synthetic box sequences (CPU, no models)."""
from __future__ import annotations

import math

import pytest

from models.detector import Detection
from trackers.kalman import Direction, SortTracker, Track, direction


def det(cx: float, cy: float, w: float = 60, h: float = 20, conf: float = 0.9) -> Detection:
    return Detection((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), conf)


def centre(t: Track) -> tuple[float, float]:
    return (t.box[0] + t.box[2]) / 2, (t.box[1] + t.box[3]) / 2


def nearest(tracks: list[Track], x: float, y: float) -> Track:
    return min(tracks, key=lambda t: math.dist(centre(t), (x, y)))


@pytest.mark.parametrize("dy, occluded", [(4, False), (0, False), (0, True)])
def test_crossing_plates_keep_ids(dy, occluded):
    """Two plates drive towards each other and cross; when `occluded`, only the front one is
    detected while they overlap (as after NMS), so the other coasts through the crossing."""
    tr = SortTracker("cam")
    ids_a, ids_b = set(), set()
    for f in range(40):
        ax, bx = 50 + 10 * f, 450 - 10 * f
        overlap = abs(ax - bx) < 60
        dets = [det(ax, 100), det(bx, 100 + dy)]
        if occluded and overlap:
            dets = dets[1:]
        tracks = tr.update(dets if f % 2 else dets[::-1], f)
        assert len(tracks) == 2
        if overlap:  # which box is which plate is ambiguous here; only matching is checked
            assert sum(t.matched for t in tracks) == (1 if occluded else 2)
        else:
            ids_a.add(nearest(tracks, ax, 100).track_id)
            ids_b.add(nearest(tracks, bx, 100 + dy).track_id)
    assert len(ids_a) == len(ids_b) == 1 and ids_a != ids_b  # the same ids before and after the crossing
    assert tr.pop_ended() == []


def test_missed_detections_coast_and_keep_id():
    tr = SortTracker("cam", max_age=15)
    seen = []
    for f in range(20):
        x = 100 + 12 * f
        tracks = tr.update([] if 5 <= f < 10 else [det(x, 200, conf=0.8)], f)
        assert len(tracks) == 1
        t = tracks[0]
        seen.append(t.track_id)
        if 5 <= f < 10:
            assert not t.matched and t.confidence == 0.0
            assert abs(centre(t)[0] - x) < 15  # the prediction follows the plate's motion
        else:
            assert t.matched and t.confidence == 0.8
            assert t.box == pytest.approx(det(x, 200).box)  # matched: the detector's box
    assert set(seen) == {1}
    assert tr.pop_ended() == []


def test_track_missing_longer_than_max_age_ends():
    tr = SortTracker("cam", max_age=3)
    for f in range(5):
        assert [t.track_id for t in tr.update([det(300, 200)], f)] == [1]
    coasting = []
    for f in range(5, 9):
        tracks = tr.update([], f)
        coasting.append(len(tracks))
        assert all(not t.matched for t in tracks)
        if f < 8:
            assert tr.pop_ended() == []
    assert coasting == [1, 1, 1, 0]  # reported for max_age missed frames, then gone
    assert tr.pop_ended() == [1]
    assert tr.pop_ended() == []  # popped once
    tr.update([det(300, 200)], 9)
    tracks = tr.update([det(300, 200)], 10)
    assert [t.track_id for t in tracks] == [2]


def test_ids_never_reused_and_per_instance():
    a, b = SortTracker("a", max_age=1), SortTracker("b", max_age=1)
    f, seen = 0, []
    for _ in range(4):  # the same two plates come back to the same place after their tracks ended
        ids = set()
        for _ in range(3):
            ids |= {t.track_id for t in a.update([det(100, 100), det(400, 100)], f)}
            f += 1
        for _ in range(3):
            a.update([], f)
            f += 1
        assert sorted(a.pop_ended()) == sorted(ids)
        assert len(ids) == 2 and min(ids) > max(seen, default=0)
        seen += sorted(ids)
    assert seen == list(range(1, 9))
    assert [t.track_id for t in b.update([det(100, 100)], 0)] == [1]  # b counts on its own
    assert [t.track_id for t in a.update([det(100, 100)], f)] == []  # a's 9 is tentative...
    assert [t.track_id for t in a.update([det(100, 100)], f + 1)] == [9]  # ...then reported


def test_fast_small_box_keeps_id():
    tr = SortTracker("cam")
    w, h = 30, 10
    for f in range(20):
        tracks = tr.update([det(50 + w * f, 300 + 2 * f, w, h)], f)  # one width per frame: IoU 0 at first
        assert [(t.track_id, t.matched) for t in tracks] == [(1, True)]
    # The gate is a gate: a jump of several diagonals is another plate.
    tr.update([det(50 + w * 20 + 8 * w, 340, w, h)], 20)
    tracks = tr.update([det(50 + w * 21 + 8 * w, 342, w, h)], 21)
    assert [(t.track_id, t.matched) for t in tracks] == [(1, False), (2, True)]


def test_predict_between_updates_keeps_ids():
    tr = SortTracker("cam")
    for f in range(30):
        x = 100 + 15 * f
        if f % 3 == 0:
            tracks = tr.update([det(x, 200), det(900 - 15 * f, 400)], f)
            assert all(t.matched for t in tracks)
        else:
            tracks = tr.predict(f)
            assert all(not t.matched and t.confidence == 0.0 for t in tracks)
        assert len(tracks) == 2  # reported from frame 0 (the first min_hits frames), coasting included
        assert nearest(tracks, x, 200).track_id == 1
        assert nearest(tracks, 900 - 15 * f, 400).track_id == 2
        if f >= 6:  # velocities known: the coasting boxes follow the plates
            assert abs(centre(nearest(tracks, x, 200))[0] - x) < 5
    assert tr.pop_ended() == []


def test_predict_frames_are_not_misses():
    tr = SortTracker("cam", max_age=2)
    tr.update([det(100, 100)], 0)
    tr.update([det(110, 100)], 1)
    f, ended_at = 2, None
    for attempt in range(1, 5):  # the plate is gone; detection runs on every 4th frame
        for _ in range(3):
            assert [t.track_id for t in tr.predict(f)] == ([1] if ended_at is None else [])
            f += 1
        tr.update([], f)
        f += 1
        if ended_at is None and tr.pop_ended() == [1]:
            ended_at = attempt
    assert ended_at == 3  # the third missed detection exceeds max_age=2, after 11 frames


def test_flush_ends_everything():
    tr = SortTracker("cam", max_age=1)
    for f in range(3):
        tr.update([det(100, 100), det(400, 100), det(700, 100)], f)
    tr.update([det(100, 100), det(400, 100)], 3)
    tr.update([det(100, 100), det(400, 100)], 4)  # track 3 ends here, not yet popped
    tr.update([det(100, 100), det(400, 100), det(100, 500)], 5)  # 4 is tentative, never reported
    assert sorted(tr.flush()) == [1, 2, 3]
    assert tr.pop_ended() == [] and tr.flush() == []
    assert tr.predict(6) == [] and tr.update([], 7) == []
    tr.update([det(100, 100)], 8)
    assert [t.track_id for t in tr.update([det(100, 100)], 9)] == [5]


def test_boxes_are_floats_and_never_inverted():
    tr = SortTracker("cam", min_hits=1)
    tracks = []
    for f in range(8):  # a plate shrinking fast, then lost: the area's velocity goes negative
        tracks += tr.update([det(200, 200, 80 - 10 * f, 30 - 3.5 * f)] if f < 6 else [], f)
    coasting = [t for t in tracks if not t.matched]
    assert len(coasting) == 2 and all(t.box[2] - t.box[0] > 5 for t in coasting)  # stops shrinking, no collapse
    tracks += tr.update([Detection((10, 10, 5, 5), 0.5)], 8)  # an inverted box from upstream
    for t in tracks:
        assert all(type(v) is float for v in t.box) and type(t.confidence) is float
        assert t.box[2] >= t.box[0] and t.box[3] >= t.box[1]


def test_a_plate_that_drove_out_does_not_take_over_the_next_one_entering():
    """Plate 1 leaves on the right; a few frames later plate 2 enters at that edge, driving
    left. Without the frame size the coasting track 1 would take plate 2's detections."""
    size = (640, 360)
    tr = SortTracker("cam", max_age=15)
    for f in range(13):  # 50 px per frame to the right, gone from the detector at x=620
        x = 70 + 50 * f
        tr.update([det(x, 200)] if x < 620 else [], f, size)
    assert tr.pop_ended() == [1]  # its predicted centre left the frame (x=670 at frame 12)
    ids = set()
    for f in range(13, 20):
        ids |= {t.track_id for t in tr.update([det(610 - 40 * (f - 13), 205)], f, size)}
    assert ids == {2}


def test_a_coasting_track_does_not_take_over_a_vehicle_passing_in_the_next_lane():
    """Plate 1 drives right at y=100 and stops being detected; plate 2 drives left in the
    lane below, its first detection about one box diagonal from where track 1 is predicted,
    with no overlap. Track 1's velocity is known, so only overlap may match it: plate 2 is a
    track of its own (else its reads would go to a vehicle already read)."""
    tr = SortTracker("cam", max_age=15)
    w, h = 120, 40
    for f in range(8):
        tr.update([det(100 + 30 * f, 100, w, h)], f)
    tr.update([], 8)
    ids = set()
    for f in range(9, 14):
        ids |= {t.track_id for t in tr.update([det(440 - 30 * (f - 9), 190, w, h)], f) if t.matched}
    assert ids == {2}


def test_the_direction_of_travel_follows_the_plate_box():
    plate = (100.0, 100.0, 160.0, 120.0)
    assert direction(plate, (300.0, 100.0, 360.0, 120.0)) == Direction("crossing", 0.0)  # to the right
    assert direction(plate, (0.0, 100.0, 60.0, 120.0)) == Direction("crossing", 180.0)
    assert direction(plate, (90.0, 110.0, 180.0, 140.0)).motion == "approaching"  # grew a half
    assert direction(plate, (110.0, 95.0, 150.0, 108.0)).motion == "receding"
    assert direction(plate, (300.0, 100.0, 330.0, 120.0)).motion == "crossing"  # half hidden: not receding
    assert direction(plate, (105.0, 101.0, 165.0, 121.0)) == Direction("stationary", None)
