"""Cells: adding, moving, deleting, labelling, reviewing (all undoable) and reading them
back, one at a time or as numpy arrays, by rectangle or by filter."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from cellviewer.core.cells.order import POSITION, SURE_FIRST, UNSURE_FIRST, UPDATED
from cellviewer.core.store import prediction_blocks as blocks
from cellviewer.core.store import undo as _undo
from cellviewer.core.store.base import StoreBase
from cellviewer.core.store.common import (
    cell_keys,
    check_source,
    check_status,
    utc_now,
)
from cellviewer.core.store.ids import new_ids, normalise_id
from cellviewer.core.store.records import (
    CellArrays,
    CellRecord,
    ProjectError,
)
from cellviewer.core.store.schema import GRID, NEW_UUID_SQL, REVIEW_STATUSES

# review_status as its index in REVIEW_STATUSES, computed by SQLite.
_REVIEW_SQL = "CASE review_status " + " ".join(
    f"WHEN '{s}' THEN {i}" for i, s in enumerate(REVIEW_STATUSES)) + " END"

# One record per row of ``_arrays``' SELECT, in its column order. The class id (-1: none) and
# the review index travel as one integer, ``class_id << 3 | review``: one column less for
# SQLite to hand to Python per row (~8% of the fetch).
# Since version 3 the proposed flag rides along too: ``class_id << 4 | proposed << 3 | review``.
_ARRAYS_DTYPE = np.dtype([("row", np.int64), ("uuid", object), ("x", np.float64),
                          ("y", np.float64), ("class_review", np.int64)])
assert len(REVIEW_STATUSES) <= 8

_CELL_SELECT = (
    "SELECT uuid, image_id, x, y, class_id, label_source, review_status, updated_by, "
    "updated_at, metadata, proposed, score, run_id, outline FROM cells"
)


def _per_cell(value, n: int, what: str, check) -> list[str]:
    """One value for every cell, or a sequence of one per cell; each checked."""
    column = [value] * n if isinstance(value, str) else [str(v) for v in value]
    if len(column) != n:
        raise ValueError(f"{len(column)} {what} values for {n} cells")
    for v in set(column):
        check(v)
    return column


class CellsMixin(StoreBase):
    """The cell half of ProjectStore (see project.py)."""

    # ------------------------------------------------------------------ cells: selection

    def _select(self, ids: Sequence[str] | np.ndarray, values: Sequence | None = None,
                xy: np.ndarray | None = None) -> int:
        """Fill temp._sel with the internal keys of ``ids`` (UUID strings, or int64 ``rows``
        from CellArrays) and optional per-cell values; KeyError naming an unknown id."""
        conn = self._conn
        conn.execute("DELETE FROM temp._sel")
        column, keys = cell_keys(ids)
        n = len(ids)
        vals = [None] * n if values is None else list(values)
        xs = [None] * n if xy is None else xy[:, 0].tolist()
        ys = [None] * n if xy is None else xy[:, 1].tolist()
        conn.executemany(
            "INSERT OR REPLACE INTO temp._sel (id, v, x, y) SELECT id, ?, ?, ? FROM cells "
            f"WHERE {column} = ?",
            zip(vals, xs, ys, keys, strict=True),
        )
        found = conn.execute("SELECT count(*) FROM temp._sel").fetchone()[0]
        wanted = len(set(ids.tolist() if isinstance(ids, np.ndarray) else ids))
        if found != wanted:
            if column == "id":
                known = {r[0] for r in conn.execute("SELECT id FROM temp._sel")}
            else:
                known = {r[0] for r in conn.execute(
                    "SELECT c.uuid FROM temp._sel s CROSS JOIN cells c ON c.id = s.id")}
            missing = next(k for k in keys if k not in known)
            raise KeyError(f"no cell {missing} in {self.path}")
        return found

    def _snapshot_selected(self, op: _undo.PendingOp, predictions: bool = False) -> None:
        """Keep the before-state of the selected cells (cells this very action created have
        none: they were absent before)."""
        lo, hi = (op.new_lo, op.new_hi) if op.new_lo is not None and op.new_hi is not None \
            else (1, 0)
        self._conn.execute(
            f"INSERT OR IGNORE INTO op_cells (op_id, cell_id, present, {_undo.cell_cols()})"
            f" SELECT ?, c.id, 1, {_undo.cell_cols('c.')}"
            " FROM temp._sel s CROSS JOIN cells c ON c.id = s.id WHERE s.id NOT BETWEEN ? AND ?",
            (op.id, lo, hi),
        )
        if predictions:  # the cells are about to go: their predictions go to the undo data
            taken = blocks.take(self._conn, self._selected_rows())
            self._conn.executemany(
                "INSERT OR IGNORE INTO op_predictions"
                " (op_id, model_id, cell_id, probs, predicted, confidence)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                ((op.id, *row) for row in taken if not lo <= row[1] <= hi),
            )

    def _selected_rows(self) -> np.ndarray:
        """The internal keys in temp._sel (what an action is about to change)."""
        return np.fromiter((r[0] for r in self._conn.execute("SELECT id FROM temp._sel")),
                           dtype=np.int64)

    def _selected_images(self) -> list[int]:
        return [r[0] for r in self._conn.execute(
            "SELECT DISTINCT c.image_id FROM temp._sel s CROSS JOIN cells c ON c.id = s.id")]

    def _history_selected(self, op, action: str, new_class: str, old_status: str,
                          new_status: str, source: str, detail: str = "NULL",
                          params: dict | None = None) -> None:
        """One history row per selected cell; the arguments are SQL expressions over
        ``c`` (the cell before), ``s`` (temp._sel) and ``oc`` (its class before)."""
        self._conn.execute(
            "INSERT INTO history (uuid, cell_uuid, image_id, op_id, action, old_class, new_class,"
            " old_status, new_status, source, user, at, detail)"
            f" SELECT {NEW_UUID_SQL}, c.uuid, c.image_id, :op, :action, oc.name, {new_class},"
            f" {old_status}, {new_status}, {source}, :user, :now, {detail}"
            " FROM temp._sel s CROSS JOIN cells c ON c.id = s.id"
            " LEFT JOIN classes oc ON oc.id = c.class_id",
            {"op": op.id, "action": action, "user": self._user, "now": utc_now(),
             **(params or {})},
        )

    # ------------------------------------------------------------------ cells: edits

    def add_cells(self, image_id: int, xy, class_ids=None, source: str | Sequence[str] = "manual",
                  *, ids: Sequence[str] | None = None,
                  review_status: str | Sequence[str] = "unreviewed",
                  metadata: Sequence[dict | None] | None = None,
                  proposed: bool = False, scores: Sequence[float] | np.ndarray | None = None,
                  run_id: str | None = None,
                  outlines: Sequence[str | None] | None = None) -> list[str]:
        """Add cells at ``xy`` ((N, 2) level-0 pixels) of one image (undoable, one action).

        ``class_ids``: None (unlabelled), one class id for all, or one per cell (None or -1:
        unlabelled). ``source`` and ``review_status``: one value or one per cell. ``ids`` keeps
        given UUIDs (imports); otherwise new ones are made. ``metadata``: one dict (or None)
        per cell, stored as JSON. ``proposed``: the cells are a detector's proposals until
        accepted (:meth:`accept_proposals`), with their detection ``scores`` and ``run_id``.
        ``outlines``: one GeoJSON Polygon text (or None) per cell. Returns the cells' ids.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        n = len(xy)
        if n == 0:
            return []
        if not np.isfinite(xy).all():
            raise ValueError("cell coordinates must be finite numbers")
        self.image(image_id)
        sources = _per_cell(source, n, "label source", check_source)
        statuses = _per_cell(review_status, n, "review status", check_status)
        classes = self._class_column(class_ids, n)
        order = spatial_order(xy)
        if ids is None:
            # Ascending new ids handed out in the rows' (spatial) order: the cells of a region
            # then sit together in the index of history by cell, so labelling them writes a
            # few pages of it, not one per cell.
            fresh = new_ids(n)
            ids = [""] * n
            for rank, i in enumerate(order.tolist()):
                ids[i] = fresh[rank]
        else:
            ids = self._check_new_ids(ids, n)
        if metadata is None:
            meta: Iterable = [None] * n
        else:
            if len(metadata) != n:
                raise ValueError(f"{len(metadata)} metadata entries for {n} cells")
            meta = [_json_meta(m) for m in metadata]
        score_col = [None] * n if scores is None else _finite_or_none(scores, n)
        if outlines is not None and len(outlines) != n:
            raise ValueError(f"{len(outlines)} outlines for {n} cells")
        outline_col = [None] * n if outlines is None else list(outlines)
        plural = "s" if n != 1 else ""
        action, verb = ("propose", "Propose") if proposed else ("add", "Add")
        with self._operation(action, f"{verb} {n:,} cell{plural}") as op:
            now = utc_now()
            lo = self._conn.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'cells' RETURNING value - ?",
                (n, n),
            ).fetchall()[0][0]
            # Keys in reading order of tiles, so that neighbours share pages (see spatial_order)
            take = order.tolist()
            xs, ys = xy[order, 0].tolist(), xy[order, 1].tolist()
            meta = list(meta)
            self._conn.executemany(
                "INSERT INTO cells (id, uuid, image_id, x, y, class_id, label_source,"
                " review_status, updated_by, updated_at, metadata, proposed, score, run_id,"
                " outline) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                zip(range(lo, lo + n), [ids[i] for i in take], [int(image_id)] * n, xs, ys,
                    [classes[i] for i in take], [sources[i] for i in take],
                    [statuses[i] for i in take], [self._user] * n, [now] * n,
                    [meta[i] for i in take], [int(bool(proposed))] * n,
                    [score_col[i] for i in take], [run_id] * n, [outline_col[i] for i in take],
                    strict=True),
            )
            hi = lo + n - 1
            self._conn.execute(
                "INSERT INTO history (uuid, cell_uuid, image_id, op_id, action, old_class,"
                " new_class, old_status, new_status, source, user, at)"
                f" SELECT {NEW_UUID_SQL}, c.uuid, c.image_id, ?, ?, NULL, k.name, NULL,"
                " c.review_status, c.label_source, ?, ?"
                " FROM cells c LEFT JOIN classes k ON k.id = c.class_id"
                " WHERE c.id BETWEEN ? AND ?",
                (op.id, action, self._user, now, lo, hi),
            )
            op.add_new_range(lo, hi)
            op.note("cells", [image_id], n, rows=np.arange(lo, hi + 1, dtype=np.int64))
        return ids

    def existing_cell_ids(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` (UUID strings) already in the project, in the order given."""
        found: set[str] = set()
        ids = [str(i) for i in ids]
        for start in range(0, len(ids), 50_000):
            part = ids[start:start + 50_000]
            found.update(r[0] for r in self._conn.execute(
                f"SELECT uuid FROM cells WHERE uuid IN ({','.join('?' * len(part))})", part))
        return [i for i in ids if i in found]

    def _class_column(self, class_ids, n: int) -> list[int | None]:
        if class_ids is None:
            return [None] * n
        if np.ndim(class_ids) == 0:
            v = None if class_ids is None or int(class_ids) < 0 else int(class_ids)
            column = [v] * n
        else:
            arr = np.asarray(class_ids, dtype=object).reshape(-1)
            if len(arr) != n:
                raise ValueError(f"{len(arr)} class ids for {n} cells")
            column = [None if v is None or int(v) < 0 else int(v) for v in arr.tolist()]
        known = {c.id for c in self.classes()}
        unknown = {v for v in column if v is not None} - known
        if unknown:
            raise KeyError(f"no class {sorted(unknown)[0]} in {self.path}")
        return column

    def _check_new_ids(self, ids: Sequence[str], n: int) -> list[str]:
        if len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} cells")
        out = []
        for raw in ids:
            norm = normalise_id(raw)
            if norm is None:
                raise ValueError(f"cell id {raw!r} is not a UUID")
            out.append(norm)
        if len(set(out)) != n:
            raise ValueError("cell ids must be unique")
        clash = self.existing_cell_ids(out)
        if clash:
            raise ProjectError(f"cell id {clash[0]} is already in {self.path}")
        return out

    def delete_cells(self, ids: Sequence[str] | np.ndarray) -> int:
        """Delete cells (undoable: undo brings them back with their ids and predictions)."""
        if len(ids) == 0:
            return 0
        n = len(set(ids.tolist() if isinstance(ids, np.ndarray) else ids))
        with self._operation("delete", f"Delete {n:,} cell{'s' if n != 1 else ''}") as op:
            self._select(ids)
            return self._delete_selected(op, "delete")

    def _delete_selected(self, op: _undo.PendingOp, action: str) -> int:
        images = self._selected_images()
        rows = self._selected_rows()
        self._snapshot_selected(op, predictions=True)
        self._history_selected(op, action, "NULL", "c.review_status", "NULL", "c.label_source")
        n = self._conn.execute(
            "DELETE FROM cells WHERE id IN (SELECT id FROM temp._sel)"
        ).rowcount
        if n:
            op.note("cells", images, n, rows=rows)
        return n

    def move_cell(self, cell_id: str, x: float, y: float) -> None:
        self.move_cells([cell_id], np.array([[x, y]], dtype=np.float64))

    def move_cells(self, ids: Sequence[str], xy) -> None:
        """Move cells to new level-0 positions (undoable)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(xy) != len(ids):
            raise ValueError(f"{len(xy)} positions for {len(ids)} cells")
        if not np.isfinite(xy).all():
            raise ValueError("cell coordinates must be finite numbers")
        if len(ids) == 0:
            return
        n = len(ids)
        with self._operation("move", f"Move {n:,} cell{'s' if n != 1 else ''}") as op:
            self._select(ids, xy=xy)
            images = self._selected_images()
            self._snapshot_selected(op)
            self._history_selected(
                op, "move", "oc.name", "c.review_status", "c.review_status", "c.label_source",
                detail="json_object('from', json_array(c.x, c.y), 'to', json_array(s.x, s.y))",
            )
            self._conn.execute(
                "UPDATE cells SET x = s.x, y = s.y FROM temp._sel s WHERE s.id = cells.id"
                " AND cells.id IN (SELECT id FROM temp._sel)"  # rowid lookups, not a scan
            )
            op.note("cells", images, n, rows=self._selected_rows())

    def set_labels(self, ids: Sequence[str] | np.ndarray, class_id,
                   source: str = "manual") -> int:
        """Label cells (undoable, one action however many cells). ``class_id`` is one class id
        (None: remove the label) or one per cell. Cells whose label and source would not change
        are left alone. Returns the number of cells changed."""
        check_source(source)
        n = len(ids)
        if n == 0:
            return 0
        column = self._class_column(class_id, n) if class_id is not None else [None] * n
        if np.ndim(class_id) == 0:
            name = self.class_record(class_id).name if class_id is not None and \
                int(class_id) >= 0 else "unlabelled"
            description = f"Label {n:,} cell{'s' if n != 1 else ''} as {name}"
        else:
            description = f"Label {n:,} cells"
        with self._operation("label", description) as op:
            self._select(ids, values=column)
            return self._label_selected(op, source, "label")

    def _label_selected(self, op: _undo.PendingOp, source: str | None, action: str,
                        keep_source: bool = False) -> int:
        """Apply temp._sel.v as the new class of the selected cells."""
        src_expr = "c.label_source" if keep_source else ":source"
        self._conn.execute(
            # a correlated EXISTS: rowid lookups (a join here got a Bloom filter built by a
            # scan of every cell of the project once the file had statistics)
            "DELETE FROM temp._sel WHERE EXISTS (SELECT 1 FROM cells c WHERE c.id = _sel.id"
            f" AND c.class_id IS _sel.v AND c.label_source = {src_expr})",
            {"source": source},
        )
        n = self._conn.execute("SELECT count(*) FROM temp._sel").fetchone()[0]
        if not n:
            return 0
        images = self._selected_images()
        self._snapshot_selected(op)
        self._history_selected(
            op, action, "(SELECT name FROM classes WHERE id = s.v)", "c.review_status",
            "c.review_status", src_expr, params={"source": source},
        )
        self._conn.execute(
            f"UPDATE cells SET class_id = s.v, label_source = {src_expr.replace('c.', 'cells.')},"
            " updated_by = :user, updated_at = :now FROM temp._sel s WHERE s.id = cells.id"
            " AND cells.id IN (SELECT id FROM temp._sel)",  # rowid lookups, not a scan
            {"source": source, "user": self._user, "now": utc_now()},
        )
        op.note("cells", images, n, rows=self._selected_rows())
        return n

    def set_review_status(self, ids: Sequence[str] | np.ndarray, status: str) -> int:
        """Set the review status of cells (undoable). Returns the number changed."""
        check_status(status)
        n = len(ids)
        if n == 0:
            return 0
        with self._operation("review", f"Mark {n:,} cell{'s' if n != 1 else ''} {status}") \
                as op:
            self._select(ids)
            self._conn.execute(
                "DELETE FROM temp._sel WHERE id IN (SELECT id FROM cells WHERE"
                " review_status = ? AND id IN (SELECT id FROM temp._sel))", (status,)
            )
            changed = self._conn.execute("SELECT count(*) FROM temp._sel").fetchone()[0]
            if not changed:
                return 0
            images = self._selected_images()
            self._snapshot_selected(op)
            self._history_selected(
                op, "review", "oc.name", "c.review_status", ":status", "c.label_source",
                params={"status": status},
            )
            self._conn.execute(
                "UPDATE cells SET review_status = ? WHERE id IN (SELECT id FROM temp._sel)",
                (status,),
            )
            op.note("cells", images, changed, rows=self._selected_rows())
            return changed

    def accept_proposals(self, ids: Sequence[str] | np.ndarray) -> int:
        """Accept proposed cells (undoable): they become ordinary cells and keep their label
        source, score and run (their origin). Cells that are not proposals are left alone.
        Returns the number accepted."""
        if len(ids) == 0:
            return 0
        with self._operation("accept", "Accept proposals") as op:
            self._select(ids)
            self._conn.execute(
                "DELETE FROM temp._sel WHERE id IN (SELECT id FROM cells WHERE proposed = 0"
                " AND id IN (SELECT id FROM temp._sel))")
            n = self._conn.execute("SELECT count(*) FROM temp._sel").fetchone()[0]
            if not n:
                return 0
            op.description = f"Accept {n:,} proposal{'s' if n != 1 else ''}"
            self._conn.execute("UPDATE operations SET description = ? WHERE id = ?",
                               (op.description, op.id))
            images = self._selected_images()
            self._snapshot_selected(op)
            self._history_selected(op, "accept", "oc.name", "c.review_status",
                                   "c.review_status", "c.label_source",
                                   detail="json_object('run', c.run_id, 'score', c.score)")
            self._conn.execute(
                "UPDATE cells SET proposed = 0, updated_by = ?, updated_at = ?"
                " WHERE id IN (SELECT id FROM temp._sel)", (self._user, utc_now()))
            op.note("cells", images, n, rows=self._selected_rows())
            return n

    # ------------------------------------------------------------------ cells: reads

    def cell(self, cell_id: str) -> CellRecord:
        row = self._conn.execute(f"{_CELL_SELECT} WHERE uuid = ?", (str(cell_id),)).fetchone()
        if row is None:
            raise KeyError(f"no cell {cell_id} in {self.path}")
        (uuid, image_id, x, y, class_id, source, status, by, at, meta, proposed, score, run,
         outline) = row
        return CellRecord(uuid, image_id, x, y, class_id, source, status, by, at,
                          metadata=json.loads(meta) if meta else {}, proposed=bool(proposed),
                          score=score, run_id=run, outline=outline)

    def cell_count(self, image_id: int | None = None) -> int:
        counts = self._cell_counts()
        return sum(counts.values()) if image_id is None else counts.get(int(image_id), 0)

    def _arrays(self, where: str, args, hint: str = "") -> CellArrays:
        # Conversions happen in SQL, and numpy turns the row tuples into one structured array
        # in C (no per-row Python work); the columns are then plain typed copies. Most of the
        # time left is SQLite building the row tuples (about 1 us a cell).
        rows = self._conn.execute(
            f"SELECT id, uuid, x, y, (coalesce(class_id, -1) << 4) | (proposed << 3)"
            f" | {_REVIEW_SQL}"
            f" FROM cells{hint} WHERE {where} ORDER BY id", args  # (key order, either path)
        ).fetchall()
        if not rows:
            return CellArrays.empty()
        table = np.array(rows, dtype=_ARRAYS_DTYPE)
        del rows
        xy = np.empty((len(table), 2), dtype=np.float64)
        xy[:, 0] = table["x"]
        xy[:, 1] = table["y"]
        packed = table["class_review"]
        return CellArrays(
            ids=table["uuid"].copy(),
            xy=xy,
            class_id=packed >> 4,  # arithmetic shift: -16 | ... gives back -1
            review=(packed & 7).astype(np.int8),
            rows=table["row"].copy(),
            proposed=((packed >> 3) & 1).astype(bool),
        )

    def _scan_instead(self, image_id: int) -> str:
        """``NOT INDEXED`` when the image holds most of the project's cells: then reading the
        table in order beats visiting it page by random page through the spatial index (2-3x
        for a million-cell image). SQLite cannot know this without full statistics. A small
        image never scans: its count is an index-only count of its own cells, where the whole
        project's per-image counts would cost a pass over every cell (the GUI thread loads
        small images itself)."""
        if self.image_cell_count(image_id) < SCAN_CELLS_FROM:
            return ""
        counts = self._cell_counts()
        total = sum(counts.values())
        return " NOT INDEXED" if total and counts.get(image_id, 0) > total // 4 else ""

    def cell_arrays(self, image_id: int) -> CellArrays:
        """Every cell of one image, as arrays."""
        image_id = int(image_id)
        return self._arrays("image_id = ?", (image_id,), self._scan_instead(image_id))

    def cells_in_rect(self, image_id: int, x0: float, y0: float, x1: float, y1: float, *,
                      max_cells: int | None = None) -> CellArrays:
        """Cells with ``x0 <= x <= x1`` and ``y0 <= y <= y1`` in one image (level-0 pixels).

        Indexed (see schema.py): about a millisecond for a screen-sized viewport of a
        million-cell image. ``max_cells`` bounds the answer for zoomed-out views: when more
        cells lie in the rectangle, an even, stable subsample (every k-th cell by internal key,
        so panning does not make markers flicker) of about that size is returned.
        """
        image_id = int(image_id)
        x0, x1 = sorted((float(x0), float(x1)))
        y0, y1 = sorted((float(y0), float(y1)))
        b0, b1 = int(y0 / GRID), int(y1 / GRID)  # CAST(... AS INTEGER) truncates the same way
        hint = ""
        row = self._conn.execute(
            "SELECT width, height FROM images WHERE id = ?", (image_id,)).fetchone()
        if row and x0 <= 0 and y0 <= 0 and x1 >= row[0] and y1 >= row[1]:
            bands = "1"  # the whole image: no band list, and maybe a plain scan
            hint = self._scan_instead(image_id)
        elif b1 - b0 <= 4096:
            bands = "gy IN (" + ",".join(str(b) for b in range(b0, b1 + 1)) + ")"
        else:
            bands = f"gy BETWEEN {b0} AND {b1}"
        where = f"image_id = ? AND {bands} AND x >= ? AND x <= ? AND y >= ? AND y <= ?"
        args: tuple = (image_id, x0, x1, y0, y1)
        if max_cells is not None:
            if bands == "1":  # the whole image: its count is known
                expected = self._cell_counts().get(image_id, 0)
            else:
                expected = self._conn.execute(  # index-only: every column is in cells_grid
                    f"SELECT count(*) FROM cells WHERE {where}", args
                ).fetchone()[0]
            stride = math.ceil(expected / max(int(max_cells), 1))
            if stride > 1:  # few rows wanted: the index and a lookup each beat a scan
                where += f" AND id % {stride} = 0"
                hint = ""
        return self._arrays(where, args, hint)

    def cell_table(self, image_ids: Sequence[int] | None = None,
                   cell_ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Every field of the cells (of some images; only ``cell_ids`` when given), as columns:
        ``rows``, ``ids``, ``image_id``, ``x``, ``y``, ``class_id`` (-1 none),
        ``label_source``, ``review_status``, ``updated_by``, ``updated_at``, ``metadata``
        (dicts), ``proposed`` (bool array), ``score`` (float, NaN none), ``run_id`` and
        ``outline`` (None where absent), in image then insertion order. For exports. KeyError
        naming a ``cell_ids`` entry that is no cell of the project."""
        sql = ("SELECT id, uuid, image_id, x, y, class_id, label_source, review_status,"
               " updated_by, updated_at, metadata, proposed, score, run_id, outline FROM cells")
        where: list[str] = []
        args: list = []
        if image_ids is not None:
            image_ids = [int(i) for i in image_ids]
            where.append(f"image_id IN ({','.join('?' * len(image_ids))})")
            args.extend(image_ids)
        if cell_ids is not None:
            wanted = list(dict.fromkeys(str(i) for i in cell_ids))
            known = set(self.existing_cell_ids(wanted))
            missing = [i for i in wanted if i not in known]
            if missing:
                raise KeyError(f"no cell {missing[0]} in {self.path}"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
            # One JSON parameter, however long the selection (no host-parameter limit).
            where.append("uuid IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(wanted))
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn.execute(sql + " ORDER BY image_id, id", args).fetchall()
        names = ("rows", "ids", "image_id", "x", "y", "class_id", "label_source",
                 "review_status", "updated_by", "updated_at", "metadata", "proposed", "score",
                 "run_id", "outline")
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        out: dict[str, Any] = dict(zip(names, cols, strict=True))
        out["rows"] = np.array(out["rows"], dtype=np.int64)
        out["image_id"] = np.array(out["image_id"], dtype=np.int64)
        out["x"] = np.array(out["x"], dtype=np.float64)
        out["y"] = np.array(out["y"], dtype=np.float64)
        out["class_id"] = np.array([-1 if c is None else c for c in out["class_id"]],
                                   dtype=np.int64)
        out["metadata"] = [json.loads(m) if m else {} for m in out["metadata"]]
        out["proposed"] = np.array(out["proposed"], dtype=bool)
        out["score"] = np.array([np.nan if v is None else v for v in out["score"]],
                                dtype=np.float64)
        for k in ("ids", "label_source", "review_status", "updated_by", "updated_at", "run_id",
                  "outline"):
            out[k] = list(out[k])
        return out

    def query_cells(self, image_id: int | None = None, class_id: int | None = None,
                    disagree_model_id: int | None = None, max_confidence: float | None = None,
                    review_status: str | None = None, order: str | None = UNSURE_FIRST, *,
                    model_id: int | None = None, min_confidence: float | None = None,
                    predicted_class_id: int | None = None, label_source: str | None = None,
                    limit: int | None = None) -> list[str]:
        """Ids of the cells matching every filter given.

        ``class_id``: that label (``UNLABELLED`` = -1 for none). ``disagree_model_id``: labelled
        cells whose label differs from that model's predicted class. ``model_id`` (defaults to
        ``disagree_model_id``) is the model for the confidence filters, ``predicted_class_id``
        and the order. ``order`` (the words of :mod:`cellviewer.core.cells.order`):
        "unsure-first" (least confident first; by id without a model), "sure-first",
        "position" (image, y, x), "updated" (latest label change first) or None.
        """
        model = model_id if model_id is not None else disagree_model_id
        where: list[str] = []
        args: list[Any] = []
        if image_id is not None:
            where.append("c.image_id = ?")
            args.append(int(image_id))
        if class_id is not None:
            if int(class_id) < 0:
                where.append("c.class_id IS NULL")
            else:
                where.append("c.class_id = ?")
                args.append(int(class_id))
        if disagree_model_id is not None:
            where.append("c.class_id IS NOT NULL")
        if review_status is not None:
            check_status(review_status)
            where.append("c.review_status = ?")
            args.append(review_status)
        if label_source is not None:
            check_source(label_source)
            where.append("c.label_source = ?")
            args.append(label_source)
        if model is None and (max_confidence is not None or min_confidence is not None
                              or predicted_class_id is not None):
            raise ValueError("confidence and predicted-class filters need a model_id")
        by_prediction = model is not None and order in (UNSURE_FIRST, SURE_FIRST)
        orders = {
            UNSURE_FIRST: "c.id",
            SURE_FIRST: "c.id",
            POSITION: "c.image_id, c.y, c.x",
            UPDATED: "c.updated_at DESC, c.id",
            None: None,
        }
        if order not in orders:
            raise ValueError(f"order {order!r} is not one of {list(orders)}")
        sql = "SELECT c.uuid, c.id, coalesce(c.class_id, -1) FROM cells c"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if orders[order]:
            sql += " ORDER BY " + str(orders[order])
        if model is None:
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            return [r[0] for r in self._conn.execute(sql, args)]
        # The prediction's filters and order, on the model's blocks (prediction_blocks.py).
        rows = self._conn.execute(sql, args).fetchall()
        if not rows:
            return []
        uuids = np.array([r[0] for r in rows], dtype=object)
        keys = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        labels = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
        del rows
        pred = self.predictions(int(model), keys)
        keep = pred.predicted >= 0
        if disagree_model_id is not None:
            keep &= pred.predicted_class_id != labels
        if max_confidence is not None:
            keep &= pred.confidence.astype(np.float64) <= max_confidence
        if min_confidence is not None:
            keep &= pred.confidence.astype(np.float64) >= min_confidence
        if predicted_class_id is not None:
            keep &= pred.predicted_class_id == int(predicted_class_id)
        chosen = np.flatnonzero(keep)
        if by_prediction:
            conf = pred.confidence[chosen]
            chosen = chosen[np.lexsort((keys[chosen], conf if order == UNSURE_FIRST else -conf))]
        if limit is not None:
            chosen = chosen[:max(int(limit), 0)]
        return uuids[chosen].tolist()


#: Below this many cells an image's cells are read through the spatial index (see
#: ``_scan_instead``).
SCAN_CELLS_FROM = 20_000


def spatial_order(xy: np.ndarray, tile: float = GRID) -> np.ndarray:
    """The order in which cells added together get their internal keys: tile by tile
    (``tile`` level-0 pixels square, rows of tiles top to bottom, each left to right), and by
    y then x inside a tile. The cells table is stored in key order, so cells that lie together
    share database pages: a rubber band of 1,000 cells of a 100,000-cell image then dirties a
    few dozen pages instead of about one per cell (relabelling it wrote ~3,500 pages to the log
    when keys followed the order of a file whose rows were in random order). ``slide order``
    is therefore this reading order within each addition."""
    if len(xy) < 2:
        return np.arange(len(xy))
    tx = np.floor(xy[:, 0] / tile)
    ty = np.floor(xy[:, 1] / tile)
    return np.lexsort((xy[:, 0], xy[:, 1], tx, ty))


def _finite_or_none(values, n: int) -> list[float | None]:
    """One detection score per cell as floats (NaN, None: no score)."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"{len(arr)} scores for {n} cells")
    return [None if not math.isfinite(v) else v for v in arr.tolist()]


def _json_meta(meta: dict | None) -> str | None:
    """Metadata as JSON; NaN and infinities (which JSON lacks) become null."""
    if not meta:
        return None
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in meta.items()
    }
    return json.dumps(clean, allow_nan=False, default=str)
