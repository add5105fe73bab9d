"""Which files are images: the one list of suffixes the sources open.

Every suffix here opens with the readers installed with the app: the slide formats through
OpenSlide (the bundled ``openslide-bin`` library has a reader for each: Aperio, Hamamatsu,
Leica, MIRAX, Sakura, Ventana, DICOM, Zeiss CZI, generic TIFF), the plain ones through Pillow.
``.tif``/``.tiff`` are both: OpenSlide reads pyramidal TIFFs, Pillow the rest. The app's file
dialogs, its drag and drop and the folder scan all ask this module, so they agree.
"""

from __future__ import annotations

import os
from pathlib import Path

SLIDE_SUFFIXES = frozenset({
    ".svs", ".tif", ".tiff",  # Aperio, generic TIFF
    ".ndpi", ".vms", ".vmu",  # Hamamatsu
    ".scn",  # Leica
    ".mrxs",  # MIRAX (3DHISTECH)
    ".svslide",  # Sakura
    ".bif",  # Ventana
    ".dcm",  # DICOM WSI
    ".czi",  # Zeiss
})
PLAIN_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
IMAGE_SUFFIXES = SLIDE_SUFFIXES | PLAIN_SUFFIXES

# Suffixes Pillow can also try when OpenSlide claims a file but cannot open it (a stripped or
# oddly compressed TIFF OpenSlide's generic-tiff reader rejects may still decode in Pillow).
PILLOW_FALLBACK_SUFFIXES = SLIDE_SUFFIXES & PLAIN_SUFFIXES


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has the suffix of an image the sources open (by name only)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def image_file_patterns() -> str:
    """The suffixes as a file dialog's patterns, ``*.bif *.bmp ...`` (sorted)."""
    return " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
