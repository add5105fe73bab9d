"""Is this file still the image the project recorded? The content check before an image is used.

A project records each image's content fingerprint (:mod:`.fingerprint`: the file size and a
hash of three 1 MiB samples) and its level-0 size. A file replaced under the same name (another
scan, a re-export, a different tile) must not be cropped, predicted or written into a patch set
as if it were the old one: its cells' coordinates and stored predictions belong to the old
pixels. :func:`check_image` compares the file with the record and raises
:class:`ImageChangedError`, naming the image and what changed (size in bytes, dimensions,
content), for the caller to offer the choices of :mod:`.replaced` (relink, accept, cancel).

Cost: the first check of a file in a process reads its 3 MiB of samples; later checks of the
same file cost one ``os.stat``, because :class:`FingerprintCache` keeps the fingerprint of each
file state, keyed by (path, size in bytes, modification time in ns): a file whose size or
modification time changes is hashed again. The cache is per process (the app's session), so the
check runs when an image is first used for cropping, prediction, detection or a patch set, not
on every gallery refresh. A file rewritten in place with the same size and modification time
keeps its cached fingerprint: that is the price of not hashing on every use.

A record without a fingerprint (projects made before fingerprints, or by scripts that gave none)
is checked by its dimensions alone, read from the file's header.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import ImageOpenError, ImageSource
from .fingerprint import fingerprint as content_fingerprint
from .opening import open_image, regular_file

__all__ = [
    "SESSION_CACHE",
    "FingerprintCache",
    "ImageChangedError",
    "check_image",
    "check_source",
    "fingerprint_size",
    "open_recorded_image",
    "peek_dimensions",
]


def fingerprint_size(fp: str | None) -> int | None:
    """The file size in bytes a ``v1:<size>:<hash>`` fingerprint records (None otherwise)."""
    if not fp or not fp.startswith("v1:"):
        return None
    try:
        return int(fp.split(":")[1])
    except (IndexError, ValueError):
        return None


class ImageChangedError(ImageOpenError):
    """An image's file no longer holds what the project recorded (it was replaced or edited).

    Attributes: ``image_id``, ``path``, ``recorded_fingerprint``/``found_fingerprint``,
    ``recorded_bytes``/``found_bytes`` (file sizes, None where unknown),
    ``recorded_dimensions``/``found_dimensions`` ((width, height), found None where the header
    could not be read) and ``changes``: what differs, in words. A subclass of
    :class:`ImageOpenError`, so code that only wants "this image cannot be used" catches both.
    """

    def __init__(self, path: str | os.PathLike, *, image_id: int | None,
                 recorded_fingerprint: str | None, found_fingerprint: str | None,
                 recorded_dimensions: tuple[int, int],
                 found_dimensions: tuple[int, int] | None,
                 found_bytes: int | None, recorded_path: str | os.PathLike | None = None
                 ) -> None:
        self.image_id = image_id
        # set when ``path`` is a candidate for relinking, not the image's own file
        self.recorded_path = Path(recorded_path) if recorded_path is not None else None
        self.recorded_fingerprint = recorded_fingerprint
        self.found_fingerprint = found_fingerprint
        self.recorded_bytes = fingerprint_size(recorded_fingerprint)
        self.found_bytes = found_bytes
        self.recorded_dimensions = recorded_dimensions
        self.found_dimensions = found_dimensions
        changes = []
        if self.recorded_bytes is not None and found_bytes is not None \
                and self.recorded_bytes != found_bytes:
            changes.append(f"its size is {found_bytes:,} bytes, the project recorded "
                           f"{self.recorded_bytes:,}")
        if found_dimensions is not None and tuple(found_dimensions) != tuple(recorded_dimensions):
            (w, h), (rw, rh) = found_dimensions, recorded_dimensions
            changes.append(f"it is {w}x{h} pixels but the project recorded {rw}x{rh}")
        if not changes:
            changes.append("its content differs from what the project recorded (same size in "
                           "bytes and pixels, other pixels)")
        self.changes = changes
        which = f"image {image_id}" if image_id is not None else "the image"
        if self.recorded_path is not None:
            cause = (f"it is not the image the project recorded as {which} "
                     f"({self.recorded_path.name}): {'; '.join(changes)}")
        else:
            cause = (f"the file was replaced by another image or changed since {which} was "
                     f"added to the project: {'; '.join(changes)}. Relink the image to its "
                     "original file, accept the new content (its predictions are then marked "
                     "stale), or cancel")
        super().__init__(path, cause)


@dataclass
class _Entry:
    size: int
    mtime_ns: int
    fingerprint: str
    dimensions: tuple[int, int] | None = None
    peeked: bool = False


class FingerprintCache:
    """Fingerprints (and header dimensions) of files, by (path, size, modification time).

    Thread-safe. ``hashed`` counts the fingerprints computed (the tests use it to prove that an
    unchanged file is hashed once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, _Entry] = {}
        self.hashed = 0

    def _entry(self, path: Path) -> _Entry:
        st = regular_file(path)  # no such file / not a regular file: ImageOpenError
        key = os.fspath(path)
        with self._lock:
            entry = self._items.get(key)
            if entry is not None and (entry.size, entry.mtime_ns) == (st.st_size, st.st_mtime_ns):
                return entry
        try:
            fp = content_fingerprint(path)
        except OSError as exc:
            raise ImageOpenError(path, f"cannot read it ({exc.strerror or exc})") from None
        entry = _Entry(st.st_size, st.st_mtime_ns, fp)
        with self._lock:
            self.hashed += 1
            self._items[key] = entry
        return entry

    def fingerprint(self, path: str | os.PathLike) -> str:
        """The content fingerprint of ``path`` now (hashed only when its state is new)."""
        return self._entry(_absolute(path)).fingerprint

    def dimensions(self, path: str | os.PathLike) -> tuple[int, int] | None:
        """(width, height) from the file's header (None when it cannot be read), cached with
        the fingerprint of the same file state."""
        path = _absolute(path)
        entry = self._entry(path)
        if not entry.peeked:
            entry.dimensions, entry.peeked = peek_dimensions(path), True
        return entry.dimensions

    def forget(self, path: str | os.PathLike | None = None) -> None:
        """Drop one file's entry (or all of them)."""
        with self._lock:
            if path is None:
                self._items.clear()
            else:
                self._items.pop(os.fspath(_absolute(path)), None)


#: The process's cache: one app, one session.
SESSION_CACHE = FingerprintCache()


def _absolute(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().absolute()


def peek_dimensions(path: str | os.PathLike) -> tuple[int, int] | None:
    """An image's level-0 (width, height) from its header, decoding no pixels; None when
    neither OpenSlide nor Pillow can read the header."""
    import openslide
    from PIL import Image

    from .openslide_source import detect_format

    path = _absolute(path)
    try:
        if detect_format(path) is not None:
            with openslide.OpenSlide(os.fspath(path)) as slide:
                w, h = slide.dimensions
                return int(w), int(h)
        with Image.open(path) as img:
            return int(img.width), int(img.height)
    except Exception:  # any reader's error: the header cannot be read, no dimensions to tell
        return None


def _recorded(record: Any) -> tuple[Path, int | None, tuple[int, int], str | None]:
    path = _absolute(record.path)
    image_id = getattr(record, "id", None)
    dims = (int(record.width), int(record.height))
    fp = getattr(record, "fingerprint", None)
    return path, (None if image_id is None else int(image_id)), dims, fp


def check_image(record: Any, *, path: str | os.PathLike | None = None,
                cache: FingerprintCache | None = None) -> None:
    """Raise :class:`ImageChangedError` when the file of ``record`` (an ``ImageRecord``: ``id``,
    ``path``, ``width``, ``height``, ``fingerprint``) no longer holds the recorded image;
    :class:`ImageOpenError` when it is missing or not a regular file. ``path``: check that file
    against the record instead (a candidate for relinking)."""
    cache = cache or SESSION_CACHE
    rec_path, image_id, dims, recorded = _recorded(record)
    where = _absolute(path) if path is not None else rec_path
    found = cache.fingerprint(where)
    if fingerprint_size(recorded) is None:  # no (known) fingerprint: the dimensions decide
        found_dims = cache.dimensions(where)
        if found_dims is None or found_dims == dims:
            return
    elif found == recorded:
        return
    else:
        found_dims = cache.dimensions(where)
    raise ImageChangedError(
        where, image_id=image_id, recorded_fingerprint=recorded, found_fingerprint=found,
        recorded_dimensions=dims, found_dimensions=found_dims,
        found_bytes=fingerprint_size(found),
        recorded_path=rec_path if where != rec_path else None,
    )


def check_source(record: Any, source: ImageSource) -> None:
    """Raise :class:`ImageChangedError` when an opened ``source`` is not the size ``record``
    says (the last line of defence where no fingerprint was recorded)."""
    _, image_id, dims, recorded = _recorded(record)
    if tuple(source.dimensions) != dims:
        found = None
        with contextlib.suppress(ImageOpenError):
            found = SESSION_CACHE.fingerprint(source.path)
        raise ImageChangedError(
            source.path, image_id=image_id, recorded_fingerprint=recorded,
            found_fingerprint=found, recorded_dimensions=dims,
            found_dimensions=(int(source.width), int(source.height)),
            found_bytes=fingerprint_size(found),
        )


def open_recorded_image(record: Any, *, cache: FingerprintCache | None = None) -> ImageSource:
    """Open a project's image after :func:`check_image`, and check the opened size too: the
    one way to open an image for cropping, prediction, detection or a patch set."""
    check_image(record, cache=cache)
    source = open_image(record.path)
    try:
        check_source(record, source)
    except BaseException:
        source.close()
        raise
    return source
