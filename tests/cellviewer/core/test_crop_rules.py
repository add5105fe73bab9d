"""Batch cropping follows the trainer's patch rule exactly, whatever the grouping and threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.cells.crop import crop_patch, crop_patches, fov_px_from_um, window_size
from cellviewer.core.sources import ArraySource, open_image
from trainer.formats.patchset import crop_window, resize_to_patch

DEMO_SVS = Path(__file__).resolve().parents[3] / "resources/demo/slides/CMU-1-Small-Region.svs"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openslide"


def _points(rng: np.random.Generator, width: int, height: int, n: int, margin: int = 60):
    """Random points, some near and beyond every border (and a few off the image)."""
    return np.column_stack([
        rng.uniform(-margin, width + margin, n), rng.uniform(-margin, height + margin, n)
    ])


def _reference(image: np.ndarray, xy: np.ndarray, size: int):
    crops, padded = zip(*(crop_window(image, x, y, size) for x, y in xy), strict=True)
    return np.stack(crops), np.array(padded)


@pytest.mark.parametrize("fov", [40, 57.4, 23.6])
def test_slide_crops_equal_crop_window_on_the_whole_image(fov):
    """On a real SVS through OpenSlide, small regions so many groups and border cells arise."""
    rng = np.random.default_rng(7)
    with open_image(DEMO_SVS) as src:
        x0, y0 = 600, 900  # dense cells in a 700x500 rectangle
        xy = np.column_stack([rng.uniform(x0, x0 + 700, 600), rng.uniform(y0, y0 + 500, 600)])
        xy = np.vstack([xy, _points(rng, *src.dimensions, 60)])  # plus border cells
        full = src.read_region(0, 0, 0, *src.dimensions)
        res = crop_patches(src, xy, fov, keep_source_crops=True, region_px=256, workers=2)
    size = window_size(fov)
    assert res.window_px == size and res.fov_px == fov
    crops, padded = _reference(full, xy, size)
    np.testing.assert_array_equal(res.padded, padded)
    assert 0 < res.n_padded < len(xy)
    np.testing.assert_array_equal(res.source_crops, crops)
    np.testing.assert_array_equal(res.patches, np.stack([resize_to_patch(c) for c in crops]))
    floor = np.floor(xy).astype(int)
    np.testing.assert_array_equal(res.origins, floor - size // 2)


def test_grouping_threads_and_source_kind_do_not_change_a_pixel(shared_data):
    path = shared_data / "slides" / "CMU-1-Small-Region_pyramid.tiff"
    rng = np.random.default_rng(3)
    with open_image(path) as src:
        xy = _points(rng, *src.dimensions, 1500, margin=30)
        results = [
            crop_patches(src, xy, 40, region_px=r, workers=w)
            for r, w in ((1024, 1), (300, 2), (64, 3), (5000, 1))
        ]
        whole = ArraySource(src.read_region(0, 0, 0, *src.dimensions))
    results.append(crop_patches(whole, xy, 40, region_px=500, workers=2))
    for other in results[1:]:
        np.testing.assert_array_equal(other.patches, results[0].patches)
        np.testing.assert_array_equal(other.padded, results[0].padded)
    crops, padded = _reference(whole.pixels, xy, 40)
    np.testing.assert_array_equal(results[0].patches, crops)


def test_sparse_cells_on_a_slide_are_read_one_by_one_with_the_same_result():
    """Three cells far apart in one grid square: reading each beats reading their bounding box,
    and gives the same pixels."""
    with open_image(DEMO_SVS) as src:
        xy = np.array([[100.5, 100.5], [1900.2, 120.7], [1000.0, 1950.9]])
        res = crop_patches(src, xy, 40, region_px=4096)
        for (x, y), patch in zip(xy, res.patches, strict=True):
            x0, y0 = int(np.floor(x)) - 20, int(np.floor(y)) - 20
            np.testing.assert_array_equal(patch, src.read_region(0, x0, y0, 40, 40))


def test_fov_40_is_a_direct_slice_and_source_crops_are_the_patches():
    image = np.random.default_rng(0).integers(0, 256, (120, 150, 3), np.uint8)
    xy = np.array([[75.9, 60.2], [20.0, 20.0], [129.99, 99.0]])
    res = crop_patches(ArraySource(image), xy, 40, keep_source_crops=True)
    assert res.source_crops is res.patches
    assert not res.padded.any()
    np.testing.assert_array_equal(res.patches[0], image[40:80, 55:95])  # floor(75.9) - 20 = 55
    np.testing.assert_array_equal(res.patches[1], image[0:40, 0:40])
    np.testing.assert_array_equal(res.patches[2], image[79:119, 109:149])


def test_border_cells_are_reflect_padded_and_counted():
    image = np.random.default_rng(1).integers(0, 256, (100, 100, 3), np.uint8)
    res = crop_patches(ArraySource(image), np.array([[3.0, 50.0], [-50.0, -50.0]]), 40)
    assert res.padded.tolist() == [True, True]
    # x0 = 3 - 20 = -17: column j of the window is image column |j - 17| (reflect, edge once).
    cols = np.abs(np.arange(40) - 17)
    np.testing.assert_array_equal(res.patches[0], image[30:70][:, cols])
    assert (res.patches[1] == 0).all()  # a window entirely off the image is black, as in trainer


def test_fov_in_microns_uses_the_slide_mpp():
    with open_image(FIXTURES / "small.svs") as src:  # 0.499 um/px
        res = crop_patches(src, np.array([[8.0, 8.0]]), fov_um=10.0, keep_source_crops=True)
        assert res.window_px == 20 and res.fov_px == pytest.approx(10 / 0.499)
        assert res.source_crops.shape == (1, 20, 20, 3) and res.patches.shape == (1, 40, 40, 3)
    with pytest.raises(ValueError, match="no microns-per-pixel"):
        crop_patches(ArraySource(np.zeros((50, 50, 3), np.uint8)), np.zeros((1, 2)), fov_um=10)
    assert fov_px_from_um(20, 0.5) == 40


def test_single_cell_helper_and_bad_input():
    image = np.random.default_rng(2).integers(0, 256, (90, 90, 3), np.uint8)
    patch, source_crop, padded = crop_patch(ArraySource(image), 45.2, 44.8, fov_px=64)
    expected, _ = crop_window(image, 45.2, 44.8, 64)
    np.testing.assert_array_equal(source_crop, expected)
    np.testing.assert_array_equal(patch, resize_to_patch(expected))
    assert not padded
    empty = crop_patches(ArraySource(image), np.zeros((0, 2)))
    assert empty.patches.shape == (0, 40, 40, 3) and empty.padded.shape == (0,)
    with pytest.raises(ValueError, match="finite"):
        crop_patches(ArraySource(image), np.array([[np.nan, 3.0]]))
    with pytest.raises(ValueError, match="at least 1 pixel"):
        crop_patches(ArraySource(image), np.array([[3.0, 3.0]]), fov_px=0.2)


def test_plain_png_crops_match_pillow_pixels(tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, (300, 260, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "t.png")
    xy = _points(np.random.default_rng(5), 260, 300, 500, margin=25)
    with open_image(tmp_path / "t.png") as src:
        res = crop_patches(src, xy, 33, keep_source_crops=True)
    crops, padded = _reference(pixels, xy, 33)
    np.testing.assert_array_equal(res.source_crops, crops)
    np.testing.assert_array_equal(res.padded, padded)


@pytest.mark.parametrize("h, w", [(1, 1), (2, 3), (7, 5), (39, 41)])
def test_tiny_images_reflect_like_np_pad_even_when_the_pad_exceeds_the_image(h, w):
    """Windows many times larger than the image: np.pad reflects back and forth; so must we."""
    image = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), np.uint8)
    grid = np.arange(-3.0, max(h, w) + 3.0, 0.75)
    xy = np.array([(x, y) for x in grid for y in grid])
    res = crop_patches(ArraySource(image), xy, 40)
    crops, padded = _reference(image, xy, 40)
    np.testing.assert_array_equal(res.padded, padded)
    np.testing.assert_array_equal(res.patches, crops)


def test_sparse_and_clustered_cells_split_reads_without_changing_a_pixel():
    """Clusters, scattered cells and border cells in one big grid square: the box is split
    into quarters until reads pay, and every patch still equals crop_window's."""
    rng = np.random.default_rng(11)
    with open_image(DEMO_SVS) as src:
        width, height = src.dimensions
        clusters = [rng.normal(c, 15, (40, 2)) for c in ((300, 400), (1800, 2500), (1000, 50))]
        scattered = np.column_stack([rng.uniform(0, width, 30), rng.uniform(0, height, 30)])
        border = np.array([[2.0, 1500.0], [width - 1.5, 10.0], [700.0, height - 0.5]])
        xy = np.vstack(clusters + [scattered, border])
        res = crop_patches(src, xy, 40, region_px=1 << 14, workers=2)
        full = src.read_region(0, 0, 0, width, height)
    crops, padded = _reference(full, xy, 40)
    np.testing.assert_array_equal(res.padded, padded)
    np.testing.assert_array_equal(res.patches, crops)
