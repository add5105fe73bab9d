"""A fast content fingerprint, so a project can find an image again after it was moved.

Hashing a multi-gigabyte slide would take longer than opening it, so the fingerprint hashes the
file size and three 1 MiB samples (start, middle, end); files up to 3 MiB are hashed whole. Two
different slides agreeing on size and on all three samples is not a practical concern; a file
edited in place outside the samples keeps its fingerprint (it is an identity check, not an
integrity check). The format is versioned: ``v1:<size>:<32 hex digits>``.
"""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20  # 1 MiB per sample


def fingerprint(path: str | os.PathLike) -> str:
    """``v1:<size>:<blake2b-128 of size + start/middle/end samples>``; OSError names the file."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        digest = hashlib.blake2b(digest_size=16)
        digest.update(size.to_bytes(8, "little"))
        if size <= 3 * CHUNK:
            digest.update(fh.read())
        else:
            for offset in (0, (size - CHUNK) // 2, size - CHUNK):
                fh.seek(offset)
                digest.update(fh.read(CHUNK))
    return f"v1:{size}:{digest.hexdigest()}"
