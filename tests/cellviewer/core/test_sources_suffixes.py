"""The one list of image suffixes: every plain suffix opens through Pillow, the slide fixtures
through OpenSlide, a file of another suffix is no image, and the folder scan agrees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.sources import (
    IMAGE_SUFFIXES,
    PLAIN_SUFFIXES,
    SLIDE_SUFFIXES,
    ImageOpenError,
    OpenSlideSource,
    PillowSource,
    detect_format,
    image_file_patterns,
    is_image_file,
    list_images,
    open_image,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openslide"
DEMO_SVS = Path(__file__).resolve().parents[3] / "resources/demo/slides/CMU-1-Small-Region.svs"
LOSSLESS = {".png", ".bmp", ".tif", ".tiff", ".gif"}


def test_the_lists_are_one_set_with_tiffs_in_both():
    assert IMAGE_SUFFIXES == SLIDE_SUFFIXES | PLAIN_SUFFIXES
    assert sorted(PLAIN_SUFFIXES & SLIDE_SUFFIXES) == [".tif", ".tiff"]
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    assert ".czi" in SLIDE_SUFFIXES and ".cvproj" not in IMAGE_SUFFIXES
    assert is_image_file("a/B.SVS") and is_image_file("x.czi") and not is_image_file("c.csv")
    patterns = image_file_patterns().split()
    assert patterns == sorted(patterns) and set(patterns) == {f"*{s}" for s in IMAGE_SUFFIXES}


@pytest.mark.parametrize("suffix", sorted(PLAIN_SUFFIXES))
def test_every_plain_suffix_opens(tmp_path, suffix):
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (200, 40, 30)
    rgb[24:, :, 2] = 220
    path = tmp_path / f"img{suffix}"
    Image.fromarray(rgb).save(path)
    with open_image(path) as src:
        assert isinstance(src, PillowSource) and src.dimensions == (64, 48)
        got = src.read_region(0, 0, 0, 64, 48)
    if suffix in LOSSLESS:
        np.testing.assert_array_equal(got, rgb)
    else:  # JPEG, WebP: lossy, but the same picture
        assert np.abs(got.astype(int) - rgb).mean() < 8


@pytest.mark.parametrize(("path", "vendor"), [
    (DEMO_SVS, "aperio"), (FIXTURES / "small.svs", "aperio"),
    (FIXTURES / "boxes.tiff", "generic-tiff"), (FIXTURES / "boxes_0.dcm", "dicom")])
def test_slide_fixtures_open_through_openslide(path, vendor):
    assert path.suffix.lower() in SLIDE_SUFFIXES
    assert detect_format(path) == vendor
    with open_image(path) as src:
        assert isinstance(src, OpenSlideSource) and src.format == vendor


def test_a_file_that_only_looks_like_a_slide_names_its_cause(tmp_path):
    fake = tmp_path / "fake.czi"
    fake.write_bytes(b"not a Zeiss file at all" * 10)
    with pytest.raises(ImageOpenError) as err:
        open_image(fake)
    assert "fake.czi" in str(err.value)


def test_the_folder_scan_takes_exactly_the_image_suffixes(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.JPG")
    (tmp_path / "notes.csv").write_text("x,y\n")
    (tmp_path / "model.cvproj").write_bytes(b"")
    scan = list_images(tmp_path)
    assert [i.path.name for i in scan.images] == ["a.png", "b.JPG"]
    assert sorted(p.name for p in scan.skipped) == ["model.cvproj", "notes.csv"]
