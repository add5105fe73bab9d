"""Damaged project files (issue 14, item 4): a byte-flip corpus made from a small real project.
Every damaged file is either refused at open with the project's own error, naming the file, or
opens and then passes SQLite's full integrity_check; no open leaks its connection, leaves a
-wal/-shm behind or changes the file; no other exception type escapes, also while reading and
editing what opened."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest

from cellviewer.core.store import ProjectError, ProjectStore, records

N_FILES = 240
BATCHES = 12
SEED = 14


def _damaged(data: bytes, index: int) -> bytes:
    """File ``index`` of the corpus: 1 to 4 bits flipped at seeded random offsets."""
    rng = random.Random(SEED * 100_003 + index)
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _open_fds_of(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux; 0 elsewhere)."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return 0
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:
            continue
    return count


def _use(store: ProjectStore) -> None:
    """Read everything and make an edit: on a file that opened, only ProjectErrors may come."""
    for image in store.images():
        store.image_columns(image.id)
        store.cell_table([image.id])
        for cell_id in store.query_cells(image.id)[:3]:
            store.cell(cell_id)
    store.classes()
    for model in store.models():
        store.model(model.id)
    store.history()
    store.operations()
    store.add_class(f"new-{os.getpid()}")
    store.undo()


@pytest.mark.parametrize("batch", range(BATCHES))
def test_a_damaged_file_is_refused_at_open_or_is_sound(tmp_path, small_project_bytes, batch):
    outcomes = {"refused": 0, "opened": 0}
    for index in range(batch, N_FILES, BATCHES):
        path = tmp_path / f"damaged-{index}.cvproj"
        data = _damaged(small_project_bytes, index)
        path.write_bytes(data)
        try:
            store = ProjectStore.open(path)
        except ProjectError as exc:
            assert str(path) in str(exc), f"file {index}: the message names no file: {exc}"
            assert path.read_bytes() == data, f"file {index}: a refused open changed the file"
            outcomes["refused"] += 1
        else:
            raw = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            verdict = raw.execute("PRAGMA integrity_check").fetchone()[0]
            raw.close()
            assert verdict == "ok", f"file {index} opened although integrity_check: {verdict}"
            try:
                _use(store)
            except ProjectError as exc:  # a damaged value found on the way: named, refused
                assert str(path) in str(exc)
            finally:
                store.close()
            outcomes["opened"] += 1
        assert _open_fds_of(path) == 0, f"file {index}: the connection was leaked"
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name + "-"))
        assert not left, f"file {index}: side files left behind: {left}"
        path.unlink()
    assert outcomes["refused"] > 0  # the corpus does damage files (most of them)


def test_a_damaged_file_is_refused_as_damaged_naming_the_file(tmp_path, small_project_bytes):
    """An index that no longer matches its table (quick_check would pass it: see integrity.py)."""
    path = tmp_path / "p.cvproj"
    path.write_bytes(small_project_bytes)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema = ON")
    # Make the index on history's cells disagree with its table: drop the index's entries by
    # rewriting the table's rows behind the index's back (a damaged page does exactly that).
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'history_cell'"
                        ).fetchone()
    conn.close()
    assert root is not None
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    start = (root[0] - 1) * page_size
    page = data[start:start + page_size]
    # flip a byte inside the first cell's key on the index page (not its header)
    cell_offset = int.from_bytes(page[8 + 4:8 + 6] if page[0] == 0x0A else page[8:10], "big")
    data[start + cell_offset + 6] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(records.ProjectDamagedError) as caught:
        ProjectStore.open(path)
    assert str(path) in str(caught.value) and "damaged" in str(caught.value)
    assert caught.value.path == path
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def test_a_damaged_stored_value_is_reported_as_damage(small_project):
    """A value that no longer decodes (JSON of a cell's metadata, text that is not UTF-8)."""
    with ProjectStore.open(small_project) as store:
        image = store.images()[0].id
        cell_id = store.query_cells(image)[0]
        other = store.query_cells(image)[1]
    raw = sqlite3.connect(small_project)
    raw.execute("UPDATE cells SET metadata = '{\"a\": ' WHERE uuid = ?", (cell_id,))
    raw.execute("UPDATE classes SET name = CAST(X'C328' AS TEXT) WHERE id = "
                "(SELECT MIN(id) FROM classes)")
    raw.commit()
    raw.close()
    with ProjectStore.open(small_project) as store:
        with pytest.raises(ProjectError, match="damaged") as caught:
            store.cell(cell_id)
        assert isinstance(caught.value, records.ProjectDamagedError)
        assert str(small_project) in str(caught.value)
        assert store.cell(other).id == other  # the rest stays readable
        with pytest.raises(records.ProjectDamagedError, match="damaged"):
            store.classes()
