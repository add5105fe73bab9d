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
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .array_source import ArraySource
from .base import ImageOpenError

# TIFF tags.
_X_RESOLUTION = 282
_RESOLUTION_UNIT = 296
_MICRONS_PER_UNIT = {2: 25_400.0, 3: 10_000.0}  # inch, centimetre


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
