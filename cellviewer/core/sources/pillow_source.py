"""Plain images (PNG, JPEG, BMP, TIFF, ...) through Pillow, decoded whole into memory.

Decoding everything at open is the probe: a truncated or corrupt file fails here, with its name,
instead of later in a viewer thread. Pixels are converted to RGB uint8 the same way the trainer's
patch-set builder sees them (``Image.convert("RGB")``), except that transparency is composited over
white (as OpenSlide sources are) and 16-bit greyscale is scaled down by 256 rather than clipped.
EXIF orientation is *not* applied: cell coordinates refer to the stored pixel grid, as in the
trainer.

Microns per pixel come only from a TIFF's XResolution with an explicit ResolutionUnit of inch or
centimetre; PNG/JPEG "dpi" values are screen defaults (72, 96) far more often than scanner
calibrations, so they are ignored and ``mpp`` is None.

Memory: a plain image is decoded whole, and a small file can describe a huge one (a PNG header
of 12000x12000 pixels is a few bytes; Pillow's own decompression-bomb error only starts at about
179 million pixels, which still decodes to gigabytes). So before decoding, the size the decode
needs (:func:`decoded_bytes`: the pixels as the file stores them plus the RGB copy kept) is
compared with :func:`max_decoded_bytes` (:data:`MAX_DECODED_BYTES`, the environment variable
:data:`MAX_DECODED_ENV`, or :func:`set_max_decoded_bytes`), and a larger image is refused with
its size. Pyramidal slides go through OpenSlide, tile by tile, and are not limited.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .array_source import ArraySource
from .base import ImageOpenError

# TIFF tags.
_X_RESOLUTION = 282
_RESOLUTION_UNIT = 296
_MICRONS_PER_UNIT = {2: 25_400.0, 3: 10_000.0}  # inch, centimetre

#: What decoding one plain image may take at its peak by default (see :func:`decoded_bytes`).
#: An RGBA PNG just below Pillow's hard limit (about 179 million pixels) would take about 2.5 GiB
#: and is refused; the largest RGB one (about 1.2 GiB) still opens.
MAX_DECODED_BYTES = 2 << 30
MAX_DECODED_ENV = "CELLVIEWER_MAX_DECODED_BYTES"
_override: int | None = None
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def set_max_decoded_bytes(limit: int | None) -> None:
    """Set the limit for this process (the app's setting); None: back to the environment
    variable or the default; 0: no limit."""
    global _override
    _override = None if limit is None else max(0, int(limit))


def parse_size(text: str) -> int:
    """``"1073741824"``, ``"512M"``, ``"2GiB"`` -> bytes; ValueError for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if m is None:
        raise ValueError(f"not a size: {text!r} (expected e.g. 1073741824, 512M or 2G)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def max_decoded_bytes() -> int:
    """The limit now (0: none): :func:`set_max_decoded_bytes`, else ``$CELLVIEWER_MAX_DECODED_
    BYTES``, else :data:`MAX_DECODED_BYTES`. ValueError names a malformed variable."""
    if _override is not None:
        return _override
    text = os.environ.get(MAX_DECODED_ENV, "").strip()
    if not text:
        return MAX_DECODED_BYTES
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ValueError(f"the environment variable {MAX_DECODED_ENV}: {exc}") from None


_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def decoded_bytes(width: int, height: int, mode: str, *, alpha: bool = False) -> int:
    """The peak memory, in bytes, of decoding a ``width`` x ``height`` image of Pillow ``mode``
    and converting it to the (H, W, 3) uint8 array the source keeps (see :func:`_to_rgb`).

    Pillow holds a pixel in 1 byte (one 8-bit band), 2 (16-bit grey) or 4 (everything else,
    RGB included); then come the conversion copies alive at the same time: compositing
    transparency over white (``alpha``, or an alpha mode) keeps an RGBA copy, a white RGBA
    canvas and its RGB conversion (4 + 4 + 4); 16-bit grey a uint16 copy and its shifted copy
    (2 + 2 + 1); any other non-RGB mode an RGB conversion (4); and always the final array (3).
    """
    if mode in ("1", "L", "P"):
        stored = 1
    elif mode.startswith("I;16"):
        stored = 2
    else:
        stored = 4
    if mode.startswith("I;16"):
        extra = 5
    elif alpha or mode in _ALPHA_MODES:
        extra = 12
    elif mode != "RGB":
        extra = 4
    else:
        extra = 0
    return int(width) * int(height) * (stored + extra + 3)


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``300 MiB``: sizes for people."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def _check_decoded_size(path: Path, img) -> None:
    try:
        limit = max_decoded_bytes()
    except ValueError as exc:
        raise ImageOpenError(path, str(exc)) from None
    need = decoded_bytes(img.width, img.height, img.mode, alpha="transparency" in img.info)
    if limit and need > limit:
        raise ImageOpenError(
            path,
            f"it is {img.width:,} x {img.height:,} pixels ({img.mode}), and decoding it as a "
            f"plain image would take {format_bytes(need)} of memory, above the limit of "
            f"{format_bytes(limit)} (set {MAX_DECODED_ENV} to raise it, or convert it to a tiled "
            "pyramidal TIFF, e.g. `vips tiffsave in out.tif --tile --pyramid`, which opens "
            "tile by tile through OpenSlide)",
        )


def _to_rgb(img) -> np.ndarray:
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16"):
        grey = (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    ) or (mode in ("RGB", "L") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return np.asarray(canvas.convert("RGB"))
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def _tiff_mpp(img) -> float | None:
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return None
    unit = tags.get(_RESOLUTION_UNIT)
    res = tags.get(_X_RESOLUTION)
    if unit not in _MICRONS_PER_UNIT or not res:
        return None
    try:
        res = float(res)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return _MICRONS_PER_UNIT[unit] / res if res > 0 else None


def load_plain_image(path: str | os.PathLike) -> tuple[np.ndarray, str, float | None]:
    """Decode a plain image: (pixels (H, W, 3) uint8, format name, mpp or None).

    Raises :class:`ImageOpenError` naming the file and the cause.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            fmt = (img.format or "image").lower()
            mpp = _tiff_mpp(img) if fmt == "tiff" else None
            _check_decoded_size(path, img)  # from the header alone, before any decoding
            img.load()
            pixels = _to_rgb(img)
    except UnidentifiedImageError:
        raise ImageOpenError(
            path, "not an image format OpenSlide or Pillow can read"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageOpenError(
            path,
            f"too large to decode into memory as a plain image ({exc}); convert it to a tiled "
            "pyramidal TIFF (e.g. `vips tiffsave in out.tif --tile --pyramid`) to open it "
            "through OpenSlide",
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        # Pillow reports truncated/corrupt data as OSError, some malformed headers as
        # ValueError or SyntaxError.
        raise ImageOpenError(path, f"cannot decode the pixels ({exc})") from None
    except MemoryError:
        raise ImageOpenError(path, "not enough memory to decode it") from None
    if pixels.size == 0:
        raise ImageOpenError(path, "the image has no pixels")
    return np.ascontiguousarray(pixels), fmt, mpp


class PillowSource(ArraySource):
    """A plain image file decoded into memory, presented with an in-memory pyramid."""

    def __init__(self, path: str | os.PathLike):
        pixels, fmt, mpp = load_plain_image(path)
        super().__init__(pixels, path=Path(path), mpp=mpp, format=fmt)
