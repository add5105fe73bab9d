"""What image opening refuses before any reader touches the pixels: files that are not regular
files (a FIFO would block forever), truncated or damaged slides (never reopened as a plain TIFF),
and plain images whose decoding would take more memory than the limit allows."""

from __future__ import annotations

import os
import shutil
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.io.project_import import add_images, image_info
from cellviewer.core.sources import ImageOpenError, fingerprint, open_image
from cellviewer.core.sources import pillow_source as plain
from cellviewer.core.store import ProjectError, ProjectStore

MAX_DECODED_ENV = "CELLVIEWER_MAX_DECODED_BYTES"
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "openslide"
GENEROUS_S = 20.0  # far above what any of these calls takes; only a hang reaches it


def _returns_in_time(fn, *args):
    """Run ``fn(*args)`` in a daemon thread and return (finished, result or exception): a
    regression that blocks on a FIFO fails the test instead of hanging the suite. A blocked
    thread is released afterwards by opening the FIFO's other end."""
    out: dict = {}

    def call():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # the test inspects it
            out["value"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(GENEROUS_S)
    return not thread.is_alive(), out.get("value")


def _unblock(fifo: Path) -> None:
    """Open the FIFO's write end (non-blocking) so a reader stuck in open() gets EOF."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader waiting
    os.close(fd)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
@pytest.mark.parametrize("name", ["slide.svs", "tile.png", "scan.tiff"])
def test_a_fifo_named_like_an_image_is_refused_at_once(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    try:
        for fn in (open_image, image_info, fingerprint):
            finished, result = _returns_in_time(fn, fifo)
            assert finished, f"{fn.__name__} blocked on a FIFO"
            assert isinstance(result, ImageOpenError), result
            assert name in str(result) and "FIFO" in str(result)
            assert "not a regular image file" in str(result)
        with ProjectStore.create(tmp_path / "p.cvproj") as store:
            finished, result = _returns_in_time(add_images, store, [fifo])
            assert finished, "add_images blocked on a FIFO"
            assert isinstance(result, ProjectError) and name in str(result)
            assert "FIFO" in str(result) and store.images() == []
    finally:
        _unblock(fifo)


def _aperio_like_tiff(path: Path) -> bytes:
    """A two-directory TIFF whose description says Aperio (what an SVS's first directory
    looks like to Pillow): the full level, then a smaller one after its pixel data."""
    rng = np.random.default_rng(0)
    full = Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8))
    small = Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8))
    full.save(path, format="TIFF", save_all=True, append_images=[small],
              description="Aperio Image Library v12.0.15\r\n64x64 JPEG/RGB Q=70|MPP = 0.5")
    return path.read_bytes()


def test_an_incomplete_copy_of_an_svs_is_reported_truncated_not_opened_as_a_tiff(tmp_path):
    # Cut inside the second directory's data: the first still decodes, so Pillow opened
    # the file as a plain 64x64 TIFF with no pixel size (the old code did, silently).
    data = _aperio_like_tiff(tmp_path / "whole.svs")
    for name in ("cut.svs", "cut.tif"):  # a renamed SVS is still a slide (its description)
        cut = tmp_path / name
        cut.write_bytes(data[:-1000])
        with pytest.raises(ImageOpenError) as info:
            open_image(cut)
        message = str(info.value)
        assert name in message and "truncated or damaged slide" in message
        assert f"the file is {len(data) - 1000:,} bytes" in message
        assert "incomplete copy" in message


def test_the_truncated_small_svs_fixture_is_reported_as_a_truncated_slide(tmp_path):
    # A real (tiny) Aperio SVS from OpenSlide's tests, cut in half.
    data = (FIXTURES / "small.svs").read_bytes()
    cut = tmp_path / "small-copy.svs"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageOpenError, match="truncated or damaged slide") as info:
        open_image(cut)
    assert "small-copy.svs" in str(info.value) and "incomplete copy" in str(info.value)
    # The whole fixture still opens as the Aperio slide it is.
    with open_image(FIXTURES / "small.svs") as source:
        assert source.format == "aperio" and source.mpp == pytest.approx(0.499)


@pytest.mark.realdata
def test_a_truncated_copy_of_a_real_svs_is_not_opened_as_a_plain_tiff(shared_data, tmp_path):
    original = shared_data / "slides" / "CMU-1-Small-Region.svs"
    data = original.read_bytes()
    for fraction in (0.3, 0.7, 0.99):
        cut = tmp_path / f"copy-{fraction}.svs"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(ImageOpenError, match="truncated or damaged slide.*incomplete copy"):
            open_image(cut)
    whole = tmp_path / "whole.svs"
    shutil.copy(original, whole)
    with open_image(whole) as source:
        assert source.format == "aperio" and source.mpp is not None


def _png_header_only(path: Path, width: int, height: int, colour_type: int = 2,
                     depth: int = 8) -> None:
    """A PNG of a few dozen bytes that claims ``width`` x ``height`` pixels (no pixel data)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_png_too_large_to_decode_is_refused_with_its_size_before_decoding(tmp_path):
    # 13000 x 13000 RGBA: 169 million pixels, below Pillow's own hard limit (about 179
    # million), yet about 3 GiB to decode and composite into RGB. The file is 57 bytes.
    png = tmp_path / "huge.png"
    _png_header_only(png, 13_000, 13_000, colour_type=6)
    assert png.stat().st_size < 100
    with pytest.raises(ImageOpenError) as info:
        open_image(png)
    message = str(info.value)
    assert "huge.png" in message and "13,000 x 13,000 pixels" in message
    assert "above the limit of 2.0 GiB" in message and MAX_DECODED_ENV in message
    assert plain.decoded_bytes(13_000, 13_000, "RGBA") > plain.max_decoded_bytes()


def test_the_decoded_size_limit_follows_the_environment_and_the_setting(tmp_path, monkeypatch):
    png = tmp_path / "wide.png"
    _png_header_only(png, 3000, 2000, colour_type=6)  # RGBA: 19 bytes a pixel at the peak
    monkeypatch.setenv(MAX_DECODED_ENV, "32M")
    with pytest.raises(ImageOpenError, match=r"3,000 x 2,000 pixels.*above the limit of 32.0 MiB"):
        open_image(png)
    monkeypatch.setenv(MAX_DECODED_ENV, "lots")
    with pytest.raises(ImageOpenError, match=f"{MAX_DECODED_ENV}.*not a size"):
        open_image(png)
    monkeypatch.setenv(MAX_DECODED_ENV, "1G")  # under the limit: decoding is tried, and the
    with pytest.raises(ImageOpenError, match="cannot decode the pixels"):  # empty data fails
        open_image(png)
    plain.set_max_decoded_bytes(1 << 20)
    try:
        with pytest.raises(ImageOpenError, match="above the limit of 1.0 MiB"):
            open_image(png)
    finally:
        plain.set_max_decoded_bytes(None)
    assert plain.decoded_bytes(3000, 2000, "RGBA") == 3000 * 2000 * 19
    assert plain.parse_size("2GiB") == 2 << 30 and plain.parse_size("512m") == 512 << 20
    assert plain.parse_size("1073741824") == 1 << 30
