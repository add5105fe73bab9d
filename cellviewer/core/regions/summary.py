"""What a region holds: its cells, counts and proportions per class, density per mm².

The proportions are the classes' shares among the region's *labelled, accepted* cells, the
estimate of the classes' prior probabilities that a fully annotated region gives; unlabelled
cells and proposals (not yet accepted) are counted apart and never enter them. Density is
accepted cells per mm² of the region, where the image's pixel size is known; otherwise it is
None and ``density_note`` says why (the panel shows "—" with that reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from cellviewer.core.regions.geometry import from_geojson, inside
from cellviewer.core.store import REVIEW_STATUSES, ProjectStore, RegionRecord


class Cells(Protocol):
    """What a summary reads of an image's cells: a store's CellArrays, or the session's
    ImageCells (the open image's cells, in memory)."""

    @property
    def xy(self) -> np.ndarray: ...
    @property
    def class_id(self) -> np.ndarray: ...
    @property
    def review(self) -> np.ndarray: ...
    @property
    def proposed(self) -> np.ndarray: ...
    @property
    def rows(self) -> np.ndarray: ...


NO_PIXEL_SIZE = "the image has no pixel size (µm per pixel), so its area in mm² is unknown"


@dataclass(frozen=True)
class RegionSummary:
    region: RegionRecord
    n_cells: int  # accepted cells inside (proposals apart)
    n_proposed: int  # proposals inside, not yet accepted
    n_unlabelled: int  # accepted cells without a class
    counts: dict[int, int]  # class id -> accepted cells of that class
    proportions: dict[int, float]  # class id -> share among the labelled accepted cells
    area_px: float
    area_mm2: float | None  # None: no pixel size
    density_per_mm2: float | None  # accepted cells per mm²; None: see density_note
    density_note: str = ""
    below_status: int = 0  # accepted cells whose review status is below the region's
    class_names: dict[int, str] = field(default_factory=dict)


def cells_in_region(store: ProjectStore, region: RegionRecord | str,
                    cells: Cells | None = None) -> tuple[Cells, np.ndarray]:
    """The image's cells (``cells``, else read from the store) and the mask of those inside
    ``region`` (a record or its uuid)."""
    record = store.region(region) if isinstance(region, str) else region
    if cells is None:
        cells = store.cell_arrays(record.image_id)
    return cells, inside(from_geojson(record.geometry), cells.xy)


def summarise(store: ProjectStore, region: RegionRecord | str,
              cells: Cells | None = None) -> RegionSummary:
    """The summary of one region (``cells``: the image's cells, when already read)."""
    record = store.region(region) if isinstance(region, str) else region
    if cells is None:
        cells = store.cell_arrays(record.image_id)
    names = {c.id: c.name for c in store.classes()}
    return summarise_cells(record, cells, store.image(record.image_id).mpp, names)


def summarise_cells(record: RegionRecord, cells: Cells, mpp: float | None,
                    class_names: dict[int, str]) -> RegionSummary:
    """The summary of one region from its image's cells (no store: a worker thread may run
    it on a copy of the open image's cells)."""
    poly = from_geojson(record.geometry)
    mask = inside(poly, cells.xy)
    proposed = np.asarray(cells.proposed, dtype=bool)[mask]
    accepted = ~proposed
    class_id = np.asarray(cells.class_id)[mask][accepted]
    labelled = class_id[class_id >= 0]
    values, n = np.unique(labelled, return_counts=True)
    counts = {int(v): int(k) for v, k in zip(values, n, strict=True)}
    total = int(len(labelled))
    proportions = {c: k / total for c, k in counts.items()} if total else {}
    area = float(poly.area)
    n_cells = int(accepted.sum())
    if mpp:
        area_mm2: float | None = area * (mpp / 1000.0) ** 2
        density = n_cells / area_mm2 if area_mm2 else None
        note = ""
    else:
        area_mm2, density, note = None, None, NO_PIXEL_SIZE
    level = REVIEW_STATUSES.index(record.status)
    below = int((np.asarray(cells.review)[mask][accepted] < level).sum())
    return RegionSummary(record, n_cells, int(proposed.sum()), int((class_id < 0).sum()),
                         counts, proportions, area, area_mm2, density, note, below,
                         {c: class_names.get(c, str(c)) for c in counts})


def summarise_image(store: ProjectStore, image_id: int,
                    cells: Cells | None = None) -> list[RegionSummary]:
    """Every region of one image, its cells read once (``cells``: already in memory)."""
    regions = store.regions(image_id)
    if not regions:
        return []
    if cells is None:
        cells = store.cell_arrays(image_id)
    return [summarise(store, r, cells) for r in regions]
