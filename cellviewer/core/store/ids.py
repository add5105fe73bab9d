"""Cell ids: RFC 9562 version-7 UUIDs, made in bulk with numpy.

Version 7 puts a millisecond timestamp first and, here, a counter after it, so ids made one after
another sort in creation order. The SQLite index on ``cells.uuid`` then grows at its right edge
instead of at random places, which keeps inserting a million cells a matter of seconds (random
version-4 ids made the same insert several times slower in our measurements). They are ordinary
UUIDs to everyone else (QuPath accepts any UUID as a feature ``id``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import numpy as np

_lock = threading.Lock()
_last_ms = 0
_MAX_PER_MS = 1 << 28  # the counter's width: 4 bits of rand_a, 8 of rand_a, 6 + 8 + 2 of rand_b


def _next_ms(n: int) -> int:
    """A millisecond stamp no earlier than the last batch's; big batches reserve several ms so
    the next batch still sorts after them."""
    global _last_ms
    with _lock:
        now = time.time_ns() // 1_000_000
        ms = max(now, _last_ms + 1)
        _last_ms = ms + (n - 1) // _MAX_PER_MS
        return ms


def new_ids(n: int) -> list[str]:
    """``n`` fresh UUID strings (lowercase, hyphenated) in ascending order."""
    if n <= 0:
        return []
    out: list[str] = []
    start = 0
    while start < n:
        k = min(n - start, _MAX_PER_MS)
        out.extend(_batch(k, _next_ms(k)))
        start += k
    return out


def _batch(n: int, ms: int) -> list[str]:
    b = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    b[:, :6] = np.frombuffer(ms.to_bytes(8, "big"), dtype=np.uint8)[2:]
    c = np.arange(n, dtype=np.uint64)
    b[:, 6] = (0x70 | ((c >> 24) & 0x0F)).astype(np.uint8)  # version 7 + counter bits 27..24
    b[:, 7] = ((c >> 16) & 0xFF).astype(np.uint8)
    b[:, 8] = (0x80 | ((c >> 10) & 0x3F)).astype(np.uint8)  # variant 0b10 + bits 15..10
    b[:, 9] = ((c >> 2) & 0xFF).astype(np.uint8)
    b[:, 10] = (b[:, 10] & 0x3F) | ((c & 0x3) << 6).astype(np.uint8)
    h = b.tobytes().hex()
    return [
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def normalise_id(value: str) -> str | None:
    """The canonical form of a UUID string, or None when it is not a UUID."""
    try:
        return str(uuid.UUID(str(value).strip()))
    except (ValueError, AttributeError):
        return None
