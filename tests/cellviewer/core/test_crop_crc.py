"""Cropping cells of the real CRC tiles gives exactly the pixels a direct slice gives.

The CRC data are research-use only: they are read from ../shared/data, never copied here.
"""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
from PIL import Image

from cellviewer.core.cells.crop import crop_patches
from cellviewer.core.sources import open_image
from trainer.formats.patchset import crop_window


def test_hand_checked_cells_of_img1_equal_direct_slices(shared_data):
    path = shared_data / "crc" / "tiles" / "img1.png"
    tile = np.asarray(Image.open(path).convert("RGB"))
    # The first fibroblasts and inflammatory cells of img1.png in points.csv, with their window
    # origins worked out by hand: x0 = floor(x) - 20, y0 = floor(y) - 20.
    cells = [
        (148.78269484808447, 181.47754293262892, 128, 161),
        (171.90026420079255, 71.83421400264211, 151, 51),
        (410.3414795244385, 33.194848084544276, 390, 13),
        (38.48145506419405, 39.907988587731836, 18, 19),
    ]
    border = (8.524251069900174, 15.656918687589183)  # x0 = -12, y0 = -5: needs padding
    xy = np.array([(x, y) for x, y, _, _ in cells] + [border])
    with open_image(path) as src:
        assert src.dimensions == (500, 500)
        res = crop_patches(src, xy, 40)
    for k, (_, _, x0, y0) in enumerate(cells):
        np.testing.assert_array_equal(res.patches[k], tile[y0 : y0 + 40, x0 : x0 + 40])
        assert not res.padded[k]
    assert res.padded[-1]
    # Reflection about the edge pixel: 12 columns mirrored on the left, 5 rows on the top.
    expected = np.pad(tile[0:35, 0:28], ((5, 0), (12, 0), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(res.patches[-1], expected)
    np.testing.assert_array_equal(res.patches[-1][5:, 12:], tile[0:35, 0:28])


def test_every_crc_cell_follows_the_trainer_rule(shared_data):
    crc = shared_data / "crc"
    by_image: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(crc / "points.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            by_image[row["image"]].append((float(row["x"]), float(row["y"])))
    total = padded = 0
    for name, points in sorted(by_image.items()):
        xy = np.array(points)
        with open_image(crc / "tiles" / name) as src:
            res = crop_patches(src, xy, 40, workers=2)
            tile = src.read_region(0, 0, 0, *src.dimensions)
        for i, (x, y) in enumerate(points):
            crop, pad = crop_window(tile, x, y, 40)
            assert pad == res.padded[i]
            np.testing.assert_array_equal(res.patches[i], crop, err_msg=f"{name} cell {i}")
        total += len(points)
        padded += res.n_padded
    assert total == 17_801
    assert 0.05 < padded / total < 0.25  # border cells are flagged, not dropped
