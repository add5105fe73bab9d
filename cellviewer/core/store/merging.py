"""What merging annotators' copies needs from the project file (schema version 4, issue 19).

The merge itself (``cellviewer.core.merge``) decides; this part only reads and writes the
records it keeps: the project's id, a copy's origin and merge base, history entries by uuid
(copied once), conflicts and cell aliases. The cell and region edits of a merge go through the
ordinary store methods inside one ``batch``, so a merge is one undoable action; the records
written here join that transaction (``_write``) but are not undone with it: the history is
append-only, and a conflict names the merge that found it (an undone merge's conflicts are not
open, see :meth:`conflicts`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cellviewer.core.store.base import StoreBase
from cellviewer.core.store.common import utc_now
from cellviewer.core.store.records import ProjectError
from cellviewer.core.store.schema import NEW_UUID_SQL

_HISTORY_COLS = ("uuid", "cell_uuid", "image_id", "op_id", "action", "old_class", "new_class",
                 "old_status", "new_status", "source", "user", "at", "detail", "copied_from")
_REGION_HISTORY_COLS = ("uuid", "region_uuid", "image_id", "op_id", "action", "old", "new",
                        "user", "at", "copied_from")
CONFLICT_COLS = ("id", "cell_uuid", "image_id", "kind", "source_project", "source_name",
                 "ours_class", "ours_present", "ours_by", "ours_at", "theirs_class",
                 "theirs_present", "theirs_by", "theirs_at", "theirs_x", "theirs_y", "op_id",
                 "found_by", "found_at", "resolution", "resolved_by", "resolved_at")


class MergingMixin(StoreBase):
    # ------------------------------------------------------------------ identity and origin

    @property
    def project_id(self) -> str:
        """The project's stable id (made with the file, or by the migration to version 4)."""
        row = self._conn.execute("SELECT value FROM project WHERE key = 'id'").fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: the project has no id (schema before version 4)")
        return str(row[0])

    def origin(self) -> dict[str, Any] | None:
        """Where a copy for an annotator came from: ``project`` (id), ``entry`` (the uuid of
        the last history entry it held then, None: none), ``images`` (ids of the images it
        held then), ``user`` (whom it was made for); None when the project is no such copy."""
        keys = dict(self._conn.execute(
            "SELECT key, value FROM project WHERE key LIKE 'origin_%'").fetchall())
        if "origin_project" not in keys:
            return None
        return {"project": keys["origin_project"], "entry": keys.get("origin_entry") or None,
                "images": json.loads(keys.get("origin_images") or "[]"),
                "user": keys.get("origin_user", "")}

    def last_history_entry(self) -> str | None:
        row = self._conn.execute("SELECT uuid FROM history ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def become_copy(self, origin_project: str, origin_entry: str | None, user: str,
                    source_folder: Path) -> None:
        """Make this file (a fresh copy of project ``origin_project``) a copy for ``user``: a
        new project id, its origin, image paths that still resolve from its own folder
        (absolute where they were relative to ``source_folder``), and its merge base (the
        cells and regions as they are now). Not an edit of the data: not undoable, no
        history."""
        with self._write(kinds=("settings",), needs_user=False):
            conn = self._conn
            images = [r[0] for r in conn.execute("SELECT id FROM images ORDER BY id")]
            conn.executemany(
                "INSERT OR REPLACE INTO project (key, value) VALUES (?, ?)",
                [("origin_project", origin_project), ("origin_entry", origin_entry or ""),
                 ("origin_images", json.dumps(images)), ("origin_user", user),
                 ("origin_at", utc_now())])
            conn.execute(f"UPDATE project SET value = {NEW_UUID_SQL} WHERE key = 'id'")
            if source_folder.resolve() != self.folder.resolve():
                for image_id, stored in conn.execute("SELECT id, path FROM images").fetchall():
                    if not Path(stored).is_absolute():
                        conn.execute("UPDATE images SET path = ? WHERE id = ?",
                                     (str((source_folder / stored).resolve()), image_id))
            conn.execute("DELETE FROM merge_base_cells")
            conn.execute(
                "INSERT INTO merge_base_cells (uuid, image_id, x, y, class_name, label_source,"
                " review_status, proposed) SELECT c.uuid, c.image_id, c.x, c.y, k.name,"
                " c.label_source, c.review_status, c.proposed"
                " FROM cells c LEFT JOIN classes k ON k.id = c.class_id")
            conn.execute("DELETE FROM merge_base_regions")
            conn.execute(
                "INSERT INTO merge_base_regions (uuid, image_id, geometry, name, kind, status)"
                " SELECT uuid, image_id, geometry, name, kind, status FROM regions")

    def merge_base(self) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """A copy's merge base: cells by uuid as ``(image_id, x, y, class_name, label_source,
        review_status, proposed)`` and regions by uuid as ``(image_id, geometry, name, kind,
        status)``."""
        cells = {r[0]: tuple(r[1:]) for r in self._conn.execute(
            "SELECT uuid, image_id, x, y, class_name, label_source, review_status,"
            " proposed FROM merge_base_cells")}
        regions = {r[0]: tuple(r[1:]) for r in self._conn.execute(
            "SELECT uuid, image_id, geometry, name, kind, status FROM merge_base_regions")}
        return cells, regions

    # ------------------------------------------------------------------ history by uuid

    def history_entries(self, cell_uuids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every cell history entry (or those of ``cell_uuids``) with its uuid, where it was
        copied from, and the action (``op_action``) of the operation that wrote it, oldest
        first."""
        cols = ", ".join(f"h.{c}" for c in _HISTORY_COLS)
        sql = f"SELECT {cols}, o.action FROM history h LEFT JOIN operations o ON o.id = h.op_id"
        args: list[str] = []
        if cell_uuids is not None:
            args = [str(u) for u in cell_uuids]
            sql += f" WHERE h.cell_uuid IN ({', '.join('?' * len(args))})"
        rows = self._conn.execute(sql + " ORDER BY h.id", args).fetchall()
        return [dict(zip((*_HISTORY_COLS, "op_action"), r, strict=True)) for r in rows]

    def last_change_of(self, cell_uuid: str) -> tuple[str | None, str | None]:
        """Who made the latest history entry of a cell, and when ((None, None): none)."""
        row = self._conn.execute(
            "SELECT user, at FROM history WHERE cell_uuid = ? ORDER BY id DESC LIMIT 1",
            (cell_uuid,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def region_history_entries(self) -> list[dict[str, Any]]:
        cols = ", ".join(_REGION_HISTORY_COLS)
        rows = self._conn.execute(f"SELECT {cols} FROM region_history ORDER BY id").fetchall()
        return [dict(zip(_REGION_HISTORY_COLS, r, strict=True)) for r in rows]

    def copy_history_entries(self, entries: Iterable[Mapping[str, Any]], copied_from: str,
                             image_map: Mapping[int, int], regions: bool = False) -> int:
        """Add another copy's history entries that this project lacks (by uuid), each marked
        with the project it came from (``copied_from``, unless it was itself copied) and the
        current action as its op; ``image_map``: the copy's image ids to this project's.
        Returns how many were added."""
        table, cols = (("region_history", _REGION_HISTORY_COLS) if regions else
                       ("history", _HISTORY_COLS))
        have = {r[0] for r in self._conn.execute(f"SELECT uuid FROM {table}")}
        op_id = self._op.id if self._op is not None else None
        rows = []
        for e in entries:
            if e["uuid"] in have:
                continue
            have.add(e["uuid"])
            row = dict(e)
            row["op_id"] = op_id
            row["copied_from"] = e.get("copied_from") or copied_from
            if row["image_id"] is not None:
                row["image_id"] = image_map.get(int(row["image_id"]))
            rows.append(tuple(row[c] for c in cols))
        if rows:
            with self._write(kinds=("history",)):
                self._conn.executemany(
                    f"INSERT INTO {table} ({', '.join(cols)})"
                    f" VALUES ({', '.join('?' * len(cols))})", rows)
        return len(rows)

    # ------------------------------------------------------------------ conflicts, aliases

    def conflicts(self, open_only: bool = True, cell_uuid: str | None = None
                  ) -> list[dict[str, Any]]:
        """Conflicts found by merges (``open_only``: those of merges still done that are not
        resolved, or whose resolution was undone; ``cell_uuid``: of that cell only)."""
        sql = (f"SELECT {', '.join('c.' + k for k in CONFLICT_COLS)} FROM conflicts c"
               " JOIN operations o ON o.id = c.op_id WHERE 1")
        args: list[str] = []
        if open_only:
            sql += (" AND o.state = 'done' AND (c.resolution IS NULL OR coalesce((SELECT"
                    " r.state FROM operations r WHERE r.id = json_extract(c.resolution,"
                    " '$.op')), 'done') != 'done')")
        if cell_uuid is not None:
            sql += " AND c.cell_uuid = ?"
            args.append(cell_uuid)
        return [dict(zip(CONFLICT_COLS, r, strict=True))
                for r in self._conn.execute(sql + " ORDER BY c.id", args)]

    def record_resolution(self, cell_uuid: str, resolution: Mapping[str, Any],
                          old_class: str | None, new_class: str | None,
                          old_status: str | None, new_status: str | None,
                          source: str | None, image_id: int | None) -> int:
        """Mark the cell's open conflicts resolved by the current action (a ``batch``) and
        write one ``resolve`` entry into its history: the resolution (JSON, with the action's
        id, so undoing the action opens the conflicts again) says what was chosen. Returns
        how many conflicts it closed."""
        if self._op is None:
            raise ProjectError("a conflict is resolved inside an action (a batch)")
        ids = [c["id"] for c in self.conflicts(cell_uuid=cell_uuid)]
        text = json.dumps({**resolution, "op": self._op.id}, sort_keys=True)
        now = utc_now()
        with self._write(kinds=("conflicts", "history")):
            self._conn.executemany(
                "UPDATE conflicts SET resolution = ?, resolved_by = ?, resolved_at = ?"
                " WHERE id = ?", [(text, self._user, now, i) for i in ids])
            self._conn.execute(
                "INSERT INTO history (uuid, cell_uuid, image_id, op_id, action, old_class,"
                " new_class, old_status, new_status, source, user, at, detail)"
                f" VALUES ({NEW_UUID_SQL}, ?, ?, ?, 'resolve', ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell_uuid, image_id, self._op.id, old_class, new_class, old_status,
                 new_status, source, self._user, now, text))
        return len(ids)

    def add_conflicts(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Record conflicts found by the current merge, skipping any already open with the same
        cell, copy and sides (merging a file again finds them again). Returns how many."""
        if self._op is None:
            raise ProjectError("conflicts are recorded inside a merge (a batch)")
        same = {(c["cell_uuid"], c["source_project"], c["ours_class"], c["ours_present"],
                 c["theirs_class"], c["theirs_present"]) for c in self.conflicts()}
        cols = [k for k in CONFLICT_COLS if k not in ("id", "resolution", "resolved_by",
                                                      "resolved_at")]
        new = []
        for r in rows:
            key = (r["cell_uuid"], r["source_project"], r["ours_class"], r["ours_present"],
                   r["theirs_class"], r["theirs_present"])
            if key in same:
                continue
            same.add(key)
            full = {**r, "op_id": self._op.id, "found_by": self._user, "found_at": utc_now()}
            new.append(tuple(full.get(k) for k in cols))
        if new:
            with self._write(kinds=("conflicts",)):
                self._conn.executemany(
                    f"INSERT INTO conflicts ({', '.join(cols)})"
                    f" VALUES ({', '.join('?' * len(cols))})", new)
        return len(new)

    def cell_aliases(self) -> dict[str, str]:
        """A copy's uuid of a cell -> the uuid of the cell here it was matched to."""
        return dict(self._conn.execute("SELECT alias, cell_uuid FROM cell_aliases").fetchall())

    def add_cell_aliases(self, mapping: Mapping[str, str]) -> None:
        known = self.cell_aliases()
        new = [(a, c) for a, c in mapping.items() if known.get(a) != c]
        if new:  # (only what is new: merging a file again writes nothing)
            with self._write(kinds=("history",)):
                self._conn.executemany(
                    "INSERT OR REPLACE INTO cell_aliases (alias, cell_uuid) VALUES (?, ?)", new)
