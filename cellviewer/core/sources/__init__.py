"""Image sources: one interface for whole-slide images (OpenSlide) and plain images (Pillow).

>>> with open_image("slide.svs") as src:
...     tile = src.read_region(level=1, x=0, y=0, w=256, h=256)   # (256, 256, 3) uint8 RGB

See :mod:`.base` for the coordinate rules and error classes, :mod:`.openslide_source` for the
open-time probe and threads, :mod:`.array_source` for the in-memory pyramid of plain images,
:mod:`.suffixes` for which files are images, :mod:`.identity` for the check that a project's image
is still the file it recorded (and :mod:`.replaced` for what to do when it is not).
"""

from .array_source import PYRAMID_MIN_SIZE, ArraySource, pyramid_dimensions
from .base import ImageOpenError, ImageReadError, ImageSource
from .fingerprint import fingerprint
from .folder import FolderScan, ImageInfo, list_images, open_folder
from .identity import ImageChangedError, check_image, open_recorded_image
from .opening import open_image
from .openslide_source import OpenSlideSource, detect_format
from .pillow_source import PillowSource, load_plain_image
from .suffixes import (
    IMAGE_SUFFIXES,
    PLAIN_SUFFIXES,
    SLIDE_SUFFIXES,
    image_file_patterns,
    is_image_file,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "PLAIN_SUFFIXES",
    "PYRAMID_MIN_SIZE",
    "SLIDE_SUFFIXES",
    "ArraySource",
    "FolderScan",
    "ImageChangedError",
    "ImageInfo",
    "ImageOpenError",
    "ImageReadError",
    "ImageSource",
    "OpenSlideSource",
    "PillowSource",
    "check_image",
    "detect_format",
    "fingerprint",
    "image_file_patterns",
    "is_image_file",
    "list_images",
    "load_plain_image",
    "open_folder",
    "open_image",
    "open_recorded_image",
    "pyramid_dimensions",
]
