"""Where the camera was: reading coordinates as reviewers write or paste them, and merging their locations."""

from __future__ import annotations

import math

import pytest
from geographiclib.geodesic import Geodesic

from verify.case import Case, Claim, Place, ReviewPolicy
from verify.geodesy import Point, destination, distance_m, mean_point, offset_m
from verify.verdicts.places import CoordinateError, merge_locations, parse_coordinates, read_answer

CROSSING = (30.92222, 66.44472)

# text → (lat, lon, form) ; every form a reviewer is likely to type or paste
GOOD = [
    ("30.92222, 66.44472", 30.92222, 66.44472, "decimal"),
    ("30.92222,66.44472", 30.92222, 66.44472, "decimal"),
    ("30.92222 66.44472", 30.92222, 66.44472, "decimal"),
    ("30.92222; 66.44472", 30.92222, 66.44472, "decimal"),
    ("(30.92222, 66.44472)", 30.92222, 66.44472, "decimal"),
    ("  30.92222 ,\t66.44472  ", 30.92222, 66.44472, "decimal"),
    ("-33.8568, 151.2153", -33.8568, 151.2153, "decimal"),
    ("+30.9, +66.4", 30.9, 66.4, "decimal"),
    ("30,92222 66,44472", 30.92222, 66.44472, "decimal"),  # comma decimal separators, space between
    ("30,92222; 66,44472", 30.92222, 66.44472, "decimal"),
    ("30,92222, 66,44472", 30.92222, 66.44472, "decimal"),
    ("30.92222° N, 66.44472° E", 30.92222, 66.44472, "decimal"),
    ("30.92222N 66.44472E", 30.92222, 66.44472, "decimal"),
    ("N 30.92222 E 66.44472", 30.92222, 66.44472, "decimal"),
    ("33.8568 S, 151.2153 E", -33.8568, 151.2153, "decimal"),
    ("40.7128° N, 74.0060° W", 40.7128, -74.006, "decimal"),
    ("66.44472 E, 30.92222 N", 30.92222, 66.44472, "decimal"),  # longitude first, but lettered: unambiguous
    ("30°55′20″N 66°26′41″E", 30 + 55 / 60 + 20 / 3600, 66 + 26 / 60 + 41 / 3600, "degrees-minutes-seconds"),
    ("30°55'20\"N, 66°26'41\"E", 30 + 55 / 60 + 20 / 3600, 66 + 26 / 60 + 41 / 3600, "degrees-minutes-seconds"),
    ("30° 55' 20.5\" N 66° 26' 41.2\" E", 30 + 55 / 60 + 20.5 / 3600, 66 + 26 / 60 + 41.2 / 3600, "degrees-minutes-seconds"),
    ("30 55 20 N 66 26 41 E", 30 + 55 / 60 + 20 / 3600, 66 + 26 / 60 + 41 / 3600, "degrees-minutes-seconds"),
    ("N30°55.333' E66°26.683'", 30 + 55.333 / 60, 66 + 26.683 / 60, "degrees-minutes-seconds"),  # degrees, decimal minutes
    ("30º55'20''N 66º26'41''E", 30 + 55 / 60 + 20 / 3600, 66 + 26 / 60 + 41 / 3600, "degrees-minutes-seconds"),
    ("30°55′20″ 66°26′41″", 30 + 55 / 60 + 20 / 3600, 66 + 26 / 60 + 41 / 3600, "degrees-minutes-seconds"),
    ("37°57′03.72030″S 144°25′29.52440″E", -(37 + 57 / 60 + 3.7203 / 3600), 144 + 25 / 60 + 29.5244 / 3600,
     "degrees-minutes-seconds"),
    ("30 degrees 55' North, 66 degrees 26' East", 30 + 55 / 60, 66 + 26 / 60, "degrees-minutes-seconds"),
    ("lat 30.92222 lon 66.44472", 30.92222, 66.44472, "decimal"),
    ("lng: 66.44472, lat: 30.92222", 30.92222, 66.44472, "decimal"),
    ("120.5, 45.25", 45.25, 120.5, "decimal"),  # the first value cannot be a latitude: swapped, and said so
    # links pasted from the map sites
    ("https://www.openstreetmap.org/#map=17/30.92222/66.44472", 30.92222, 66.44472, "OpenStreetMap link"),
    ("https://www.openstreetmap.org/?mlat=30.92222&mlon=66.44472#map=17/30.9/66.4", 30.92222, 66.44472, "OpenStreetMap link"),
    ("openstreetmap.org/?lat=30.92222&lon=66.44472&zoom=17", 30.92222, 66.44472, "OpenStreetMap link"),
    ("https://www.google.com/maps/@30.92222,66.44472,17z", 30.92222, 66.44472, "Google Maps link"),
    ("https://www.google.com/maps/place/Friendship+Gate/@30.9211,66.4401,17z/data=!3m1!4b1!4m6!3m5!1s0x0:0x0!8m2"
     "!3d30.92222!4d66.44472!16s", 30.92222, 66.44472, "Google Maps link"),
    ("https://www.google.com/maps/place/30%C2%B055'20.0%22N+66%C2%B026'41.0%22E/@30.92222,66.4421,17z",
     30 + 55 / 60 + 20 / 3600, 66 + 26 / 60 + 41 / 3600, "Google Maps link"),
    ("https://maps.google.com/?q=30.92222,66.44472", 30.92222, 66.44472, "Google Maps link"),
    ("https://www.google.com/maps/search/?api=1&query=30.92222%2C66.44472", 30.92222, 66.44472, "Google Maps link"),
    ("https://www.google.co.uk/maps/@30.92222,66.44472,500m/data=!3m1!1e3", 30.92222, 66.44472, "Google Maps link"),
    ("https://maps.apple.com/?ll=30.92222,66.44472&q=Dropped%20Pin", 30.92222, 66.44472, "Apple Maps link"),
    ("https://maps.apple.com/?q=Spin%20Boldak&sll=30.92222,66.44472&z=10", 30.92222, 66.44472, "Apple Maps link"),
    ("https://maps.apple.com/place?coordinate=30.92222,66.44472", 30.92222, 66.44472, "Apple Maps link"),
    ("geo:30.92222,66.44472;u=35", 30.92222, 66.44472, "geo URI"),
]

# text → part of the reason it is refused
BAD = [
    ("91, 95", "out of range"),
    ("30.9, 181", "out of range"),
    ("120, 100", "out of range"),
    ("95 N 66 E", "out of range"),
    ("-30.9 S, 66.4 E", "minus sign and S"),
    ("30.9 N, 66.4 N", "both values are latitudes"),
    ("30.9 N, 66.4", "one N/S and one E/W"),
    ("30,9222,66,4447", "ambiguous commas"),
    ("30 55 20 66 26 41", "expected two values"),
    ("30 55, 66 26", "ambiguous"),
    ("30°75'N 66°26'E", "below 60"),
    ("30.5°10'N 66°26'E", "whole number"),
    ("30.92222", "expected two values"),
    ("1, 2, 3", "expected two values"),
    ("NaN, inf", "not coordinates"),
    ("1e1, 2e1", "not coordinates"),
    ("Spin Boldak gate", "not coordinates"),
    ("<script>alert(1)</script>", "not coordinates"),
    ("30.9, 66.4'; DROP TABLE annotations;--", "not coordinates"),
    ("۳۰٫۹۲, ۶۶٫۴۴", "not coordinates"),
    ("9" * 600, "longer than"),
    ("https://maps.app.goo.gl/abcdEFGH", "short link"),
    ("https://goo.gl/maps/xyz", "short link"),
    ("https://osm.org/go/xyz", "short link"),
    ("https://www.openstreetmap.org/node/123456", "without a position"),
    ("https://www.google.com/maps/place/Spin+Boldak", "without coordinates"),
    ("https://maps.apple.com/?q=Spin%20Boldak", "without coordinates"),
    ("https://example.org/?ll=30.9,66.4", "only OpenStreetMap"),
    ("javascript:alert(1)//30.9,66.4", "link"),
    ("https://maps.google.com/?q=120.5,45.2", "out of range"),
]


@pytest.mark.parametrize("text, lat, lon, form", GOOD, ids=[g[0][:40] for g in GOOD])
def test_coordinates_as_reviewers_write_them(text, lat, lon, form):
    parsed = parse_coordinates(text)
    assert parsed.point.lat == pytest.approx(lat, abs=1e-9) and parsed.point.lon == pytest.approx(lon, abs=1e-9)
    assert parsed.form == form


@pytest.mark.parametrize("text, reason", BAD, ids=[b[0][:40] for b in BAD])
def test_what_cannot_be_read_without_guessing_is_refused_with_a_reason(text, reason):
    with pytest.raises(CoordinateError) as caught:
        parse_coordinates(text)
    assert reason in str(caught.value)


def test_the_table_covers_at_least_thirty_inputs_of_each_kind():
    assert len(GOOD) >= 30 and len(BAD) >= 30


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_is_no_location_not_an_error(text):
    assert parse_coordinates(text) is None


def test_what_was_read_is_said_when_it_is_not_the_plain_reading():
    assert "longitude, latitude" in parse_coordinates("120.5, 45.25").note
    assert "longitude first" in parse_coordinates("66.44472 E, 30.92222 N").note
    assert "centre" in parse_coordinates("https://www.openstreetmap.org/#map=17/30.92222/66.44472").note
    assert parse_coordinates("https://www.openstreetmap.org/?mlat=30.92222&mlon=66.44472").note == ""  # a pin
    assert parse_coordinates("66.44472, 30.92222").note == ""  # both readings valid: taken as written, lat first


# --- geodesy ---------------------------------------------------------------------------------

def test_distances_are_geographiclib_s_on_wgs84():
    pairs = [((30.92222, 66.44472), (30.93, 66.45)), ((0, 0), (0, 179.5)), ((-41.32, 174.81), (40.96, -5.50)),
             ((89.9, 10), (-89.9, -170))]
    for (a, b) in pairs:
        assert distance_m(Point(*a), Point(*b)) == pytest.approx(Geodesic.WGS84.Inverse(*a, *b)["s12"], abs=1e-6)


def test_distance_of_a_published_geodesic():
    # Geoscience Australia's test of Vincenty's formulae: Flinders Peak to Buninyong, 54 972.271 m (GRS80)
    flinders = parse_coordinates("37°57′03.72030″S 144°25′29.52440″E").point
    buninyong = parse_coordinates("37°39′10.15610″S 143°55′35.38390″E").point
    assert distance_m(flinders, buninyong) == pytest.approx(54972.271, abs=0.002)
    # GeographicLib's documented example: Wellington to Salamanca, 19 959 679.267 m
    assert distance_m(Point(-41.32, 174.81), Point(40.96, -5.50)) == pytest.approx(19959679.267, abs=0.001)


def test_offsets_and_destinations_agree():
    origin = Point(*CROSSING)
    for azimuth, metres in ((0, 500), (90, 1200), (225, 80)):
        east, north = offset_m(origin, destination(origin, azimuth, metres))
        assert math.hypot(east, north) == pytest.approx(metres, abs=1e-6)
        assert math.degrees(math.atan2(east, north)) % 360 == pytest.approx(azimuth, abs=1e-6)
    centre = mean_point([destination(origin, 0, 100), destination(origin, 180, 100)])
    assert distance_m(centre, origin) < 0.01


# --- merging ---------------------------------------------------------------------------------

PLACE = Place("crossing", "The crossing", *CROSSING, radius_m=500, source="test")


def _case(min_reviewers: int = 2, place: Place = PLACE) -> Case:
    return Case(id="t", title="T", summary="", instructions="",
                claims=(Claim("at_gate", "At the gate.", "", place.id), Claim("other", "Other.")),
                label_groups=(), sources=(), review=ReviewPolicy(2, min_reviewers), places=(place,))


def _at(metres: float, azimuth: float = 90) -> str:
    p = destination(Point(*CROSSING), azimuth, metres)
    return f"{p.lat:.7f}, {p.lon:.7f}"


def _answer(who: str, text: str, precision: str | None = "vicinity", frame: str = "f1", **kw):
    return read_answer(who, frame, text, precision, kw.pop("side", None), kw.pop("cues", []), kw.pop("whole_video", False), **kw)


FRAMES = {"f1": "clip", "f2": "clip", "g1": "far-clip"}

# name → (answers, expected source status, expected check on the crossing)
MERGE_CASES = {
    "two reviewers agree within their precision": (
        [_answer("ana", _at(20)), _answer("ben", _at(150))], "agreed", "consistent"),
    "two reviewers too far apart for their precision": (
        [_answer("ana", _at(0), "exact"), _answer("ben", _at(300), "exact")], "disputed", "disputed"),
    "the same two points agree at locality precision": (
        [_answer("ana", _at(0), "locality"), _answer("ben", _at(300), "locality")], "agreed", "consistent"),
    "one reviewer only": ([_answer("ana", _at(20))], "pending", "pending"),
    "agreed, and far from the place": (
        [_answer("ana", _at(5000)), _answer("ben", _at(5080))], "agreed", "inconsistent"),
    "unknown precision is shown but not counted": (
        [_answer("ana", _at(20), "unknown"), _answer("ben", _at(40), None)], "unlocated", "unlocated"),
    "an unreadable text is not a point": (
        [_answer("ana", "near the gate"), _answer("ben", _at(40))], "pending", "pending"),
    "nobody located it": ([], "unlocated", "unlocated"),
    "region precision stretches the allowance": (
        [_answer("ana", _at(6000), "region"), _answer("ben", _at(7000), "region")], "agreed", "consistent"),
}


@pytest.mark.parametrize("name", MERGE_CASES)
def test_merge_rules(name):
    answers, status, check = MERGE_CASES[name]
    result = merge_locations(_case(), FRAMES, answers, {"clip": ["at_gate"], "far-clip": ["other"]})
    clip = next(s for s in result.sources if s.source_id == "clip")
    assert clip.status == status
    [claim] = result.claims
    assert [c.source_id for c in claim.checks] == ["clip"]  # only the sources said to show the claim
    assert claim.checks[0].verdict == check


def test_consensus_spread_and_distance_are_numbers_an_editor_can_check():
    a, b = _answer("ana", _at(50, 0), "exact"), _answer("ben", _at(50, 180), "vicinity")
    [clip, _] = merge_locations(_case(), FRAMES, [a, b]).sources
    assert clip.status == "agreed"
    assert clip.spread_m == pytest.approx(100, abs=0.2)  # within 10 m + 100 m: they agree
    # weighted by 1/precision²: the exact point pulls the consensus almost onto itself
    assert distance_m(Point(*clip.consensus), a.point) < 3
    assert clip.precision_m == 100  # the loosest precision among the agreeing reviewers
    assert clip.distances_m["crossing"] == pytest.approx(distance_m(Point(*clip.consensus), Point(*CROSSING)), abs=0.1)


def test_a_whole_video_location_wins_over_a_more_precise_frame_location():
    answers = [_answer("ana", _at(10), "exact", frame="f1"), _answer("ana", _at(300), "locality", frame="f2", whole_video=True),
               _answer("ben", _at(250), "locality", frame="f2")]
    [clip, _] = merge_locations(_case(), FRAMES, answers).sources
    [ana, ben] = clip.reviewers
    assert ana.whole_video and ana.frame_key == "f2" and ana.frames_located == 2


def test_a_reviewers_most_precise_frame_location_stands_for_the_source():
    answers = [_answer("ana", _at(900), "locality", frame="f1"), _answer("ana", _at(10), "exact", frame="f2"),
               _answer("ben", _at(20), "vicinity", frame="f1")]
    [clip, _] = merge_locations(_case(), FRAMES, answers).sources
    assert clip.reviewers[0].precision == "exact" and clip.status == "agreed"


def test_unparsed_texts_are_listed_with_frame_reviewer_and_text():
    answers = [_answer("ana", "<b>by the gate</b>"), _answer("ben", "30.9, 200")]
    result = merge_locations(_case(), FRAMES, answers)
    assert [(u["reviewer"], u["text"], u["frame_key"], u["source_id"]) for u in result.unparsed] == [
        ("ana", "<b>by the gate</b>", "f1", "clip"), ("ben", "30.9, 200", "f1", "clip")]
    assert all(u["reason"] for u in result.unparsed)


def test_a_place_without_coordinates_is_said_to_be_not_located():
    place = Place("crossing", "The crossing", radius_m=500)
    result = merge_locations(_case(place=place), FRAMES, [_answer("ana", _at(20)), _answer("ben", _at(30))])
    [claim] = result.claims
    assert claim.verdict == "place not located" and "not located" in claim.text
    assert result.sources[0].status == "agreed" and result.sources[0].distances_m == {}


@pytest.mark.parametrize("checks, verdict", [
    ((("clip", _at(20)), ("far-clip", _at(30))), "consistent"),
    ((("clip", _at(20)), ("far-clip", _at(9000))), "mixed"),
    ((("clip", _at(8000)), ("far-clip", _at(9000))), "inconsistent"),
    ((), "undetermined"),
])
def test_a_location_claim_over_its_sources(checks, verdict):
    answers = []
    for source, text in checks:
        frame = "f1" if source == "clip" else "g1"
        answers += [_answer("ana", text, frame=frame), _answer("ben", text, frame=frame)]
    [claim] = merge_locations(_case(), FRAMES, answers).claims
    assert claim.verdict == verdict
    for c in claim.checks:
        if c.distance_m is not None:
            assert c.allowed_m == 600  # radius 500 m + vicinity 100 m
