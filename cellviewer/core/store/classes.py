"""The class set of a project: names, colours, keyboard keys, order; merging."""

from __future__ import annotations

from collections.abc import Sequence

from cellviewer.core.store import undo as _undo
from cellviewer.core.store.base import StoreBase
from cellviewer.core.store.common import (
    PALETTE,
    inserted_id,
    norm_color,
    norm_key,
)
from cellviewer.core.store.records import (
    ClassRecord,
    ProjectError,
)


class ClassesMixin(StoreBase):
    """The class half of ProjectStore (see project.py)."""

    # ------------------------------------------------------------------ classes

    def classes(self) -> list[ClassRecord]:
        return [
            ClassRecord(*r) for r in self._conn.execute(
                "SELECT id, name, color, key, ord FROM classes ORDER BY ord, id"
            )
        ]

    def class_record(self, class_id: int) -> ClassRecord:
        row = self._conn.execute(
            "SELECT id, name, color, key, ord FROM classes WHERE id = ?", (int(class_id),)
        ).fetchone()
        if row is None:
            raise KeyError(f"no class {class_id} in {self.path}")
        return ClassRecord(*row)

    def class_id(self, name: str) -> int | None:
        row = self._conn.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _free_key(self, op: _undo.PendingOp, key: str, keep: int | None) -> None:
        """A key belongs to one class: take it from whichever class has it."""
        if not key:
            return
        for (other,) in self._conn.execute(
            "SELECT id FROM classes WHERE key = ? AND id IS NOT ?", (key, keep)
        ).fetchall():
            _undo.snapshot_rows(self._conn, op, "classes", [(other,)])
            self._conn.execute("UPDATE classes SET key = '' WHERE id = ?", (other,))

    def add_class(self, name: str, color: str | None = None, key: str | None = None) -> int:
        """Add a class at the end of the order; a colour is picked when none is given."""
        name = str(name).strip()
        if not name:
            raise ValueError("class name must not be empty")
        if self.class_id(name) is not None:
            raise ProjectError(f"class {name!r} already exists in {self.path}")
        key = norm_key(key)
        if color is None:
            used = {c.color for c in self.classes()}
            color = next((c for c in PALETTE if c not in used), PALETTE[len(used) % 20])
        color = norm_color(color)
        with self._operation("add-class", f"Add class {name}") as op:
            self._free_key(op, key, None)
            order = self._conn.execute("SELECT coalesce(max(ord), -1) + 1 FROM classes")
            class_id = inserted_id(self._conn.execute(
                "INSERT INTO classes (name, color, key, ord) VALUES (?, ?, ?, ?)",
                (name, color, key, order.fetchone()[0]),
            ))
            op.tables.setdefault("classes", {})[str(class_id)] = None
            # A model that already knows a class of this name now means this class.
            unmatched = self._conn.execute(
                "SELECT model_id, idx FROM model_classes WHERE class_id IS NULL AND name = ?",
                (name,),
            ).fetchall()
            _undo.snapshot_rows(self._conn, op, "model_classes", unmatched)
            self._conn.execute(
                "UPDATE model_classes SET class_id = ? WHERE class_id IS NULL AND name = ?",
                (class_id, name),
            )
            op.note("classes")
        return class_id

    def _edit_class(self, class_id: int, action: str, description: str, sql: str,
                    args: tuple, key: str | None = None) -> None:
        self.class_record(class_id)
        with self._operation(action, description) as op:
            if key is not None:
                self._free_key(op, key, class_id)
            _undo.snapshot_rows(self._conn, op, "classes", [(class_id,)])
            self._conn.execute(sql, (*args, class_id))
            op.note("classes")

    def rename_class(self, class_id: int, name: str) -> None:
        name = str(name).strip()
        if not name:
            raise ValueError("class name must not be empty")
        other = self.class_id(name)
        if other is not None and other != class_id:
            raise ProjectError(f"class {name!r} already exists in {self.path}")
        old = self.class_record(class_id).name
        self._edit_class(class_id, "rename-class", f"Rename class {old} to {name}",
                         "UPDATE classes SET name = ? WHERE id = ?", (name,))

    def set_class_color(self, class_id: int, color: str) -> None:
        color = norm_color(color)
        name = self.class_record(class_id).name
        self._edit_class(class_id, "class-color", f"Change the colour of {name}",
                         "UPDATE classes SET color = ? WHERE id = ?", (color,))

    def set_class_key(self, class_id: int, key: str | None) -> None:
        key = norm_key(key)
        name = self.class_record(class_id).name
        self._edit_class(class_id, "class-key", f"Set the key of {name}",
                         "UPDATE classes SET key = ? WHERE id = ?", (key,), key=key)

    def reorder_classes(self, ids: Sequence[int]) -> None:
        """Put the classes in this order (``ids`` must list every class once)."""
        ids = [int(i) for i in ids]
        current = [c.id for c in self.classes()]
        if sorted(ids) != sorted(current):
            raise ValueError(f"reorder_classes needs every class id once: {current}")
        with self._operation("reorder-classes", "Reorder classes") as op:
            _undo.snapshot_rows(self._conn, op, "classes", [(i,) for i in ids])
            self._conn.executemany(
                "UPDATE classes SET ord = ? WHERE id = ?", list(enumerate(ids))
            )
            op.note("classes")

    def merge_classes(self, src_id: int, dst_id: int) -> int:
        """Relabel every cell of ``src`` as ``dst`` and remove ``src`` (undoable).
        Returns the number of cells relabelled."""
        src, dst = self.class_record(src_id), self.class_record(dst_id)
        if src.id == dst.id:
            raise ValueError("cannot merge a class into itself")
        with self._operation("merge-classes", f"Merge {src.name} into {dst.name}") as op:
            n = self._relabel_class(op, src.id, dst.id, "merge")
            self._drop_class(op, src.id, dst.id)
        return n

    def delete_class(self, class_id: int) -> int:
        """Remove a class; its cells become unlabelled (undoable). Returns their number."""
        cls = self.class_record(class_id)
        with self._operation("delete-class", f"Delete class {cls.name}") as op:
            n = self._relabel_class(op, cls.id, None, "delete-class")
            self._drop_class(op, cls.id, None)
        return n

    def _relabel_class(self, op, src: int, dst: int | None, action: str) -> int:
        self._conn.execute("DELETE FROM temp._sel")
        self._conn.execute(
            "INSERT INTO temp._sel (id, v) SELECT id, ? FROM cells WHERE class_id = ?", (dst, src)
        )
        return self._label_selected(op, None, action, keep_source=True)

    def _drop_class(self, op, class_id: int, replacement: int | None) -> None:
        mapped = self._conn.execute(
            "SELECT model_id, idx FROM model_classes WHERE class_id = ?", (class_id,)
        ).fetchall()
        _undo.snapshot_rows(self._conn, op, "model_classes", mapped)
        self._conn.execute(
            "UPDATE model_classes SET class_id = ? WHERE class_id = ?", (replacement, class_id)
        )
        _undo.snapshot_rows(self._conn, op, "classes", [(class_id,)])
        self._conn.execute("DELETE FROM classes WHERE id = ?", (class_id,))
        op.note("classes")
