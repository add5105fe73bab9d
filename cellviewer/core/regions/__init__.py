"""Regions of an image and the review of a detector's proposals (issue 15), Qt-free.

- :mod:`.geometry`: polygons with shapely (rectangles, clicked polygons, self-crossing ones
  repaired or refused), GeoJSON in and out, which cells lie inside (vectorised).
- :mod:`.summary`: per region, its cells, counts and proportions per class, density per mm².
- :mod:`.editing`: draw, rename, delete a region; set its status (raising its cells'), all
  undoable actions of the store.
- :mod:`.proposals`: detections become proposed cells (one undoable step per run), skipped
  near an existing marker; accepting and deleting proposals.
"""

from cellviewer.core.regions.geometry import RegionGeometryError

__all__ = ["RegionGeometryError"]
