"""Models known to a project and their per-cell predictions (not undoable: they are
machine output, recomputed at will, not user edits)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from cellviewer.core.store.base import StoreBase
from cellviewer.core.store.common import (
    cell_keys,
    inserted_id,
    utc_now,
)
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
        n = self._conn.execute(
            "SELECT count(*) FROM predictions WHERE model_id = ?", (model_id,)
        ).fetchone()[0]
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
        predicted = probs.argmax(axis=1)
        confidence = probs[np.arange(len(probs)), predicted].astype(np.float64)
        blobs = [row.tobytes() for row in probs]  # one cell's K little-endian float32
        column, keys = cell_keys(cell_ids)
        with self._write(kinds=("predictions",)):
            cur = self._conn.executemany(
                "INSERT OR REPLACE INTO predictions (model_id, cell_id, probs, predicted,"
                f" confidence) SELECT ?, id, ?, ?, ? FROM cells WHERE {column} = ?",
                zip([int(model_id)] * len(keys), blobs, predicted.tolist(),
                    confidence.tolist(), keys, strict=True),
            )
            if cur.rowcount != len(keys):
                self._select(cell_ids)  # raises KeyError naming the unknown id
                raise KeyError("duplicate cell ids in put_predictions")

    def predictions(self, model_id: int, cell_ids: Sequence[str] | np.ndarray
                    ) -> PredictionArrays:
        """One model's predictions for these cells, in their order (NaN / -1 where none)."""
        classes, class_ids = self._model_classes(model_id)  # (not model(): it counts rows)
        k, n = len(classes), len(cell_ids)
        probs = np.full((n, k), np.nan, dtype=np.float32)
        predicted = np.full(n, -1, dtype=np.int64)
        confidence = np.full(n, np.nan, dtype=np.float32)
        column, keys = cell_keys(cell_ids)
        # Positions travel through temp._sel.v so one join answers for all cells.
        self._conn.execute("DELETE FROM temp._sel")
        self._conn.executemany(
            f"INSERT OR IGNORE INTO temp._sel (id, v) SELECT id, ? FROM cells WHERE {column} = ?",
            zip(range(n), keys, strict=True),
        )
        found = self._conn.execute(
            "SELECT s.v, p.probs, p.predicted, p.confidence FROM temp._sel s"
            " CROSS JOIN predictions p ON p.cell_id = s.id AND p.model_id = ?", (int(model_id),)
        ).fetchall()
        if found:
            pos, blobs, pred, conf = zip(*found, strict=True)
            index = np.array(pos, dtype=np.int64)
            probs[index] = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, k)
            predicted[index] = pred
            confidence[index] = conf
        # Repeated ids share one temp row: fill the repeats from their first occurrence.
        if len(set(keys)) != n:
            first: dict = {}
            for i, key in enumerate(keys):
                j = first.setdefault(key, i)
                if j != i:
                    probs[i], predicted[i], confidence[i] = probs[j], predicted[j], confidence[j]
        mapping = np.array([-1 if c is None else c for c in class_ids], dtype=np.int64)
        pred_class = np.where(predicted >= 0, mapping[np.clip(predicted, 0, None)], -1)
        return PredictionArrays(classes, probs, predicted, pred_class, confidence)

    def _model_classes(self, model_id: int) -> tuple[list[str], list[int | None]]:
        """A model's classes (its output order) and the project class each one means."""
        rows = self._conn.execute(
            "SELECT name, class_id FROM model_classes WHERE model_id = ? ORDER BY idx",
            (int(model_id),)).fetchall()
        if not rows:
            self.model(model_id)  # KeyError naming the model when there is none
        return [r[0] for r in rows], [r[1] for r in rows]
