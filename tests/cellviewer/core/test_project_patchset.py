"""A patch set written from a project (chosen images and classes) in the trainer's format."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.sources import ImageOpenError
from cellviewer.core.store import ProjectStore
from cellviewer.core.training.patchset import write_project_patchset
from trainer.formats.patchset import crop_window, load_patchset, resize_to_patch


def _png(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.fixture
def project(tmp_path):
    """Two PNG images, three classes, labelled and unlabelled cells (some at the border)."""
    a = _png(tmp_path / "a.png", 120, 160, 1)
    b = _png(tmp_path / "b.png", 90, 100, 2)
    store = ProjectStore.create(tmp_path / "p.cvproj")
    tumour, stroma, immune = (store.add_class(n) for n in ("tumour", "stroma", "immune"))
    ia = store.add_image(tmp_path / "a.png", 160, 120)
    ib = store.add_image(tmp_path / "b.png", 100, 90)
    ids_a = store.add_cells(ia, [[80.5, 60.2], [5.0, 5.0], [150.9, 100.0], [40.0, 40.0]],
                            [tumour, stroma, immune, None])
    ids_b = store.add_cells(ib, [[50.0, 45.0], [99.0, 1.0]], [stroma, tumour])
    yield store, {"a": a, "b": b, "ia": ia, "ib": ib, "ids_a": ids_a, "ids_b": ids_b}
    store.close()


def test_all_labelled_cells_in_project_order(project, tmp_path):
    store, d = project
    ps = write_project_patchset(store, tmp_path / "all.patches")
    assert ps.path == tmp_path / "all.patches"
    assert ps.classes == ["tumour", "stroma", "immune"]
    assert len(ps) == 5  # the unlabelled cell is left out
    # project order: the store's keys follow reading order (tiles, then y, then x) within
    # each addition, not the order the cells were given in
    a, b = d["ids_a"], d["ids_b"]
    assert ps.cell_ids == [a[1], a[0], a[2], b[1], b[0]]
    assert ps.labels.tolist() == [1, 0, 2, 0, 1]
    assert ps.sources[0] == str(tmp_path / "a.png") and ps.sources[-1] == str(tmp_path / "b.png")
    np.testing.assert_array_equal(ps.patches[1], d["a"][40:80, 60:100])  # a direct slice
    for k, img in ((0, "a"), (2, "a"), (3, "b")):  # the border cells
        expected, padded = crop_window(d[img], *ps.xy[k], 40)
        assert padded and ps.padded[k]
        np.testing.assert_array_equal(ps.patches[k], expected)
    assert ps.n_padded == 3
    # What the trainer reads back is what was written.
    again = load_patchset(tmp_path / "all.patches")
    np.testing.assert_array_equal(np.asarray(again.patches), np.asarray(ps.patches))
    assert again.extra_meta["project"] == str(store.path)
    assert again.extra_meta["image_ids"] == [d["ia"], d["ib"]]


def test_chosen_images_classes_order_unlabelled_and_fov(project, tmp_path):
    store, d = project
    ps = write_project_patchset(store, tmp_path / "pick.patches", image_ids=[d["ia"]],
                                class_names=["immune", "tumour"], fov_px=64,
                                keep_source_crops=True, include_unlabelled=True)
    assert ps.classes == ["immune", "tumour"]  # the order asked for is the model's order
    assert ps.cell_ids == [d["ids_a"][3], d["ids_a"][0], d["ids_a"][2]]  # reading order
    assert ps.labels.tolist() == [-1, 1, 0]
    assert ps.fov_px == 64 and ps.source_crops.shape == (3, 64, 64, 3)
    for k in range(3):
        crop, _ = crop_window(d["a"], *ps.xy[k], 64)
        np.testing.assert_array_equal(ps.source_crops[k], crop)
        np.testing.assert_array_equal(ps.patches[k], resize_to_patch(crop))


def test_bad_choices_and_broken_images_write_nothing(project, tmp_path):
    store, d = project
    out = tmp_path / "x.patches"
    with pytest.raises(ValueError, match="no class \\['mitosis'\\]"):
        write_project_patchset(store, out, class_names=["mitosis"])
    with pytest.raises(ValueError, match="no image with id \\[99\\]"):
        write_project_patchset(store, out, image_ids=[99])
    empty = store.add_class("empty")
    assert empty
    with pytest.raises(ValueError, match="no cell"):
        write_project_patchset(store, out, class_names=["empty"])
    (tmp_path / "b.png").unlink()
    with pytest.raises(ImageOpenError, match="b.png"):
        write_project_patchset(store, out)
    _png(tmp_path / "b.png", 50, 50, 3)  # another picture under the same name
    with pytest.raises(ImageOpenError, match="the file was replaced"):
        write_project_patchset(store, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.png", "b.png", "p.cvproj", "p.cvproj-shm", "p.cvproj-wal"]


def test_large_sets_are_assembled_on_disk(project, tmp_path, monkeypatch):
    import cellviewer.core.training.patchset as module

    store, d = project
    monkeypatch.setattr(module, "IN_MEMORY_LIMIT", 1000)  # force the memory-mapped path
    ps = write_project_patchset(store, tmp_path / "mm.patches", fov_px=50,
                                keep_source_crops=True)
    assert len(ps) == 5 and ps.source_crops.shape == (5, 50, 50, 3)
    crop, _ = crop_window(d["b"], *ps.xy[3], 50)
    np.testing.assert_array_equal(ps.source_crops[3], crop)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_crc_project_patches_equal_direct_slices_and_the_trainer_build(shared_data, tmp_path):
    """A project built from the CRC points CSV writes the same patches the trainer builds from
    the CSV itself, and hand-checked cells equal a direct slice of their tile."""
    from cellviewer.core.io.project_import import create_project_from_points
    from trainer.data.build import build_from_points_csv

    crc = shared_data / "crc"
    subset = tmp_path / "points.csv"
    with open(crc / "points.csv", newline="") as src, open(subset, "w", newline="") as dst:
        rows = [r for r in csv.DictReader(src) if r["image"] in ("img1.png", "img2.png")]
        writer = csv.DictWriter(dst, ["image", "x", "y", "class"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in ("image", "x", "y", "class")} for r in rows)
    store, _ = create_project_from_points(subset, crc / "tiles", tmp_path / "crc.cvproj")
    with store:
        ps = write_project_patchset(store, tmp_path / "crc.patches")
    trainer_ps = build_from_points_csv(subset, crc / "tiles", None)
    assert len(ps) == len(trainer_ps) == len(rows)
    by_point = {(Path(s).name, x, y): k for k, (s, (x, y)) in
                enumerate(zip(trainer_ps.sources, trainer_ps.xy.tolist(), strict=True))}
    order = [by_point[(Path(s).name, x, y)]
             for s, (x, y) in zip(ps.sources, ps.xy.tolist(), strict=True)]
    np.testing.assert_array_equal(np.asarray(ps.patches), trainer_ps.patches[order])
    np.testing.assert_array_equal(ps.padded, trainer_ps.padded[order])
    assert [ps.classes[i] for i in ps.labels] == [
        trainer_ps.classes[i] for i in trainer_ps.labels[order]]
    tile = np.asarray(Image.open(crc / "tiles" / "img1.png").convert("RGB"))
    first = next(k for k, (s, xy) in enumerate(zip(ps.sources, ps.xy.tolist(), strict=True))
                 if s.endswith("img1.png") and abs(xy[0] - 148.78) < 0.01)
    # img1.png's first point (148.78, 181.48): x0 = 148 - 20 = 128, y0 = 181 - 20 = 161.
    assert ps.xy[first].tolist() == pytest.approx([148.78269484808447, 181.47754293262892])
    np.testing.assert_array_equal(ps.patches[first], tile[161:201, 128:168])
