"""Plain images through Pillow: formats, RGB conversion, TIFF mpp, the in-memory pyramid, and
reads from many threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.sources import (
    ArraySource,
    OpenSlideSource,
    PillowSource,
    open_image,
    pyramid_dimensions,
)

DEMO_JPEG = Path(__file__).resolve().parents[3] / "resources/demo/images/12.jpg"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openslide"


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix, fmt", [(".png", "png"), (".bmp", "bmp"), (".tif", "tiff")])
def test_lossless_formats_round_trip_exactly(tmp_path, suffix, fmt):
    pixels = _noise(37, 53)
    path = tmp_path / f"tile{suffix}"
    Image.fromarray(pixels).save(path)
    with open_image(path) as src:
        assert isinstance(src, PillowSource)
        assert src.format == fmt
        assert src.dimensions == (53, 37) and src.level_count == 1
        assert src.mpp is None
        np.testing.assert_array_equal(src.read_region(0, 0, 0, 53, 37), pixels)
        np.testing.assert_array_equal(src.read_region(0, 10, 5, 20, 8), pixels[5:13, 10:30])


def test_jpeg_tile_matches_pillow_decoding():
    with open_image(DEMO_JPEG) as src:
        assert src.format == "jpeg" and src.dimensions == (640, 480)
        expected = np.asarray(Image.open(DEMO_JPEG).convert("RGB"))
        np.testing.assert_array_equal(src.read_region(0, 0, 0, 640, 480), expected)


def test_ihc_png_and_its_pyramid(shared_data):
    path = shared_data / "images" / "ihc-colon.png"
    with open_image(path) as src:
        assert src.format == "png" and src.dimensions == (512, 512) and src.level_count == 1
        np.testing.assert_array_equal(
            src.read_region(0, 100, 200, 64, 32), np.asarray(Image.open(path))[200:232, 100:164]
        )


def test_tiff_resolution_gives_mpp_only_with_a_real_unit(tmp_path):
    pixels = _noise(8, 8)
    inch, cm, none = tmp_path / "inch.tif", tmp_path / "cm.tif", tmp_path / "none.tif"
    Image.fromarray(pixels).save(inch, resolution=50_800.0, resolution_unit="inch")
    Image.fromarray(pixels).save(cm, resolution=40_000.0, resolution_unit="cm")
    Image.fromarray(pixels).save(none, tiffinfo={282: 1000.0, 283: 1000.0, 296: 1})
    assert open_image(inch).mpp == pytest.approx(0.5)
    assert open_image(cm).mpp == pytest.approx(0.25)
    assert open_image(none).mpp is None


def test_modes_become_rgb_and_transparency_goes_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :2, 3] = 255  # left half opaque red-ish, right half fully transparent
    rgba[0, 2, 3] = 128  # one half-transparent pixel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    px = open_image(tmp_path / "alpha.png").read_region(0, 0, 0, 4, 4)
    assert px[1, 0].tolist() == [200, 0, 0]
    assert px[1, 3].tolist() == [255, 255, 255]
    assert px[0, 2].tolist() == [227, 127, 127]  # 200*128/255 + 255*127/255, rounded
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    px = open_image(tmp_path / "grey.png").read_region(0, 0, 0, 4, 4)
    assert px.shape == (4, 4, 3) and (px[..., 0] == grey).all() and (px[..., 2] == grey).all()
    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4096 + 255)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit greyscale
    px = open_image(tmp_path / "deep.png").read_region(0, 0, 0, 4, 4)
    np.testing.assert_array_equal(px[..., 1], (deep >> 8).astype(np.uint8))


def test_pyramid_sizes():
    assert pyramid_dimensions(500, 500) == [(500, 500)]
    assert pyramid_dimensions(2220, 2967) == [(2220, 2967), (1110, 1484), (555, 742), (278, 371)]
    assert pyramid_dimensions(1025, 3) == [(1025, 3), (513, 2), (257, 1)]


def test_large_plain_image_gets_a_lazy_pyramid(tmp_path):
    pixels = _noise(1500, 2100, seed=3)
    pixels[:, 1000:] = (10, 200, 30)  # a flat right part: every level must keep its colour
    path = tmp_path / "big.png"
    Image.fromarray(pixels).save(path, compress_level=1)
    with open_image(path) as src:
        assert src.level_dimensions == [(2100, 1500), (1050, 750), (525, 375), (263, 188)]
        assert src.level_downsamples[:3] == [1.0, 2.0, 4.0]
        assert src.level_downsamples[3] == pytest.approx(7.98, abs=0.01)
        assert src._levels[1] is None  # not built until read
        assert src.best_level_for_downsample(3) == 1
        right = src.read_region(2, 300, 100, 100, 50)
        assert (right == (10, 200, 30)).all()
        # Level 1 is the 2x2 mean of level 0 (Pillow's reduce; a box average, rounded).
        expected = pixels[:100, :100].reshape(50, 2, 50, 2, 3).astype(float).mean(axis=(1, 3))
        assert np.abs(src.read_region(1, 0, 0, 50, 50) - expected).max() <= 1
        over = src.read_region(2, 500, 360, 50, 50)  # overhangs the corner: white outside
        assert (over[15:] == 255).all() and (over[:, 25:] == 255).all()
        assert (over[:15, :25] == (10, 200, 30)).all()
        assert src.thumbnail(300).shape == (214, 300, 3)


def test_reads_from_many_threads_agree_with_single_thread_reads(tmp_path):
    """The viewer reads tiles from several threads: levels built while others read them, and
    every read must equal the single-threaded answer (Pillow and OpenSlide sources alike)."""
    pixels = _noise(1100, 1300, seed=5)
    png = tmp_path / "big.png"
    Image.fromarray(pixels).save(png, compress_level=1)
    rng = np.random.default_rng(0)
    for path in (png, FIXTURES / "boxes.tiff"):
        reference = open_image(path)
        requests = []
        for _ in range(400):
            level = int(rng.integers(0, reference.level_count))
            lw, lh = reference.level_dimensions[level]
            requests.append(
                (level, int(rng.integers(-20, lw)), int(rng.integers(-20, lh)), 64, 48)
            )
        expected = [reference.read_region(*r) for r in requests]
        reference.close()
        with open_image(path) as shared:
            barrier = threading.Barrier(8)

            def read(k: int, src=shared, barrier=barrier, requests=requests) -> list:
                barrier.wait()  # all threads hit the unbuilt levels at once
                return [src.read_region(*r) for r in requests[k::8]]

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(read, range(8)))
            if isinstance(shared, PillowSource):
                assert shared.level_count == 3
                assert all(level is not None for level in shared._levels)
        for k in range(8):
            for got, want in zip(results[k], expected[k::8], strict=True):
                np.testing.assert_array_equal(got, want)


def test_close_waits_for_reads_and_later_reads_fail_cleanly():
    from cellviewer.core.sources import ImageReadError

    src = open_image(FIXTURES / "boxes.tiff")
    assert isinstance(src, OpenSlideSource)
    stop = threading.Event()
    outcomes: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                src.read_region(0, 0, 0, 300, 250)
                outcomes.append("ok")
            except ImageReadError as exc:
                assert "closed" in str(exc) and "boxes.tiff" in str(exc)
                outcomes.append("closed")
                return

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    while len(outcomes) < 20:
        threading.Event().wait(0.001)
    src.close()  # must not crash the process under running reads
    stop.set()
    for t in threads:
        t.join(5)
    assert src.closed and outcomes.count("closed") >= 1
    with pytest.raises(ImageReadError, match="closed"):
        src.read_region(0, 0, 0, 4, 4)
    array = ArraySource(_noise(10, 10))
    array.close()
    with pytest.raises(ImageReadError, match="closed"):
        array.read_region(0, 0, 0, 4, 4)
