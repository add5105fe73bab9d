"""Whole-slide images (SVS, NDPI, MRXS, SCN, tiled TIFF, DICOM, ...) through OpenSlide.

Opening probes a read (the lowest-resolution level's corner, up to 512x512, and 256x256 at the
centre of level 0), so a file whose header parses but whose pixels do not decode (the fixture
``unreadable.svs``) fails at :func:`~cellviewer.core.sources.open_image` with
:class:`ImageOpenError` and never enters a project. A damaged tile elsewhere can still surface
later: then ``read_region`` raises :class:`ImageReadError` (OpenSlide's handle stays in that error
state, so every later read raises it too).

Coordinates: OpenSlide takes a level-0 origin; we take the origin in the level's own pixels and
convert it with ``round(x * downsample)``. Where a level's downsample is not an integer (e.g.
2.0003 in many pyramids) OpenSlide resamples by the sub-pixel remainder, so a tile may differ from
the same pixels cut out of a whole-level read by a grey level or two; level 0 is always exact.

Speed: where openslide-python exposes its raw ``openslide_read_region`` binding (1.3 and 1.4 do,
as ``lowlevel._read_region``), regions are decoded straight into a NumPy buffer and composited
from OpenSlide's premultiplied ARGB (``rgb + 255 - alpha``), skipping openslide-python's
un-premultiply and PIL round trip (about 30% of a large read); otherwise the public API is used.

Thread safety: OpenSlide's ``read_region`` is thread-safe and ctypes releases the GIL around it,
so several viewer threads decode in parallel. ``close`` waits for reads in flight before freeing
the handle (closing under a running read would crash the process).
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import ImageOpenError, ImageReadError, ImageSource, check_region, white

if TYPE_CHECKING:
    import openslide

PROBE_LOW_LEVEL = 512
PROBE_CENTRE = 256


def detect_format(path: str | os.PathLike) -> str | None:
    """OpenSlide's vendor name for ``path`` (``"aperio"``, ``"generic-tiff"``, ...) or None."""
    import openslide

    try:
        return openslide.OpenSlide.detect_format(os.fspath(path))
    except Exception:  # OpenSlide raises assorted errors on unreadable files; None = not ours
        return None


def rgba_to_rgb_over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite non-premultiplied RGBA (what openslide-python returns) over white."""
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    a = alpha[..., None].astype(np.uint16)
    rgb = rgba[..., :3].astype(np.uint16)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def argb_to_rgb_over_white(argb: np.ndarray) -> np.ndarray:
    """Composite OpenSlide's native premultiplied ARGB (h, w) uint32 over white: (h, w, 3) uint8.

    Premultiplied means each colour is already scaled by alpha, so over white it is simply
    ``colour + 255 - alpha`` (never above 255). Returns a view when every pixel is opaque.
    """
    h, w = argb.shape
    if sys.byteorder == "little":
        bgra = argb.view(np.uint8).reshape(h, w, 4)
        rgb, alpha = bgra[..., 2::-1], bgra[..., 3]
    else:
        rgb = np.stack([(argb >> s).astype(np.uint8) for s in (16, 8, 0)], axis=-1)
        alpha = (argb >> 24).astype(np.uint8)
    if alpha.min() == 255:
        return rgb
    return rgb + (255 - alpha)[..., None]


def _raw_reader():
    """openslide-python's raw binding of ``openslide_read_region`` (private; None if absent)."""
    from openslide import lowlevel

    return getattr(lowlevel, "_read_region", None)


class OpenSlideSource(ImageSource):
    """A slide opened through OpenSlide (see the module docstring for probing and threads)."""

    def __init__(self, path: str | os.PathLike, *, probe: bool = True):
        import openslide

        self.path = Path(path)
        try:
            slide = openslide.OpenSlide(os.fspath(self.path))
        except openslide.OpenSlideUnsupportedFormatError:
            raise ImageOpenError(self.path, "not a format OpenSlide can read") from None
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            raise ImageOpenError(self.path, f"OpenSlide cannot open it ({exc})") from None
        self._slide: openslide.OpenSlide | None = slide  # None once closed
        self.properties: dict[str, str] = dict(slide.properties)
        self.format = self.properties.get("openslide.vendor", "openslide")
        self.level_count = slide.level_count
        self.level_dimensions = [(int(w), int(h)) for w, h in slide.level_dimensions]
        self.level_downsamples = [float(d) for d in slide.level_downsamples]
        self.mpp = self._parse_mpp(self.properties)
        raw, handle = _raw_reader(), getattr(slide, "_osr", None)
        self._raw = (raw, handle) if raw is not None and handle is not None else None
        self._state = threading.Condition()
        self._in_flight = 0
        self._closed = False
        if self.level_count < 1 or min(self.level_dimensions[0]) < 1:
            self._closed = True
            self._free()
            raise ImageOpenError(self.path, "the slide has no pixels")
        if probe:
            self._probe()

    @staticmethod
    def _parse_mpp(props: dict[str, str]) -> float | None:
        try:
            mpp = float(props["openslide.mpp-x"])
        except (KeyError, ValueError):
            return None
        return mpp if math.isfinite(mpp) and mpp > 0 else None

    def _probe(self) -> None:
        last = self.level_count - 1
        lw, lh = self.level_dimensions[last]
        w0, h0 = self.level_dimensions[0]
        pw, ph = min(w0, PROBE_CENTRE), min(h0, PROBE_CENTRE)
        try:
            self.read_region(last, 0, 0, min(lw, PROBE_LOW_LEVEL), min(lh, PROBE_LOW_LEVEL))
            self.read_region(0, (w0 - pw) // 2, (h0 - ph) // 2, pw, ph)
        except ImageReadError as exc:
            self._closed = True
            self._free()
            raise ImageOpenError(
                self.path, f"it opens but its pixels cannot be decoded ({exc.cause})"
            ) from None

    @property
    def closed(self) -> bool:
        return self._closed

    def read_region(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return np.ascontiguousarray(self.read_region_shared(level, x, y, w, h))

    def read_region_shared(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        # The result may be a non-contiguous view of the decode buffer (no one else holds it).
        import openslide

        level = self.check_level(level)
        w, h = check_region(w, h)
        if w == 0 or h == 0:
            return white(h, w)
        ds = self.level_downsamples[level]
        x0, y0 = (int(x), int(y)) if level == 0 else (round(x * ds), round(y * ds))
        with self._state:
            if self._closed:
                raise ImageReadError(self.path, "the image is closed")
            self._in_flight += 1
        try:
            if self._raw is not None:
                raw, handle = self._raw
                argb = np.empty((h, w), np.uint32)
                raw(handle, argb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
                    x0, y0, level, w, h)
                return argb_to_rgb_over_white(argb)
            region = self._live_slide().read_region((x0, y0), level, (w, h))
            return rgba_to_rgb_over_white(np.asarray(region))
        except (openslide.OpenSlideError, ValueError, OSError) as exc:
            raise ImageReadError(
                self.path, str(exc), region=f"region {w}x{h} at ({x}, {y}) of level {level}"
            ) from None
        finally:
            with self._state:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._state.notify_all()

    def associated_image(self, name: str) -> np.ndarray | None:
        """A slide's label/macro/thumbnail image as RGB, or None when absent."""
        img = self._live_slide().associated_images.get(name)
        return None if img is None else rgba_to_rgb_over_white(np.asarray(img.convert("RGBA")))

    def _live_slide(self) -> openslide.OpenSlide:
        """The open slide (reads in flight keep it open: ``close`` waits for them)."""
        slide = self._slide
        if slide is None:
            raise ImageReadError(self.path, "the image is closed")
        return slide

    def _free(self) -> None:
        self._raw = None
        slide, self._slide = self._slide, None
        if slide is not None:
            slide.close()

    def close(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
            while self._in_flight:
                self._state.wait()
        self._free()
