"""The project file's SQL schema and its migrations.

A project is one SQLite file (suffix ``.cvproj``). It is recognised by ``PRAGMA
application_id`` (so opening some other SQLite database fails clearly) and versioned by ``PRAGMA
user_version``: ``MIGRATIONS[i]`` takes a file from version ``i`` to ``i + 1``, all pending steps
run in one transaction, so a crash half-way through leaves the old version intact.

Design choices worth knowing before editing:

- ``cells.id`` is an internal INTEGER key, handed out from ``counters`` so that it is never
  reused (an undo snapshot can always put a deleted cell back under its own key; AUTOINCREMENT
  would do the same but costs a bookkeeping step per inserted row); ``cells.uuid`` is the stable
  id that leaves the project (GeoJSON ``id``, CSV ``cell_id``, the API's cell ids).
- Spatial queries use a grid-band column: ``gy = CAST(y / 256 AS INTEGER)`` (a generated column)
  and the index ``(image_id, gy, x, y)``. A rectangle query asks for ``gy IN (b0..b1)``, which
  SQLite runs as one range scan on ``x`` per band, so it touches about 1.3x the cells it returns.
  Measured against an R*Tree on a million points (benchmarks/bench_store_query.py
  ``--compare-rtree``): a 1920x1080 viewport took a median 0.17 ms with this index and 0.4-0.5 ms
  with the R*Tree (which stores float32 boxes, so it also needs an exact re-check), inserting took
  5-6 s against 18-22 s, and the file was 60 MB against 80 MB; so the plain index wins.
- ``history`` is append-only: triggers abort any UPDATE or DELETE on it.
- Undo data (``operations``, ``op_cells``, ``op_predictions``) is described in ``undo.py``;
  since version 2 each action names the *session* (one store connection, table ``sessions``)
  that last wrote it, so that undo never steps back through another process's edits.
- Foreign keys on ``cells.image_id`` and ``cells.class_id`` have no ON DELETE action: an undo
  swaps rows of ``images``/``classes`` with deferred foreign keys, and a cascade there would
  silently delete cells. Since version 5 predictions live in blocks of cells
  (``prediction_blocks.py``): deleting cells takes their entries out (for undo to put back), and
  deleting a model cascades to its blocks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import numpy as np

from cellviewer.core.store import prediction_blocks as blocks

# "CVPJ" as a big-endian 32-bit integer: marks a SQLite file as a CellViewer project.
APPLICATION_ID = 0x4356504A
GRID = 256  # height in level-0 pixels of one band of the spatial index (see module docstring)

# Version 1's label sources: its CREATE TABLE (a shipped step) keeps them. Version 3 added
# "detector" (a detection, proposed or accepted) by widening the CHECK (see _v2_to_v3). Only ever
# append: CellColumns.source is an index into this tuple.
_V1_LABEL_SOURCES = ("manual", "imported", "model-accepted", "corrected")
LABEL_SOURCES = (*_V1_LABEL_SOURCES, "detector")
REVIEW_STATUSES = ("unreviewed", "annotated", "checked", "reviewed")
#: the kinds of region offered; a region's kind is free text (an imported QuPath
#: classification such as "Stroma" is kept as it is)
REGION_KINDS = ("tissue", "tumour", "annotation area", "other")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    """``column = 'a' OR column = 'b' ...``: in a CHECK, several times cheaper per inserted row
    than ``column IN (...)`` (measured: IN made a million-cell insert ~4 s slower)."""
    return " OR ".join(f"{column} = '{v}'" for v in values)


_V1 = f"""
CREATE TABLE project (
    key   TEXT PRIMARY KEY,
    value TEXT
);

CREATE TABLE images (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    path        TEXT NOT NULL,          -- relative to the project's folder when inside it
    width       INTEGER NOT NULL CHECK (width > 0),
    height      INTEGER NOT NULL CHECK (height > 0),
    mpp         REAL CHECK (mpp IS NULL OR mpp > 0),
    fingerprint TEXT,
    added_by    TEXT NOT NULL,
    added_at    TEXT NOT NULL
);

CREATE TABLE classes (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    name  TEXT NOT NULL UNIQUE,
    color TEXT NOT NULL,                -- "#rrggbb"
    key   TEXT NOT NULL DEFAULT '',     -- "1".."9" or ""
    ord   INTEGER NOT NULL
);

-- Counters that only grow: "cells" is the next cell id (see the module docstring).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('cells', 1);

CREATE TABLE cells (
    id            INTEGER PRIMARY KEY,  -- from counters.cells: never reused
    uuid          TEXT NOT NULL UNIQUE,
    image_id      INTEGER NOT NULL REFERENCES images(id),
    x             REAL NOT NULL,        -- level-0 pixels, origin at the image's top-left corner
    y             REAL NOT NULL,
    gy            INTEGER GENERATED ALWAYS AS (CAST(y / {GRID} AS INTEGER)) VIRTUAL,
    class_id      INTEGER REFERENCES classes(id),   -- NULL: unlabelled
    label_source  TEXT NOT NULL CHECK ({_one_of("label_source", _V1_LABEL_SOURCES)}),
    review_status TEXT NOT NULL CHECK ({_one_of("review_status", REVIEW_STATUSES)}),
    updated_by    TEXT NOT NULL,        -- who last changed the label
    updated_at    TEXT NOT NULL,        -- and when (ISO 8601 UTC)
    metadata      TEXT                  -- JSON object: extra columns of an imported CSV, ...
);
CREATE INDEX cells_grid ON cells(image_id, gy, x, y);
CREATE INDEX cells_class ON cells(class_id, image_id);

CREATE TABLE models (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL,
    path     TEXT,
    arch     TEXT,
    meta     TEXT NOT NULL DEFAULT '{{}}',  -- JSON
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL
);

-- The model's own class list (its output order) and which project class each one means.
CREATE TABLE model_classes (
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    name     TEXT NOT NULL,
    class_id INTEGER REFERENCES classes(id),
    PRIMARY KEY (model_id, idx)
) WITHOUT ROWID;

CREATE TABLE predictions (
    model_id   INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    cell_id    INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    probs      BLOB NOT NULL,           -- float32 little-endian, one per model class
    predicted  INTEGER NOT NULL,        -- index into model_classes
    confidence REAL NOT NULL,           -- probs[predicted]
    PRIMARY KEY (model_id, cell_id)
) WITHOUT ROWID;
CREATE INDEX predictions_cell ON predictions(cell_id);
CREATE INDEX predictions_confidence ON predictions(model_id, confidence);

-- One row per user action; see undo.py.
CREATE TABLE operations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    action      TEXT NOT NULL,
    description TEXT NOT NULL,
    user        TEXT NOT NULL,
    at          TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('done', 'undone', 'discarded', 'expired')),
    n_cells     INTEGER NOT NULL DEFAULT 0,
    tables      TEXT,                   -- JSON snapshot of touched images/classes/model_classes
    new_lo      INTEGER,                -- cells id range created by this action (absent before)
    new_hi      INTEGER
);
CREATE INDEX operations_state ON operations(state, id);

-- The state of each touched cell on the other side of the operation (present = 0: absent).
CREATE TABLE op_cells (
    op_id         INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
    cell_id       INTEGER NOT NULL,
    present       INTEGER NOT NULL,
    uuid          TEXT,
    image_id      INTEGER,
    x             REAL,
    y             REAL,
    class_id      INTEGER,
    label_source  TEXT,
    review_status TEXT,
    updated_by    TEXT,
    updated_at    TEXT,
    metadata      TEXT,
    PRIMARY KEY (op_id, cell_id)
) WITHOUT ROWID;

CREATE TABLE op_predictions (
    op_id      INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
    model_id   INTEGER NOT NULL,
    cell_id    INTEGER NOT NULL,
    probs      BLOB NOT NULL,
    predicted  INTEGER NOT NULL,
    confidence REAL NOT NULL,
    PRIMARY KEY (op_id, model_id, cell_id)
) WITHOUT ROWID;

-- Append-only audit trail: every label (and review, position, existence) change of a cell.
CREATE TABLE history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    cell_uuid  TEXT NOT NULL,
    image_id   INTEGER,
    op_id      INTEGER,
    action     TEXT NOT NULL,   -- add, delete, label, review, move, merge, undo, redo, ...
    old_class  TEXT,            -- class names at the time (ids may be merged away later)
    new_class  TEXT,
    old_status TEXT,
    new_status TEXT,
    source     TEXT,            -- the label source after the change
    user       TEXT NOT NULL,
    at         TEXT NOT NULL,
    detail     TEXT             -- JSON: e.g. a move's from/to, the action an undo reverted
);
CREATE INDEX history_cell ON history(cell_uuid, id);
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only: rows cannot be changed'); END;
CREATE TRIGGER history_no_delete BEFORE DELETE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only: rows cannot be deleted'); END;
"""


def _v0_to_v1(conn: sqlite3.Connection) -> None:
    for statement in _split_sql(_V1):
        conn.execute(statement)


# Version 2: who may undo. ``sessions`` holds one row per store connection that recorded an
# action (written with its first action, so opening a project writes nothing); ``closed_at``
# stays NULL while it is open and after a crash (undo.py then asks whether ``pid`` still runs).
# ``operations.session`` is the session that last wrote the action (made, undid or redid it),
# ``last_user``/``last_at`` who that was and when. Actions from before version 2 keep NULL in all
# three: an ended session of their ``user`` (undo.py).
_V2 = """
CREATE TABLE sessions (
    id        TEXT PRIMARY KEY,     -- uuid4 hex, made when the store connection opened
    host      TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT                  -- NULL: open, or ended without closing (a crash)
) WITHOUT ROWID;

ALTER TABLE operations ADD COLUMN session TEXT;
ALTER TABLE operations ADD COLUMN last_user TEXT;
ALTER TABLE operations ADD COLUMN last_at TEXT;
"""


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    for statement in _split_sql(_V2):
        conn.execute(statement)


# Version 3: regions and proposals (issue 15).
#
# - ``regions``: polygons drawn on an image (GeoJSON Polygon text, level-0 pixels) with a stable
#   ``uuid`` (QuPath annotation id on export), a name, a kind and a review status in the cells'
#   vocabulary. ``id`` is the internal key the undo snapshots use (undo.py: regions are a small
#   table, flipped like images and classes); ``region_history`` is their append-only trail.
# - cells get a *proposed* state of their own (``proposed`` = 1 until a person accepts it),
#   beside the label source, so an accepted detection keeps its origin: label source
#   ``detector``, its ``score`` and the ``run_id`` of the detection run (``detection_runs``,
#   which, like models, is a record and not part of undo). ``outline``: the cell's own polygon
#   (GeoJSON Polygon text) when an import brings one (QuPath detections), else NULL.
# - ``label_source`` may now be ``detector``: SQLite cannot alter a CHECK, so its text in the
#   schema is widened in place (``_widen_check``), which SQLite documents as safe for a change
#   that no stored row can violate; no table is rebuilt, so a million-cell file migrates in
#   milliseconds.
_V3 = f"""
CREATE TABLE regions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid       TEXT NOT NULL UNIQUE,
    image_id   INTEGER NOT NULL REFERENCES images(id),
    geometry   TEXT NOT NULL,           -- GeoJSON Polygon, level-0 pixels
    name       TEXT NOT NULL DEFAULT '',
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK ({_one_of("status", REVIEW_STATUSES)}),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,           -- who last changed it (geometry, name, kind, status)
    updated_at TEXT NOT NULL
);
CREATE INDEX regions_image ON regions(image_id);

CREATE TABLE region_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    region_uuid TEXT NOT NULL,
    image_id    INTEGER,
    op_id       INTEGER,
    action      TEXT NOT NULL,  -- add, edit, delete, status, undo, redo
    old         TEXT,           -- JSON: the region's fields before (NULL: it did not exist)
    new         TEXT,           -- and after (NULL: deleted)
    user        TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX region_history_region ON region_history(region_uuid, id);
CREATE TRIGGER region_history_no_update BEFORE UPDATE ON region_history
BEGIN SELECT RAISE(ABORT, 'region history is append-only: rows cannot be changed'); END;
CREATE TRIGGER region_history_no_delete BEFORE DELETE ON region_history
BEGIN SELECT RAISE(ABORT, 'region history is append-only: rows cannot be deleted'); END;

CREATE TABLE detection_runs (
    id         TEXT PRIMARY KEY,        -- uuid
    image_id   INTEGER,
    method     TEXT NOT NULL,           -- e.g. "classical nucleus", a model file's name
    params     TEXT NOT NULL DEFAULT '{{}}',  -- JSON
    n_found    INTEGER NOT NULL DEFAULT 0,
    n_added    INTEGER NOT NULL DEFAULT 0,
    op_id      INTEGER,                 -- the action that added its proposals
    run_by     TEXT NOT NULL,
    run_at     TEXT NOT NULL
) WITHOUT ROWID;

ALTER TABLE cells ADD COLUMN proposed INTEGER NOT NULL DEFAULT 0
    CHECK (proposed = 0 OR proposed = 1);
ALTER TABLE cells ADD COLUMN score REAL;
ALTER TABLE cells ADD COLUMN run_id TEXT;
ALTER TABLE cells ADD COLUMN outline TEXT;
ALTER TABLE op_cells ADD COLUMN proposed INTEGER;
ALTER TABLE op_cells ADD COLUMN score REAL;
ALTER TABLE op_cells ADD COLUMN run_id TEXT;
ALTER TABLE op_cells ADD COLUMN outline TEXT;
"""


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    for statement in _split_sql(_V3):
        conn.execute(statement)
    _widen_check(conn, "cells", _one_of("label_source", _V1_LABEL_SOURCES),
                 _one_of("label_source", LABEL_SOURCES))


# Version 4: several annotators on one cohort (issue 19).
#
# - Every history entry (cells' and regions') and every action gets a ``uuid`` (filled for the
#   old rows here; new rows get one from :data:`NEW_UUID_SQL` in their INSERT), so merging
#   copies keeps each entry once (``copied_from``: the project id of the copy it was merged
#   from, NULL where it was made in this file). The append-only triggers are dropped for the
#   fill and made again.
# - The project gets an ``id`` (a ``project`` key; versions 1-3 had none). A copy for an
#   annotator records its ``origin_project`` and ``origin_entry`` (the last history entry it
#   holds) as ``project`` keys and keeps the state it started from in ``merge_base_cells`` and
#   ``merge_base_regions``: the common ancestor of a three-way merge (history alone does not
#   hold a cell's position or label source at that time).
# - ``conflicts``: a cell changed on both sides differently, kept side by side (who, when);
#   ``op_id`` is the merge that found it (an undone merge's conflicts are not open).
#   ``cell_aliases``: a cell added in a copy that matched one added here by position.
# Entries made by one statement (the history rows of labelling 1,000 cells) get ids that start with
# the same millisecond stamp, as an RFC 9562 version-7 UUID does (32 hex digits: 12 of Unix ms,
# the version 7, 3 random, the variant 8-b, 15 random), so the unique index on them grows at its
# right edge: random ids made SQLite write one index page per entry (about 800 of 1,700 pages
# of labelling 1,000 cells, half of its commit). ``random()`` per row keeps them unique.
NEW_UUID_SQL = (
    "lower(printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"
    " || '7' || substr(hex(randomblob(2)), 2) || substr('89ab', 1 + (random() & 3), 1)"
    " || substr(hex(randomblob(8)), 2))"
)
_APPEND_ONLY = """
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only: rows cannot be changed'); END;
CREATE TRIGGER region_history_no_update BEFORE UPDATE ON region_history
BEGIN SELECT RAISE(ABORT, 'region history is append-only: rows cannot be changed'); END;
"""
_V4 = f"""
ALTER TABLE history ADD COLUMN uuid TEXT;
ALTER TABLE history ADD COLUMN copied_from TEXT;
ALTER TABLE region_history ADD COLUMN uuid TEXT;
ALTER TABLE region_history ADD COLUMN copied_from TEXT;
ALTER TABLE operations ADD COLUMN uuid TEXT;
DROP TRIGGER history_no_update;
DROP TRIGGER region_history_no_update;
UPDATE history SET uuid = {NEW_UUID_SQL};
UPDATE region_history SET uuid = {NEW_UUID_SQL};
UPDATE operations SET uuid = {NEW_UUID_SQL};
CREATE UNIQUE INDEX history_uuid ON history(uuid);
CREATE UNIQUE INDEX region_history_uuid ON region_history(uuid);
CREATE UNIQUE INDEX operations_uuid ON operations(uuid);
INSERT OR IGNORE INTO project (key, value) VALUES ('id', {NEW_UUID_SQL});

CREATE TABLE merge_base_cells (
    uuid          TEXT PRIMARY KEY,
    image_id      INTEGER NOT NULL,
    x             REAL NOT NULL,
    y             REAL NOT NULL,
    class_name    TEXT,                 -- NULL: unlabelled
    label_source  TEXT NOT NULL,
    review_status TEXT NOT NULL,
    proposed      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE merge_base_regions (
    uuid     TEXT PRIMARY KEY,
    image_id INTEGER NOT NULL,
    geometry TEXT NOT NULL,
    name     TEXT NOT NULL,
    kind     TEXT NOT NULL,
    status   TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE conflicts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    cell_uuid      TEXT NOT NULL,
    image_id       INTEGER,
    kind           TEXT NOT NULL CHECK (kind = 'label' OR kind = 'delete-edit'
                                        OR kind = 'edit-delete'),
    source_project TEXT NOT NULL,       -- the copy's project id
    source_name    TEXT NOT NULL,       -- and its file name, for people
    ours_class     TEXT,                -- this project's side (NULL: unlabelled or absent)
    ours_present   INTEGER NOT NULL,
    ours_by        TEXT,
    ours_at        TEXT,
    theirs_class   TEXT,                -- the copy's side
    theirs_present INTEGER NOT NULL,
    theirs_by      TEXT,
    theirs_at      TEXT,
    theirs_x       REAL,                -- where the copy has the cell (to bring it back)
    theirs_y       REAL,
    op_id          INTEGER NOT NULL,    -- the merge that found it
    found_by       TEXT NOT NULL,
    found_at       TEXT NOT NULL,
    resolution     TEXT,                -- NULL: open
    resolved_by    TEXT,
    resolved_at    TEXT
);
CREATE INDEX conflicts_cell ON conflicts(cell_uuid);

CREATE TABLE cell_aliases (
    alias     TEXT PRIMARY KEY,         -- a copy's uuid of a cell
    cell_uuid TEXT NOT NULL             -- the cell here it was matched to (by position)
) WITHOUT ROWID;
{_APPEND_ONLY}"""


def _v3_to_v4(conn: sqlite3.Connection) -> None:
    for statement in _split_sql(_V4):
        conn.execute(statement)


def _widen_check(conn: sqlite3.Connection, table: str, old: str, new: str) -> None:
    """Replace the text ``old`` of a CHECK in ``table``'s CREATE statement by ``new``, a
    condition every stored row already meets (a wider one). SQLite's documented way ("Making
    other kinds of table schema changes", sqlite.org/lang_altertable.html): edit
    ``sqlite_schema`` with ``writable_schema`` and bump ``schema_version``, inside the caller's
    transaction, so a crash leaves the old schema."""
    sql = conn.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?",
                       (table,)).fetchone()[0]
    if sql.count(old) != 1:
        raise RuntimeError(f"the CHECK to widen is not in table {table}'s schema once")
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = ?",
                     (sql.replace(old, new), table))
        conn.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


def _split_sql(script: str) -> list[str]:
    """Statements of a script, keeping trigger bodies (which contain ';') whole."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buf.strip():
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


# Version 5: predictions in blocks (issue 17; see prediction_blocks.py). The rows of
# ``predictions`` move into ``prediction_blocks`` model by model; the old table and its two
# indexes go. ``op_predictions`` (undo's copies of deleted cells' predictions) stays as it is.
def _v4_to_v5(conn: sqlite3.Connection) -> None:
    conn.execute(blocks.SCHEMA)
    models = conn.execute(
        "SELECT model_id, count(*) FROM model_classes GROUP BY model_id").fetchall()
    for model_id, k in models:
        rows = conn.execute("SELECT cell_id, probs FROM predictions WHERE model_id = ?"
                            " AND length(probs) = ?", (model_id, 4 * k)).fetchall()
        if rows:
            keys = np.array([r[0] for r in rows], dtype=np.int64)
            probs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, k)
            blocks.write(conn, model_id, keys, probs)
    conn.execute("DROP TABLE predictions")  # and its indexes with it
    for statement in _split_sql(_COLUMN_CACHE):
        conn.execute(statement)


# The column cache (version 5, issue 17): a large image's cells as one row of BLOBs, what the
# viewer loads (cell_columns.py), made on the first read after a change. Any change to a cell
# that the columns show drops its image's row of ``column_cache_valid``, by trigger, whichever
# code or connection makes it; so the cache can be stale never, only missing. (The triggers
# leave the BLOBs alone: freeing a 30 MB row's pages inside a user's edit made labelling 1,000
# cells 4x slower; the next fill replaces them, in the background.)
_COLUMN_CACHE = """
CREATE TABLE column_cache (
    image_id INTEGER PRIMARY KEY,
    token    INTEGER NOT NULL,          -- valid while column_cache_valid has the same
    n        INTEGER NOT NULL,
    rows     BLOB NOT NULL,             -- int64 cell keys, ascending
    xy       BLOB NOT NULL,             -- float64 (n, 2)
    packed   BLOB NOT NULL,             -- int64: class << 8 | proposed << 7 | source << 3 | review
    uuids    BLOB NOT NULL              -- the cells' uuids, UTF-8, one per line
);
CREATE TABLE column_cache_valid (
    image_id INTEGER PRIMARY KEY,
    token    INTEGER NOT NULL
);
CREATE TRIGGER column_cache_insert AFTER INSERT ON cells
BEGIN DELETE FROM column_cache_valid WHERE image_id = NEW.image_id; END;
CREATE TRIGGER column_cache_delete AFTER DELETE ON cells
BEGIN DELETE FROM column_cache_valid WHERE image_id = OLD.image_id; END;
CREATE TRIGGER column_cache_update AFTER UPDATE OF uuid, image_id, x, y, class_id,
    label_source, review_status, proposed ON cells
BEGIN DELETE FROM column_cache_valid WHERE image_id IN (OLD.image_id, NEW.image_id); END;
"""


# MIGRATIONS[i] upgrades a file at user_version i to i + 1; append, never edit a shipped step.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v0_to_v1, _v1_to_v2, _v2_to_v3, _v3_to_v4, _v4_to_v5]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Run every pending migration inside the caller's transaction and stamp the version."""
    for version in range(from_version, SCHEMA_VERSION):
        MIGRATIONS[version](conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
