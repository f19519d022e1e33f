"""Where it was filmed, drawn and exported: an offline SVG figure, GeoJSON (RFC 7946) and KML.

Pure functions over the report model's ``locations`` block. The figure is drawn by verify
(no map tiles, no remote resources): reviewers' points with their precision circles, the
consensus, each claimed place with its radius, a scale bar and a north arrow, on an azimuthal
equidistant projection centred on the figure (distances and bearings from the centre are
exact; see ``verify.geodesy.offset_m``). All text goes through ElementTree, so it is escaped, and first through
``_well_formed``: a character XML cannot hold (ESC, BEL, …) is written out (\\x1b) instead, so a reviewer's
name or cue can never make the KML or the figure unreadable. GeoJSON escapes them as JSON \\u escapes.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from typing import Any

from verify.geodesy import Point, mean_point, offset_m
from verify.terminal import json_escaped, printable

SIZE = 420  # px, square
MARGIN = 36
REVIEWER_COLOURS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
PLACE_COLOUR, CONSENSUS_COLOUR = "#2ca02c", "#d62728"


def _nice(metres: float) -> float:
    """A round length (1, 2 or 5 × 10ⁿ metres) not longer than ``metres``."""
    exponent = 10 ** math.floor(math.log10(max(metres, 1e-3)))
    return max(m * exponent for m in (1, 2, 5) if m * exponent <= metres) if metres >= exponent else exponent


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _length(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def _well_formed(root: ET.Element) -> ET.Element:
    """The tree with every text and attribute free of characters XML 1.0 cannot hold (and of C1 controls and
    bidirectional overrides): each written out as \\x1b, \\u202e."""
    for element in root.iter():
        if element.text:
            element.text = printable(element.text)
        if element.tail:
            element.tail = printable(element.tail)
        for key, value in element.attrib.items():
            element.attrib[key] = printable(value)
    return root


def figure_svg(source: dict[str, Any], places: list[dict[str, Any]]) -> str:
    """The SVG of one source's location: reviewers' points and precision circles, the consensus, the claimed places."""
    items: list[tuple[str, Point, float, str, str]] = []  # kind, point, radius, colour, label
    for i, r in enumerate(source["reviewers"]):
        items.append(("reviewer", Point(r["lat"], r["lon"]), r["radius_m"] or 0.0,
                      REVIEWER_COLOURS[i % len(REVIEWER_COLOURS)], f"{i + 1}"))
    if source["consensus"]:
        items.append(("consensus", Point(*source["consensus"]), 0.0, CONSENSUS_COLOUR, "consensus"))
    for p in places:
        if p["located"]:
            items.append(("place", Point(p["lat"], p["lon"]), p["radius_m"], PLACE_COLOUR, p["name"]))
    svg = ET.Element("svg", xmlns="http://www.w3.org/2000/svg", width=str(SIZE), height=str(SIZE + 24),
                     viewBox=f"0 0 {SIZE} {SIZE + 24}", role="img",
                     **{"font-family": "DejaVu Sans, Arial, sans-serif"})
    ET.SubElement(svg, "title").text = f"Where {source['source_id']} was filmed: reviewers' points and the claimed place"
    ET.SubElement(svg, "rect", x="0", y="0", width=str(SIZE), height=str(SIZE + 24), fill="#fbfbf8", stroke="#999")
    if not items:
        ET.SubElement(svg, "text", x=str(SIZE / 2), y=str(SIZE / 2), **{"text-anchor": "middle", "font-size": "14"}).text = \
            "not located"
        return ET.tostring(_well_formed(svg), encoding="unicode")
    centre = mean_point([p for _, p, _, _, _ in items])
    offsets = [offset_m(centre, p) for _, p, _, _, _ in items]
    extent = max(max(abs(x), abs(y)) + r for (x, y), (_, _, r, _, _) in zip(offsets, items))
    extent = max(extent, 50.0)  # at least 100 m across
    scale = (SIZE / 2 - MARGIN) / extent  # px per metre

    def xy(east: float, north: float) -> tuple[str, str]:
        return f"{SIZE / 2 + east * scale:.1f}", f"{SIZE / 2 - north * scale:.1f}"

    for ((east, north), (kind, _, radius, colour, label)) in zip(offsets, items):  # circles first, marks on top
        if radius:
            cx, cy = xy(east, north)
            ET.SubElement(svg, "circle", cx=cx, cy=cy, r=f"{max(radius * scale, 1):.1f}", fill=colour,
                          **{"fill-opacity": "0.08" if kind == "place" else "0.12", "stroke": colour,
                             "stroke-dasharray": "6 4" if kind == "place" else "none"})
    for ((east, north), (kind, _, radius, colour, label)) in zip(offsets, items):
        cx, cy = xy(east, north)
        if kind == "place":
            ET.SubElement(svg, "path", d=f"M{cx} {float(cy) - 9:.1f} l6 9 l-6 9 l-6 -9 z", fill=colour, stroke="#333")
            left = float(cx) > SIZE / 2  # label on the side with room
            ET.SubElement(svg, "text", x=f"{float(cx) + (-9 if left else 9):.1f}", y=f"{float(cy) + 20:.1f}", fill="#1b4d1b",
                          **{"font-size": "11", "text-anchor": "end" if left else "start"}).text = _short(label)
        elif kind == "consensus":
            ET.SubElement(svg, "path", d=f"M{float(cx) - 7:.1f} {cy} h14 M{cx} {float(cy) - 7:.1f} v14", stroke=colour,
                          **{"stroke-width": "2.5"})
        else:
            ET.SubElement(svg, "circle", cx=cx, cy=cy, r="5", fill=colour, stroke="#222")
            ET.SubElement(svg, "text", x=f"{float(cx) + 7:.1f}", y=f"{float(cy) - 6:.1f}", **{"font-size": "11"}).text = label
    # scale bar (bottom left) and north arrow (top right)
    bar = _nice(extent * 0.6)
    x0, y0 = MARGIN / 2, SIZE + 8
    ET.SubElement(svg, "path", d=f"M{x0} {y0 - 5} v5 h{bar * scale:.1f} v-5", fill="none", stroke="#222",
                  **{"stroke-width": "1.5"})
    ET.SubElement(svg, "text", x=f"{x0 + bar * scale + 6:.1f}", y=f"{y0 + 1}", **{"font-size": "11"}).text = _length(bar)
    nx, ny = SIZE - 22, 14
    ET.SubElement(svg, "path", d=f"M{nx} {ny} l7 20 l-7 -5 l-7 5 z", fill="#222")
    ET.SubElement(svg, "text", x=str(nx), y=str(ny + 32), **{"font-size": "11", "text-anchor": "middle"}).text = "N"
    return ET.tostring(_well_formed(svg), encoding="unicode")


def geojson(locations: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (RFC 7946: WGS84, [longitude, latitude]) of the places and each source's points."""
    features = []

    def feature(lat: float, lon: float, properties: dict[str, Any]) -> None:
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]},
                         "properties": properties})

    for p in locations["places"]:
        if p["located"]:
            feature(p["lat"], p["lon"], {"kind": "claimed place", "place_id": p["id"], "name": p["name"],
                                         "radius_m": p["radius_m"], "coordinates_from": p["source"]})
    for s in locations["sources"]:
        if s["consensus"]:
            feature(*s["consensus"], {"kind": "consensus", "source_id": s["source_id"], "status": s["status"],
                                      "precision_m": s["precision_m"], "spread_m": s["spread_m"],
                                      "reviewers": len([r for r in s["reviewers"] if r["counted"]]),
                                      "distances_m": s["distances_m"]})
        for r in s["reviewers"]:
            feature(r["lat"], r["lon"], {"kind": "reviewer's point", "source_id": s["source_id"], "reviewer": r["reviewer"],
                                         "precision": r["precision"], "radius_m": r["radius_m"], "counted": r["counted"],
                                         "side": r["side"], "cues": r["cues"], "frame_key": r["frame_key"]})
    return {"type": "FeatureCollection", "features": features}


def render_geojson(locations: dict[str, Any]) -> str:
    return json_escaped(json.dumps(geojson(locations), indent=1, ensure_ascii=False)) + "\n"


def render_kml(locations: dict[str, Any], title: str) -> str:
    """KML 2.2 for Google Earth: a folder of claimed places and one folder per source (consensus and reviewers' points)."""
    ns = "http://www.opengis.net/kml/2.2"
    kml = ET.Element("kml", xmlns=ns)
    doc = ET.SubElement(kml, "Document")
    ET.SubElement(doc, "name").text = title

    def placemark(parent: ET.Element, name: str, lat: float, lon: float, description: str) -> None:
        mark = ET.SubElement(parent, "Placemark")
        ET.SubElement(mark, "name").text = name
        ET.SubElement(mark, "description").text = description
        point = ET.SubElement(mark, "Point")
        ET.SubElement(point, "coordinates").text = f"{lon:.7f},{lat:.7f},0"

    folder = ET.SubElement(doc, "Folder")
    ET.SubElement(folder, "name").text = "Claimed places"
    for p in locations["places"]:
        if p["located"]:
            placemark(folder, p["name"], p["lat"], p["lon"], f"radius {p['radius_m']:g} m; coordinates from: {p['source']}")
    for s in locations["sources"]:
        folder = ET.SubElement(doc, "Folder")
        ET.SubElement(folder, "name").text = f"{s['source_id']} ({s['status']})"
        if s["consensus"]:
            placemark(folder, f"{s['source_id']}: consensus", *s["consensus"],
                      f"precision {s['precision_m']:g} m; spread {s['spread_m'] or 0:g} m; distances (m): "
                      + ", ".join(f"{k} {v:g}" for k, v in s["distances_m"].items()))
        for r in s["reviewers"]:
            placemark(folder, f"{s['source_id']}: {r['reviewer']}", r["lat"], r["lon"],
                      f"precision {r['precision']}; side {r['side'] or 'not given'}; rests on {', '.join(r['cues']) or 'nothing named'}")
    ET.indent(_well_formed(kml))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(kml, encoding="unicode") + "\n"
