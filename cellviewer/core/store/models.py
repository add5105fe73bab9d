"""Models known to a project and their per-cell predictions (not undoable: they are
machine output, recomputed at will, not user edits)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from cellviewer.core.store import prediction_blocks as blocks
from cellviewer.core.store.base import StoreBase
from cellviewer.core.store.common import inserted_id, utc_now
from cellviewer.core.store.records import (
    ModelRecord,
    PredictionArrays,
)


class ModelsMixin(StoreBase):
    """The model half of ProjectStore (see project.py)."""

    # ------------------------------------------------------------------ models, predictions

    def add_model(self, name: str, path: str | os.PathLike | None, arch: str | None,
                  classes: Sequence[str], meta: dict | None = None) -> int:
        """Register a model; each of its classes is matched to the project class of the same
        name (exactly, else ignoring case). Not an undoable edit."""
        classes = [str(c) for c in classes]
        if not classes or len(set(classes)) != len(classes):
            raise ValueError("a model needs a non-empty list of distinct class names")
        by_name = {c.name: c.id for c in self.classes()}
        by_lower = {c.name.lower(): c.id for c in self.classes()}
        with self._write(kinds=("models",)):
            model_id = inserted_id(self._conn.execute(
                "INSERT INTO models (name, path, arch, meta, added_by, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, None if path is None else str(path), arch,
                 json.dumps(meta or {}, default=str), self._user, utc_now()),
            ))
            self._conn.executemany(
                "INSERT INTO model_classes (model_id, idx, name, class_id) VALUES (?, ?, ?, ?)",
                [(model_id, i, c, by_name.get(c, by_lower.get(c.lower())))
                 for i, c in enumerate(classes)],
            )
        return model_id

    def _model_record(self, row: tuple) -> ModelRecord:
        model_id, name, path, arch, meta, by, at = row
        mc = self._conn.execute(
            "SELECT name, class_id FROM model_classes WHERE model_id = ? ORDER BY idx",
            (model_id,),
        ).fetchall()
        n = blocks.count(self._conn, model_id)
        return ModelRecord(model_id, name, path, arch, [m[0] for m in mc],
                           [m[1] for m in mc], json.loads(meta), by, at, n)

    def models(self) -> list[ModelRecord]:
        return [self._model_record(r) for r in self._conn.execute(
            "SELECT id, name, path, arch, meta, added_by, added_at FROM models ORDER BY id"
        ).fetchall()]

    def model(self, model_id: int) -> ModelRecord:
        row = self._conn.execute(
            "SELECT id, name, path, arch, meta, added_by, added_at FROM models WHERE id = ?",
            (int(model_id),),
        ).fetchone()
        if row is None:
            raise KeyError(f"no model {model_id} in {self.path}")
        return self._model_record(row)

    def delete_model(self, model_id: int) -> None:
        """Forget a model and its predictions (not undoable; history is unaffected)."""
        self.model(model_id)
        with self._write(kinds=("models", "predictions")):
            self._conn.execute("DELETE FROM models WHERE id = ?", (int(model_id),))

    def put_predictions(self, model_id: int, cell_ids: Sequence[str] | np.ndarray,
                        probs: np.ndarray) -> None:
        """Store (or replace) one model's class probabilities for cells: ``probs`` is (N, K)
        float32 in the model's class order. ``cell_ids`` are UUIDs or CellArrays ``rows``."""
        k = len(self._model_classes(model_id)[0])
        probs = np.ascontiguousarray(probs, dtype="<f4")
        if probs.ndim != 2 or probs.shape != (len(cell_ids), k):
            raise ValueError(
                f"probabilities of shape {probs.shape} for {len(cell_ids)} cells and {k} classes"
            )
        if not np.isfinite(probs).all():
            raise ValueError("probabilities must be finite")
        if len(cell_ids) == 0:
            return
        keys = self._existing_keys(cell_ids)
        ordered = np.sort(keys)
        if (ordered[1:] == ordered[:-1]).any():
            raise KeyError("duplicate cell ids in put_predictions")
        with self._write(kinds=("predictions",)):
            blocks.write(self._conn, model_id, keys, probs)

    def _existing_keys(self, cell_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """The internal keys of these cells (UUIDs or keys), in their order; KeyError naming
        one that is not in the project."""
        if isinstance(cell_ids, np.ndarray) and cell_ids.dtype.kind in "iu":
            keys = cell_ids.astype(np.int64)
            lo, hi = int(keys.min()), int(keys.max())
            # Keys of one image are mostly a run with no gaps: one count answers for all.
            if self._conn.execute("SELECT count(*) FROM cells WHERE id BETWEEN ? AND ?",
                                  (lo, hi)).fetchone()[0] == hi - lo + 1:
                return keys
            distinct = np.unique(keys)
            if self._conn.execute(
                    "SELECT count(*) FROM cells WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(distinct.tolist()),)).fetchone()[0] == len(distinct):
                return keys
            present = np.fromiter((r[0] for r in self._conn.execute(
                "SELECT id FROM cells WHERE id BETWEEN ? AND ?", (lo, hi))), dtype=np.int64)
            missing = keys[~np.isin(keys, present)]
            raise KeyError(f"no cell with key {int(missing[0])} in this project")
        ids = [str(c) for c in cell_ids]
        found = dict(self._conn.execute(
            "SELECT uuid, id FROM cells WHERE uuid IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),)).fetchall())
        for cell in ids:
            if cell not in found:
                raise KeyError(f"no cell {cell!r} in this project")
        return np.array([found[c] for c in ids], dtype=np.int64)

    def predictions(self, model_id: int, cell_ids: Sequence[str] | np.ndarray
                    ) -> PredictionArrays:
        """One model's predictions for these cells, in their order (NaN / -1 where none)."""
        classes, class_ids = self._model_classes(model_id)  # (not model(): it counts rows)
        keys = self._keys_or_absent(cell_ids)
        found, probs = blocks.read(self._conn, model_id, len(classes), keys)
        predicted, confidence = blocks.predicted_and_confidence(probs, found)
        mapping = np.array([-1 if c is None else c for c in class_ids], dtype=np.int64)
        pred_class = np.where(predicted >= 0, mapping[np.clip(predicted, 0, None)], -1)
        return PredictionArrays(classes, probs, predicted, pred_class, confidence)

    def _keys_or_absent(self, cell_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Internal keys of these cells in their order; -1 for ids not in the project."""
        if isinstance(cell_ids, np.ndarray) and cell_ids.dtype.kind in "iu":
            return cell_ids.astype(np.int64)
        ids = [str(c) for c in cell_ids]
        if not ids:
            return np.empty(0, dtype=np.int64)
        found = dict(self._conn.execute(
            "SELECT uuid, id FROM cells WHERE uuid IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),)).fetchall())
        return np.array([found.get(c, -1) for c in ids], dtype=np.int64)

    def _model_classes(self, model_id: int) -> tuple[list[str], list[int | None]]:
        """A model's classes (its output order) and the project class each one means."""
        rows = self._conn.execute(
            "SELECT name, class_id FROM model_classes WHERE model_id = ? ORDER BY idx",
            (int(model_id),)).fetchall()
        if not rows:
            self.model(model_id)  # KeyError naming the model when there is none
        return [r[0] for r in rows], [r[1] for r in rows]
