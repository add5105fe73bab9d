"""Hostile points CSVs: every file the importer cannot use ends in its own error
(``ProjectError``) naming the file, the line and the cause, and nothing is written."""

from __future__ import annotations

import os

import pytest

from cellviewer.core.io.points_csv import import_points_csv
from cellviewer.core.store import ProjectError

HOSTILE = {
    # OSError (ENAMETOOLONG) from Path.is_file
    "image-name-too-long": ("image,x,y\n" + "a" * 5000 + ".png,1,2\n", 2, "image"),
    # RuntimeError from Path.expanduser
    "unknown-home": ("image,x,y\n~no-such-user-cellviewer/a.png,1,2\n", 2, "image"),
    # a negative class index picked a class from the end of the list
    "negative-class-index": ("image,x,y,class_id\na.png,1,2,-1\n", 2, "neither a class id"),
    # outside the image the project knows (its size is named)
    "outside-known-image": ("image,x,y\na.png,40.5,2\n", 2, "outside image 'a.png' (40x30"),
    "negative-coordinate": ("image,x,y\nb.png,3,-0.5\n", 2, "outside image 'b.png' (32x24"),
    # refused before, and still
    "nan": ("image,x,y\na.png,nan,2\n", 2, "not a finite number"),
    "huge": ("image,x,y\na.png," + "9" * 5000 + ",2\n", 2, "not a finite number"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_csv_is_the_importers_own_error_and_writes_nothing(project, snapshot, tmp_path,
                                                                  name):
    text, line, cause = HOSTILE[name]
    path = tmp_path / f"{name}.csv"
    path.write_text(text)
    before = snapshot(project.store)
    with pytest.raises(ProjectError) as info:
        import_points_csv(project.store, path, project.folder, class_names=["n", "m"])
    message = str(info.value)
    assert message.startswith(f"{path}, line {line}: "), message
    assert cause in message, message
    assert len(message) < 600, message  # the cause, not a dump of the input
    assert snapshot(project.store) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_an_image_that_is_a_fifo_is_named_as_such(project, snapshot, tmp_path):
    os.mkfifo(project.folder / "c.png")
    path = tmp_path / "points.csv"
    path.write_text("image,x,y\na.png,1,2\nc.png,1,2\n")
    before = snapshot(project.store)
    with pytest.raises(ProjectError, match=r"line 3: image 'c.png' is not a regular file"):
        import_points_csv(project.store, path, project.folder)
    assert snapshot(project.store) == before
