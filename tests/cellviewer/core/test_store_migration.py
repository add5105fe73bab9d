"""Every project file written by an earlier schema version opens, migrates and loses nothing.

``tests/fixtures/project-v<N>.cvproj`` was written by the code of schema version N
(``packaging/make_schema_fixture.py``); each schema change adds a migration and its fixture stays.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cellviewer.core.store import SCHEMA_VERSION, ProjectStore, UndoConflictError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# What each fixture holds, as written by its version (made once, never changed).
EXPECTED = {
    1: {"images": 3, "classes": 13, "cells": 349, "history": 362, "predictions": 132,
        "undone": 1, "checked": 5, "corrected": 5},
    2: {"images": 3, "classes": 13, "cells": 349, "history": 362, "predictions": 132,
        "undone": 1, "checked": 5, "corrected": 5},
    # version 3 adds a region (annotated) and 3 proposals of one run, one of them accepted
    3: {"images": 3, "classes": 13, "cells": 352, "history": 366, "predictions": 132,
        "undone": 1, "checked": 5, "corrected": 5, "detector": 3, "proposed": 2, "regions": 1,
        "region_history": 2},
    # version 4 adds uuids to history and actions and a project id: the same contents
    4: {"images": 3, "classes": 13, "cells": 352, "history": 366, "predictions": 132,
        "undone": 1, "checked": 5, "corrected": 5, "detector": 3, "proposed": 2, "regions": 1,
        "region_history": 2},
    # version 5 keeps predictions in blocks of cells: the same contents
    5: {"images": 3, "classes": 13, "cells": 352, "history": 366, "predictions": 132,
        "undone": 1, "checked": 5, "corrected": 5, "detector": 3, "proposed": 2, "regions": 1,
        "region_history": 2},
}


def _fixture_versions() -> list[int]:
    return sorted(int(p.stem.split("-v")[1]) for p in FIXTURES.glob("project-v*.cvproj"))


def test_a_fixture_exists_for_the_current_schema_version():
    assert SCHEMA_VERSION in _fixture_versions(), (
        f"commit tests/fixtures/project-v{SCHEMA_VERSION}.cvproj "
        "(python packaging/make_schema_fixture.py) before changing the schema again")


@pytest.mark.parametrize("version", _fixture_versions())
def test_an_older_project_migrates_and_keeps_everything(tmp_path, version):
    path = tmp_path / f"old-v{version}.cvproj"
    shutil.copy(FIXTURES / f"project-v{version}.cvproj", path)
    want = EXPECTED[version]
    with ProjectStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.integrity_check() == "ok"
        assert len(store.images()) == want["images"]
        assert len(store.classes()) == want["classes"]
        assert store.cell_count() == want["cells"]
        assert len(store.history()) == want["history"]
        cells = [c for i in store.images() for c in store.cell_arrays(i.id).ids]
        model = store.models()[0]
        preds = store.predictions(model.id, cells)
        assert int(preds.has_prediction.sum()) == want["predictions"]
        table = store.cell_table()
        assert table["review_status"].count("checked") == want["checked"]
        assert table["label_source"].count("corrected") == want["corrected"]
        assert table["label_source"].count("detector") == want.get("detector", 0)
        assert int(table["proposed"].sum()) == want.get("proposed", 0)
        assert len(store.regions()) == want.get("regions", 0)
        assert len(store.region_history()) == want.get("region_history", 0)
        assert store.can_redo()  # the undone action is still on the redo stack
        # and the migrated file takes new edits
        store.user = "tester"
        store.set_labels(cells[:1], None)
        assert store.undo()


def _dump(path: Path, like: Path | None = None) -> dict[str, list[tuple]]:
    """Every row of every table of ``path`` (only the tables and columns ``like`` has)."""
    conn = sqlite3.connect(f"{(like or path).as_uri()}?mode=ro", uri=True)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    conn.close()
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    out = {}
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table, cols in columns.items():
        if table == "sqlite_stat1":  # the planner's statistics, not the project's data
            continue
        if table == "predictions" and table not in have:  # version 5 keeps them in blocks
            out[table] = _block_predictions(conn)
            continue
        order = ", ".join(str(i + 1) for i in range(len(cols)))
        # (version 4 gives every project an id: a key the older files had not)
        where = " WHERE key != 'id'" if table == "project" else ""
        out[table] = conn.execute(
            f"SELECT {', '.join(cols)} FROM {table}{where} ORDER BY {order}").fetchall()
    conn.close()
    return out


def _block_predictions(conn: sqlite3.Connection) -> list[tuple]:
    """The rows a version-4 ``predictions`` table would hold, decoded from the blocks of
    version 5: (model_id, cell_id, probs, predicted, confidence), sorted."""
    rows = []
    for model_id, block, offsets, blob in conn.execute(
            "SELECT model_id, block, offsets, probs FROM prediction_blocks"):
        keys = (block << 11) + np.frombuffer(offsets, "<u2").astype(np.int64)
        probs = np.frombuffer(blob, "<f4").reshape(len(keys), -1)
        for key, row in zip(keys.tolist(), probs, strict=True):
            best = int(row.argmax())
            rows.append((model_id, key, row.tobytes(), best, float(row[best])))
    return sorted(rows)


def test_v1_keeps_every_row_of_every_table_and_its_actions_become_legacy(tmp_path):
    """Version 2 adds sessions (who may undo): every v1 row stays exactly as it was, and the
    v1 actions, made before sessions existed, are undoable by the user who made them."""
    original = tmp_path / "pristine-v1.cvproj"  # (reading the fixture in place adds a WAL)
    shutil.copy(FIXTURES / "project-v1.cvproj", original)
    path = tmp_path / "old-v1.cvproj"
    shutil.copy(original, path)
    before = _dump(original)
    assert len(before["cells"]) == 349 and len(before["history"]) == 362
    with ProjectStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    assert _dump(path, like=original) == before
    conn = sqlite3.connect(path)
    legacy = conn.execute(
        "SELECT count(*) FROM operations WHERE session IS NULL AND last_user IS NULL"
        " AND last_at IS NULL").fetchone()[0]
    assert legacy == len(before["operations"])
    assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    conn.close()
    with ProjectStore.open(path) as store:
        store.user = "tester"
        with pytest.raises(UndoConflictError, match="fixture-maker undid 'Delete 1 cell'"):
            store.redo()  # another user's legacy action
        store.user = "fixture-maker"
        assert store.redo() and store.undo()  # their own, as before
        assert store.undo()


def test_v2_keeps_every_row_and_gains_regions_and_proposals(tmp_path):
    """Version 3 adds regions, detection runs and the cells' proposed state, and lets
    label_source be "detector": every v2 row stays as it was, old cells are not proposals,
    and the widened CHECK still refuses a label source nobody knows."""
    original = tmp_path / "pristine-v2.cvproj"
    shutil.copy(FIXTURES / "project-v2.cvproj", original)
    path = tmp_path / "old-v2.cvproj"
    shutil.copy(original, path)
    before = _dump(original)
    with ProjectStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    assert _dump(path, like=original) == before
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*), sum(proposed), count(score), count(run_id),"
                        " count(outline) FROM cells").fetchone() == (349, 0, 0, 0, 0)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        conn.execute("UPDATE cells SET label_source = 'guessed' WHERE id = 1")
    conn.close()
    with ProjectStore.open(path) as store:
        store.user = "tester"
        image = store.images()[0].id
        square = {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 9], [0, 0]]]}
        region = store.add_region(image, square, "r", "tissue")
        new = store.add_cells(image, [[1, 1]], source="detector", proposed=True, scores=[0.5])
        assert store.cell(new[0]).proposed and store.cell(new[0]).score == 0.5
        assert store.undo() and store.undo()  # the proposal, then the region
        assert store.regions() == [] and store.cell_count() == 349
        assert store.integrity_check() == "ok"
        assert region not in [r.uuid for r in store.regions()]


def test_v3_keeps_every_row_and_gains_uuids_and_a_project_id(tmp_path):
    """Version 4 (issue 19, merging annotators' copies) gives every history entry, region
    history entry and action a unique uuid and the project an id; every v3 row stays as it was,
    the history stays append-only, and new rows get uuids too."""
    original = tmp_path / "pristine-v3.cvproj"
    shutil.copy(FIXTURES / "project-v3.cvproj", original)
    path = tmp_path / "old-v3.cvproj"
    shutil.copy(original, path)
    before = _dump(original)
    with ProjectStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    assert _dump(path, like=original) == before
    conn = sqlite3.connect(path)
    for table in ("history", "region_history", "operations"):
        n, distinct = conn.execute(f"SELECT count(*), count(DISTINCT uuid) FROM {table}"
                                   " WHERE length(uuid) = 32").fetchone()
        assert n == distinct == len(before[table]), table
    (project_id,) = conn.execute("SELECT value FROM project WHERE key = 'id'").fetchone()
    assert len(project_id) == 32
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE history SET uuid = 'x' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM region_history")
    conn.close()
    with ProjectStore.open(path) as store:
        store.user = "tester"
        cell = store.cell_arrays(store.images()[0].id).ids[:1]
        store.set_labels(cell, None)
        assert store.undo()
        assert store.history()[-1].action == "undo"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM history WHERE uuid IS NULL").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM operations WHERE uuid IS NULL").fetchone()[0] == 0
    assert conn.execute("SELECT value FROM project WHERE key = 'id'").fetchone()[0] == project_id
    conn.close()


def test_v4_keeps_every_row_and_its_predictions_move_into_blocks(tmp_path):
    """Version 5 (issue 17) stores predictions in blocks of cells: every v4 row of every table
    stays, each prediction reads back bit for bit, and deleting a predicted cell and undoing
    that brings its prediction back."""
    original = tmp_path / "pristine-v4.cvproj"
    shutil.copy(FIXTURES / "project-v4.cvproj", original)
    path = tmp_path / "old-v4.cvproj"
    shutil.copy(original, path)
    before = _dump(original)
    assert len(before["predictions"]) == 132
    with ProjectStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    assert _dump(path, like=original) == before
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'predictions%'"
                        ).fetchone()[0] == 0  # the old table and its two indexes are gone
    conn.close()
    with ProjectStore.open(path) as store:
        store.user = "tester"
        model = store.models()[0]
        assert model.n_predictions == 132
        cell_id = before["predictions"][0][1]
        table = store.cell_table()
        uuid = table["ids"][table["rows"].tolist().index(cell_id)]
        want = store.predictions(model.id, [uuid]).probs.copy()
        store.delete_cells([uuid])
        assert store.models()[0].n_predictions == 131
        assert store.undo()
        assert store.models()[0].n_predictions == 132
        np.testing.assert_array_equal(store.predictions(model.id, [uuid]).probs, want)
