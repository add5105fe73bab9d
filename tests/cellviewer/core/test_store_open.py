"""Creating and opening project files: settings, refusals of non-projects, image paths."""

from __future__ import annotations

import sqlite3

import pytest

from cellviewer.core.store import SCHEMA_VERSION, ProjectError, ProjectStore
from cellviewer.core.store.schema import APPLICATION_ID


def test_new_project_is_wal_with_foreign_keys_normal_sync_and_a_version(tmp_path):
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path, name="Study A") as store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: checkpointer syncs
        assert store.schema_version == SCHEMA_VERSION >= 1
        assert store.name == "Study A"
        assert store.user == "test-user"  # CELLVIEWER_USER from conftest
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()
    with ProjectStore.open(path) as again:
        assert again.name == "Study A"
        assert again.integrity_check() == "ok"


def test_create_refuses_to_overwrite_an_existing_file(tmp_path):
    path = tmp_path / "p.cvproj"
    ProjectStore.create(path).close()
    with pytest.raises(ProjectError, match="already exists"):
        ProjectStore.create(path)
    ProjectStore.create(path, overwrite=True).close()


@pytest.mark.parametrize("kind", ["missing", "text", "other-sqlite", "empty", "folder", "newer"])
def test_opening_something_that_is_not_a_project_names_it(tmp_path, kind):
    path = tmp_path / f"{kind}.cvproj"
    expected = "not a CellViewer project"
    if kind == "missing":
        expected = "no such project file"
    elif kind == "text":
        path.write_text("image,x,y,class\na.png,1,2,tumour\n" * 100)
    elif kind == "other-sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (a)")
        conn.commit()
        conn.close()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
        expected = "is a folder"
    elif kind == "newer":
        ProjectStore.create(path).close()
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.commit()
        conn.close()
        expected = "newer CellViewer"
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(ProjectError) as info:
        ProjectStore.open(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    if before is not None:
        assert path.read_bytes() == before  # opening did not touch it
    assert not (tmp_path / "missing.cvproj").exists()  # opening never creates a file


def test_image_paths_are_relative_inside_the_project_folder(tmp_path):
    (tmp_path / "proj" / "tiles").mkdir(parents=True)
    outside = tmp_path / "elsewhere" / "slide.svs"
    with ProjectStore.create(tmp_path / "proj" / "p.cvproj") as store:
        inside_id = store.add_image(tmp_path / "proj" / "tiles" / "a.png", 500, 400, mpp=0.25)
        outside_id = store.add_image(outside, 2000, 1000)
        inside, out = store.image(inside_id), store.image(outside_id)
        assert inside.stored_path == "tiles/a.png"
        assert inside.path == tmp_path / "proj" / "tiles" / "a.png"
        assert (inside.width, inside.height, inside.mpp) == (500, 400, 0.25)
        assert out.stored_path == str(outside)
        assert out.mpp is None
        with pytest.raises(ProjectError, match="already in the project"):
            store.add_image(tmp_path / "proj" / "tiles" / "a.png", 500, 400)
        with pytest.raises(ValueError, match="not positive"):
            store.add_image(tmp_path / "b.png", 0, 10)
    # The project folder moves with its tiles: relative paths still resolve.
    (tmp_path / "proj").rename(tmp_path / "moved")
    with ProjectStore.open(tmp_path / "moved" / "p.cvproj") as store:
        assert store.image(inside_id).path == tmp_path / "moved" / "tiles" / "a.png"
        assert [im.id for im in store.missing_images()] == [inside_id, outside_id]
        store.relink_image(outside_id, tmp_path / "moved" / "slide.svs")
        assert store.image(outside_id).stored_path == "slide.svs"


def test_readonly_store_reads_and_refuses_writes(tmp_path):
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        store.add_image(tmp_path / "a.png", 10, 10)
    with ProjectStore.open(path, readonly=True) as ro:
        assert len(ro.images()) == 1
        with pytest.raises(ProjectError, match="read-only"):
            ro.add_class("tumour")


def test_a_file_stamped_as_a_project_at_version_0_is_migrated(tmp_path):
    """What a crash during create() can leave: the stamp, no tables. Opening finishes it."""
    path = tmp_path / "half.cvproj"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.commit()
    raw.close()
    with ProjectStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.images() == [] and store.name == "half"
        store.add_class("tumour")


def test_moved_images_are_found_again_by_fingerprint(tmp_path):
    import numpy as np
    from PIL import Image

    from cellviewer.core.io.project_import import add_images, relink_missing

    (tmp_path / "old").mkdir()
    (tmp_path / "new" / "deep").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(
            tmp_path / "old" / name)
    with ProjectStore.create(tmp_path / "p.cvproj") as store:
        a, b = add_images(store, [tmp_path / "old" / "a.png", tmp_path / "old" / "b.png"])
        assert (store.image(a).width, store.image(a).height) == (30, 20)
        assert store.operations(limit=1)[0].description == "Add 2 images"
        # Moved, and one of them renamed: the content fingerprint still recognises it.
        (tmp_path / "old" / "a.png").rename(tmp_path / "new" / "deep" / "renamed.png")
        (tmp_path / "old" / "b.png").rename(tmp_path / "new" / "b.png")
        found = relink_missing(store, [tmp_path / "new"])
        assert found == {a: tmp_path / "new" / "deep" / "renamed.png",
                         b: tmp_path / "new" / "b.png"}
        assert store.missing_images() == []
        with pytest.raises(ProjectError, match="nope.png"):
            add_images(store, [tmp_path / "nope.png"])
