"""Building patch sets from a points CSV and images; bad input; loading refuses broken sets."""

import json

import numpy as np
import pytest
from PIL import Image

from trainer.data.build import build_from_points_csv, crop_cells, read_points_csv
from trainer.formats.patchset import PatchSetError, crop_window, load_patchset, resize_to_patch


@pytest.fixture
def images(tmp_path):
    """Two random PNGs (70x60 and 45x50) in tmp_path/img; returns (folder, {name: array})."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "img"
    folder.mkdir()
    arrays = {}
    for name, (h, w) in {"a.png": (60, 70), "b.png": (50, 45)}.items():
        arrays[name] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arrays[name]).save(folder / name)
    return folder, arrays


def _write(path, text):
    path.write_text(text)
    return path


ROWS = """split,image,x,y,class
train,a.png,35.2,30.9,red
train,b.png,22.0,25.5,blue
validation,a.png,3.0,4.0,blue
train,a.png,69.5,59.9,red
train,b.png,44.9,1.0,green
"""


def test_build_crops_every_cell_pads_edges_and_round_trips(tmp_path, images):
    folder, arrays = images
    csv_path = _write(tmp_path / "points.csv", ROWS)
    out = tmp_path / "set.patches"
    ps = build_from_points_csv(csv_path, folder, out)
    assert len(ps) == 5 and ps.classes == ["blue", "green", "red"]
    assert ps.labels.tolist() == [2, 0, 0, 2, 1]
    expected = [("a.png", 35.2, 30.9), ("b.png", 22.0, 25.5), ("a.png", 3.0, 4.0),
                ("a.png", 69.5, 59.9), ("b.png", 44.9, 1.0)]
    for i, (name, x, y) in enumerate(expected):
        crop, pad = crop_window(arrays[name], x, y, 40)
        np.testing.assert_array_equal(ps.patches[i], crop)
        assert ps.padded[i] == pad
    assert ps.padded.tolist() == [False, False, True, True, True]  # near the edges
    assert ps.n_padded == 3
    loaded = load_patchset(out)
    np.testing.assert_array_equal(loaded.patches, ps.patches)
    assert isinstance(loaded.patches, np.memmap)
    assert loaded.labels.tolist() == ps.labels.tolist() and loaded.sources == ps.sources
    assert loaded.cell_ids == ["points.csv:2", "points.csv:3", "points.csv:4", "points.csv:5",
                               "points.csv:6"]
    np.testing.assert_array_equal(loaded.xy, ps.xy)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_padded"] == 3 and meta["padding"] == "reflect"


def test_split_filter_class_order_and_fov_resize(tmp_path, images):
    folder, arrays = images
    csv_path = _write(tmp_path / "points.csv", ROWS)
    ps = build_from_points_csv(csv_path, folder, None, fov_px=50, split="train",
                               classes=["red", "green", "blue", "other"], keep_source_crops=True)
    assert len(ps) == 4 and ps.classes == ["red", "green", "blue", "other"]
    assert ps.labels.tolist() == [0, 2, 0, 1]
    crop, _ = crop_window(arrays["a.png"], 35.2, 30.9, 50)
    np.testing.assert_array_equal(ps.source_crops[0], crop)
    np.testing.assert_array_equal(ps.patches[0], resize_to_patch(crop))
    assert ps.source_crops.shape == (4, 50, 50, 3)


def test_integer_class_ids_map_to_names(tmp_path, images):
    folder, _ = images
    csv_path = _write(tmp_path / "p.csv", "image,x,y,class_id\na.png,30,30,2\nb.png,20,20,0\n")
    ps = build_from_points_csv(csv_path, folder, None, class_column="class_id",
                               class_names=["zero", "one", "two"])
    assert ps.classes == ["zero", "one", "two"] and ps.labels.tolist() == [2, 0]


def test_vectorised_crops_equal_crop_window_everywhere():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    xy = np.column_stack([rng.uniform(-5, 125, 300), rng.uniform(-5, 95, 300)])
    crops, padded = crop_cells(image, xy, 40)
    for i in range(len(xy)):
        crop, pad = crop_window(image, xy[i, 0], xy[i, 1], 40)
        np.testing.assert_array_equal(crops[i], crop)
        assert padded[i] == pad
    assert 0 < padded.sum() < len(xy)


@pytest.mark.parametrize(("text", "message"), [
    ("image,x,y,class\na.png,30,30,red\nmissing.png,5,5,red\n",
     r"line 3: image 'missing.png' not found"),
    ("image,x,class\na.png,30,red\n", r"line 1: missing column\(s\) y"),
    ("image,x,y,class\na.png,30,30,red\na.png,3O,30,red\n", r"line 3: x '3O' is not a number"),
    ("image,x,y,class\na.png,30,nan,red\n", r"line 2: y 'nan' is not a finite number"),
    ("image,x,y,class\na.png,30,30,red\na.png,30,30, \n", r"line 3: empty class"),
    ("image,x,y,class\na.png,30,30,red,extra\n", r"line 2: expected 4 fields, found 5"),
    ("image,x,y,class\na.png,30,30,red\nb.png,46,10,red\n", r"line 3: point .* outside b.png"),
    ("", r"line 1: empty file"),
])
def test_bad_points_csv_names_file_and_line_and_writes_nothing(tmp_path, images, text, message):
    folder, _ = images
    csv_path = _write(tmp_path / "bad.csv", text)
    out = tmp_path / "out.patches"
    with pytest.raises(PatchSetError, match=message) as info:
        build_from_points_csv(csv_path, folder, out)
    assert "bad.csv" in str(info.value)
    assert not out.exists() and not (tmp_path / "out.patches.tmp").exists()


def test_unknown_class_id_and_empty_split_and_undecodable_image(tmp_path, images):
    folder, _ = images
    ids = _write(tmp_path / "ids.csv", "image,x,y,class_id\na.png,30,30,0\na.png,30,30,7\n")
    with pytest.raises(PatchSetError, match=r"ids.csv, line 3: class_id '7' is neither"):
        read_points_csv(ids, class_column="class_id", class_names=["a", "b"])
    with pytest.raises(PatchSetError, match=r"no cells with split 'test'"):
        read_points_csv(_write(tmp_path / "s.csv", ROWS), split="test")
    (folder / "broken.png").write_bytes(b"not a png at all")
    csv_path = _write(tmp_path / "p.csv", "image,x,y,class\nbroken.png,1,1,red\n")
    with pytest.raises(PatchSetError, match=r"broken.png: cannot read the image"):
        build_from_points_csv(csv_path, folder, tmp_path / "o.patches")
    assert not (tmp_path / "o.patches").exists()


def test_load_refuses_arrays_and_table_of_different_lengths(tmp_path, images):
    folder, _ = images
    out = tmp_path / "s.patches"
    build_from_points_csv(_write(tmp_path / "p.csv", ROWS), folder, out)
    labels = np.load(out / "labels.npy")
    np.save(out / "labels.npy", labels[:-1])
    with pytest.raises(PatchSetError, match=r"5 patches but lengths disagree: \{'labels': 4\}"):
        load_patchset(out)
    np.save(out / "labels.npy", labels)
    lines = (out / "cells.csv").read_text().splitlines()
    (out / "cells.csv").write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(PatchSetError, match=r"s.patches: 5 patches but lengths disagree"):
        load_patchset(out)
    (out / "cells.csv").write_text("\n".join(lines[:2] + ["x,red,a.png,oops,1,0"]) + "\n")
    with pytest.raises(PatchSetError, match=r"cells.csv, line 3: x, y = 'oops'"):
        load_patchset(out)
    (out / "cells.csv").write_text("\n".join(lines) + "\n")
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "n": 6}))
    with pytest.raises(PatchSetError, match=r"meta.json says 6 patches but patches.npy holds 5"):
        load_patchset(out)
