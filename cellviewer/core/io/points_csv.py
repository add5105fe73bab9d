"""Importing cell points from a table (``image,x,y,class`` and the other tables
:mod:`trainer.formats.tables` recognises): the scripting form of the one import path
(:mod:`cellviewer.core.io.cell_import`).

Extra columns are kept per cell as metadata (strings), so nothing the file said is lost;
CellViewer's own cells CSV gives back its ``cell_id``, ``label_source`` and ``review_status``.
An import is all or nothing: the whole file is read and checked first (every error names the
file and line), then written as one undoable action in one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellviewer.core.io.cell_import import (
    ImageInfoFn,
    ImportChoices,
    ImportResult,
    apply_import,
    plan_import,
)
from cellviewer.core.store import ProjectError, ProjectStore

__all__ = ["ImportResult", "PointsTable", "import_points_csv", "read_points_csv"]


@dataclass
class PointsTable:
    """A checked points file, one entry per cell, in file order."""

    path: Path
    images: list[str]
    xy: np.ndarray  # (N, 2) float64
    labels: list[str | None]
    ids: list[str | None]
    label_sources: list[str | None]
    review_statuses: list[str | None]
    metadata: list[dict | None]
    lines: list[int]  # the line of the file each cell came from

    def __len__(self) -> int:
        return len(self.images)


def _parse(path: Path, class_column: str | None, class_names: Sequence[str] | None):
    from trainer.formats.cell_rows import CellFileError
    from trainer.formats.tables import read_table

    try:
        return read_table(path, class_names=list(class_names) if class_names else None,
                          label_column=class_column)
    except CellFileError as e:
        raise ProjectError(str(e)) from None


def read_points_csv(path: str | os.PathLike, *, class_column: str | None = None,
                    class_names: Sequence[str] | None = None) -> PointsTable:
    """Read and check a points table; ``ProjectError`` naming the file and line on bad input.

    ``class_column`` picks the class column (default: the one the reader recognises);
    ``class_names`` maps integer class values to names (``class_id`` files such as Chula's).
    """
    parsed = _parse(Path(path), class_column, class_names)
    rows = parsed.rows
    if rows and rows[0].image is None:
        raise ProjectError(f"{path}: no image column ({parsed.format})")
    xy = np.array([[r.x, r.y] for r in rows], dtype=np.float64).reshape(-1, 2)
    return PointsTable(
        Path(path), [str(r.image) for r in rows], xy, [r.label for r in rows],
        [r.cell_id for r in rows], [r.label_source for r in rows],
        [r.review_status for r in rows], [r.metadata or None for r in rows],
        [int(r.where.split()[-1]) for r in rows])


def import_points_csv(store: ProjectStore, path: str | os.PathLike,
                      image_dir: str | os.PathLike | None = None, *,
                      class_column: str | None = None, class_names: Sequence[str] | None = None,
                      source: str = "imported", image_info: ImageInfoFn | None = None,
                      allow_outside: bool = False) -> ImportResult:
    """Import a points table into ``store`` as one undoable action; all or nothing (the
    scripting form of :mod:`cellviewer.core.io.cell_import`, with its choices made: images
    not in the project are added, from ``image_dir`` (default: the CSV's folder), unknown
    classes are created).

    Points outside their image are an error unless ``allow_outside``.
    """
    path = Path(path)
    parsed = _parse(path, class_column, class_names)
    choices = ImportChoices(
        image_folder=Path(image_dir) if image_dir is not None else path.parent,
        on_missing_image="add", on_unknown_class="create", source=source,
        image_info=image_info, allow_outside=allow_outside)
    plan = plan_import(store, parsed, choices)
    return apply_import(store, plan)
