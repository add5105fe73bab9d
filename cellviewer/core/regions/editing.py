"""Drawing and changing regions, and a region's status, as undoable actions of the store.

Setting a region's status is the study's "this region is fully annotated" (then checked, then
reviewed by a pathologist): the region takes the status and every accepted cell inside whose
status is below it is raised to it, in ONE action (one undo), recorded with the user and the
time in both histories. Cells already above stay where they are (a status is never lowered by
a region). Proposals inside must be accepted or deleted first: a region with proposals still
waiting is not fully annotated, and saying it is would make them look verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cellviewer.core.regions.geometry import (
    RegionGeometryError,
    check_polygon,
    polygon_from_points,
    rectangle,
    to_geojson,
)
from cellviewer.core.regions.summary import cells_in_region
from cellviewer.core.store import REVIEW_STATUSES, ProjectStore

if TYPE_CHECKING:  # shapely loads when a region is edited, not at the window's start-up
    from shapely.geometry import Polygon

#: the region statuses a person sets (unreviewed is where a region starts)
SETTABLE_STATUSES = REVIEW_STATUSES[1:]


class RegionEditError(ValueError):
    """A region edit that was refused; the message says why (nothing was changed)."""


@dataclass(frozen=True)
class RegionEdit:
    uuid: str
    message: str  # what happened, for the status bar
    count: int = 0  # cells changed (a status raising cells)


def add_rectangle(store: ProjectStore, image_id: int, x0: float, y0: float, x1: float,
                  y1: float, name: str = "", kind: str = "annotation area") -> RegionEdit:
    poly = rectangle(x0, y0, x1, y1)
    return _add(store, image_id, to_geojson(poly), name, kind)


def add_polygon(store: ProjectStore, image_id: int, points, name: str = "",
                kind: str = "annotation area") -> RegionEdit:
    """A polygon through ``points`` (a self-crossing one repaired, or refused with
    :class:`~cellviewer.core.regions.geometry.RegionGeometryError`)."""
    poly = polygon_from_points(points)
    return _add(store, image_id, to_geojson(poly), name, kind)


def _add(store: ProjectStore, image_id: int, geometry: dict, name: str,
         kind: str) -> RegionEdit:
    name = name or _next_name(store, image_id)
    uuid = store.add_region(image_id, geometry, name, kind)
    return RegionEdit(uuid, f"added region {name!r}")


def _next_name(store: ProjectStore, image_id: int) -> str:
    taken = {r.name for r in store.regions(image_id)}
    k = len(taken) + 1
    while f"Region {k}" in taken:
        k += 1
    return f"Region {k}"


def reshape(store: ProjectStore, uuid: str, points) -> RegionEdit:
    """Give a region a new outline through ``points`` (its holes dropped); see
    :func:`set_geometry`, which keeps them."""
    return set_geometry(store, uuid, polygon_from_points(points), "Reshape")


def move_vertex(store: ProjectStore, uuid: str, index: int, x: float, y: float) -> RegionEdit:
    """Move corner ``index`` of a region's outer ring to (``x``, ``y``) (level-0 px), as one
    undoable action recorded with the user and the time (the region's history keeps the old
    and the new outline). Holes are kept. An outline that then crosses itself is repaired when
    the repair is one polygon, else refused (:class:`RegionGeometryError`, nothing changed).

    Cells are left alone, their statuses included: moving a corner is not a statement about
    the cells (only marking a region raises them). When the region's status is above
    ``unreviewed`` and the new outline takes in cells below it, or proposals, the message
    says how many, so the user can mark the region again."""
    record = store.region(uuid)
    rings = record.geometry["coordinates"]  # as stored: the indices the view shows
    ring = np.asarray(rings[0], dtype=np.float64)
    if len(ring) > 1 and (ring[0] == ring[-1]).all():
        ring = ring[:-1]  # the closing vertex
    if not 0 <= int(index) < len(ring):
        raise RegionEditError(f"region {record.name!r} has no corner {index} "
                              f"(it has {len(ring)})")
    if not (np.isfinite(x) and np.isfinite(y)):
        raise RegionGeometryError("a corner must be at finite coordinates")
    ring[int(index)] = (float(x), float(y))
    from shapely.geometry import Polygon

    moved = check_polygon(Polygon(ring, [np.asarray(h, dtype=np.float64) for h in rings[1:]]))
    return set_geometry(store, uuid, moved, "Move a corner of")


def set_geometry(store: ProjectStore, uuid: str, poly: Polygon, verb: str = "Edit"
                 ) -> RegionEdit:
    """Store ``poly`` (checked: repaired or refused) as a region's outline, one undoable
    action ("``verb`` region 'name'"); cells and statuses are not changed (see
    :func:`move_vertex`)."""
    poly = check_polygon(poly)
    record = store.region(uuid)
    geometry = to_geojson(poly)
    if geometry == record.geometry:
        return RegionEdit(uuid, f"region {record.name!r} is unchanged")
    with store.batch(f"{verb} region {record.name!r}", action="region-edit"):
        store.update_region(uuid, geometry=geometry)
    message = f"changed the outline of region {record.name!r}"
    level = REVIEW_STATUSES.index(record.status)
    if level > 0:
        cells, mask = cells_in_region(store, store.region(uuid))
        below = int((mask & ~cells.proposed & (cells.review < level)).sum())
        waiting = int((mask & cells.proposed).sum())
        if below or waiting:
            parts = ([f"{below:,} cell{'s' if below != 1 else ''} below {record.status}"]
                     if below else []) + ([f"{waiting:,} proposal{'s' if waiting != 1 else ''}"]
                                          if waiting else [])
            message += (f"; it now takes in {' and '.join(parts)} (cells are not changed by "
                        f"moving corners: mark the region {record.status} again to raise them)")
    return RegionEdit(uuid, message)


def rename(store: ProjectStore, uuid: str, name: str) -> RegionEdit:
    name = str(name).strip()
    if not name:
        raise RegionEditError("a region's name must not be empty")
    store.update_region(uuid, name=name)
    return RegionEdit(uuid, f"renamed the region to {name!r}")


def set_kind(store: ProjectStore, uuid: str, kind: str) -> RegionEdit:
    store.update_region(uuid, kind=kind)
    return RegionEdit(uuid, f"the region is now a {kind} region")


def delete(store: ProjectStore, uuid: str) -> RegionEdit:
    """Delete a region; its cells stay where they are."""
    name = store.region(uuid).name
    store.delete_region(uuid)
    return RegionEdit(uuid, f"deleted region {name!r} (its cells stay)")


def set_status(store: ProjectStore, uuid: str, status: str) -> RegionEdit:
    """Give a region ``status`` and raise every accepted cell inside that is below it, as one
    undoable action. Refused (:class:`RegionEditError`) while proposals wait inside."""
    if status not in REVIEW_STATUSES:
        raise RegionEditError(f"region status {status!r} is not one of {REVIEW_STATUSES}")
    record = store.region(uuid)
    cells, mask = cells_in_region(store, record)
    waiting = int((mask & cells.proposed).sum())
    level = REVIEW_STATUSES.index(status)
    if waiting and level > 0:
        raise RegionEditError(
            f"region {record.name!r} still has {waiting:,} proposal{'s' if waiting != 1 else ''}"
            f" waiting: accept or delete them before marking it {status}")
    raise_rows = cells.rows[mask & ~cells.proposed & (cells.review < level)]
    if record.status == status and not len(raise_rows):
        return RegionEdit(uuid, f"region {record.name!r} is already {status}")
    with store.batch(f"Mark region {record.name!r} {status}", action="region-status"):
        store.update_region(uuid, status=status)
        n = store.set_review_status(np.asarray(raise_rows, dtype=np.int64), status) \
            if len(raise_rows) else 0
    return RegionEdit(uuid, f"region {record.name!r} marked {status}; {n:,} cell"
                            f"{'s' if n != 1 else ''} inside raised to {status}", n)


__all__ = ["SETTABLE_STATUSES", "RegionEdit", "RegionEditError", "RegionGeometryError",
           "add_polygon", "add_rectangle", "delete", "move_vertex", "rename", "reshape",
           "set_geometry", "set_kind", "set_status"]
