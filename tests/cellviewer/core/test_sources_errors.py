"""Broken files give ImageOpenError naming the file and the cause; a read that fails after a
successful open gives ImageReadError (a subclass)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.sources import (
    ImageOpenError,
    ImageReadError,
    OpenSlideSource,
    open_image,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openslide"


def test_unopenable_tiff_names_file_and_cause():
    path = FIXTURES / "unopenable.tiff"
    with pytest.raises(ImageOpenError) as info:
        open_image(path)
    message = str(info.value)
    assert str(path) in message
    assert "Unsupported TIFF compression" in message
    assert info.value.path == path and "compression" in info.value.cause
    assert not isinstance(info.value, ImageReadError)


def test_unreadable_svs_fails_at_open_because_open_probes_a_read():
    """The header parses, the pixels do not: the probe at open catches it, so the file never
    becomes an image of a project."""
    path = FIXTURES / "unreadable.svs"
    with pytest.raises(ImageOpenError) as info:
        open_image(path)
    assert str(path) in str(info.value)
    assert "Bogus marker length" in str(info.value)
    assert "cannot be decoded" in str(info.value)


def test_unreadable_svs_without_probe_fails_at_read_with_read_error():
    src = OpenSlideSource(FIXTURES / "unreadable.svs", probe=False)
    assert src.dimensions == (16, 16)
    with pytest.raises(ImageReadError) as info:
        src.read_region(0, 0, 0, 16, 16)
    message = str(info.value)
    assert "unreadable.svs" in message and "Bogus marker length" in message
    assert "region 16x16 at (0, 0) of level 0" in message
    assert isinstance(info.value, ImageOpenError)  # one except clause catches both
    with pytest.raises(ImageReadError):  # OpenSlide keeps the handle in its error state
        src.read_region(0, 0, 0, 1, 1)
    src.close()


def test_missing_folder_text_and_truncated_files(tmp_path):
    with pytest.raises(ImageOpenError, match="no such file") as info:
        open_image(tmp_path / "gone.svs")
    assert "gone.svs" in str(info.value)
    with pytest.raises(ImageOpenError, match="folder, not an image"):
        open_image(tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("not really a PNG\n")
    with pytest.raises(ImageOpenError, match="not an image format") as info:
        open_image(text)
    assert "notes.png" in str(info.value)
    png = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:5000])
    with pytest.raises(ImageOpenError, match="cannot decode the pixels") as info:
        open_image(png)
    assert "cut.png" in str(info.value)


def test_a_copy_with_another_suffix_is_still_refused_cleanly(tmp_path):
    # An SVS renamed to .tiff goes the Pillow-fallback way and must still report OpenSlide's
    # cause, not Pillow's.
    copy = tmp_path / "renamed.tiff"
    shutil.copy(FIXTURES / "unreadable.svs", copy)
    with pytest.raises(ImageOpenError, match="Bogus marker length") as info:
        open_image(copy)
    assert "renamed.tiff" in str(info.value)
