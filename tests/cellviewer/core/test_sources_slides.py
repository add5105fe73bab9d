"""Whole-slide images through OpenSlide: levels, coordinates, mpp, white outside, thumbnails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellviewer.core.sources import ImageSource, OpenSlideSource, PillowSource, open_image

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openslide"
DEMO_SVS = Path(__file__).resolve().parents[3] / "resources/demo/slides/CMU-1-Small-Region.svs"


def test_boxes_tiff_has_four_levels_and_level_coordinates():
    with open_image(FIXTURES / "boxes.tiff") as src:
        assert isinstance(src, OpenSlideSource) and isinstance(src, ImageSource)
        assert src.format == "generic-tiff"
        assert src.level_count == 4
        assert src.level_dimensions == [(300, 250), (150, 125), (75, 62), (37, 31)]
        assert src.dimensions == (300, 250)
        assert src.level_downsamples[:2] == [1.0, 2.0]
        assert src.level_downsamples[3] == pytest.approx(8.086, abs=1e-3)
        # The TIFF says 28.35 px/cm, so mpp is reported as the file states it.
        assert src.mpp == pytest.approx(10_000 / 28.346456527709961)
        # Level 1 (downsample exactly 2): a region at level-1 coordinates equals the same
        # pixels cut from the whole level, so x, y are in that level's pixels, not level 0's.
        whole = src.read_region(1, 0, 0, 150, 125)
        part = src.read_region(1, 37, 21, 50, 40)
        assert part.shape == (40, 50, 3) and part.dtype == np.uint8
        np.testing.assert_array_equal(part, whole[21:61, 37:87])
        assert src.best_level_for_downsample(1.0) == 0
        assert src.best_level_for_downsample(3.0) == 1
        assert src.best_level_for_downsample(4.0) == 2  # 4.016 is within the 1% tolerance
        assert src.best_level_for_downsample(100.0) == 3


def test_boxes_tiff_through_openslide_equals_boxes_png_through_pillow():
    """Two readers, one picture: the generic TIFF's level 0 and the PNG are the same pixels."""
    with open_image(FIXTURES / "boxes.tiff") as tif, open_image(FIXTURES / "boxes.png") as png:
        assert isinstance(png, PillowSource)
        a = tif.read_region(0, 0, 0, 300, 250)
        b = png.read_region(0, 0, 0, 300, 250)
    np.testing.assert_array_equal(a, b)
    assert {tuple(c) for c in np.unique(a.reshape(-1, 3), axis=0)} == {
        (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)}


def test_regions_outside_the_slide_are_white():
    with open_image(FIXTURES / "boxes.tiff") as src:
        inside = src.read_region(0, 0, 0, 300, 250)
        over = src.read_region(0, 280, 240, 40, 30)  # overhangs the bottom-right corner
        assert over.shape == (30, 40, 3)
        np.testing.assert_array_equal(over[:10, :20], inside[240:, 280:])
        assert (over[10:] == 255).all() and (over[:, 20:] == 255).all()
        assert (src.read_region(2, -100, -100, 50, 50) == 255).all()
        assert src.read_region(0, 0, 0, 0, 5).shape == (5, 0, 3)
        with pytest.raises(ValueError, match="level 4 does not exist"):
            src.read_region(4, 0, 0, 1, 1)


def test_fast_decode_path_equals_openslide_python_public_api():
    """Regions decoded through the raw binding (premultiplied ARGB composited directly) equal
    openslide-python's public read_region composited over white (to rounding, at edges)."""
    fast = open_image(FIXTURES / "boxes.tiff")
    public = open_image(FIXTURES / "boxes.tiff")
    assert fast._raw is not None  # the installed openslide-python has the binding
    public._raw = None  # force the public-API path
    for level, x, y in ((0, 250, 200), (2, 40, 30), (3, -3, 20), (1, 0, 0)):
        a = fast.read_region(level, x, y, 64, 48).astype(int)
        b = public.read_region(level, x, y, 64, 48).astype(int)
        assert np.abs(a - b).max() <= 1
        assert (a == 255).any()  # every request overhangs or shows background
    fast.close()
    public.close()


@pytest.mark.parametrize("name, vendor", [("small.svs", "aperio"), ("boxes_0.dcm", "dicom")])
def test_small_svs_and_dicom_open(name, vendor):
    with open_image(FIXTURES / name) as src:
        assert src.format == vendor
        assert src.dimensions == (16, 16) and src.level_count == 1
        assert src.mpp == pytest.approx(0.499)
        tile = src.read_region(0, 0, 0, 16, 16)
        assert tile.shape == (16, 16, 3) and tile.dtype == np.uint8
        assert tile.std() > 0  # real pixels, not a blank canvas


def test_cmu_svs_size_mpp_and_pixels():
    with open_image(DEMO_SVS) as src:
        assert src.format == "aperio"
        assert src.dimensions == (2220, 2967) and src.level_count == 1
        assert src.mpp == pytest.approx(0.499)
        centre = src.read_region(0, 1000, 1400, 64, 64)
        assert centre.mean() < 230  # stained tissue, not background
        thumb = src.thumbnail(256)
        assert thumb.shape == (256, round(2220 * 256 / 2967), 3)


def test_cmu_pyramid_tiff_five_levels(shared_data):
    path = shared_data / "slides" / "CMU-1-Small-Region_pyramid.tiff"
    with open_image(path) as src, open_image(DEMO_SVS) as svs:
        assert src.level_count == 5
        assert src.level_dimensions[0] == (2220, 2967)
        assert src.level_dimensions[4] == (138, 185)
        assert src.level_downsamples[4] == pytest.approx(16.06, abs=0.01)
        assert src.mpp == pytest.approx(0.499)
        assert src.best_level_for_downsample(16) == 4
        # Level 3 read in level-3 pixels shows the same tissue as a level-0 read of the SVS,
        # downsampled (the pyramid was made from it; JPEG and resampling differ a little).
        ds = src.level_downsamples[3]
        low = src.read_region(3, 50, 80, 60, 60).astype(float)
        high = svs.read_region(0, round(50 * ds), round(80 * ds), round(60 * ds), round(60 * ds))
        from PIL import Image

        high = np.asarray(Image.fromarray(high).resize((60, 60), Image.Resampling.BOX), float)
        assert np.abs(low - high).mean() < 6
        # A tile inside level 1 (downsample 2.0003) agrees with the whole-level read to within
        # OpenSlide's sub-pixel resampling (a shift by one pixel would differ by ~10 on average).
        whole = src.read_region(1, 0, 0, *src.level_dimensions[1]).astype(int)
        tile = src.read_region(1, 300, 500, 128, 128).astype(int)
        assert np.abs(tile - whole[500:628, 300:428]).mean() < 1.5
        assert np.abs(tile - whole[501:629, 301:429]).mean() > 5


def test_thumbnail_keeps_aspect_and_never_enlarges():
    with open_image(FIXTURES / "boxes.tiff") as src:
        assert src.thumbnail(60).shape == (50, 60, 3)
        assert src.thumbnail(1000).shape == (250, 300, 3)
