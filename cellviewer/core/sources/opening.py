"""``open_image``: pick the reader for a file and turn every failure into ImageOpenError.

Three refusals happen before any reader touches the file:

- anything that is not a regular file (a FIFO, a device, a socket named like an image): opening
  a FIFO for reading blocks until a writer appears, forever and uninterruptibly, so the file
  type is checked with ``os.stat`` first;
- a slide OpenSlide cannot open is never handed to Pillow when it is a slide: a slide-only
  suffix (``.svs``, ``.ndpi``, ...) or a TIFF whose description says Aperio. An incomplete copy
  of an SVS still begins with a valid full-resolution directory, so Pillow would open it as a
  plain TIFF, losing its format and pixel size and decoding the whole level into memory; it is
  reported as a truncated or damaged slide instead (with the byte counts when its directories
  point past the end of the file, see :mod:`.tiff_header`);
- a plain image too large to decode (see :mod:`.pillow_source`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .base import ImageOpenError, ImageSource
from .openslide_source import OpenSlideSource, detect_format
from .pillow_source import PillowSource
from .suffixes import PILLOW_FALLBACK_SUFFIXES, PLAIN_SUFFIXES, SLIDE_SUFFIXES
from .tiff_header import read_tiff_facts

# Suffixes only slides have: a file named so that OpenSlide cannot open is a broken slide.
SLIDE_ONLY_SUFFIXES = SLIDE_SUFFIXES - PLAIN_SUFFIXES

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def regular_file(path: str | os.PathLike) -> os.stat_result:
    """``os.stat`` of ``path`` when it is a readable regular file (symlinks followed); else
    :class:`ImageOpenError` saying what it is. Never opens the file, so never blocks."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageOpenError(path, "no such file") from None
    except PermissionError:
        raise ImageOpenError(path, "permission denied") from None
    except OSError as exc:
        raise ImageOpenError(path, f"cannot read it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageOpenError(path, "it is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise ImageOpenError(
            path, f"it is {kind}, not a regular image file (reading it could wait forever)")
    return st


def damaged_slide(path: Path, cause: str = "") -> ImageOpenError:
    """The error for a slide that OpenSlide cannot open: truncated (with the byte counts) when
    its TIFF directories say so, else truncated or damaged, with OpenSlide's cause."""
    facts = read_tiff_facts(path)
    why = f" (OpenSlide: {cause})" if cause else ""
    if facts is not None and facts.truncated:
        return ImageOpenError(
            path,
            f"truncated or damaged slide: the file is {facts.file_size:,} bytes but its TIFF "
            f"directories need at least {facts.data_end:,}, so it is probably an incomplete "
            f"copy{why}; copy it again from the original",
        )
    return ImageOpenError(
        path,
        f"truncated or damaged slide{why}; it is not opened as a plain image, which would lose "
        "its format and pixel size. Copy it again from the original",
    )


def _is_slide(path: Path) -> bool:
    """A slide by name, or a TIFF whose first description says Aperio (an SVS renamed)."""
    if path.suffix.lower() in SLIDE_ONLY_SUFFIXES:
        return True
    if path.suffix.lower() not in SLIDE_SUFFIXES:
        return False
    facts = read_tiff_facts(path)
    return facts is not None and (facts.aperio or facts.truncated)


def open_image(path: str | os.PathLike) -> ImageSource:
    """Open a whole-slide image through OpenSlide or a plain image through Pillow.

    The returned source has already read pixels successfully (a probe), so a file that opens
    but cannot be decoded fails here. Raises :class:`ImageOpenError` naming the file and cause.
    """
    path = Path(path).expanduser().absolute()
    regular_file(path)
    if not os.access(path, os.R_OK):
        raise ImageOpenError(path, "permission denied")
    vendor = detect_format(path)
    if vendor is None:
        if _is_slide(path):
            raise damaged_slide(path, "it does not recognise the file")
        return PillowSource(path)
    try:
        return OpenSlideSource(path)
    except ImageOpenError as slide_error:
        if _is_slide(path):
            raise damaged_slide(path, slide_error.cause) from None
        if path.suffix.lower() not in PILLOW_FALLBACK_SUFFIXES:
            raise
        try:
            return PillowSource(path)
        except ImageOpenError:
            # Report OpenSlide's reason: the file is a slide format, so that is the real cause.
            raise ImageOpenError(path, f"{slide_error.cause} [format: {vendor}]") from None
