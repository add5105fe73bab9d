"""Regions (polygons drawn on an image) and detection runs: the store's part of issue 15.

A region is a small row (schema version 3): its undo is the snapshot of touched rows that
images and classes use (``undo.snapshot_rows``; a flip puts them back and writes
``region_history``), so a region's edit, and an edit that changes a region *and* cells (a
region's status raising its cells', :mod:`cellviewer.core.regions`), is one undoable action.
The geometry is stored as given (GeoJSON Polygon text, level-0 pixels); checking and repairing
it is :mod:`cellviewer.core.regions.geometry`'s job (shapely), which the store does not import.
"""

from __future__ import annotations

import json
from typing import Any

from cellviewer.core.store import undo as _undo
from cellviewer.core.store.base import StoreBase
from cellviewer.core.store.common import check_status, inserted_id, utc_now
from cellviewer.core.store.ids import new_ids, normalise_id
from cellviewer.core.store.records import (
    DetectionRun,
    ProjectError,
    RegionHistoryRecord,
    RegionRecord,
)
from cellviewer.core.store.schema import NEW_UUID_SQL

_COLUMNS = _undo.TABLE_COLUMNS["regions"]
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM regions"


def _record(row: tuple) -> RegionRecord:
    (rid, uuid, image_id, geometry, name, kind, status, created_by, created_at, updated_by,
     updated_at) = row
    return RegionRecord(rid, uuid, image_id, json.loads(geometry), name, kind, status,
                        created_by, created_at, updated_by, updated_at)


def _geometry_text(geometry: dict | str) -> str:
    """The GeoJSON text of a Polygon (ValueError for anything else)."""
    value = json.loads(geometry) if isinstance(geometry, str) else geometry
    if not isinstance(value, dict) or value.get("type") != "Polygon" or \
            not isinstance(value.get("coordinates"), list) or not value["coordinates"]:
        raise ValueError("a region's geometry must be a GeoJSON Polygon")
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class RegionsMixin(StoreBase):
    """The region and detection-run half of ProjectStore (see project.py)."""

    # ------------------------------------------------------------------ reads

    def regions(self, image_id: int | None = None) -> list[RegionRecord]:
        """The regions (of one image), in the order they were drawn."""
        if image_id is None:
            rows = self._conn.execute(f"{_SELECT} ORDER BY id").fetchall()
        else:
            rows = self._conn.execute(f"{_SELECT} WHERE image_id = ? ORDER BY id",
                                      (int(image_id),)).fetchall()
        return [_record(r) for r in rows]

    def region(self, uuid: str) -> RegionRecord:
        row = self._conn.execute(f"{_SELECT} WHERE uuid = ?", (str(uuid),)).fetchone()
        if row is None:
            raise KeyError(f"no region {uuid} in {self.path}")
        return _record(row)

    def region_history(self, uuid: str | None = None) -> list[RegionHistoryRecord]:
        """The regions' audit trail (of one region), oldest first."""
        sql = ("SELECT id, region_uuid, image_id, op_id, action, old, new, user, at"
               " FROM region_history")
        args: tuple = ()
        if uuid is not None:
            sql += " WHERE region_uuid = ?"
            args = (str(uuid),)
        return [RegionHistoryRecord(i, u, im, op, a, json.loads(o) if o else None,
                                    json.loads(n) if n else None, who, at)
                for i, u, im, op, a, o, n, who, at in self._conn.execute(sql + " ORDER BY id",
                                                                         args)]

    # ------------------------------------------------------------------ edits (undoable)

    def add_region(self, image_id: int, geometry: dict | str, name: str = "",
                   kind: str = "annotation area", status: str = "unreviewed", *,
                   uuid: str | None = None) -> str:
        """Add a region to an image (undoable); returns its uuid (``uuid``: keep a given one,
        e.g. a QuPath annotation's id)."""
        image = self.image(image_id)
        text = _geometry_text(geometry)
        check_status(status)
        kind = _kind(kind)
        if uuid is None:
            uuid = new_ids(1)[0]
        else:
            norm = normalise_id(uuid)
            if norm is None:
                raise ValueError(f"region id {uuid!r} is not a UUID")
            uuid = norm
            if self._conn.execute("SELECT 1 FROM regions WHERE uuid = ?", (uuid,)).fetchone():
                raise ProjectError(f"region id {uuid} is already in {self.path}")
        label = f" {name!r}" if name else ""
        with self._operation("region-add", f"Add region{label} to {image.name}") as op:
            now = utc_now()
            rid = inserted_id(self._conn.execute(
                "INSERT INTO regions (uuid, image_id, geometry, name, kind, status, created_by,"
                " created_at, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (uuid, int(image_id), text, str(name), kind, status, self._user, now,
                 self._user, now)))
            op.tables.setdefault("regions", {})[str(rid)] = None  # absent before
            self._region_trail(op, "region-add", rid, None)
            op.note("regions", [image_id])
        return uuid

    def update_region(self, uuid: str, *, geometry: dict | str | None = None,
                      name: str | None = None, kind: str | None = None,
                      status: str | None = None) -> bool:
        """Change a region's geometry, name, kind or status (undoable; only what is given).
        Returns False when nothing would change. Setting the status here changes only the
        region: :func:`cellviewer.core.regions.set_region_status` also raises its cells'."""
        before = self.region(uuid)
        values: dict[str, Any] = {}
        if geometry is not None:
            values["geometry"] = _geometry_text(geometry)
        if name is not None:
            values["name"] = str(name)
        if kind is not None:
            values["kind"] = _kind(kind)
        if status is not None:
            check_status(status)
            values["status"] = status
        old = {"geometry": json.dumps(before.geometry, separators=(",", ":")),
               "name": before.name, "kind": before.kind, "status": before.status}
        values = {k: v for k, v in values.items() if v != old[k]}
        if not values:
            return False
        what = ("status" if set(values) == {"status"} else
                "rename" if set(values) == {"name"} else "edit")
        text = {"status": f"Mark region {before.name!r} {status}",
                "rename": f"Rename region {before.name!r} to {name!r}",
                "edit": f"Edit region {before.name!r}"}[what]
        with self._operation(f"region-{what}", text) as op:
            _undo.snapshot_rows(self._conn, op, "regions", [(before.id,)])
            old_row = _undo.read_rows(self._conn, "regions", [(before.id,)])[str(before.id)]
            sets = ", ".join(f"{k} = ?" for k in values)
            self._conn.execute(
                f"UPDATE regions SET {sets}, updated_by = ?, updated_at = ? WHERE id = ?",
                (*values.values(), self._user, utc_now(), before.id))
            self._region_trail(op, f"region-{what}", before.id, old_row)
            op.note("regions", [before.image_id])
        return True

    def delete_region(self, uuid: str) -> None:
        """Delete a region (undoable). Its cells stay: a region is an area, not their owner."""
        before = self.region(uuid)
        label = f" {before.name!r}" if before.name else ""
        with self._operation("region-delete", f"Delete region{label}") as op:
            self._delete_region_rows(op, [before.id])
            op.note("regions", [before.image_id])

    def _delete_region_rows(self, op: _undo.PendingOp, ids: list[int]) -> None:
        """Delete regions by internal key inside ``op`` (snapshotted, with their trail)."""
        if not ids:
            return
        keys = [(int(i),) for i in ids]
        _undo.snapshot_rows(self._conn, op, "regions", keys)
        before = _undo.read_rows(self._conn, "regions", keys)
        for rid in ids:
            row = before[str(rid)]
            if row is None:
                continue
            self._conn.execute(
                "INSERT INTO region_history (uuid, region_uuid, image_id, op_id, action, old,"
                f" new, user, at) VALUES ({NEW_UUID_SQL}, ?, ?, ?, 'region-delete', ?, NULL,"
                " ?, ?)",
                (row[1], row[2], op.id, json.dumps(_undo.region_fields(row)), self._user,
                 utc_now()))
        self._conn.executemany("DELETE FROM regions WHERE id = ?", keys)

    def _region_trail(self, op: _undo.PendingOp, action: str, rid: int,
                      old_row: list | None) -> None:
        new_row = _undo.read_rows(self._conn, "regions", [(rid,)])[str(rid)]
        self._conn.execute(
            "INSERT INTO region_history (uuid, region_uuid, image_id, op_id, action, old, new,"
            f" user, at) VALUES ({NEW_UUID_SQL}, ?, ?, ?, ?, ?, ?, ?, ?)",
            (new_row[1], new_row[2], op.id, action,
             json.dumps(_undo.region_fields(old_row)) if old_row is not None else None,
             json.dumps(_undo.region_fields(new_row)), self._user, utc_now()))

    # ------------------------------------------------------------------ detection runs

    def add_detection_run(self, image_id: int | None, method: str, params: dict | None = None,
                          *, n_found: int = 0, n_added: int = 0,
                          op_id: int | None = None) -> str:
        """Record a detection run (not undoable: a record, like a model); returns its id.
        Inside a batch it joins the batch's transaction."""
        run_id = new_ids(1)[0]
        with self._write(needs_user=True):
            op = self._op
            self._conn.execute(
                "INSERT INTO detection_runs (id, image_id, method, params, n_found, n_added,"
                " op_id, run_by, run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, image_id, str(method), json.dumps(params or {}, default=str),
                 int(n_found), int(n_added), op_id if op_id is not None else
                 (op.id if op is not None else None), self._user, utc_now()))
        return run_id

    def set_detection_run_counts(self, run_id: str, n_found: int, n_added: int) -> None:
        with self._write(needs_user=True):
            self._conn.execute("UPDATE detection_runs SET n_found = ?, n_added = ? WHERE id = ?",
                               (int(n_found), int(n_added), str(run_id)))

    def detection_runs(self, image_id: int | None = None) -> list[DetectionRun]:
        sql = ("SELECT id, image_id, method, params, n_found, n_added, op_id, run_by, run_at"
               " FROM detection_runs")
        args: tuple = ()
        if image_id is not None:
            sql += " WHERE image_id = ?"
            args = (int(image_id),)
        rows = self._conn.execute(sql + " ORDER BY run_at, id", args).fetchall()
        return [DetectionRun(r[0], r[1], r[2], json.loads(r[3]) if r[3] else {}, *r[4:])
                for r in rows]


def _kind(kind: str) -> str:
    kind = str(kind).strip()
    if not kind:
        raise ValueError("a region's kind must not be empty (e.g. tissue, tumour, "
                         "annotation area)")
    return kind
