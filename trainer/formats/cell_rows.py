"""What every cell-file reader gives back: rows of cells (image, x, y, class, outline,
metadata, and where in the file each came from), regions, and what was skipped and why.

One reader for the trainer and the app: the parsers in this package (``tables``,
``geojson_read``, ``hovernet``; ``read_cell_file`` picks one) turn a file into a
:class:`ParsedFile`; the app's core resolves images and classes and writes the store, the
trainer's ``build-patchset`` and ``predict`` crop patches from the same rows. So both accept
exactly the same files, and both refuse a bad one with the same :class:`CellFileError`, which
names the file, the line or feature, and the cause.

Also here: reading a file's bytes without blocking on a FIFO or reading a device for ever, and
decoding text the way people's files come (UTF-8 with or without BOM, UTF-16 with a BOM, else
Windows-1252 with a notice; NUL bytes or bytes no encoding takes are refused with their line).

Standard library and NumPy only (``trainer.formats`` is torch-free by contract).
"""

from __future__ import annotations

import os
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path


class CellFileError(ValueError):
    """A cell file that cannot be read; the message names the file, the line or feature and
    the cause."""


def file_error(path: Path, where: str | None, message: str) -> CellFileError:
    return CellFileError(f"{path}, {where}: {message}" if where else f"{path}: {message}")


@dataclass
class CellRow:
    """One cell as a file gave it. ``image`` is the image as the file names it (None: the file
    holds one image's cells and names none, e.g. GeoJSON). Coordinates are in the file's units
    (:attr:`ParsedFile.units`), x the column and y the row."""

    x: float
    y: float
    where: str  # "line 12", "feature 3", "feature 3, part 2"
    image: str | None = None
    label: str | None = None
    outline: list[list[float]] | None = None  # the outer ring [[x, y], ...], closed
    metadata: dict = field(default_factory=dict)
    cell_id: str | None = None  # a UUID the file gave the cell
    label_source: str | None = None
    review_status: str | None = None
    color: tuple[int, int, int] | None = None  # the class colour the file gave
    probs: dict[str, float] | None = None  # a model's class probabilities
    proposed: bool = False  # a detector's proposal, not yet accepted (a detections CSV)
    score: float | None = None  # the detector's score


@dataclass
class RegionRow:
    """An annotation polygon (a tissue region, a rectangle, an ellipse): a region, not a cell.
    ``kind`` is its classification, ``name`` its name; ``geometry`` the GeoJSON geometry."""

    where: str
    geometry: dict
    image: str | None = None
    kind: str | None = None
    name: str | None = None
    region_id: str | None = None
    color: tuple[int, int, int] | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class ParsedFile:
    """A checked cell file. ``format`` names what it was recognised as (for the preview and
    for messages); ``units`` is "px" or "um" (µm: converted with each image's pixel size);
    ``numeric_classes``: the class values are ids into a class set (Chula's ``class_id``,
    HoVer-Net's ``type``) that the caller must name; ``prediction_model``: the rows' ``probs``
    are a model's predictions (the trainer's predict CSV, QuPath ``p_`` measurements)."""

    path: Path
    format: str
    rows: list[CellRow] = field(default_factory=list)
    regions: list[RegionRow] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    notices: list[str] = field(default_factory=list)
    units: str = "px"
    numeric_classes: bool = False
    prediction_model: str | None = None
    image_hint: str | None = None  # a one-image file: the image its name suggests
    header: list[str] = field(default_factory=list)  # a table's columns

    def skip_reasons(self) -> dict[str, int]:
        """How many things were skipped, by reason."""
        out: dict[str, int] = {}
        for _, why in self.skipped:
            out[why] = out.get(why, 0) + 1
        return out


# ---------------------------------------------------------------------------------------------
# Files and text

MAX_FILE_BYTES = 4 << 30  # 4 GiB: no cell file is larger; a device or a bomb would be


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file; ``CellFileError`` naming it when it is missing, unreadable
    or not a regular file (a FIFO would block ``open`` for ever, a device read without end).
    The path is checked, opened without blocking and checked again on the descriptor."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise file_error(path, None, "no such file") from None
    except ValueError:
        raise file_error(path, None, "has a NUL character in its name") from None
    except OSError as e:
        raise file_error(path, None, f"cannot be read ({e.strerror})") from None
    _check_regular(path, mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise file_error(path, None, f"cannot be read ({e.strerror})") from None
    try:
        _check_regular(path, os.fstat(fd).st_mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise file_error(path, None, f"cannot be read ({e.strerror})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise file_error(path, None, "larger than 4 GiB: no cell file")
    return data


def _check_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise file_error(path, None, "is a folder, not a file")
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "not a plain file")
    raise file_error(path, None, f"is not a regular file ({kind})")


def _line_of(data: bytes | str, pos: int) -> int:
    newline: bytes | str = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, pos) + 1  # type: ignore[arg-type]


def decode_text(path: Path, data: bytes, notices: list[str]) -> str:
    """``data`` as text: UTF-8 (with or without BOM), UTF-16 with its BOM, else Windows-1252
    (cp1252, what Excel writes on Western Windows), which adds a notice naming the file. NUL
    characters, or bytes that none of these decode, are refused with their line."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise file_error(path, None, f"not UTF-16 text although it starts with a UTF-16 "
                                         f"byte-order mark ({e.reason} at byte {e.start})"
                             ) from None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as utf8:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError as e:
                raise file_error(path, f"line {_line_of(data, e.start)}",
                                 f"not text: byte 0x{data[e.start]:02x} is neither UTF-8 "
                                 f"({utf8.reason}) nor Windows-1252") from None
            notices.append(f"{path}: not UTF-8; read as Windows-1252 (cp1252)")
    nul = text.find("\x00")
    if nul >= 0:
        raise file_error(path, f"line {_line_of(text, nul)}",
                         "a NUL character: a binary file, not text")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate from a broken UTF-16 file
            raise file_error(path, f"line {_line_of(text, e.start)}",
                             "an unpaired UTF-16 surrogate, which is no text") from None
    return text


def normal_uuid(text: object) -> str | None:
    """A UUID string in its canonical (lowercase, hyphenated) form, or None."""
    if not isinstance(text, str) or not 32 <= len(text.strip()) <= 38:
        return None
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


def brief(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut short for messages (a hostile value can be a megabyte long)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:40]!r}... ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length():,} bits"
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother = 3, limit, limit
    r.maxlist = r.maxtuple = r.maxdict = 6
    return r.repr(value)


# ---------------------------------------------------------------------------------------------
# Which reader

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".tab")
JSON_SUFFIXES = (".geojson", ".json", ".geojson.gz", ".json.gz", ".zip")
#: what the file dialogs offer, in their order
IMPORT_SUFFIXES = (".csv", ".tsv", ".txt", ".geojson", ".json", ".geojson.gz", ".zip")


def is_json_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(JSON_SUFFIXES)


def read_cell_file(path: str | os.PathLike, *, columns=None,
                   class_names: list[str] | None = None,
                   polygons_as_cells: bool = False) -> ParsedFile:
    """Read any supported cell file: a delimited table (``columns``: a
    :class:`trainer.formats.tables.ColumnMap` for tables whose columns are not recognised),
    GeoJSON (plain, ``.gz`` or ``.zip``; ``polygons_as_cells``: annotation polygons become
    cells, not regions) or HoVer-Net JSON. ``class_names`` maps numeric class ids to names.
    ``CellFileError`` naming the file, the line or feature and the cause on bad input."""
    path = Path(path)
    if is_json_name(path):
        from trainer.formats.geojson_read import load_json_file

        notices: list[str] = []
        data = load_json_file(path, notices)
        from trainer.formats.hovernet import is_hovernet, read_hovernet

        if is_hovernet(data):
            parsed = read_hovernet(path, data, class_names=class_names)
        else:
            from trainer.formats.geojson_read import read_geojson_data

            parsed = read_geojson_data(path, data, polygons_as_cells=polygons_as_cells)
        parsed.notices[:0] = notices
        return parsed
    from trainer.formats.tables import read_table

    return read_table(path, columns=columns, class_names=class_names)
