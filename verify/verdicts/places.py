"""Places: where reviewers say the camera was, and whether that fits the place a claim names.

Pure functions, no I/O:

- ``parse_coordinates`` reads what a reviewer types or pastes: decimal degrees, degrees-minutes-
  seconds, hemisphere letters, comma decimal separators, and links from OpenStreetMap, Google Maps
  and Apple Maps (and ``geo:`` URIs). It refuses anything it cannot read without guessing.
- ``merge_locations`` turns the reviewers' answers into, per source, the reviewers' points, their
  spread, a consensus when they agree within their stated precision (*disputed* when they do
  not), the distance from it to each place of the case; and per location claim a verdict
  (*consistent* / *inconsistent*) with the numbers. Distances come from ``verify.geodesy``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable
from urllib.parse import parse_qs, unquote_plus, urlsplit

from verify.case import Case
from verify.geodesy import Point, distance_m, mean_point

# Precision grades a reviewer picks (Atlos's exact / vicinity / locality, plus region and unknown):
# key → (choice shown in Label Studio, radius in metres; None: not stated, so not counted).
PRECISION = {
    "exact": ("Exact (±10 m)", 10.0),
    "vicinity": ("Vicinity (±100 m)", 100.0),
    "locality": ("Locality (±1 km)", 1000.0),
    "region": ("Region (±10 km)", 10000.0),
    "unknown": ("Unknown precision", None),
}
SIDE_CHOICES = {"afghan": "Afghan side", "pakistani": "Pakistani side", "other": "Elsewhere", "unknown": "Can't tell"}
SCOPE_CHOICES = {"frame": "This frame", "video": "The whole video"}
MAX_TEXT = 500  # characters; coordinates or a map link are far shorter

RULES = [
    "Locations: a reviewer's point counts for a source when its text parses as coordinates and a precision "
    "(exact ±10 m, vicinity ±100 m, locality ±1 km, region ±10 km) is given; 'unknown precision' points are shown, "
    "not counted. A reviewer's point for a source is their whole-video location if given, else their most precise "
    "frame location.",
    "Per source: spread = the largest distance between two reviewers' points; the reviewers agree when every two "
    "points lie within the sum of their precisions, and the consensus is then their mean weighted by 1/precision², "
    "with the loosest precision among them; otherwise the location is disputed. Fewer counted points than the "
    "case's minimum number of reviewers → pending (the point is shown as provisional).",
    "A location claim, per source said to show it: consistent when the consensus lies within the place's radius "
    "plus the consensus's precision, inconsistent when it lies beyond; over its sources: consistent if some are "
    "consistent and none inconsistent, inconsistent the other way round, mixed if both. A place without "
    "coordinates is not located and gets no verdict. Distances are geodesic (WGS84, GeographicLib).",
]


class CoordinateError(ValueError):
    """Text that is not coordinates verify can read without guessing; the message says why."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """Coordinates read from a reviewer's text: the point, the form it was written in, anything to know."""

    point: Point
    form: str  # decimal, degrees-minutes-seconds, OpenStreetMap link, Google Maps link, Apple Maps link, geo URI
    note: str = ""  # e.g. "read as longitude, latitude", "the map's centre, not a pin"


# --- parsing ---------------------------------------------------------------------------------

_HINT = ("write e.g. 30.9222, 66.4447 (decimal degrees, latitude first), 30°55′20″N 66°26′41″E, or paste a link "
         "from OpenStreetMap, Google Maps or Apple Maps")
_NORMALISE = str.maketrans({"′": "'", "’": "'", "‘": "'", "´": "'", "`": "'", "″": '"', "“": '"', "”": '"',
                            "º": "°", "˚": "°", "−": "-", "–": "-", "\u00a0": " ", "\u202f": " ", "(": " ", ")": " ",
                            "[": " ", "]": " "})
_WORDS = [(re.compile(r"\bnorth\b", re.I), "N"), (re.compile(r"\bsouth\b", re.I), "S"),
          (re.compile(r"\beast\b", re.I), "E"), (re.compile(r"\bwest\b", re.I), "W"),
          (re.compile(r"\blat(?:itude)?\b\s*[:=]?", re.I), " LAT "),
          (re.compile(r"\b(?:lon|lng|long|longitude)\b\s*[:=]?", re.I), " LON "),
          (re.compile(r"\bdeg(?:rees?)?\b", re.I), "°")]
_TOKEN = re.compile(r"\s*(LAT|LON|[NSEW]|[-+]?[0-9]+(?:[.,][0-9]+)?|[-+]?\.[0-9]+|[°'\"]|[,;/])")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:[.,][0-9]+)?|\.[0-9]+)")
_DECIMAL = r"[-+]?[0-9]+(?:\.[0-9]+)?"  # a number in a link: dot decimals only
_LINK_START = re.compile(r"^([a-z][a-z0-9+.-]*)://")
_LINK_INSIDE = re.compile(r"([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
# Google's own search domains (google.com, google.de, google.co.uk, google.com.af, …): a Google Maps link is on one of
# these exactly, so google.com.ev or google.zzz are not
_GOOGLE_DOMAINS = frozenset(
    "com ac ad ae al am as at az ba be bf bg bi bj bs bt by ca cat cc cd cf cg ch ci cl cm cn cv cz de dj dk dm dz ee es "
    "fi fm fr ga ge gf gg gl gm gp gr gy hn hr ht hu ie im iq is it je jo kg ki kz la li lk lt lu lv md me mg mk ml mn ms "
    "mu mv mw ne nl no nr nu pl pn ps pt ro rs ru rw sc se sh si sk sm sn so sr st td tg tk tl tm tn to tt us vg vu ws "
    "com.af com.ag com.ai com.ar com.au com.bd com.bh com.bn com.bo com.br com.bz com.co com.cu com.cy com.do com.ec "
    "com.eg com.et com.fj com.gh com.gi com.gt com.hk com.jm com.kh com.kw com.lb com.lc com.ly com.mm com.mt com.mx "
    "com.my com.na com.nf com.ng com.ni com.np com.om com.pa com.pe com.pg com.ph com.pk com.pr com.py com.qa com.sa "
    "com.sb com.sg com.sl com.sv com.tj com.tr com.tw com.ua com.uy com.vc com.vn "
    "co.ao co.bw co.ck co.cr co.id co.il co.in co.jp co.ke co.kr co.ls co.ma co.mz co.nz co.th co.tz co.ug co.uk co.uz "
    "co.ve co.vi co.za co.zm co.zw".split())


def _google_host(host: str) -> bool:
    """Whether a host (``www.`` taken off) is Google's: google.<one of its domains>, or maps.google.<the same>."""
    name = host[len("maps."):] if host.startswith("maps.") else host
    return name.startswith("google.") and name[len("google."):] in _GOOGLE_DOMAINS


def parse_coordinates(text: Any) -> Parsed | None:
    """Read coordinates from a reviewer's text; None when the text is empty.

    Raises:
        CoordinateError: the text is not coordinates, is ambiguous, or is out of range.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise CoordinateError(f"not text ({type(text).__name__}); {_HINT}")
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_TEXT:
        raise CoordinateError(f"longer than {MAX_TEXT} characters; {_HINT}")
    lowered = text.lower()
    if lowered.startswith("geo:"):
        return _geo_uri(text)
    if _LINK_START.match(lowered) or re.match(
            r"^(www\.|(maps\.)?(google\.|apple\.com|openstreetmap\.org|osm\.org|goo\.gl|maps\.app\.goo\.gl))", lowered):
        return _link(text)
    inside = _LINK_INSIDE.search(text)
    if inside:  # "30.9, 66.4 see http://x", "${jndi:ldap://x}": neither coordinates nor a link alone
        raise CoordinateError(f"not coordinates: a link ({inside.group(1).lower()}://…) inside other text; write the "
                              "coordinates alone, or paste a map link alone; " + _HINT)
    return _text(text)


def _text(text: str, form: str | None = None) -> Parsed:
    """Coordinates written out: two values, decimal or degrees-minutes-seconds, with or without hemisphere letters."""
    text = text.translate(_NORMALISE).replace("''", '"')
    for pattern, replacement in _WORDS:
        text = pattern.sub(replacement, text)
    if re.search(r"[0-9],[0-9]+,[0-9]", text):
        raise CoordinateError("ambiguous commas: with commas as decimal separators, separate the two values with a space "
                              "or ';' (30,9222; 66,4447)")
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise CoordinateError(f"not coordinates (unexpected {text[pos:].strip()[:1]!r}); {_HINT}")
        token = m.group(1)
        if tokens and m.start(1) == pos and _NUMBER.fullmatch(token) and _NUMBER.fullmatch(tokens[-1]):
            _run_together(tokens[-1], token)  # "30.9.5" read as 30.9 and .5, "30-66" as 30 and -66: refused
        tokens.append(token)
        pos = m.end()
    components = _components(tokens)
    values = [_value(c) for c in components]
    return _assign(values, form or ("degrees-minutes-seconds" if any(len(v[2]) > 1 for v in values) else "decimal"))


def _run_together(first: str, second: str) -> None:
    """Two numbers with nothing between them: never read as two values.

    Raises:
        CoordinateError: always, saying what looks wrong.
    """
    whole = first + second
    if second[0] in ".,":
        raise CoordinateError(f"{whole!r} is not a number (more than one decimal point); write the two values apart, "
                              f"e.g. 30.9222, 66.4447")
    raise CoordinateError(f"{whole!r}: a sign right after a number (a range? a minus?); write the two values apart, "
                          f"e.g. 30, -66, or with hemisphere letters (30N 66W)")


def _components(tokens: list[str]) -> list[list[str]]:
    """Split the tokens into the two coordinates (each: an optional designator, numbers and marks)."""
    designators = [t for t in tokens if t in ("N", "S", "E", "W", "LAT", "LON")]
    parts: list[list[str]] = []
    if designators:
        if len(designators) != 2:
            raise CoordinateError(f"expected one N/S and one E/W (or lat/lon) designator, found {len(designators)}; {_HINT}")
        prefix = tokens[0] in designators
        current: list[str] = []
        for t in tokens:
            if t in (",", ";", "/"):
                continue
            if t in designators and prefix and current:
                parts.append(current)
                current = []
            current.append(t)
            if t in designators and not prefix:
                parts.append(current)
                current = []
        if current:
            if not prefix:
                raise CoordinateError(f"text after the last hemisphere letter; {_HINT}")
            parts.append(current)
    else:
        current = []
        for i, t in enumerate(tokens):
            if t in (",", ";", "/"):
                if current:
                    parts.append(current)
                    current = []
                continue
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if t not in ("°", "'", '"') and current and ('"' in current or ("°" in current and following == "°")):
                parts.append(current)  # a new degrees value after a complete one: 30°55'20" 66°26'41"
                current = []
            current.append(t)
        if current:
            parts.append(current)
        if len(parts) == 1 and not any(m in parts[0] for m in ("°", "'", '"')) and len(parts[0]) == 2:
            parts = [[parts[0][0]], [parts[0][1]]]  # "30.92 66.44": two plain numbers separated by a space
    if len(parts) != 2:
        raise CoordinateError(f"expected two values (latitude and longitude), found {len(parts)}; {_HINT}")
    return parts


def _number(token: str) -> float:
    value = float(token.replace(",", "."))
    if not math.isfinite(value):
        raise CoordinateError(f"{token!r} is not a number")
    return value


def _value(component: list[str]) -> tuple[str | None, float, list[float]]:
    """(designator or None, signed decimal degrees, the numbers read) of one coordinate."""
    designator = next((t for t in component if t in ("N", "S", "E", "W", "LAT", "LON")), None)
    rest = [t for t in component if t != designator]
    numbers, marks = [], []
    for t in rest:
        if t in ("°", "'", '"'):
            marks.append((len(numbers), t))
        else:
            numbers.append(t)
    if not numbers or len(numbers) > 3:
        raise CoordinateError(f"a coordinate needs degrees, and at most minutes and seconds; {_HINT}")
    expected = ["°", "'", '"']
    for i, (after, mark) in enumerate(marks):
        if after == 0 or mark != expected[after - 1]:
            raise CoordinateError(f"marks out of order: degrees °, then minutes ′, then seconds ″; {_HINT}")
        if i and marks[i - 1][0] == after:
            raise CoordinateError(f"a mark written twice ({mark}{mark}): one ° after the degrees, one ′ after the minutes, "
                                  f"one ″ after the seconds; {_HINT}")
    if len(numbers) > 1 and not marks and designator is None:
        raise CoordinateError(f"degrees and minutes without ° ′ ″ or a hemisphere letter are ambiguous; {_HINT}")
    values = [_number(n) for n in numbers]
    negative = numbers[0].startswith("-")
    if any(n.startswith(("-", "+")) for n in numbers[1:]):
        raise CoordinateError("only the degrees may carry a sign")
    for v, n in zip(values[1:], numbers[1:]):
        if v >= 60:
            raise CoordinateError(f"minutes and seconds must be below 60, got {n}")
    if len(values) > 1 and values[0] != int(values[0]):
        raise CoordinateError("with minutes, the degrees must be a whole number")
    if len(values) == 3 and values[1] != int(values[1]):
        raise CoordinateError("with seconds, the minutes must be a whole number")
    degrees = abs(values[0]) + sum(v / 60 ** i for i, v in enumerate(values[1:], 1))
    if designator in ("S", "W"):
        if negative:
            raise CoordinateError(f"a minus sign and {designator} together; write one of them")
        degrees = -degrees
    elif negative:
        degrees = -degrees
    return designator, degrees, values


def _assign(values: list[tuple[str | None, float, list[float]]], form: str) -> Parsed:
    (d1, v1, _), (d2, v2, _) = values
    kinds = [{"N": "lat", "S": "lat", "LAT": "lat", "E": "lon", "W": "lon", "LON": "lon"}.get(d or "") for d in (d1, d2)]
    note = ""
    if kinds[0] and kinds[1]:
        if kinds[0] == kinds[1]:
            raise CoordinateError(f"both values are {'latitudes' if kinds[0] == 'lat' else 'longitudes'}; {_HINT}")
        lat, lon = (v1, v2) if kinds[0] == "lat" else (v2, v1)
        if kinds[0] == "lon":
            note = "written longitude first (read by its hemisphere letters)"
    elif kinds[0] or kinds[1]:
        raise CoordinateError(f"a hemisphere letter on one value only; {_HINT}")
    elif abs(v1) <= 90 and abs(v2) <= 180:
        lat, lon = v1, v2
    elif 90 < abs(v1) <= 180 and abs(v2) <= 90:
        lat, lon = v2, v1
        note = "read as longitude, latitude: the first value cannot be a latitude"
    else:
        raise CoordinateError(f"out of range: latitude must be within ±90 and longitude within ±180 (got {v1:g}, {v2:g})")
    if not -90 <= lat <= 90:
        raise CoordinateError(f"latitude {lat:g} is out of range (±90)")
    if not -180 <= lon <= 180:
        raise CoordinateError(f"longitude {lon:g} is out of range (±180)")
    return Parsed(Point(lat, lon), form, note)


def _pair(text: str, form: str, note: str = "", altitude: bool = False) -> Parsed:
    """A "lat,lon" pair from a link's parameter (dot decimals, comma between); with ``altitude`` (a geo URI), an
    optional third number. Anything else after the pair is refused, never ignored."""
    third = rf"(?:,\s*{_DECIMAL}\s*)?" if altitude else ""
    m = re.fullmatch(rf"\s*({_DECIMAL})\s*,\s*({_DECIMAL})\s*{third}", text)
    if not m:
        start = re.match(rf"\s*{_DECIMAL}\s*,\s*{_DECIMAL}(?![0-9.])", text)
        if start and text[start.end():].strip():
            raise CoordinateError(f"text after the coordinates in the {form} ({text[start.end():].strip()[:24]!r}): "
                                  "the link must hold latitude,longitude" + (" and at most an altitude" if altitude else "")
                                  + "; paste the coordinates instead")
        parsed = _text(text, form)
        return Parsed(parsed.point, form, "; ".join(x for x in (parsed.note, note) if x))
    parsed = _assign([(None, _number(m.group(1)), [0.0]), (None, _number(m.group(2)), [0.0])], form)
    if parsed.note:
        raise CoordinateError(f"the link's coordinates are out of range ({m.group(1)}, {m.group(2)})")
    return Parsed(parsed.point, form, note)


def _geo_uri(text: str) -> Parsed:
    """RFC 5870: geo:lat,lon[,alt][;u=…]."""
    body, _, parameters = text[4:].split("?", 1)[0].partition(";")
    crs = next((p.split("=", 1)[1].strip().lower() for p in parameters.split(";") if p.lower().startswith("crs=")), "wgs84")
    if crs != "wgs84":
        raise CoordinateError(f"a geo URI in another coordinate system ({crs[:20]!r}) than WGS 84; paste WGS 84 coordinates")
    return _pair(body, "geo URI", altitude=True)


def _link(text: str) -> Parsed:
    if re.search(r"\s", text):
        raise CoordinateError("a link with other text after it (or spaces in it): paste the link alone, or the "
                              "coordinates alone")
    url = text if "://" in text else "https://" + text
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise CoordinateError(f"not a link verify can read (its host or port is malformed); {_HINT}")
    if parts.scheme.lower() not in ("http", "https"):
        raise CoordinateError(f"a {parts.scheme.lower()}:// link: only http(s) links from OpenStreetMap, Google Maps and "
                              f"Apple Maps are read; {_HINT}")
    host = (parts.hostname or "").lower()
    host = host[4:] if host.startswith("www.") else host
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    path = unquote_plus(parts.path)
    if host in ("goo.gl", "maps.app.goo.gl", "osm.org") or host.endswith(".goo.gl") or (
            host.endswith("openstreetmap.org") and path.startswith("/go/")):
        raise CoordinateError("a short link holds no coordinates: open it and paste the full link or the coordinates")
    if host == "openstreetmap.org" or host.endswith(".openstreetmap.org"):
        form = "OpenStreetMap link"
        if "mlat" in query and "mlon" in query:
            return _pair(f"{query['mlat']},{query['mlon']}", form)
        if "lat" in query and "lon" in query:
            return _pair(f"{query['lat']},{query['lon']}", form, "the map's centre, not a pin")
        m = re.search(r"map=[0-9.]+/([-+0-9.]+)/([-+0-9.]+)", parts.fragment)
        if m:
            return _pair(f"{m.group(1)},{m.group(2)}", form, "the map's centre, not a pin")
        raise CoordinateError("an OpenStreetMap link without a position (object links hold none): share the map "
                              "position, or paste the coordinates")
    if _google_host(host) and (host.startswith("maps.") or path.startswith("/maps")):
        form = "Google Maps link"
        m = re.search(r"!3d([-+0-9.]+)!4d([-+0-9.]+)", path)
        if m:
            return _pair(f"{m.group(1)},{m.group(2)}", form)
        for key in ("q", "query", "ll", "center", "destination", "daddr"):
            if key in query and re.search(r"[0-9]", query[key]):
                return _pair(query[key], form)
        m = re.search(r"/maps/(?:place|search)/([^/@]+)", path)
        if m and re.search(r"[0-9]", m.group(1)) and not re.search(r"[a-z]{4,}", m.group(1), re.I):
            return _pair(m.group(1), form)
        m = re.search(r"/@([-+0-9.]+),([-+0-9.]+)", path)
        if m:
            return _pair(f"{m.group(1)},{m.group(2)}", form, "the map's centre, not a pin")
        raise CoordinateError("a Google Maps link without coordinates: drop a pin and share it, or paste the coordinates")
    if host in ("maps.apple.com", "maps.apple"):
        form = "Apple Maps link"
        for key, note in (("ll", ""), ("coordinate", ""), ("q", ""), ("sll", "the search's centre"),
                          ("center", "the map's centre, not a pin")):
            if key in query and re.fullmatch(r"\s*[-+]?[0-9.]+\s*,\s*[-+]?[0-9.]+\s*", query[key]):
                return _pair(query[key], form, note)
        raise CoordinateError("an Apple Maps link without coordinates (ll=…): drop a pin and share it, or paste the coordinates")
    raise CoordinateError(f"a link to {host or 'an unknown site'}: only OpenStreetMap, Google Maps and Apple Maps links are "
                          "read; paste the coordinates instead")


# --- what one reviewer said -----------------------------------------------------------------


@dataclass(slots=True)
class LocationAnswer:
    """One reviewer's answer to "where was the camera" on one frame, decoded."""

    reviewer: str
    frame_key: str
    text: str = ""
    point: Point | None = None
    form: str = ""
    note: str = ""
    error: str | None = None  # why the text could not be read
    precision: str | None = None  # key of PRECISION
    side: str | None = None  # key of SIDE_CHOICES
    cues: list[str] = field(default_factory=list)
    whole_video: bool = False
    lead: bool = False
    created_at: str | None = None

    @property
    def radius_m(self) -> float | None:
        return PRECISION[self.precision][1] if self.precision else None

    @property
    def given(self) -> bool:
        return bool(self.text or self.precision or self.side or self.cues)


def read_answer(reviewer: str, frame_key: str, text: str | None, precision: str | None, side: str | None,
                cues: Iterable[str], whole_video: bool, lead: bool = False, created_at: str | None = None) -> LocationAnswer:
    """A location answer with its text parsed (an unreadable text keeps the text and the reason, never raises)."""
    answer = LocationAnswer(reviewer, frame_key, (text or "").strip(), precision=precision, side=side, cues=list(cues),
                            whole_video=whole_video, lead=lead, created_at=created_at)
    try:
        parsed = parse_coordinates(answer.text)
    except CoordinateError as exc:
        answer.error = str(exc)
        return answer
    if parsed:
        answer.point, answer.form, answer.note = parsed.point, parsed.form, parsed.note
    return answer


# --- merging ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ReviewerPoint:
    reviewer: str
    lat: float
    lon: float
    precision: str
    radius_m: float | None
    counted: bool
    frame_key: str
    whole_video: bool
    frames_located: int
    side: str | None
    cues: list[str]
    text: str
    form: str
    note: str


@dataclass(slots=True)
class SourceLocation:
    source_id: str
    status: str  # agreed, disputed, pending, unlocated
    reviewers: list[ReviewerPoint]
    spread_m: float | None
    consensus: list[float] | None  # [lat, lon]
    precision_m: float | None
    distances_m: dict[str, float]  # place id → metres from the consensus
    sides: dict[str, int]
    frames_located: int
    far_pairs: list[dict[str, Any]] = field(default_factory=list)  # the pairs that disagree: reviewers, distance, allowed


@dataclass(slots=True)
class PlaceCheck:
    source_id: str
    verdict: str  # consistent, inconsistent, disputed, pending, unlocated, place not located
    distance_m: float | None
    allowed_m: float | None  # the place's radius plus the consensus's precision


@dataclass(slots=True)
class ClaimPlace:
    claim_id: str
    place_id: str
    verdict: str  # consistent, inconsistent, mixed, undetermined, place not located
    checks: list[PlaceCheck]
    text: str


@dataclass(slots=True)
class Locations:
    places: list[dict[str, Any]]
    sources: list[SourceLocation]
    claims: list[ClaimPlace]
    unparsed: list[dict[str, Any]]  # {frame_key, source_id, reviewer, text, reason}
    rules: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"places": self.places, "sources": [asdict(s) for s in self.sources],
                "claims": [asdict(c) for c in self.claims], "unparsed": self.unparsed, "rules": self.rules}


def _rank(a: LocationAnswer) -> tuple:
    radius = a.radius_m
    return (not a.whole_video, radius is None, radius or 0.0, _reverse(a.created_at or ""))


def _reverse(text: str) -> tuple:
    return tuple(-ord(c) for c in text)  # later times first


def merge_locations(case: Case, source_of_frame: dict[str, str], answers: list[LocationAnswer],
                    source_claims: dict[str, list[str]] | None = None) -> Locations:
    """Merge the reviewers' location answers per source, and check each location claim (pure; see RULES).

    ``source_of_frame``: frame key → source id; ``source_claims``: source id → the claims it is said to
    show (empty or missing: every claim). Lead reviewers' answers are not counted (see the README).
    """
    source_claims = source_claims or {}
    places = {p.id: p for p in case.places}
    sources = sorted(set(source_of_frame.values()))
    unparsed = []
    by_source: dict[str, dict[str, list[LocationAnswer]]] = {s: {} for s in sources}
    for a in answers:
        source = source_of_frame.get(a.frame_key)
        if source is None or a.lead:
            continue
        if a.error:
            unparsed.append({"frame_key": a.frame_key, "source_id": source, "reviewer": a.reviewer, "text": a.text,
                             "reason": a.error})
        if a.point is not None:
            by_source[source].setdefault(a.reviewer, []).append(a)
    results = [_source_location(s, by_source[s], places, case.review.min_reviewers) for s in sources]
    by_id = {r.source_id: r for r in results}
    claims = []
    for claim in case.claims:
        if not claim.place:
            continue
        place = places[claim.place]
        showing = [s for s in sources if not source_claims.get(s) or claim.id in source_claims[s]]
        checks = [_check(by_id[s], place) for s in showing]
        claims.append(_claim_place(claim.id, place, checks))
    return Locations(
        places=[{"id": p.id, "name": p.name, "lat": p.lat, "lon": p.lon, "radius_m": p.radius_m, "source": p.source,
                 "located": p.located} for p in case.places],
        sources=results, claims=claims, unparsed=unparsed, rules=RULES)


def _source_location(source_id: str, mine: dict[str, list[LocationAnswer]], places: dict, min_reviewers: int) -> SourceLocation:
    points = []
    for reviewer, answers in sorted(mine.items()):
        best = min(answers, key=_rank)
        points.append(ReviewerPoint(
            reviewer=reviewer, lat=round(best.point.lat, 7), lon=round(best.point.lon, 7),
            precision=best.precision or "unknown", radius_m=best.radius_m, counted=best.radius_m is not None,
            frame_key=best.frame_key, whole_video=best.whole_video, frames_located=len({a.frame_key for a in answers}),
            side=best.side, cues=best.cues, text=best.text, form=best.form, note=best.note))
    counted = [p for p in points if p.counted]
    spread = None
    far = []
    for i, a in enumerate(counted):
        for b in counted[i + 1:]:
            d = distance_m(Point(a.lat, a.lon), Point(b.lat, b.lon))
            spread = d if spread is None else max(spread, d)
            if d > a.radius_m + b.radius_m:
                far.append({"reviewers": [a.reviewer, b.reviewer], "distance_m": round(d, 1),
                            "allowed_m": a.radius_m + b.radius_m})
    sides = dict(Counter(p.side for p in points if p.side))
    located = sum(p.frames_located for p in points)
    if not counted:
        status = "unlocated"
    elif far:
        status = "disputed"
    elif len(counted) < min_reviewers:
        status = "pending"
    else:
        status = "agreed"
    consensus = precision = None
    distances: dict[str, float] = {}
    if counted and not far:
        centre = mean_point([Point(p.lat, p.lon) for p in counted], [1 / p.radius_m ** 2 for p in counted])
        consensus, precision = centre.rounded(), max(p.radius_m for p in counted)
        distances = {pid: round(distance_m(centre, Point(p.lat, p.lon)), 1) for pid, p in places.items() if p.located}
    return SourceLocation(source_id, status, points, round(spread, 1) if spread is not None else None, consensus, precision,
                          distances, sides, located, far)


def _check(source: SourceLocation, place) -> PlaceCheck:  # noqa: ANN001
    if not place.located:
        return PlaceCheck(source.source_id, "place not located", None, None)
    if source.status != "agreed":
        return PlaceCheck(source.source_id, source.status, source.distances_m.get(place.id),
                          place.radius_m + source.precision_m if source.precision_m else None)
    d, allowed = source.distances_m[place.id], place.radius_m + source.precision_m
    return PlaceCheck(source.source_id, "consistent" if d <= allowed else "inconsistent", d, allowed)


def _claim_place(claim_id: str, place, checks: list[PlaceCheck]) -> ClaimPlace:  # noqa: ANN001
    if not place.located:
        return ClaimPlace(claim_id, place.id, "place not located", checks,
                          f"{place.name} is not located: the case gives no coordinates for it, so no footage can be "
                          "checked against it.")
    good = [c for c in checks if c.verdict == "consistent"]
    bad = [c for c in checks if c.verdict == "inconsistent"]
    verdict = "mixed" if good and bad else "consistent" if good else "inconsistent" if bad else "undetermined"

    def km(m: float) -> str:
        return f"{m / 1000:.2f} km" if m >= 1000 else f"{m:.0f} m"

    words = [f"{c.source_id}: {km(c.distance_m)} from {place.name} (within {km(c.allowed_m)}: {c.verdict})"
             if c.distance_m is not None and c.verdict in ("consistent", "inconsistent")
             else f"{c.source_id}: {c.verdict}" for c in checks]
    text = "; ".join(words) + "." if words else "No source is said to show this claim."
    return ClaimPlace(claim_id, place.id, verdict, checks, text)
