"""A folder of images added as one batch, and the content fingerprint that finds moved files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.sources import (
    ImageOpenError,
    fingerprint,
    list_images,
    open_folder,
)
from cellviewer.core.sources.fingerprint import CHUNK

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openslide"


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "batch"
    folder.mkdir()
    for name in ("boxes.tiff", "small.svs", "boxes_0.dcm", "boxes_1.dcm", "unopenable.tiff",
                 "unreadable.svs", "COPYING.LESSER"):
        shutil.copy(FIXTURES / name, folder / name)
    rng = np.random.default_rng(0)
    for name in ("tile10.png", "tile2.png", "tile1.jpg"):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), np.uint8)).save(folder / name)
    (folder / "points.csv").write_text("image,x,y,class\n")
    (folder / "fake.png").write_text("this is text")
    return folder


def test_list_images_skips_non_images_and_reports_broken_ones(mixed_folder):
    scan = list_images(mixed_folder, with_fingerprint=True)
    names = [i.path.name for i in scan.images]
    # Natural order; the two DICOM instances of one series are one slide.
    assert names == ["boxes.tiff", "boxes_0.dcm", "small.svs", "tile1.jpg", "tile2.png",
                     "tile10.png"]
    boxes = scan.images[0]
    assert (boxes.width, boxes.height, boxes.level_count, boxes.format) == (
        300, 250, 4, "generic-tiff")
    tile = scan.images[-1]
    assert (tile.width, tile.height, tile.level_count, tile.mpp) == (40, 30, 1, None)
    assert tile.fingerprint == fingerprint(mixed_folder / "tile10.png")
    broken = {e.path.name: str(e) for e in scan.broken}
    assert sorted(broken) == ["fake.png", "unopenable.tiff", "unreadable.svs"]
    assert "Bogus marker length" in broken["unreadable.svs"]
    assert all(str(mixed_folder) in message for message in broken.values())
    assert sorted(p.name for p in scan.skipped) == ["COPYING.LESSER", "boxes_1.dcm", "points.csv"]


def test_open_folder_returns_open_sources_and_errors(mixed_folder):
    sources, broken = open_folder(mixed_folder)
    try:
        assert len(sources) == 6 and len(broken) == 3
        assert all(isinstance(e, ImageOpenError) for e in broken)
        tiles = [s for s in sources if s.path.name.startswith("tile")]
        assert all(s.read_region(0, 0, 0, 40, 30).shape == (30, 40, 3) for s in tiles)
    finally:
        for s in sources:
            s.close()


def test_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(ImageOpenError, match="no such folder"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(ImageOpenError, match="not a folder"):
        list_images(tmp_path / "a.png")
    assert list_images(tmp_path).broken[0].path.name == "a.png"


def test_fingerprint_finds_a_moved_file_and_tells_files_apart(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 5 * CHUNK + 123, dtype=np.uint8).tobytes()
    a = tmp_path / "a.svs"
    a.write_bytes(data)
    moved = tmp_path / "elsewhere" / "renamed.svs"
    moved.parent.mkdir()
    shutil.copy(a, moved)
    fp = fingerprint(a)
    assert fp.startswith(f"v1:{len(data)}:") and fingerprint(moved) == fp
    # A change in any sampled part (start, middle, end) or in the size changes it.
    for offset in (10, (len(data) - CHUNK) // 2 + 5, len(data) - 3):
        changed = bytearray(data)
        changed[offset] ^= 0xFF
        moved.write_bytes(bytes(changed))
        assert fingerprint(moved) != fp, offset
    moved.write_bytes(data + b"\0")
    assert fingerprint(moved) != fp
    # Small files are hashed whole.
    small = tmp_path / "small.png"
    small.write_bytes(data[:1000])
    other = bytearray(data[:1000])
    other[500] ^= 1
    (tmp_path / "small2.png").write_bytes(bytes(other))
    assert fingerprint(small) != fingerprint(tmp_path / "small2.png")
    with pytest.raises(FileNotFoundError, match="gone.svs"):
        fingerprint(tmp_path / "gone.svs")
