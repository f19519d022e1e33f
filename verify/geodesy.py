"""Geodesy: distances and directions on the WGS84 ellipsoid, the one module that uses geographiclib.

Everything that needs a distance between two points on the Earth (the spread of reviewers'
locations, the distance from a consensus to a claimed place, the offline figure's layout)
asks this module, so the figures in a report come from Karney's geodesic algorithms
(GeographicLib, accurate to about 15 nanometres), never from a flat-earth formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geographiclib.geodesic import Geodesic

_WGS84 = Geodesic.WGS84


@dataclass(frozen=True, slots=True)
class Point:
    """A position in decimal degrees (WGS84): latitude -90..90 (north positive), longitude -180..180 (east positive)."""

    lat: float
    lon: float

    def rounded(self, places: int = 6) -> list[float]:
        """[lat, lon] rounded (6 decimals is about 0.1 m)."""
        return [round(self.lat, places), round(self.lon, places)]


def distance_m(a: Point, b: Point) -> float:
    """The geodesic distance from ``a`` to ``b`` in metres on the WGS84 ellipsoid."""
    return _WGS84.Inverse(a.lat, a.lon, b.lat, b.lon, Geodesic.DISTANCE)["s12"]


def offset_m(origin: Point, p: Point) -> tuple[float, float]:
    """Where ``p`` lies from ``origin``, as (east, north) metres of an azimuthal equidistant projection.

    Distances and bearings from the origin are exact; that is what the report's figure draws.
    """
    g = _WGS84.Inverse(origin.lat, origin.lon, p.lat, p.lon, Geodesic.DISTANCE | Geodesic.AZIMUTH)
    azimuth = math.radians(g["azi1"])
    return g["s12"] * math.sin(azimuth), g["s12"] * math.cos(azimuth)


def destination(origin: Point, azimuth_deg: float, metres: float) -> Point:
    """The point ``metres`` from ``origin`` along the geodesic leaving it at ``azimuth_deg`` (clockwise from north)."""
    g = _WGS84.Direct(origin.lat, origin.lon, azimuth_deg, metres)
    return Point(g["lat2"], _wrap(g["lon2"]))


def mean_point(points: list[Point], weights: list[float] | None = None) -> Point:
    """The (weighted) centre of a few nearby points: the normalised mean of their unit vectors.

    For points a few kilometres apart this differs from the ellipsoid's own centroid by far
    less than any reviewer's precision; it never fails across the antimeridian.
    """
    if not points:
        raise ValueError("mean_point of no points")
    weights = weights or [1.0] * len(points)
    x = y = z = 0.0
    for p, w in zip(points, weights):
        lat, lon = math.radians(p.lat), math.radians(p.lon)
        x += w * math.cos(lat) * math.cos(lon)
        y += w * math.cos(lat) * math.sin(lon)
        z += w * math.sin(lat)
    return Point(math.degrees(math.atan2(z, math.hypot(x, y))), _wrap(math.degrees(math.atan2(y, x))))


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0 if not -180.0 <= lon <= 180.0 else lon
