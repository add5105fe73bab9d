"""``open_image``: pick the reader for a file and turn every failure into ImageOpenError."""

from __future__ import annotations

import os
from pathlib import Path

from .base import ImageOpenError, ImageSource
from .openslide_source import OpenSlideSource, detect_format
from .pillow_source import PillowSource
from .suffixes import PILLOW_FALLBACK_SUFFIXES


def open_image(path: str | os.PathLike) -> ImageSource:
    """Open a whole-slide image through OpenSlide or a plain image through Pillow.

    The returned source has already read pixels successfully (a probe), so a file that opens
    but cannot be decoded fails here. Raises :class:`ImageOpenError` naming the file and cause.
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise ImageOpenError(path, "no such file")
    if path.is_dir():
        raise ImageOpenError(path, "it is a folder, not an image file")
    if not os.access(path, os.R_OK):
        raise ImageOpenError(path, "permission denied")
    vendor = detect_format(path)
    if vendor is None:
        return PillowSource(path)
    try:
        return OpenSlideSource(path)
    except ImageOpenError as slide_error:
        if path.suffix.lower() not in PILLOW_FALLBACK_SUFFIXES:
            raise
        try:
            return PillowSource(path)
        except ImageOpenError:
            # Report OpenSlide's reason: the file is a slide format, so that is the real cause.
            raise ImageOpenError(path, f"{slide_error.cause} [format: {vendor}]") from None
