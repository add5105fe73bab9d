"""Reading just enough of a TIFF's directories to tell a truncated or damaged slide from a plain
TIFF, without decoding a pixel.

When OpenSlide cannot open a file, :func:`~cellviewer.core.sources.open_image` must not hand a
slide to Pillow: an Aperio SVS whose copy stopped early still starts with a valid first
directory (the full-resolution level), so Pillow would open it as a plain TIFF, lose its format
and pixel size, and decode the whole level into memory. This module answers the two questions
that decision needs: does the first directory's ImageDescription say *Aperio* (an SVS renamed to
``.tif`` is still a slide), and does any directory, or the tile/strip data it points to, lie past
the end of the file (the file is truncated)?

Every read is bounded (at most :data:`MAX_IFDS` directories, :data:`MAX_ENTRIES` entries each,
:data:`MAX_ARRAY_BYTES` per offset array), so a hostile header costs milliseconds; any
inconsistency simply ends the walk (this is a diagnosis, not a parser to trust).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

MAX_IFDS = 64
MAX_ENTRIES = 4096
MAX_ARRAY_BYTES = 64 << 20

_IMAGE_DESCRIPTION = 270
_STRIP_OFFSETS, _STRIP_BYTE_COUNTS = 273, 279
_TILE_OFFSETS, _TILE_BYTE_COUNTS = 324, 325
# TIFF field types: size in bytes and the NumPy dtype of an offset/count array of that type.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 6: 1, 7: 1, 8: 2, 9: 4, 11: 4, 12: 8, 13: 4, 16: 8,
              17: 8, 18: 8}
_INT_DTYPE = {3: "u2", 4: "u4", 13: "u4", 16: "u8", 18: "u8"}


@dataclass(frozen=True)
class TiffFacts:
    """What the directories of a TIFF say (see the module docstring)."""

    file_size: int
    description: str  # the first directory's ImageDescription ("" when absent)
    data_end: int  # the furthest byte a directory or its pixel data needs (0 when unknown)
    ifds: int  # directories read

    @property
    def aperio(self) -> bool:
        return self.description.lstrip().startswith("Aperio")

    @property
    def truncated(self) -> bool:
        return self.data_end > self.file_size


def read_tiff_facts(path: str | os.PathLike) -> TiffFacts | None:
    """The :class:`TiffFacts` of ``path``, or None when it is not a TIFF (or cannot be read)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            return _walk(fh, size)
    except (OSError, ValueError, struct.error):
        return None


def _walk(fh, size: int) -> TiffFacts | None:
    head = fh.read(16)
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return None
    e = "<" if head[:2] == b"II" else ">"
    magic = struct.unpack(e + "H", head[2:4])[0]
    if magic == 42:
        big, offset = False, struct.unpack(e + "I", head[4:8])[0]
    elif magic == 43 and len(head) >= 16:
        big, offset = True, struct.unpack(e + "Q", head[8:16])[0]
    else:
        return None
    count_fmt, entry_size, next_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
    inline = 8 if big else 4
    description = ""
    data_end = 0
    seen: set[int] = set()
    ifds = 0
    while offset and offset not in seen and ifds < MAX_IFDS:
        seen.add(offset)
        count_size = struct.calcsize(count_fmt)
        if offset + count_size > size:
            data_end = max(data_end, offset + count_size)
            break
        fh.seek(offset)
        n = struct.unpack(e + count_fmt, fh.read(count_size))[0]
        if n > MAX_ENTRIES:
            break
        table_end = offset + count_size + n * entry_size + struct.calcsize(next_fmt)
        data_end = max(data_end, table_end)
        if table_end > size:
            break
        table = fh.read(n * entry_size)
        fields: dict[int, tuple[int, int, bytes]] = {}
        for k in range(n):
            entry = table[k * entry_size:(k + 1) * entry_size]
            tag, typ = struct.unpack(e + "HH", entry[:4])
            cnt = struct.unpack(e + ("Q" if big else "I"), entry[4:4 + inline])[0]
            fields[tag] = (typ, cnt, entry[4 + inline:])
        ifds += 1
        if ifds == 1 and _IMAGE_DESCRIPTION in fields:
            raw = _values_bytes(fh, e, big, size, *fields[_IMAGE_DESCRIPTION], limit=4096)
            description = raw.split(b"\0", 1)[0].decode("latin-1") if raw else ""
        for offsets_tag, counts_tag in ((_TILE_OFFSETS, _TILE_BYTE_COUNTS),
                                        (_STRIP_OFFSETS, _STRIP_BYTE_COUNTS)):
            if offsets_tag in fields and counts_tag in fields:
                offs = _int_array(fh, e, big, size, *fields[offsets_tag])
                lens = _int_array(fh, e, big, size, *fields[counts_tag])
                if offs is None or lens is None:
                    # The array itself lies past the end: that is where the data ends.
                    data_end = max(data_end, _array_end(e, big, *fields[offsets_tag]),
                                   _array_end(e, big, *fields[counts_tag]))
                elif len(offs) == len(lens) and len(offs):
                    data_end = max(data_end, int((offs + lens).max()))
        fh.seek(offset + count_size + n * entry_size)
        offset = struct.unpack(e + next_fmt, fh.read(struct.calcsize(next_fmt)))[0]
        if offset >= size:
            data_end = max(data_end, offset + 1)
            break
    return TiffFacts(size, description, data_end, ifds)


def _array_end(e: str, big: bool, typ: int, cnt: int, value: bytes) -> int:
    nbytes = _TYPE_SIZE.get(typ, 1) * cnt
    if nbytes <= (8 if big else 4):
        return 0
    return int(struct.unpack(e + ("Q" if big else "I"), value[:8 if big else 4])[0]) + nbytes


def _values_bytes(fh, e: str, big: bool, size: int, typ: int, cnt: int, value: bytes,
                  limit: int = MAX_ARRAY_BYTES) -> bytes | None:
    """The raw bytes of a field's values (inline or at their offset), None if past the end."""
    nbytes = _TYPE_SIZE.get(typ, 1) * cnt
    inline = 8 if big else 4
    if nbytes <= inline:
        return value[:nbytes]
    where = struct.unpack(e + ("Q" if big else "I"), value[:inline])[0]
    if where + nbytes > size:
        return None
    fh.seek(where)
    return fh.read(min(nbytes, limit))


def _int_array(fh, e: str, big: bool, size: int, typ: int, cnt: int,
               value: bytes) -> np.ndarray | None:
    dtype = _INT_DTYPE.get(typ)
    if dtype is None or _TYPE_SIZE[typ] * cnt > MAX_ARRAY_BYTES:
        return np.zeros(0, np.uint64)  # not an offset array we read: no evidence either way
    raw = _values_bytes(fh, e, big, size, typ, cnt, value)
    if raw is None:
        return None
    order = np.dtype(dtype).newbyteorder("<" if e == "<" else ">")
    return np.frombuffer(raw, dtype=order).astype(np.uint64)
