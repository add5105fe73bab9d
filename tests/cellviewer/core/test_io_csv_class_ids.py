"""An integer class id outside the class names given is refused naming its line: -1 is not
the last class (Python's negative indexing), and no cell is labelled by it (issue 14, item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellviewer.core.io.points_csv import read_points_csv
from cellviewer.core.store import ProjectError


@pytest.mark.parametrize("class_id", ["-1", "-2", "2"])
def test_a_class_id_outside_the_names_is_refused_naming_its_line(tmp_path: Path, class_id):
    path = tmp_path / "points.csv"
    path.write_text(f"image,x,y,class_id\na.png,1,2,0\na.png,3,4,{class_id}\n")
    with pytest.raises(ProjectError, match=rf"line 3: class_id '{class_id}' is neither a class id"):
        read_points_csv(path, class_names=["normal", "macrocyte"])


def test_class_ids_within_the_names_map_to_them(tmp_path: Path):
    path = tmp_path / "points.csv"
    path.write_text("image,x,y,class_id\na.png,1,2,1\na.png,3,4,0\n")
    table = read_points_csv(path, class_names=["normal", "macrocyte"])
    assert list(table.labels) == ["macrocyte", "normal"]
