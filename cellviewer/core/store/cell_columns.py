"""Cells with everything a view shows of them, as columns: one query per image, or per set of
touched rows after an edit.

What the open image's observable model (:mod:`cellviewer.core.cells`) loads: ids, positions,
labels, review status, label source, the proposed flag and one model's prediction (project class
and confidence): one SELECT of the cells, converted in C by numpy, and the model's prediction
blocks of those cells (``prediction_blocks.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3

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


#: From this many cells an image's columns are kept in ``column_cache``.
CACHE_CELLS_FROM = 20_000
_SEP = "\n"  # between the cached cell ids (UUIDs: never contain it)


def _from_packed(ids: np.ndarray, rows: np.ndarray, image_id: np.ndarray, xy: np.ndarray,
                 packed: np.ndarray) -> CellColumns:
    n = len(rows)
    return CellColumns(
        ids=ids,
        rows=rows,
        image_id=image_id,
        xy=xy,
        class_id=packed >> 8,  # arithmetic shift: -1 stays -1
        source=((packed >> 3) & 15).astype(np.int8),
        review=(packed & 7).astype(np.int8),
        pred_class=np.full(n, -1, dtype=np.int64),
        confidence=np.full(n, np.nan, dtype=np.float32),
        proposed=((packed >> 7) & 1).astype(bool),
    )


class CellColumnsMixin(StoreBase):
    """The column reads of ProjectStore (see project.py)."""

    def _columns(self, where: str, args: tuple, model_id: int | None,
                 hint: str = "") -> CellColumns:
        return self._with_prediction(self._read_columns(where, args, hint), model_id)

    def _read_columns(self, where: str, args: tuple, hint: str = "") -> CellColumns:
        """The cells matching ``where``, in key order, without a prediction."""
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
        return _from_packed(table["uuid"].copy(), table["row"].copy(), table["image"].copy(),
                            xy, table["packed"])

    def _with_prediction(self, cols: CellColumns, model_id: int | None) -> CellColumns:
        """``cols`` with ``model_id``'s predicted project class and confidence (read from its
        prediction blocks); -1 / NaN where none."""
        if model_id is None or not len(cols):
            return cols
        class_ids = [r[0] for r in self._conn.execute(
            "SELECT class_id FROM model_classes WHERE model_id = ? ORDER BY idx",
            (int(model_id),))]
        if not class_ids:
            return cols
        found, probs = blocks.read(self._conn, int(model_id), len(class_ids), cols.rows)
        predicted, confidence = blocks.predicted_and_confidence(probs, found)
        mapping = np.array([-1 if c is None else c for c in class_ids], dtype=np.int64)
        pred_class = np.where(predicted >= 0, mapping[np.clip(predicted, 0, None)], -1)
        return dataclasses.replace(cols, pred_class=pred_class, confidence=confidence)

    # ------------------------------------------------------------ the column cache (v5)
    def _cached_columns(self, image_id: int) -> CellColumns | None:
        """An image's columns from ``column_cache`` (kept true by triggers on ``cells``), or
        None when it has none."""
        row = self._conn.execute(
            "SELECT c.n, c.rows, c.xy, c.packed, c.uuids FROM column_cache_valid v"
            " JOIN column_cache c ON c.image_id = v.image_id AND c.token = v.token"
            " WHERE v.image_id = ?", (image_id,)).fetchone()
        if row is None:
            return None
        n, rows, xy, packed, uuids = row
        ids = np.array(bytes(uuids).decode("utf-8").split(_SEP), dtype=object)
        if len(ids) != n:
            return None
        return _from_packed(ids, np.frombuffer(rows, "<i8").copy(),
                            np.full(n, image_id, dtype=np.int64),
                            np.frombuffer(xy, "<f8").reshape(n, 2).copy(),
                            np.frombuffer(packed, "<i8"))

    def _keep_columns(self, image_id: int, hint: str) -> CellColumns:
        """Read an image's columns and keep them in ``column_cache``, consistently: the cache
        is written only if no other connection committed anything since before the read
        (SQLite's ``data_version``). (Upgrading the read transaction to a write would fail at
        once, without waiting, whenever the checkpointer holds the write lock.)"""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        cols = self._read_columns("c.image_id = ?", (image_id,), hint)
        if self._readonly or self._conn.in_transaction or len(cols) < CACHE_CELLS_FROM:
            return cols
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._conn.execute("PRAGMA data_version").fetchone()[0] == version:
                    self._store_columns(image_id, cols)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError:  # busy: no cache this time
            pass
        return cols

    def _store_columns(self, image_id: int, cols: CellColumns) -> None:
        packed = ((cols.class_id << 8) | (cols.proposed.astype(np.int64) << 7)
                  | (cols.source.astype(np.int64) << 3) | cols.review)
        token = int.from_bytes(os.urandom(7), "little")
        self._conn.execute("INSERT OR REPLACE INTO column_cache_valid (image_id, token)"
                           " VALUES (?, ?)", (image_id, token))
        self._conn.execute(
            "INSERT OR REPLACE INTO column_cache (image_id, token, n, rows, xy, packed, uuids)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (image_id, token, len(cols), cols.rows.astype("<i8").tobytes(),
             np.ascontiguousarray(cols.xy, "<f8").tobytes(),
             packed.astype("<i8").tobytes(), _SEP.join(cols.ids.tolist()).encode()))

    def image_columns(self, image_id: int, model_id: int | None = None) -> CellColumns:
        """Every cell of one image with ``model_id``'s prediction (none: -1 / NaN), in
        insertion order. From ``CACHE_CELLS_FROM`` cells on, the columns come from the
        column cache (one row of BLOBs: ~30x fewer steps than handing SQLite's rows to
        Python), made on the first read after a change."""
        image_id = int(image_id)
        cols = self._cached_columns(image_id)
        if cols is None:
            hint = " NOT INDEXED" if self._scan_instead(image_id) else ""
            if self.image_cell_count(image_id) >= CACHE_CELLS_FROM:
                cols = self._keep_columns(image_id, hint)
            else:
                cols = self._read_columns("c.image_id = ?", (image_id,), hint)
        return self._with_prediction(cols, model_id)

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
        return self._image_count(int(image_id))

    def images_of_cells(self, ids) -> list[int]:
        """The ids of the images holding these cells (UUIDs), sorted; one query."""
        ids = [str(i) for i in ids]
        if not ids:
            return []
        return [r[0] for r in self._conn.execute(
            "SELECT DISTINCT image_id FROM cells WHERE uuid IN (SELECT value FROM json_each(?))"
            " ORDER BY image_id", (json.dumps(ids),))]
