"""The cohort's items: a manifest CSV or a project, sorted, split by --shard; the messages for
a bad manifest name the file and the line; cell ids every run agrees on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellviewer.core.cohort import (
    ManifestError,
    cell_ids,
    parse_shard,
    project_items,
    read_inputs,
    read_manifest,
    shard,
    slide_key,
)
from cellviewer.core.store import ProjectStore


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_manifest_gives_sorted_items_with_paths_relative_to_it(tmp_path):
    m = write(tmp_path / "m.csv", "Slide,regions,patient\nb/z.svs,z.geojson,7\n"
                                  "a.ome.tiff,,8\n\n/abs/c.png,,9\n")
    items = read_manifest(m)
    assert [i.name for i in items] == ["/abs/c.png", "a.ome.tiff", "b/z.svs"]
    assert [i.key for i in items] == ["c", "a", "z"]
    assert items[2].path == tmp_path / "b" / "z.svs"
    assert items[2].regions == tmp_path / "z.geojson" and items[1].regions is None
    assert items[2].where == f"{m}, line 2"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_shards_are_disjoint_and_together_the_whole(tmp_path, n):
    m = write(tmp_path / "m.csv", "slide\n" + "".join(f"s{k:02d}.png\n" for k in range(10)))
    items = read_manifest(m)
    parts = [shard(items, i, n) for i in range(n)]
    names = [i.name for part in parts for i in part]
    assert sorted(names) == [i.name for i in items] and len(set(names)) == 10
    assert [i.name for i in parts[0]] == [items[k].name for k in range(0, 10, n)]


@pytest.mark.parametrize("text, message", [
    ("image,regions\na.png,\n", "line 1: no 'slide' column (the header has: image, regions)"),
    ("slide,regions\na.png\n", "line 2: expected 2 fields, found 1"),
    ("slide,patient\na.png,1\n,2\n", "line 3: the slide is empty"),
    ("slide\n", "no slides (only a header)"),
    ("slide\na.png\na.png\n", "line 3: slide a.png is already on"),
    ("slide\nx/a.png\ny/a.svs\n", "line 3: slide y/a.svs would write the same result files"),
])
def test_a_bad_manifest_is_refused_naming_the_file_and_line(tmp_path, text, message):
    m = write(tmp_path / "m.csv", text)
    with pytest.raises(ManifestError) as exc:
        read_manifest(m)
    assert str(exc.value).startswith(str(m)) and message in str(exc.value)


def test_a_missing_manifest_is_named(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest file"):
        read_manifest(tmp_path / "none.csv")


@pytest.mark.parametrize("text, ok", [(None, (0, 1)), ("0/4", (0, 4)), ("3/4", (3, 4)),
                                      ("4/4", None), ("-1/2", None), ("1", None),
                                      ("a/b", None), ("0/0", None)])
def test_parse_shard(text, ok):
    if ok is None:
        with pytest.raises(ValueError, match="expected i/N with 0 <= i < N"):
            parse_shard(text)
    else:
        assert parse_shard(text) == ok


def test_a_project_gives_its_images(tmp_path):
    with ProjectStore.create(tmp_path / "p.cvproj") as store:
        store.add_image(tmp_path / "b.png", 10, 10)
        store.add_image(tmp_path / "a.png", 10, 10)
    items = project_items(tmp_path / "p.cvproj")
    assert [i.name for i in items] == ["a.png", "b.png"]
    assert all(i.image_id is not None and i.project == tmp_path / "p.cvproj" for i in items)
    both = read_inputs([tmp_path / "p.cvproj", tmp_path / "c.tif"])
    assert [i.name for i in both] == sorted([str(tmp_path / "c.tif"), "a.png", "b.png"])


def test_slide_keys():
    assert [slide_key(p) for p in ("a/b.svs", "c.ome.tif", "d.tar", "e.PNG")] == \
        ["b", "c", "d.tar", "e"]


def test_cell_ids_depend_only_on_the_slide_and_the_point():
    xy = np.array([[1.0, 2.0], [3.25, 4.5], [1.0, 2.0]])
    ids = cell_ids("tiles/a.png", xy)
    assert ids == cell_ids("tiles/a.png", xy.copy())
    assert len(set(ids)) == 3  # the repeated point gets an id of its own
    assert cell_ids("tiles/a.png", xy[1:2]) == ids[1:2]
    assert cell_ids("tiles/b.png", xy[:1]) != ids[:1]
