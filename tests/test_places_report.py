"""Where it was filmed, end to end: reviewers enter locations through the (fake) server, sync, and the report shows them.

Two reviewers locate the Afghan-side flag video close to the crossing; on the militants video they are
1.6 km apart at vicinity precision (disputed); one types a place name (not coordinates). The report must
give the consensus, the distance to the crossing and the verdict with numbers in HTML, Markdown, JSON,
GeoJSON and KML, draw the figure, and pull must name the unreadable text.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import SEED_CASE, SOURCES
from tests.fake_labelstudio import FakeLabelStudio
from verify import pipeline
from verify.geodesy import Point, destination, distance_m
from verify.status import workspace_status
from verify.terminal import pulled, status
from verify.workspace import Workspace

ANA, BEN = "ana@desk.example", "ben@desk.example"
CROSSING = Point(30.92222, 66.44472)
FLAG_SIDE, MILITANTS = "flag-hoisting-afghan-side", "militants-at-gate"


def location(text: str, precision: str = "Vicinity (±100 m)", side: str = "Afghan side",
             cues: tuple[str, ...] = ("Gate structure",), scope: str = "The whole video") -> list[dict]:
    def choices(name: str, values: list[str]) -> dict:
        return {"type": "choices", "from_name": name, "to_name": "frame", "value": {"choices": values}}

    return [{"type": "textarea", "from_name": "geo_text", "to_name": "frame", "value": {"text": [text]}},
            choices("geo_precision", [precision]), choices("geo_side", [side]), choices("geo_cues", list(cues)),
            choices("geo_scope", [scope])]


@pytest.fixture(scope="module")
def base(footage, tmp_path_factory) -> Path:
    from verify.media.frames import extract
    from verify.media.ingest import ingest

    ws = pipeline.init(tmp_path_factory.mktemp("places") / "ws", SEED_CASE)  # logged, so the audit can be clean
    for name, source in SOURCES.items():
        [result] = ingest(ws, [footage[name]], source_id=source)
        assert result.ok, result.message
    extract(ws)
    ws.db.close()
    return ws.root


@pytest.fixture(scope="module")
def synced(base, tmp_path_factory):
    root = tmp_path_factory.mktemp("places-run") / "ws"
    shutil.copytree(base, root, symlinks=True)
    ws = Workspace.open(root)
    server = FakeLabelStudio()
    server.whoami()
    first = pipeline.sync(ws, server, None, images="upload")
    project = first.push.project_id
    for who in (ANA, BEN):
        server.add_reviewer(who, who.split("@")[0] + "-pass-2031x")
    tasks = {s: sorted((t for t in server.tasks_of(project) if t["data"]["source_id"] == s), key=lambda t: t["data"]["t_ms"])
             for s in (FLAG_SIDE, MILITANTS)}
    near_a = destination(CROSSING, 45, 120)  # ana: 120 m north-east of the crossing
    near_b = destination(CROSSING, 90, 200)  # ben: 200 m east
    server.annotate(project, tasks[FLAG_SIDE][0]["id"], ANA, location(f"{near_a.lat:.6f}, {near_a.lon:.6f}"))
    osm = f"https://www.openstreetmap.org/?mlat={near_b.lat:.6f}&mlon={near_b.lon:.6f}#map=17/{near_b.lat:.4f}/{near_b.lon:.4f}"
    server.annotate(project, tasks[FLAG_SIDE][1 % len(tasks[FLAG_SIDE])]["id"], BEN, location(osm))
    far = destination(CROSSING, 0, 1600)
    server.annotate(project, tasks[MILITANTS][0]["id"], ANA, location("30°55′20″N 66°26′41″E", side="Pakistani side"))
    server.annotate(project, tasks[MILITANTS][0]["id"], BEN, location(f"{far.lat:.6f} {far.lon:.6f}", side="Pakistani side"))
    server.annotate(project, tasks[MILITANTS][-1]["id"], ANA, location("<b>by the Chaman gate</b>"))
    second = pipeline.sync(ws, server, None, images="upload")
    return ws, second, (near_a, near_b)


def test_pull_names_each_unreadable_location_with_task_reviewer_and_text(synced):
    ws, done, _ = synced
    [bad] = done.pull.unreadable_locations
    assert bad["reviewer"] == ANA and bad["text"] == "<b>by the Chaman gate</b>" and bad["task_id"]
    [line] = [l for l in pulled(done.pull, False) if l.startswith("location not read")]
    assert f"task {bad['task_id']}" in line and ANA in line and "by the Chaman gate" in line


def test_the_merge_gives_consensus_spread_distance_and_verdict(synced):
    ws, done, (near_a, near_b) = synced
    found = done.reports.merged.verdicts.locations
    flag = next(s for s in found.sources if s.source_id == FLAG_SIDE)
    assert flag.status == "agreed" and [r.reviewer for r in flag.reviewers] == [ANA, BEN]
    assert flag.spread_m == pytest.approx(distance_m(near_a, near_b), abs=0.2)
    assert flag.distances_m["spin-boldak-chaman-crossing"] == pytest.approx(
        distance_m(Point(*flag.consensus), CROSSING), abs=0.1)
    assert flag.distances_m["spin-boldak-chaman-crossing"] < 200
    militants = next(s for s in found.sources if s.source_id == MILITANTS)
    assert militants.status == "disputed" and militants.consensus is None
    assert militants.far_pairs[0]["distance_m"] == pytest.approx(1600, abs=30)  # the DMS point is 1″-rounded
    flag_claim = next(c for c in found.claims if c.claim_id == "taliban_flag_raised")
    assert flag_claim.verdict == "consistent"
    check = next(c for c in flag_claim.checks if c.source_id == FLAG_SIDE)
    assert check.allowed_m == 600 and check.distance_m < 600


def test_the_report_shows_where_it_was_filmed_in_every_format(synced):
    ws, done, _ = synced
    written = {fmt: path for fmt, (path, _) in done.reports.written.items()}
    assert set(written) >= {"html", "md", "json", "geojson", "kml"}
    model = json.loads(written["json"].read_text())
    flag = next(s for s in model["locations"]["sources"] if s["source_id"] == FLAG_SIDE)
    metres = flag["distances_m"]["spin-boldak-chaman-crossing"]
    html = written["html"].read_text()
    assert 'id="where"' in html and f"{metres:.0f} m" in html
    assert "https://www.openstreetmap.org/?mlat=" in html
    assert "&lt;b&gt;by the Chaman gate&lt;/b&gt;" in html and "<b>by the Chaman gate</b>" not in html
    md = written["md"].read_text()
    assert "## Where was it filmed" in md and f"{metres:.0f} m" in md and "<b>by" not in md
    # the figure: SVG drawn by verify, embedded as an image, parsed as XML, with no remote resources
    uris = re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == 2  # one per located source
    svg = base64.b64decode(uris[0]).decode()
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "N" in texts and any(t and t.endswith(" m") for t in texts)  # north arrow and scale bar
    assert "href" not in svg and "script" not in svg.lower()


def test_the_geojson_follows_rfc_7946(synced):
    ws, done, _ = synced
    data = json.loads(done.reports.written["geojson"][0].read_text())
    assert data["type"] == "FeatureCollection" and isinstance(data["features"], list) and data["features"]
    for feature in data["features"]:
        assert set(feature) == {"type", "geometry", "properties"} and feature["type"] == "Feature"
        geometry = feature["geometry"]
        assert geometry["type"] == "Point" and len(geometry["coordinates"]) == 2
        lon, lat = geometry["coordinates"]  # RFC 7946: longitude first
        assert -180 <= lon <= 180 and -90 <= lat <= 90 and isinstance(feature["properties"], dict)
    place = next(f for f in data["features"] if f["properties"]["kind"] == "claimed place")
    assert place["geometry"]["coordinates"] == [66.44472, 30.92222]
    kinds = {f["properties"]["kind"] for f in data["features"]}
    assert kinds == {"claimed place", "consensus", "reviewer's point"}


def test_the_kml_parses_and_holds_every_point(synced):
    ws, done, _ = synced
    root = ET.parse(done.reports.written["kml"][0]).getroot()
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    assert root.tag == "{http://www.opengis.net/kml/2.2}kml"
    marks = root.findall(".//k:Placemark", ns)
    coordinates = [m.find("k:Point/k:coordinates", ns).text for m in marks]
    assert "66.4447200,30.9222200,0" in coordinates and len(marks) == 1 + 1 + 4  # place, one consensus, four points


def test_status_counts_located_sources_and_agreement(synced):
    ws, done, _ = synced
    state = workspace_status(ws, done.reports.merged.verdicts)
    assert state.locations["sources_located"] == 2 and state.locations["agreed"] == 1
    assert state.locations["disputed"] == 1 and state.locations["unreadable"] == 1
    assert state.locations["claims"]["taliban_flag_raised"] == "consistent"
    assert any(line.startswith("locations: ") for line in status(state))


def test_the_audit_stays_clean_with_the_new_files(synced):
    from verify.custody import audit

    ws, _, _ = synced
    result = audit(ws)
    assert not (result.changed or result.missing or result.unexpected or result.unlogged), result
