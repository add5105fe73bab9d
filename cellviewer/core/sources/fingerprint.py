"""A fast content fingerprint, so a project can find an image again after it was moved.

Hashing a multi-gigabyte slide would take longer than opening it, so the fingerprint hashes the
file size and three 1 MiB samples (start, middle, end); files up to 3 MiB are hashed whole. Two
different slides agreeing on size and on all three samples is not a practical concern; a file
edited in place outside the samples keeps its fingerprint (it is an identity check, not an
integrity check). The format is versioned: ``v1:<size>:<32 hex digits>``.

Only regular files are read: the file is opened without blocking (``O_NONBLOCK``, so a FIFO
named like an image cannot hang the open) and its type checked on the open descriptor.
"""

from __future__ import annotations

import hashlib
import os
import stat

from .base import ImageOpenError

CHUNK = 1 << 20  # 1 MiB per sample


def fingerprint(path: str | os.PathLike) -> str:
    """``v1:<size>:<blake2b-128 of size + start/middle/end samples>``; OSError names the file,
    :class:`ImageOpenError` a path that is not a regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        from .opening import regular_file

        regular_file(path)  # raises, saying what it is
        raise ImageOpenError(path, "not a regular file")
    with os.fdopen(fd, "rb") as fh:
        size = st.st_size
        digest = hashlib.blake2b(digest_size=16)
        digest.update(size.to_bytes(8, "little"))
        if size <= 3 * CHUNK:
            digest.update(fh.read())
        else:
            for offset in (0, (size - CHUNK) // 2, size - CHUNK):
                fh.seek(offset)
                digest.update(fh.read(CHUNK))
    return f"v1:{size}:{digest.hexdigest()}"
