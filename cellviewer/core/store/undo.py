"""Undo and redo as swaps of stored state.

Every user action is one row of ``operations``. Beside it the project keeps the state of every
cell the action touched *on the other side of the action*: before it while the action is done,
after it once it is undone (table ``op_cells``; ``present = 0`` means "this cell did not exist
there"). Undo and redo are then the same step, a *flip*: read the current state of those cells,
put the stored state in place, and store the state just replaced. Because undo and redo are
strictly last-in first-out (a new action drops the redo stack), the stored state always fits the
cells around it, so a flip is a handful of set-based SQL statements: relabelling 10,000 cells and
undoing it costs milliseconds, not one Python round trip per cell.

Three refinements:

- Cells an action *creates* are recorded as an id range (``operations.new_lo/new_hi``) rather
  than a row each; the range becomes rows only if the action is ever undone. Importing a million
  cells therefore costs no undo data up front.
- Predictions of cells a flip deletes go to ``op_predictions`` and come back with the cells.
- The few rows of ``images``, ``classes`` and ``model_classes`` an action touches are kept as a
  JSON snapshot in ``operations.tables`` and flipped the same way (foreign keys are deferred for
  the flip, so a class can come back before the cells that use it, or go after them).

Every cell a flip changes gets a row in the append-only ``history`` (action ``undo`` or
``redo``, with the reverted action in ``detail``), so the audit trail shows the undo too.

Who may undo. The stack is the project file's, so two processes with the project open (the lock
bypassed or broken) share it, and a plain "undo the newest action" would revert the other
process's edit. So every store connection is a *session* (:class:`Session`: a uuid made when it
opens, its host and process id; a row of ``sessions`` written with its first action) and each
action names the session that last wrote it (made, undid or redid it) and that user
(``operations.session``, ``last_user``, ``last_at``). An undo or redo flips the same action as
before, but only when that action and every action above it that still holds undo data are this
session's own, or *adoptable*: written by the same user in a session that has ended (closed; or
its process no longer runs on this computer; or an action from before sessions existed, whose
session is taken as ended). Otherwise :func:`check_turn` raises
:class:`~cellviewer.core.store.records.UndoConflictError` naming who wrote, what and when.
Adopting is per action: flipping an adopted action makes it this session's (so the two cannot
both take an ended session's stack), and it needs no write at open: opening a project to look
at it changes nothing, and the user whose name decides is the one undoing (the app asks for it
at the first edit, after the project has opened).

Why this is enough: undo and redo stay strictly last-in first-out across sessions, so the state
an action stored always fits the cells around it; what must not happen is stepping back through
another live session's action, and ownership is exclusive (one session per action), so two live
sessions can never both flip one action. A new action by anyone still drops everyone's redo
stack (it must: the stored states would no longer fit). Closing and reopening keeps today's
behaviour for one user; another user reopening meets the first user's actions as another
session's and is refused, as is a second live process of the same user.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellviewer.core.store import prediction_blocks as blocks
from cellviewer.core.store.records import UndoConflictError
from cellviewer.core.store.schema import NEW_UUID_SQL

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "images": ("id", "path", "width", "height", "mpp", "fingerprint", "added_by", "added_at"),
    "classes": ("id", "name", "color", "key", "ord"),
    "model_classes": ("model_id", "idx", "name", "class_id"),
    "regions": ("id", "uuid", "image_id", "geometry", "name", "kind", "status", "created_by",
                "created_at", "updated_by", "updated_at"),
}
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "images": ("id",),
    "classes": ("id",),
    "model_classes": ("model_id", "idx"),
    "regions": ("id",),
}
#: the change-event kind of each small table
TABLE_KINDS = {"images": "images", "classes": "classes", "model_classes": "classes",
               "regions": "regions"}
CELL_COLUMNS = (
    "uuid", "image_id", "x", "y", "class_id", "label_source", "review_status",
    "updated_by", "updated_at", "metadata", "proposed", "score", "run_id", "outline",
)
#: CELL_COLUMNS as a SQL list (``c.uuid, c.image_id, ...`` with a prefix)


def cell_cols(prefix: str = "") -> str:
    return ", ".join(prefix + c for c in CELL_COLUMNS)


MAX_UNDO = 200  # actions kept undoable; older ones keep their history but lose undo data

TEMP_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS _sel (id INTEGER PRIMARY KEY, v INTEGER, x REAL, y REAL);
CREATE TEMP TABLE IF NOT EXISTS _cur (
    cell_id INTEGER PRIMARY KEY, present INTEGER, uuid TEXT, image_id INTEGER, x REAL, y REAL,
    class_id INTEGER, label_source TEXT, review_status TEXT, updated_by TEXT, updated_at TEXT,
    metadata TEXT, proposed INTEGER, score REAL, run_id TEXT, outline TEXT);
CREATE TEMP TABLE IF NOT EXISTS _pred (
    model_id INTEGER, cell_id INTEGER, probs BLOB, predicted INTEGER, confidence REAL);
CREATE TEMP TABLE IF NOT EXISTS _cls (id INTEGER PRIMARY KEY, name TEXT);
"""


@dataclass
class PendingOp:
    """The action being recorded (one transaction); several store calls may add to it."""

    id: int
    action: str
    description: str
    changed: bool = False
    n_cells: int = 0
    new_lo: int | None = None
    new_hi: int | None = None
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_ids: set[int] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    # Internal keys of the cells this action touched, so that views update just those rows;
    # ``rows_known`` turns False when a cell change was noted without them (views reload).
    rows: list[np.ndarray] = field(default_factory=list)
    rows_known: bool = True

    def note(self, kind: str, image_ids=(), n_cells: int = 0,
             rows: np.ndarray | None = None) -> None:
        self.changed = True
        self.kinds.add(kind)
        self.image_ids.update(int(i) for i in image_ids)
        self.n_cells += n_cells
        if kind == "cells":
            if rows is None:
                self.rows_known = False
            else:
                self.rows.append(np.asarray(rows, dtype=np.int64))

    def touched_rows(self) -> np.ndarray | None:
        """The touched cells' internal keys (sorted, unique), or None when unknown."""
        if not self.rows_known:
            return None
        if not self.rows:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(self.rows))

    def add_new_range(self, lo: int, hi: int) -> None:
        self.new_lo = lo if self.new_lo is None else self.new_lo
        self.new_hi = hi


# ---------------------------------------------------------------------------- sessions

_OPEN_SESSIONS: set[str] = set()  # this process's sessions whose store is still open


def session_ended(session_id: str) -> None:
    """Forget an open session of this process (its store closed, or was dropped unclosed)."""
    _OPEN_SESSIONS.discard(session_id)


def _host() -> str:
    return socket.gethostname() or "unknown-host"


@dataclass
class Session:
    """One store connection as the author of actions (see "Who may undo" above)."""

    id: str
    host: str
    pid: int
    opened_at: str
    recorded: bool = False  # its row was written (with an action of this connection)

    @classmethod
    def start(cls, now: str) -> Session:
        session = cls(uuid.uuid4().hex, _host(), os.getpid(), now)
        _OPEN_SESSIONS.add(session.id)
        return session

    def record(self, conn: sqlite3.Connection) -> None:
        """Inside the transaction of one of this session's writes: make sure its row exists
        (one primary-key probe after the first time)."""
        conn.execute(
            "INSERT OR IGNORE INTO sessions (id, host, pid, opened_at) VALUES (?, ?, ?, ?)",
            (self.id, self.host, self.pid, self.opened_at),
        )
        self.recorded = True

    def end(self, conn: sqlite3.Connection | None, now: str) -> None:
        """The store is closing: other processes may now adopt this session's actions. The
        closing time is best effort (a crash leaves it NULL; liveness is then asked of the
        process id)."""
        session_ended(self.id)
        if conn is not None and self.recorded and not conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("UPDATE sessions SET closed_at = ? WHERE id = ?", (now, self.id))


def _session_state(session: str | None, known: bool, host: str | None, pid: int | None,
                   closed_at: str | None) -> tuple[bool, str]:
    """(has it ended, how to name it) for a session as stored with an action."""
    if session is None:
        return True, "an earlier CellViewer without sessions"
    if not known or host is None or pid is None:
        return True, "a session with no record"
    where = f"process {pid} on {host}"
    if closed_at:
        return True, f"{where}, closed at {closed_at}"
    if host != _host():
        return False, f"{where}, open or ended without closing (another computer)"
    if pid == os.getpid():
        alive = session in _OPEN_SESSIONS
    else:
        from cellviewer.core.project.lock import pid_alive  # (lock.py imports the store)

        alive = pid_alive(pid)
    return (False, f"{where}, still open") if alive else (True, f"{where}, ended")


def check_turn(conn: sqlite3.Connection, op_id: int, direction: str, session: Session,
               user: str, path: Path) -> None:
    """Refuse (:class:`UndoConflictError`) to undo or redo ``op_id`` when it, or an action
    above it that still holds undo data, was last written by another session that this one
    may not adopt (see "Who may undo" above). Inside the caller's transaction."""
    rows = conn.execute(
        "SELECT o.id, o.description, o.state, o.session, coalesce(o.last_user, o.user),"
        " o.at, o.last_at, s.id IS NOT NULL, s.host, s.pid, s.closed_at"
        " FROM operations o LEFT JOIN sessions s ON s.id = o.session"
        " WHERE o.state IN ('done', 'undone') AND o.id >= ? AND o.session IS NOT ?"
        " ORDER BY o.id DESC",
        (op_id, session.id),
    ).fetchall()
    for (row_id, description, state, other, who, made_at, last_at, known, host, pid,
         closed_at) in rows:
        ended, where = _session_state(other, bool(known), host, pid, closed_at)
        if ended and who == user:
            continue  # an ended session of this user: adopted
        verb = ("undid" if state == "undone"
                else "made" if last_at is None or last_at == made_at else "redid")
        when = last_at or made_at
        if row_id == op_id:
            head = f"{path}: cannot {direction}"
        else:
            target = conn.execute(
                "SELECT description FROM operations WHERE id = ?", (op_id,)).fetchone()[0]
            head = f"{path}: cannot {direction} {target!r}"
        raise UndoConflictError(
            f"{head}: {who} {verb} {description!r} at {when} in another session ({where})"
            f"{' since' if row_id != op_id else ''}; undo and redo step back only through "
            "this session's own edits and those of an ended session of the same user",
            user=who, at=when, description=description,
        )


# ---------------------------------------------------------------------------- small tables


def _key(values) -> str:
    return ":".join(str(v) for v in values)


def read_rows(conn: sqlite3.Connection, table: str, keys: list[tuple]) -> dict[str, Any]:
    """Current rows of ``table`` for ``keys`` as {key string: [values] or None}."""
    cols = TABLE_COLUMNS[table]
    where = " AND ".join(f"{k} = ?" for k in TABLE_KEYS[table])
    sql = f"SELECT {', '.join(cols)} FROM {table} WHERE {where}"
    out: dict[str, Any] = {}
    for key in keys:
        row = conn.execute(sql, tuple(key)).fetchone()
        out[_key(key)] = list(row) if row is not None else None
    return out


def snapshot_rows(conn: sqlite3.Connection, op: PendingOp, table: str, keys: list[tuple]) -> None:
    """Remember the current state of these rows, unless this action already did (the first
    snapshot is the state before the action)."""
    snap = op.tables.setdefault(table, {})
    fresh = [k for k in keys if _key(k) not in snap]
    snap.update(read_rows(conn, table, fresh))


def _parse_key(table: str, key: str) -> tuple:
    return tuple(int(p) for p in key.split(":"))


def _upsert_rows(conn: sqlite3.Connection, table: str, snap: dict[str, Any]) -> None:
    cols = TABLE_COLUMNS[table]
    keys = TABLE_KEYS[table]
    rows = [r for r in snap.values() if r is not None]
    if table == "classes" and rows:
        # Names are UNIQUE and cannot be deferred: park the names being restored first, so a
        # swap of two names (or a rename back) never collides half-way.
        conn.executemany(
            "UPDATE classes SET name = char(0) || id WHERE id = ?", [(r[0],) for r in rows]
        )
    if table == "model_classes":
        rows = [r for r in rows if conn.execute(
            "SELECT 1 FROM models WHERE id = ?", (r[0],)).fetchone()]
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
    conn.executemany(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}",
        rows,
    )
    if table == "classes":
        # As in add_class: a model class of the same name, matched to none, means this one.
        conn.executemany(
            "UPDATE model_classes SET class_id = ? WHERE class_id IS NULL AND name = ?",
            [(r[0], r[1]) for r in rows],
        )


def _delete_rows(conn: sqlite3.Connection, table: str, snap: dict[str, Any]) -> None:
    where = " AND ".join(f"{k} = ?" for k in TABLE_KEYS[table])
    keys = [_parse_key(table, k) for k, r in snap.items() if r is None]
    if table == "classes":
        # Models are not part of undo; a model class that meant this class now means none.
        conn.executemany("UPDATE model_classes SET class_id = NULL WHERE class_id = ?", keys)
    conn.executemany(f"DELETE FROM {table} WHERE {where}", keys)


# ---------------------------------------------------------------------------- the flip


def flip(conn: sqlite3.Connection, op_id: int, direction: str, user: str, now: str, *,
         session: str) -> PendingOp:
    """Undo (``direction="undo"``) or redo the action ``op_id`` inside the caller's transaction;
    the action becomes ``session``'s (who may flip it is :func:`check_turn`'s question).

    Returns a PendingOp describing what changed (for listeners); the caller commits.
    """
    action, description, tables_json, lo, hi = conn.execute(
        "SELECT action, description, tables, new_lo, new_hi FROM operations WHERE id = ?",
        (op_id,),
    ).fetchone()
    result = PendingOp(op_id, action, description)
    conn.execute("PRAGMA defer_foreign_keys = ON")

    if lo is not None:  # cells this action created: absent on the other side
        conn.execute(
            "WITH RECURSIVE r(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM r WHERE i < ?) "
            "INSERT OR IGNORE INTO op_cells (op_id, cell_id, present) SELECT ?, i, 0 FROM r",
            (lo, hi, op_id),
        )
        conn.execute(
            "UPDATE operations SET new_lo = NULL, new_hi = NULL WHERE id = ?", (op_id,)
        )

    # The current state of every touched cell, and predictions the flip would delete.
    conn.execute("DELETE FROM temp._cur")
    conn.execute(
        f"INSERT INTO temp._cur SELECT o.cell_id, c.id IS NOT NULL, {cell_cols('c.')}"
        " FROM op_cells o LEFT JOIN cells c ON c.id = o.cell_id WHERE o.op_id = ?",
        (op_id,),
    )
    conn.execute("DELETE FROM temp._pred")
    going = [r[0] for r in conn.execute(
        "SELECT cell_id FROM temp._cur WHERE present = 1 AND cell_id IN"
        " (SELECT cell_id FROM op_cells WHERE op_id = ? AND present = 0)", (op_id,))]
    conn.executemany(
        "INSERT INTO temp._pred VALUES (?, ?, ?, ?, ?)",
        blocks.take(conn, np.array(going, dtype=np.int64)),
    )
    conn.execute("DELETE FROM temp._cls")
    conn.execute("INSERT INTO temp._cls SELECT id, name FROM classes")
    result.image_ids.update(
        r[0] for r in conn.execute(
            "SELECT image_id FROM temp._cur WHERE present = 1 UNION "
            "SELECT image_id FROM op_cells WHERE op_id = ? AND present = 1", (op_id,))
    )
    touched = np.array([r[0] for r in conn.execute("SELECT cell_id FROM temp._cur")],
                       dtype=np.int64)
    n_cells = len(touched)

    # Small tables: capture the current rows, bring back the stored ones.
    stored_tables: dict[str, dict[str, Any]] = json.loads(tables_json) if tables_json else {}
    current_tables = {
        t: read_rows(conn, t, [_parse_key(t, k) for k in snap])
        for t, snap in stored_tables.items()
    }
    for table in ("images", "classes", "regions"):
        if table in stored_tables:
            _upsert_rows(conn, table, stored_tables[table])

    # Cells: delete what did not exist on the other side, put back what did.
    conn.execute(
        "DELETE FROM cells WHERE id IN "
        "(SELECT cell_id FROM op_cells WHERE op_id = ? AND present = 0)", (op_id,)
    )
    # Cells coming back from deletion: inserted whole, with their own who/when.
    conn.execute(
        f"INSERT INTO cells (id, {cell_cols()}) SELECT o.cell_id, {cell_cols('o.')}"
        " FROM op_cells o JOIN temp._cur cur ON cur.cell_id = o.cell_id"
        " WHERE o.op_id = ? AND o.present = 1 AND cur.present = 0",
        (op_id,),
    )
    # Cells that stay: one UPDATE per group of columns, each only where something differs.
    # SQLite rewrites every index holding a column named in SET, so a relabel's undo must not
    # name x and y (the spatial index) and a move's undo must not name class_id.
    both = (" FROM op_cells o JOIN temp._cur cur ON cur.cell_id = o.cell_id"
            " WHERE o.op_id = :op AND o.present = 1 AND cur.present = 1 AND cells.id = o.cell_id")
    params = {"op": op_id, "user": user, "now": now}
    conn.execute(  # the label, and who changed it when: the person undoing, now
        "UPDATE cells SET class_id = o.class_id, label_source = o.label_source,"
        " updated_by = :user, updated_at = :now" + both +
        " AND (o.class_id IS NOT cur.class_id OR o.label_source IS NOT cur.label_source)",
        params,
    )
    conn.execute(
        "UPDATE cells SET review_status = o.review_status, metadata = o.metadata" + both +
        " AND (o.review_status IS NOT cur.review_status OR o.metadata IS NOT cur.metadata)",
        params,
    )
    conn.execute(  # the proposed state and a detection's origin (schema version 3)
        "UPDATE cells SET proposed = coalesce(o.proposed, 0), score = o.score,"
        " run_id = o.run_id, outline = o.outline" + both +
        " AND (coalesce(o.proposed, 0) IS NOT cur.proposed OR o.score IS NOT cur.score"
        " OR o.run_id IS NOT cur.run_id OR o.outline IS NOT cur.outline)",
        params,
    )
    conn.execute(
        "UPDATE cells SET image_id = o.image_id, x = o.x, y = o.y" + both +
        " AND (o.image_id IS NOT cur.image_id OR o.x IS NOT cur.x OR o.y IS NOT cur.y)",
        params,
    )
    blocks.restore(conn, conn.execute(
        "SELECT model_id, cell_id, probs FROM op_predictions"
        " WHERE op_id = ? AND model_id IN (SELECT id FROM models)"
        " AND cell_id IN (SELECT id FROM cells)",
        (op_id,),
    ).fetchall())
    if "model_classes" in stored_tables:
        _upsert_rows(conn, "model_classes", stored_tables["model_classes"])
        _delete_rows(conn, "model_classes", stored_tables["model_classes"])
    for table in ("regions", "classes", "images"):
        if table in stored_tables:
            _delete_rows(conn, table, stored_tables[table])
    if "regions" in stored_tables:
        _region_history(conn, stored_tables["regions"], current_tables["regions"], op_id,
                        direction, user, now)

    # The audit trail: one row per cell the flip changed.
    conn.execute(
        "INSERT INTO history (uuid, cell_uuid, image_id, op_id, action, old_class, new_class,"
        " old_status, new_status, source, user, at, detail)"
        f" SELECT {NEW_UUID_SQL}, coalesce(cur.uuid, o.uuid),"
        " coalesce(o.image_id, cur.image_id), :op, :dir,"
        " CASE WHEN cur.present = 1 THEN oc.name END, CASE WHEN o.present = 1 THEN nc.name END,"
        " CASE WHEN cur.present = 1 THEN cur.review_status END,"
        " CASE WHEN o.present = 1 THEN o.review_status END,"
        " CASE WHEN o.present = 1 THEN o.label_source ELSE cur.label_source END, :user, :now,"
        " CASE WHEN cur.present = 1 AND o.present = 1 AND (cur.x IS NOT o.x OR cur.y IS NOT o.y)"
        "  THEN json_object('op', :op, :verb, :action, 'from', json_array(cur.x, cur.y),"
        "   'to', json_array(o.x, o.y))"
        "  ELSE json_object('op', :op, :verb, :action) END"
        " FROM op_cells o JOIN temp._cur cur ON cur.cell_id = o.cell_id"
        " LEFT JOIN temp._cls oc ON oc.id = cur.class_id"
        " LEFT JOIN classes nc ON nc.id = o.class_id"
        " WHERE o.op_id = :op AND (o.present = 1 OR cur.present = 1)",
        {
            "op": op_id, "dir": direction, "user": user, "now": now, "action": action,
            "verb": "reverts" if direction == "undo" else "repeats",
        },
    )

    # Store the state just replaced: it is what the next flip brings back.
    conn.execute("DELETE FROM op_cells WHERE op_id = ?", (op_id,))
    conn.execute(
        f"INSERT INTO op_cells (op_id, cell_id, present, {cell_cols()})"
        f" SELECT ?, cell_id, present, {cell_cols()} FROM temp._cur",
        (op_id,),
    )
    conn.execute("DELETE FROM op_predictions WHERE op_id = ?", (op_id,))
    conn.execute(
        "INSERT INTO op_predictions (op_id, model_id, cell_id, probs, predicted, confidence)"
        " SELECT ?, model_id, cell_id, probs, predicted, confidence FROM temp._pred",
        (op_id,),
    )
    conn.execute(
        "UPDATE operations SET state = ?, tables = ?, session = ?, last_user = ?, last_at = ?"
        " WHERE id = ?",
        (
            "undone" if direction == "undo" else "done",
            json.dumps(current_tables) if current_tables else None,
            session, user, now,
            op_id,
        ),
    )
    for table in current_tables:
        result.kinds.add(TABLE_KINDS[table])
    if n_cells:
        result.note("cells", (), 0, rows=touched)
    result.n_cells = n_cells
    result.changed = True
    return result


def region_fields(row: list | tuple | None) -> dict[str, Any] | None:
    """A ``regions`` row (TABLE_COLUMNS order) as the JSON object region_history keeps."""
    if row is None:
        return None
    return dict(zip(TABLE_COLUMNS["regions"][1:], row[1:], strict=True))


def _region_history(conn: sqlite3.Connection, stored: dict[str, Any], current: dict[str, Any],
                    op_id: int, direction: str, user: str, now: str) -> None:
    """One region_history row per region a flip changed (``current``: before the flip)."""
    rows = []
    for key, after in stored.items():
        before = current.get(key)
        if before == after:
            continue
        either = after if after is not None else before
        assert either is not None  # (equal Nones were skipped above)
        rows.append((either[1], either[2], op_id, direction,
                     json.dumps(region_fields(before)) if before is not None else None,
                     json.dumps(region_fields(after)) if after is not None else None,
                     user, now))
    conn.executemany(
        "INSERT INTO region_history (uuid, region_uuid, image_id, op_id, action, old, new, user,"
        f" at) VALUES ({NEW_UUID_SQL}, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def drop_undo_data(conn: sqlite3.Connection, op_ids: list[int], state: str) -> None:
    """Forget the undo data of these actions (their history rows stay)."""
    if not op_ids:
        return
    conn.executemany("DELETE FROM op_cells WHERE op_id = ?", [(i,) for i in op_ids])
    conn.executemany("DELETE FROM op_predictions WHERE op_id = ?", [(i,) for i in op_ids])
    conn.executemany(
        "UPDATE operations SET state = ?, tables = NULL, new_lo = NULL, new_hi = NULL "
        "WHERE id = ?",
        [(state, i) for i in op_ids],
    )


def finish(conn: sqlite3.Connection, op: PendingOp) -> None:
    """Seal a new action: store its snapshot, drop the redo stack, expire the oldest."""
    conn.execute(
        "UPDATE operations SET n_cells = ?, tables = ?, new_lo = ?, new_hi = ? WHERE id = ?",
        (
            op.n_cells,
            json.dumps(op.tables) if op.tables else None,
            op.new_lo,
            op.new_hi,
            op.id,
        ),
    )
    redo = [r[0] for r in conn.execute("SELECT id FROM operations WHERE state = 'undone'")]
    drop_undo_data(conn, redo, "discarded")
    old = [
        r[0] for r in conn.execute(
            "SELECT id FROM operations WHERE state = 'done' ORDER BY id DESC LIMIT -1 OFFSET ?",
            (MAX_UNDO,),
        )
    ]
    drop_undo_data(conn, old, "expired")
