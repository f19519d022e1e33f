"""The case: claims under verification, the sources that bear on them, and the label schema.

A case is a YAML file (see ``configs/spin-boldak-2021.yaml``). ``load_case`` reads and
checks it; every problem is a ``CaseError`` naming the file, the key and what is allowed,
so a verifier can write a case for another story without reading this code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from verify.urls import has_login, is_web_url
from verify.errors import CaseError

SCHEMA = "verify.case/1"
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
GROUP_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
SIDES = ("afghan", "pakistani", "unknown", "other")
# Reviewers answer every claim for every frame with one of these.
VERDICT_CHOICES = {"supports": "Supports", "contradicts": "Contradicts", "cant_tell": "Can't tell"}
PALETTE = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Characters that have no business in a label shown to a reviewer (controls, XML-illegal).
BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Real case files are a few KB; a bound on size keeps a hostile one from costing minutes or gigabytes.
MAX_CASE_BYTES = 256 * 1024
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def iso_datetime(value: object) -> str | None:
    """``value`` as an ISO 8601 date or date-time string (``2021-07-14``, ``2021-07-14T09:12Z``), or None if it is not one."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str) or not ISO_DATE.match(value.strip()):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            date.fromisoformat(text)
        else:
            digits = re.sub(r"(\.\d{6})\d+", r"\1", text)  # fromisoformat takes at most microseconds
            datetime.fromisoformat(digits.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:  # 2021-13-45, 99:99, …
        return None
    return text


def _show(value: object, limit: int = 60) -> str:
    """A value for an error message: its repr, cut short (a hostile value may be huge); a text that YAML 1.1 would
    have read as a number says why it is text here."""
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    if isinstance(value, str) and _SEXAGESIMAL.match(value.strip()):
        text += (" (text: case files are read as YAML 1.2, which has no base-60 numbers, where YAML 1.1 would have read "
                 "it as minutes or seconds; write a decimal number, e.g. 1.0333 for 1°02′)")
    elif isinstance(value, str) and _SEPARATED.match(value.strip()):
        text += " (text: YAML 1.2 numbers have no _ separators; write the digits alone)"
    elif isinstance(value, str) and re.match(r"^[-+]?0b[01_]+$", value.strip()):
        text += " (text: YAML 1.2 has no binary numbers; write it in decimal)"
    return text


_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_SEPARATED = re.compile(r"^[-+]?[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$")


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: fast, and it caps nesting depth itself


class _CaseLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """YAML as a case file may use it: no aliases (they can expand into gigabytes), no duplicate keys
    (the last would silently win), and dates kept as the text written (checked as ISO 8601 by the case)."""

    def construct_object(self, node, deep=False):  # noqa: ANN001
        if node in self.constructed_objects or node in self.recursive_objects:
            raise yaml.constructor.ConstructorError(
                None, None, "uses a YAML alias (*name); aliases are not allowed in case files, write the value out",
                node.start_mark)
        return super().construct_object(node, deep)

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        mapping = super().construct_mapping(node, deep)
        if len(mapping) < len(node.value):
            seen: set = set()
            for key_node, _ in node.value:
                key = (key_node.tag, getattr(key_node, "value", None)) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_show(key_node.value)}; each key may appear once (the later one "
                        "would silently replace the earlier)", key_node.start_mark)
                seen.add(key)
            raise yaml.constructor.ConstructorError(None, None, "duplicate key in a mapping; each key may appear once",
                                                    node.start_mark)
        return mapping


_CaseLoader.add_constructor("tag:yaml.org,2002:timestamp", _CaseLoader.construct_yaml_str)

# Numbers as YAML 1.2 (the core schema) reads them, not as PyYAML's YAML 1.1: ``1:02`` is not base 60 (62),
# ``017`` is seventeen, not octal 15, ``1_000`` is not a number, and ``1e5`` (no dot) is a float, not text.
# Whatever is not a YAML 1.2 number stays text, and the case's checks refuse it with its key and the reason.
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_CaseLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_CaseLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_12, list("-+0123456789"))
_CaseLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))


def _int_12(loader: Any, node: Any) -> int:
    text = loader.construct_scalar(node)
    if not _INT_12.match(text):  # an explicit !!int tag on something else
        raise yaml.constructor.ConstructorError(None, None, f"{_show(text)} is not an integer", node.start_mark)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


def _float_12(loader: Any, node: Any) -> float:
    text = loader.construct_scalar(node)
    if not (_FLOAT_12.match(text) or _INT_12.match(text)):
        raise yaml.constructor.ConstructorError(None, None, f"{_show(text)} is not a number", node.start_mark)
    lowered = text.lower()
    if lowered.lstrip("+-") in (".inf", ".nan"):
        return float(lowered.replace(".", ""))
    return float(text) if not text.startswith(("0o", "0x")) else float(_int_12(loader, node))


_CaseLoader.add_constructor("tag:yaml.org,2002:int", _int_12)
_CaseLoader.add_constructor("tag:yaml.org,2002:float", _float_12)
@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    claimed_by: str = ""
    place: str | None = None  # id of the place the claim asserts (a location claim), see Place


@dataclass(frozen=True)
class Place:
    """A place a claim names: where it is (if known), how far around it counts, and where the coordinates come from."""

    id: str
    name: str
    lat: float | None = None
    lon: float | None = None
    radius_m: float = 500.0
    source: str = ""  # where the coordinates come from (a citation)

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None


@dataclass(frozen=True)
class Label:
    value: str
    color: str


@dataclass(frozen=True)
class LabelGroup:
    name: str
    title: str
    labels: tuple[Label, ...]


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    url: str | None = None
    platform: str | None = None
    uploader: str | None = None
    posted_at: str | None = None
    side: str = "unknown"
    claims: tuple[str, ...] = ()
    description: str = ""
    graphic: bool = False  # distressing footage: its frames reach reviewers blurred and greyscale until they choose to look

    def provenance(self) -> dict[str, Any]:
        return {
            "source_id": self.id,
            "title": self.title,
            "url": self.url,
            "platform": self.platform,
            "uploader": self.uploader,
            "posted_at": self.posted_at,
            "side": self.side,
            "claims": list(self.claims),
            "description": self.description,
            "graphic": self.graphic,
        }


@dataclass(frozen=True)
class ReviewPolicy:
    reviewers_per_frame: int = 2
    min_reviewers: int = 2


@dataclass(frozen=True)
class FramePolicy:
    max_interval_s: float = 2.0


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    summary: str
    instructions: str
    claims: tuple[Claim, ...]
    label_groups: tuple[LabelGroup, ...]
    sources: tuple[Source, ...]
    review: ReviewPolicy = field(default_factory=ReviewPolicy)
    frames: FramePolicy = field(default_factory=FramePolicy)
    places: tuple[Place, ...] = ()
    path: str = ""
    sha256: str = ""

    def claim(self, claim_id: str) -> Claim:
        return next(c for c in self.claims if c.id == claim_id)

    def source(self, source_id: str) -> Source | None:
        return next((s for s in self.sources if s.id == source_id), None)

    def label_values(self) -> set[str]:
        return {label.value for group in self.label_groups for label in group.labels}


def load_case(path: str | Path) -> Case:
    """Read and check a case file.

    Raises:
        CaseError: the file is missing, not YAML, or breaks the schema; the message names
            the file and the key.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a folder, a FIFO (would block), a device
            raise CaseError(f"{path}: not a regular file; give the path of a case YAML file (see configs/)")
        with open(path, "rb") as f:
            raw = f.read(MAX_CASE_BYTES + 1)
    except FileNotFoundError:
        raise CaseError(f"{path}: case file not found; give the path of a case YAML file (see configs/)")
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise CaseError(f"{path}: a symbolic link that loops back on itself; give the path of the case file itself")
        raise CaseError(f"{path}: cannot read the case file: {exc.strerror}")
    return parse_case(raw, name=str(path))


def parse_case(raw: bytes | str, name: str = "<case>") -> Case:
    """Parse case YAML text; ``name`` is used in error messages."""
    if len(raw) > MAX_CASE_BYTES:
        raise CaseError(f"{name}: larger than {MAX_CASE_BYTES // 1024} KB; a case file is a few KB of YAML (is this the right file?)")
    if isinstance(raw, bytes):
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise CaseError(f"{name}: encoded as UTF-16; save the case file as UTF-8")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise CaseError(f"{name}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); save the case file as UTF-8")
    else:
        text = raw
    try:
        doc = yaml.load(text, Loader=_CaseLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or "invalid YAML").split())
        raise CaseError(f"{name}: not valid YAML{where}: {problem}; fix it and retry")
    except (ValueError, RecursionError, OverflowError, MemoryError) as exc:  # e.g. an integer of 5,000 digits
        raise CaseError(f"{name}: not usable YAML ({type(exc).__name__}: {_show(str(exc), 100)}); fix it and retry")
    checker = _Checker(name)
    case = checker.case(doc)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Case(**{**case.__dict__, "path": name, "sha256": sha})


class _Checker:
    """Walks the YAML document and raises CaseError at the first problem."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, key: str, message: str) -> None:
        key = key if len(key) <= 120 else key[:119] + "…"  # keys can carry a hostile name
        key = CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), key)  # … with newlines or escape codes
        raise CaseError(f"{self.name}: {key}: {message}")

    def mapping(self, value: Any, key: str, required: set[str], optional: set[str]) -> dict:
        if not isinstance(value, dict):
            self.fail(key or "top level", f"expected a mapping with keys {sorted(required | optional)}")
        unknown = set(value) - required - optional
        if unknown:
            allowed = ", ".join(sorted(required | optional))
            self.fail(f"{key + '.' if key else ''}{sorted(unknown, key=str)[0]}", f"unknown key; allowed keys: {allowed}")
        missing = required - set(value)
        if missing:
            self.fail(f"{key + '.' if key else ''}{sorted(missing)[0]}", "required key is missing")
        return value

    def text(self, value: Any, key: str, *, optional: bool = False, limit: int = 4000) -> str | None:
        if optional and (value is None or value == ""):
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "expected non-empty text" + (" or null" if optional else ""))
        if BAD_TEXT.search(value):
            self.fail(key, "contains control characters; remove them")
        if len(value) > limit:
            self.fail(key, f"longer than {limit} characters")
        return value.strip()

    def ident(self, value: Any, key: str, pattern: re.Pattern = ID_PATTERN) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            self.fail(key, f"{_show(value)} is not a valid id; use lowercase letters, digits, '_' or '-' (pattern {pattern.pattern})")
        return value

    def count(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(key, f"expected a whole number from {low} to {high}, got {_show(value)}")
        return value

    def case(self, doc: Any) -> Case:
        doc = self.mapping(
            doc,
            "",
            required={"id", "title", "claims", "labels"},
            optional={"schema", "summary", "instructions", "sources", "review", "frames", "places"},
        )
        if doc.get("schema", SCHEMA) != SCHEMA:
            self.fail("schema", f"unsupported schema {_show(doc['schema'])}; this verify reads {SCHEMA!r}")
        places = self.places(doc.get("places") or [])
        claims = self.claims(doc["claims"], {p.id for p in places})
        claim_ids = {c.id for c in claims}
        review = self.review(doc.get("review") or {})
        return Case(
            id=self.ident(doc["id"], "id"),
            title=self.text(doc["title"], "title", limit=200),
            summary=self.text(doc.get("summary"), "summary", optional=True) or "",
            instructions=self.text(doc.get("instructions"), "instructions", optional=True, limit=10000) or "",
            claims=claims,
            label_groups=self.labels(doc["labels"]),
            sources=self.sources(doc.get("sources") or [], claim_ids),
            review=review,
            frames=self.frame_policy(doc.get("frames") or {}),
            places=places,
        )

    def places(self, value: Any) -> tuple[Place, ...]:
        if not isinstance(value, list):
            self.fail("places", "expected a list of places, each with id and name (and latitude, longitude, radius_m, source)")
        places, seen = [], set()
        for i, item in enumerate(value):
            key = f"places[{i}]"
            item = self.mapping(item, key, required={"id", "name"}, optional={"latitude", "longitude", "radius_m", "source"})
            place_id = self.ident(item["id"], f"{key}.id")
            if place_id in seen:
                self.fail(f"{key}.id", f"duplicate place id {place_id!r}; place ids must be unique")
            seen.add(place_id)
            lat, lon = item.get("latitude"), item.get("longitude")
            if (lat is None) != (lon is None):
                self.fail(f"{key}.{'longitude' if lon is None else 'latitude'}", "give both latitude and longitude, or "
                          "neither (an unlocated place: the report says so)")
            for name, number, limit in (("latitude", lat, 90), ("longitude", lon, 180)):
                if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))
                                           or not -limit <= number <= limit):
                    self.fail(f"{key}.{name}", f"expected decimal degrees from -{limit} to {limit} (north and east "
                              f"positive), got {_show(number)}")
            radius = item.get("radius_m", 500)
            if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 1 <= radius <= 1_000_000:
                self.fail(f"{key}.radius_m", f"expected metres from 1 to 1000000, got {_show(radius)}")
            source = self.text(item.get("source"), f"{key}.source", optional=True, limit=1000) or ""
            if lat is not None and not source:
                self.fail(f"{key}.source", "say where the coordinates come from (a map, a gazetteer, a cited page)")
            places.append(Place(place_id, self.text(item["name"], f"{key}.name", limit=200),
                                None if lat is None else float(lat), None if lon is None else float(lon),
                                float(radius), source))
        return tuple(places)

    def claims(self, value: Any, place_ids: set[str] = frozenset()) -> tuple[Claim, ...]:
        if not isinstance(value, list) or not value:
            self.fail("claims", "expected a non-empty list of claims, each with id and text")
        claims, seen = [], set()
        for i, item in enumerate(value):
            key = f"claims[{i}]"
            item = self.mapping(item, key, required={"id", "text"}, optional={"claimed_by", "place"})
            claim_id = self.ident(item["id"], f"{key}.id")
            if claim_id in seen:
                self.fail(f"{key}.id", f"duplicate claim id {claim_id!r}; claim ids must be unique")
            seen.add(claim_id)
            text = self.text(item["text"], f"{key}.text", limit=500)
            if text.startswith("$"):
                self.fail(f"{key}.text", "must not start with '$' (Label Studio reads that as a task field)")
            claimed_by = self.text(item.get("claimed_by"), f"{key}.claimed_by", optional=True) or ""
            place = item.get("place")
            if place is not None and (not isinstance(place, str) or place not in place_ids):
                self.fail(f"{key}.place", f"unknown place id {_show(place)}; known: {', '.join(sorted(place_ids)) or 'none (add places:)'}")
            claims.append(Claim(claim_id, text, claimed_by, place))
        return tuple(claims)

    def labels(self, value: Any) -> tuple[LabelGroup, ...]:
        if not isinstance(value, dict) or not value:
            self.fail("labels", "expected a mapping of group name to {title, labels}, e.g. flags: {title: Flags, labels: [...]}")
        groups, seen_values, colour = [], set(), 0
        reserved = {"frame", "notes"}
        for name, group in value.items():
            key = f"labels.{name}"
            self.ident(name, key, GROUP_PATTERN)
            if name in reserved or name.startswith(("claim_", "geo_")):
                self.fail(key, f"group name {name!r} is reserved; choose another")
            group = self.mapping(group, key, required={"labels"}, optional={"title"})
            title = self.text(group.get("title") or name.replace("_", " ").capitalize(), f"{key}.title", limit=100)
            items = group["labels"]
            if not isinstance(items, list) or not items:
                self.fail(f"{key}.labels", "expected a non-empty list of label names")
            labels = []
            for j, item in enumerate(items):
                ikey = f"{key}.labels[{j}]"
                if isinstance(item, dict):
                    item = self.mapping(item, ikey, required={"value"}, optional={"color"})
                    label_value, color = item["value"], item.get("color")
                else:
                    label_value, color = item, None
                label_value = self.text(label_value, ikey, limit=100)
                if label_value.startswith("$"):
                    self.fail(ikey, "a label must not start with '$'")
                if label_value in seen_values:
                    self.fail(ikey, f"duplicate label {label_value!r}; every label must be unique across groups")
                seen_values.add(label_value)
                if color is None:
                    color = PALETTE[colour % len(PALETTE)]
                    colour += 1
                elif not isinstance(color, str) or not HEX_COLOR.match(color):
                    self.fail(f"{ikey}.color", f"expected a colour like '#1f77b4', got {_show(color)}")
                labels.append(Label(label_value, color))
            groups.append(LabelGroup(name, title, tuple(labels)))
        return tuple(groups)

    def sources(self, value: Any, claim_ids: set[str]) -> tuple[Source, ...]:
        if not isinstance(value, list):
            self.fail("sources", "expected a list of sources")
        sources, seen = [], set()
        optional = {"url", "platform", "uploader", "posted_at", "side", "claims", "description", "graphic"}
        for i, item in enumerate(value):
            key = f"sources[{i}]"
            item = self.mapping(item, key, required={"id", "title"}, optional=optional)
            source_id = self.ident(item["id"], f"{key}.id")
            if source_id in seen:
                self.fail(f"{key}.id", f"duplicate source id {source_id!r}; source ids must be unique")
            seen.add(source_id)
            url = self.text(item.get("url"), f"{key}.url", optional=True)
            if url and has_login(url):  # the workspace keeps the case file: a password in it would be stored
                self.fail(f"{key}.url", "holds a login (user:password@ before the host): take it out; verify never "
                                        "stores credentials")
            if url and not is_web_url(url):
                self.fail(f"{key}.url", "only http:// or https:// links (without spaces, quotes or <>) are allowed")
            posted_at = item.get("posted_at")
            if posted_at not in (None, ""):
                posted_at = iso_datetime(posted_at)
                if posted_at is None:
                    self.fail(f"{key}.posted_at", f"{_show(item.get('posted_at'))} is not an ISO 8601 date or time; "
                              "write e.g. 2021-07-14 or 2021-07-14T09:12Z")
            side = item.get("side") or "unknown"
            if not isinstance(side, str) or side not in SIDES:
                self.fail(f"{key}.side", f"{_show(side)} is not allowed; use one of {', '.join(SIDES)}")
            claims = item.get("claims") or []
            if not isinstance(claims, list):
                self.fail(f"{key}.claims", "expected a list of claim ids")
            for claim_id in claims:
                if not isinstance(claim_id, str) or claim_id not in claim_ids:
                    self.fail(f"{key}.claims", f"unknown claim id {_show(claim_id)}; known: {', '.join(sorted(claim_ids))}")
            graphic = item.get("graphic", False)
            if not isinstance(graphic, bool):
                self.fail(f"{key}.graphic", f"expected true or false, got {_show(graphic)}")
            sources.append(
                Source(
                    id=source_id,
                    title=self.text(item["title"], f"{key}.title", limit=300),
                    url=url,
                    platform=self.text(item.get("platform"), f"{key}.platform", optional=True),
                    uploader=self.text(item.get("uploader"), f"{key}.uploader", optional=True),
                    posted_at=self.text(posted_at, f"{key}.posted_at", optional=True),
                    side=side,
                    claims=tuple(claims),
                    description=self.text(item.get("description"), f"{key}.description", optional=True) or "",
                    graphic=graphic,
                )
            )
        return tuple(sources)

    def review(self, value: Any) -> ReviewPolicy:
        value = self.mapping(value, "review", required=set(), optional={"reviewers_per_frame", "min_reviewers"})
        per_frame = self.count(value.get("reviewers_per_frame", 2), "review.reviewers_per_frame", 1, 20)
        minimum = self.count(value.get("min_reviewers", min(2, per_frame)), "review.min_reviewers", 1, 20)
        if minimum > per_frame:
            self.fail("review.min_reviewers", f"{minimum} exceeds reviewers_per_frame ({per_frame}); lower it or raise reviewers_per_frame")
        return ReviewPolicy(per_frame, minimum)

    def frame_policy(self, value: Any) -> FramePolicy:
        if isinstance(value, dict) and "max_pixels" in value:
            self.fail("frames.max_pixels", "not a case setting: the pixel cap (8K UHD, 7680×4320) is fixed in verify, "
                      "a guard against decoder memory bombs; remove the key")
        value = self.mapping(value, "frames", required=set(), optional={"max_interval_s"})
        interval = value.get("max_interval_s", 2.0)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0.2 <= interval <= 600:
            self.fail("frames.max_interval_s", f"expected seconds from 0.2 to 600, got {_show(interval)}")
        return FramePolicy(float(interval))
