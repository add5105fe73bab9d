"""Adding a folder of tiles or slides as one batch.

Files are chosen by suffix (:data:`.suffixes.IMAGE_SUFFIXES`); everything else (CSV, JSON, MRXS
data files, licences) is *skipped*, not an error. Each candidate is opened with :func:`open_image`
(so it is probed exactly as a single add would be) on a few threads, and a candidate that fails
is reported as *broken* with its :class:`ImageOpenError` while the rest go ahead. A DICOM slide is
a folder of ``.dcm`` instances that OpenSlide opens from any one of them: instances of a series
already seen are skipped, so the slide is listed once. Results are in natural name order
(``img2`` before ``img10``).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .base import ImageOpenError, ImageSource
from .fingerprint import fingerprint as content_fingerprint
from .opening import open_image
from .suffixes import is_image_file

_SERIES_KEY = "dicom.SeriesInstanceUID"


@dataclass(frozen=True)
class ImageInfo:
    """What a project needs to record about an image, without keeping it open."""

    path: Path
    format: str
    width: int
    height: int
    level_count: int
    mpp: float | None
    fingerprint: str | None = None


@dataclass
class FolderScan:
    images: list[ImageInfo] = field(default_factory=list)
    broken: list[ImageOpenError] = field(default_factory=list)  # each names its file and cause
    skipped: list[Path] = field(default_factory=list)  # not image files (by suffix) or duplicates


def natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _candidates(folder: Path, recursive: bool) -> tuple[list[Path], list[Path]]:
    if not folder.exists():
        raise ImageOpenError(folder, "no such folder")
    if not folder.is_dir():
        raise ImageOpenError(folder, "it is a file, not a folder")
    found = folder.rglob("*") if recursive else folder.iterdir()
    images: list[Path] = []
    skipped: list[Path] = []
    for p in sorted((p for p in found if p.is_file()), key=lambda p: (p.parent, natural_key(p))):
        if p.name.startswith("."):
            continue
        (images if is_image_file(p) else skipped).append(p)
    return images, skipped


def _map(fn, paths: list[Path], workers: int | None):
    """(path, fn(path) or its ImageOpenError) in order, decoding on a few threads (Pillow and
    OpenSlide release the GIL while decoding)."""

    def attempt(p: Path):
        try:
            return fn(p)
        except ImageOpenError as exc:
            return exc

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from zip(paths, pool.map(attempt, paths), strict=True)


def _series(source: ImageSource) -> str | None:
    return getattr(source, "properties", {}).get(_SERIES_KEY)


def open_folder(
    folder: str | os.PathLike, *, recursive: bool = False, workers: int | None = None
) -> tuple[list[ImageSource], list[ImageOpenError]]:
    """Open every image in ``folder``: (opened sources, errors of the broken ones).

    The caller owns the sources and must close them. Plain images are decoded into memory, so
    for a large folder prefer :func:`list_images` and open images as they are viewed.
    """
    paths, _ = _candidates(Path(folder), recursive)
    sources: list[ImageSource] = []
    broken: list[ImageOpenError] = []
    series: set[str] = set()
    for _, result in _map(open_image, paths, workers):
        if isinstance(result, ImageOpenError):
            broken.append(result)
            continue
        uid = _series(result)
        if uid is not None and uid in series:
            result.close()
            continue
        if uid is not None:
            series.add(uid)
        sources.append(result)
    return sources, broken


def list_images(
    folder: str | os.PathLike,
    *,
    recursive: bool = False,
    with_fingerprint: bool = False,
    workers: int | None = None,
) -> FolderScan:
    """Probe every image in ``folder`` and describe it (the sources are closed again)."""
    paths, skipped = _candidates(Path(folder), recursive)

    def describe(path: Path) -> tuple[ImageInfo, str | None]:
        # Runs on a worker thread, which closes the source again: only one decoded image per
        # worker is alive at a time, however large the folder.
        with open_image(path) as source:
            info = ImageInfo(
                path=source.path, format=source.format, width=source.width,
                height=source.height, level_count=source.level_count, mpp=source.mpp,
                fingerprint=content_fingerprint(source.path) if with_fingerprint else None,
            )
            return info, _series(source)

    scan = FolderScan(skipped=skipped)
    series: set[str] = set()
    for path, result in _map(describe, paths, workers):
        if isinstance(result, ImageOpenError):
            scan.broken.append(result)
            continue
        info, uid = result
        if uid is not None and uid in series:
            scan.skipped.append(path)
            continue
        if uid is not None:
            series.add(uid)
        scan.images.append(info)
    return scan
