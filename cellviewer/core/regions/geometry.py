"""Region geometry with shapely: making polygons, repairing them, and which cells lie inside.

A region is stored as a GeoJSON Polygon in level-0 pixels (``schema.py``). What comes from a
person's clicks may cross itself (a bow tie); :func:`polygon_from_points` repairs it with
shapely's ``make_valid`` when the result is still one polygon and refuses it otherwise (a bow
tie becomes two triangles: which one would the user mean?), with a message saying so.

Containment is vectorised: the polygon is *prepared* once and ``shapely.intersects_xy`` tests
every candidate point in C; a bounding-box test in numpy first keeps the candidates to those
that can be inside. Points on the boundary count as inside (a cell on a rectangle's edge
belongs to it). ``benchmarks/bench_regions.py`` measures 500,000 cells.

shapely is imported by the functions that use it, not with the module: the GUI imports this
module (through the regions tool) on start-up, and shapely's import (about 0.1 s) is not needed
before the first region is drawn or read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from shapely.geometry import Polygon

MIN_AREA_PX = 1.0  # a region smaller than one pixel is a slip of the mouse


class RegionGeometryError(ValueError):
    """A region's outline that cannot be used; the message says why."""


def rectangle(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """The axis-aligned rectangle between two corners (in any order)."""
    ax, bx = sorted((float(x0), float(x1)))
    ay, by = sorted((float(y0), float(y1)))
    if bx - ax <= 0 or by - ay <= 0:
        raise RegionGeometryError("a rectangle needs a width and a height: drag from one "
                                  "corner to the other")
    import shapely

    return check_polygon(shapely.box(ax, ay, bx, by))


def polygon_from_points(points: Sequence[Sequence[float]] | np.ndarray) -> Polygon:
    """A polygon through clicked points (closed by itself). A self-crossing outline is
    repaired when the repair is one polygon, else refused (:class:`RegionGeometryError`)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) and (pts[0] == pts[-1]).all():
        pts = pts[:-1]
    if len(pts) < 3:
        raise RegionGeometryError(f"a polygon needs at least 3 corners (got {len(pts)})")
    if not np.isfinite(pts).all():
        raise RegionGeometryError("a polygon's corners must be finite numbers")
    from shapely.geometry import Polygon

    return check_polygon(Polygon(pts))


def check_polygon(poly: Polygon) -> Polygon:
    """``poly`` if it is a valid polygon of some area; a self-crossing one repaired into one
    polygon; else :class:`RegionGeometryError` naming the problem."""
    import shapely
    from shapely.validation import make_valid

    if not poly.is_valid:
        reason = shapely.is_valid_reason(poly)
        fixed = make_valid(poly)
        polys = _polygons(fixed)
        if len(polys) != 1:
            raise RegionGeometryError(
                f"the outline crosses itself ({reason}) and falls into {len(polys)} separate "
                "pieces; draw it again without crossing the line")
        poly = polys[0]
    if poly.area < MIN_AREA_PX:
        raise RegionGeometryError(f"the region is too small ({poly.area:.2f} px²)")
    return shapely.normalize(poly)


def _polygons(geom) -> list[Polygon]:
    """The polygons with an area in what make_valid returned (lines and points dropped)."""
    from shapely.geometry import Polygon

    if isinstance(geom, Polygon):
        return [geom] if geom.area > 0 else []
    parts = getattr(geom, "geoms", [])
    return [p for g in parts for p in _polygons(g)]


def to_geojson(poly: Polygon) -> dict:
    """The GeoJSON Polygon of ``poly`` (coordinates as lists: JSON-ready)."""
    from shapely.geometry import mapping

    return json.loads(json.dumps(mapping(poly)))


def from_geojson(geometry: dict | str) -> Polygon:
    """A stored region's polygon (a GeoJSON Polygon dict or text)."""
    from shapely.geometry import Polygon, shape

    value = json.loads(geometry) if isinstance(geometry, str) else geometry
    geom = shape(value)
    if not isinstance(geom, Polygon):
        raise RegionGeometryError(f"a region must be a Polygon, not a {geom.geom_type}")
    return check_polygon(geom)


def inside(poly: Polygon, xy: np.ndarray) -> np.ndarray:
    """A boolean mask: which of the points ``xy`` ((N, 2) level-0 px) lie in ``poly`` or on
    its boundary. Vectorised (bounding box in numpy, then the prepared polygon in C)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    mask = np.zeros(len(xy), dtype=bool)
    if not len(xy):
        return mask
    x0, y0, x1, y1 = poly.bounds
    x, y = xy[:, 0], xy[:, 1]
    near = np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
    if not len(near):
        return mask
    box_area = (x1 - x0) * (y1 - y0)
    if not poly.interiors and abs(poly.area - box_area) <= 1e-9 * box_area:
        mask[near] = True  # a rectangle (its own bounding box): the box test was the test
        return mask
    import shapely

    shapely.prepare(poly)
    mask[near] = shapely.intersects_xy(poly, x[near], y[near])
    return mask


def area_px(poly: Polygon) -> float:
    return float(poly.area)
