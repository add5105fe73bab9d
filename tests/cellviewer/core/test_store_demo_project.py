"""The demo project made from the bundled demo data into the user's data folder."""

from __future__ import annotations

from collections import Counter

from cellviewer.core.io.project_import import create_demo_project, demo_project_path
from cellviewer.core.project.demo import demo_points, load_class_set
from cellviewer.core.store import ProjectStore
from cellviewer.paths import user_data_dir


def test_demo_project_holds_every_demo_cell_with_the_class_set():
    path = create_demo_project()
    assert path == user_data_dir() / "demo" / "demo.cvproj" == demo_project_path()
    assert sorted(p.name for p in path.parent.iterdir()) == ["demo.cvproj"]  # one file
    with ProjectStore.open(path) as store:
        assert store.integrity_check() == "ok"
        images = store.images()
        assert len(images) == 41 and not store.missing_images()
        slide = images[-1]
        assert slide.name == "CMU-1-Small-Region.svs" and slide.mpp == 0.499
        assert (slide.width, slide.height, slide.cell_count) == (2220, 2967, 0)
        class_set = load_class_set()["classes"]
        assert [(c.name, c.color, c.key) for c in store.classes()] == [
            (c["name"], c["color"], c["key"]) for c in class_set]
        names = {c.id: c.name for c in store.classes()}
        counts = Counter(names[c] for im in images for c in store.cell_arrays(im.id).class_id)
        assert counts == Counter(p.label for p in demo_points())
    made = path.stat()
    assert create_demo_project() == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (made.st_ino, made.st_mtime_ns)
    assert create_demo_project(rebuild=True) == path
    assert path.stat().st_ino != made.st_ino  # made afresh
