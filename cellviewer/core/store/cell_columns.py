"""Cells with everything a view shows of them, as columns: one query per image, or per set of
touched rows after an edit.

What the open image's observable model (:mod:`cellviewer.core.cells`) loads: ids, positions,
labels, review status, label source, the proposed flag and one model's prediction (project class
and confidence): one SELECT of the cells, converted in C by numpy, and the model's prediction
blocks of those cells (``prediction_blocks.py``).
"""

from __future__ import annotations

import json

import numpy as np

from cellviewer.core.store import prediction_blocks as blocks
from cellviewer.core.store.base import StoreBase
from cellviewer.core.store.records import CellColumns
from cellviewer.core.store.schema import LABEL_SOURCES, REVIEW_STATUSES

_REVIEW = "CASE c.review_status " + " ".join(
    f"WHEN '{s}' THEN {i}" for i, s in enumerate(REVIEW_STATUSES)) + " ELSE 0 END"
_SOURCE = "CASE c.label_source " + " ".join(
    f"WHEN '{s}' THEN {i}" for i, s in enumerate(LABEL_SOURCES)) + " ELSE 0 END"
assert len(REVIEW_STATUSES) <= 8 and len(LABEL_SOURCES) <= 16

# class id (-1 none), the proposed flag, source and review travel as one integer: fewer
# columns to hand to Python.
_PACKED = (f"((coalesce(c.class_id, -1) << 8) | (c.proposed << 7) | ({_SOURCE} << 3)"
           f" | {_REVIEW})")
_DTYPE = np.dtype([("row", np.int64), ("uuid", object), ("image", np.int64), ("x", np.float64),
                   ("y", np.float64), ("packed", np.int64)])


class CellColumnsMixin(StoreBase):
    """The column reads of ProjectStore (see project.py)."""

    def _columns(self, where: str, args: tuple, model_id: int | None,
                 hint: str = "") -> CellColumns:
        rows = self._conn.execute(
            f"SELECT c.id, c.uuid, c.image_id, c.x, c.y, {_PACKED}"
            f" FROM cells c{hint} WHERE {where} ORDER BY c.id", args
        ).fetchall()
        if not rows:
            return CellColumns.empty()
        table = np.array(rows, dtype=_DTYPE)
        del rows
        xy = np.empty((len(table), 2), dtype=np.float64)
        xy[:, 0] = table["x"]
        xy[:, 1] = table["y"]
        packed = table["packed"]
        keys = table["row"].copy()
        pred_class = np.full(len(keys), -1, dtype=np.int64)
        confidence = np.full(len(keys), np.nan, dtype=np.float32)
        if model_id is not None:
            class_ids = [r[0] for r in self._conn.execute(
                "SELECT class_id FROM model_classes WHERE model_id = ? ORDER BY idx",
                (int(model_id),))]
            if class_ids:
                found, probs = blocks.read(self._conn, int(model_id), len(class_ids), keys)
                predicted, confidence = blocks.predicted_and_confidence(probs, found)
                mapping = np.array([-1 if c is None else c for c in class_ids], dtype=np.int64)
                pred_class = np.where(predicted >= 0, mapping[np.clip(predicted, 0, None)], -1)
        return CellColumns(
            ids=table["uuid"].copy(),
            rows=keys,
            image_id=table["image"].copy(),
            xy=xy,
            class_id=packed >> 8,  # arithmetic shift: -1 stays -1
            source=((packed >> 3) & 15).astype(np.int8),
            review=(packed & 7).astype(np.int8),
            pred_class=pred_class,
            confidence=confidence,
            proposed=((packed >> 7) & 1).astype(bool),
        )

    def image_columns(self, image_id: int, model_id: int | None = None) -> CellColumns:
        """Every cell of one image with ``model_id``'s prediction (none: -1 / NaN), in
        insertion order."""
        image_id = int(image_id)
        hint = self._scan_instead(image_id)
        return self._columns("c.image_id = ?", (image_id,), model_id,
                             " NOT INDEXED" if hint else "")

    def columns_of_rows(self, rows: np.ndarray, model_id: int | None = None) -> CellColumns:
        """The cells among ``rows`` (internal keys, e.g. a ChangeEvent's ``cell_rows``) that
        still exist, with ``model_id``'s prediction. Rows that are gone are simply absent."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return CellColumns.empty()
        # One JSON parameter, however many rows (no host-parameter limit).
        return self._columns("c.id IN (SELECT value FROM json_each(?))",
                             (json.dumps(rows.tolist()),), model_id)

    def image_cell_count(self, image_id: int) -> int:
        """How many cells one image has: an index-only count, without the whole project's
        per-image counts (which another connection's import makes stale); those when they
        are fresh (no change since they were counted)."""
        counts = self._counts
        if counts is not None and self._counts_fresh():
            return int(counts.get(int(image_id), 0))
        return int(self._conn.execute(
            "SELECT count(*) FROM cells WHERE image_id = ?", (int(image_id),)).fetchone()[0])

    def images_of_cells(self, ids) -> list[int]:
        """The ids of the images holding these cells (UUIDs), sorted; one query."""
        ids = [str(i) for i in ids]
        if not ids:
            return []
        return [r[0] for r in self._conn.execute(
            "SELECT DISTINCT image_id FROM cells WHERE uuid IN (SELECT value FROM json_each(?))"
            " ORDER BY image_id", (json.dumps(ids),))]
