"""Delimited tables of cells: comma, semicolon or tab separated, in the forms tools write them.

Recognised by their header, without a question (names compared without case or surrounding
spaces):

- a points table: ``image, x, y`` and optionally a class column (``class``, ``label``,
  ``classification``, ``class_name``; ``class_id`` holds ids into a class set, as Chula RBC-12
  ships); the shipped CRC and Chula files are of this kind;
- CellViewer's cells CSV (``cell_id, image, x, y, x_um, y_um, label, label_source,
  review_status, ...``): ids, label sources and review statuses come back; the derived
  columns (µm, predictions, who and when) are not kept as metadata;
- the trainer's ``predict`` CSV (``cell_id, source, x, y, label, predicted, confidence,
  p_<class>...``): the probabilities come in as a model's predictions;
- QuPath's measurement tables (*Measure → Export measurements*, tab-separated): ``Image``,
  ``Class`` (0.4) or ``Classification`` (0.5+), ``Centroid X µm``/``Centroid Y µm`` (µm, then
  converted with each image's pixel size) or ``Centroid X px``/``Centroid Y px``; rows whose
  ``Object type`` is no detection or cell are skipped (a table has no outline);
- a napari points layer CSV (``index, axis-0, axis-1, ...``: the last two axes are row and
  column; no image column: the caller names the image).

Any other table raises :class:`ColumnsNeeded` (its header and first rows, for a column-mapping
step); reading again with a :class:`ColumnMap` takes the columns it names. Every other column
is kept per cell as metadata (strings), so nothing the file said is lost. Parsing uses the
stdlib ``csv`` module: each error names the exact line.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from trainer.formats.cell_rows import (
    CellFileError,
    CellRow,
    ParsedFile,
    brief,
    decode_text,
    file_error,
    normal_uuid,
    read_bytes,
)

# The project's vocabularies (cellviewer/core/store/schema.py; a test keeps them equal).
LABEL_SOURCES = ("manual", "imported", "model-accepted", "corrected", "detector")
REVIEW_STATUSES = ("unreviewed", "annotated", "checked", "reviewed")

IMAGE_NAMES = ("image", "image_name", "image name", "filename", "file", "file_name")
CLASS_NAMES = ("class", "label", "classification", "class_name", "class name")
CLASS_ID_NAMES = ("class_id", "classid", "class id")
MICRO = ("µm", "μm", "um")  # MICRO SIGN (QuPath), GREEK SMALL LETTER MU, plain letters
# Columns of our own cells CSV that are derived from other fields: not metadata on re-import.
CELLS_CSV_DERIVED = frozenset({
    "x_um", "y_um", "predicted_class", "confidence", "model_id", "model", "model_file",
    "model_sha256", "updated_by", "updated_at",
})
PREDICT_DERIVED = frozenset({"predicted", "confidence"})
QUPATH_CELL_TYPES = frozenset({"detection", "cell"})  # "Object type" values kept
MAX_FIELD = 1 << 20  # one field of a table: a megabyte is no cell's


@dataclass
class ColumnMap:
    """Which columns hold what (header names as written). ``image`` None: the file is of one
    image, which the caller names. ``units``: "px" or "um". ``numeric``: the class column
    holds ids into a class set."""

    x: str
    y: str
    image: str | None = None
    label: str | None = None
    units: str = "px"
    numeric: bool = False


class ColumnsNeeded(CellFileError):
    """A table whose columns are not recognised: ``header`` and the first rows (``sample``) for
    a column-mapping step; ``guess`` maps what could be recognised."""

    def __init__(self, message: str, header: list[str], sample: list[list[str]],
                 guess: dict[str, str]) -> None:
        super().__init__(message)
        self.header = header
        self.sample = sample
        self.guess = guess


@dataclass
class _Layout:
    format: str
    columns: ColumnMap
    ids: int | None = None
    sources: int | None = None
    statuses: int | None = None
    object_type: int | None = None
    scores: int | None = None  # a detector's score ("score", "detection_score")
    proposed: int | None = None  # the cells CSV's "proposed" column
    all_proposed: bool = False  # a detections CSV (``cellviewer detect``): every row is one
    probs: dict[int, str] = field(default_factory=dict)  # column -> class
    derived: set[int] = field(default_factory=set)


def sniff_delimiter(header: str, path: Path) -> str:
    """Tab for ``.tsv``/``.tab`` files and headers with tabs; else ``;`` or ``,``, whichever
    the header has more of (Excel in much of Europe writes ``;``)."""
    if path.suffix.lower() in (".tsv", ".tab") or "\t" in header:
        return "\t"
    return ";" if header.count(";") > header.count(",") else ","


def _find(lower: list[str], *names: str) -> int | None:
    for name in names:
        if name in lower:
            return lower.index(name)
    return None


def _centroid_columns(lower: list[str]) -> tuple[int, int, str] | None:
    """QuPath's ``Centroid X µm``/``Centroid Y µm`` (or ``px``): columns and units."""
    for unit, spellings in (("um", MICRO), ("px", ("px",))):
        for s in spellings:
            xi, yi = _find(lower, f"centroid x {s}"), _find(lower, f"centroid y {s}")
            if xi is not None and yi is not None:
                return xi, yi, unit
    return None


def recognise(header: list[str]) -> _Layout | None:
    """The layout of a table with this header, or None when it is not recognised."""
    lower = [h.strip().lower() for h in header]
    image = _find(lower, *IMAGE_NAMES)
    label = _find(lower, *CLASS_NAMES)
    class_id = _find(lower, *CLASS_ID_NAMES)
    numeric = label is None and class_id is not None
    label = label if label is not None else class_id
    xi, yi = _find(lower, "x"), _find(lower, "y")
    centroid = _centroid_columns(lower)
    cells_csv = {"cell_id", "image", "label_source", "review_status"} <= set(lower)
    predict = {"cell_id", "source", "x", "y", "predicted"} <= set(lower)
    if predict:
        layout = _Layout("CellViewer predict CSV", ColumnMap(
            header[lower.index("x")], header[lower.index("y")], header[lower.index("source")],
            header[lower.index("label")] if "label" in lower else None))
        layout.probs = {j: header[j].strip()[2:] for j, h in enumerate(lower)
                        if h.startswith("p_") and len(h) > 2}
        layout.derived = {j for j, h in enumerate(lower) if h in PREDICT_DERIVED}
        layout.derived.add(lower.index("cell_id"))  # file:line of the predict input
        return layout
    if centroid is not None:
        qlabel = _find(lower, "classification", "class")
        layout = _Layout("QuPath measurement table", ColumnMap(
            header[centroid[0]], header[centroid[1]],
            header[image] if image is not None else None,
            header[qlabel] if qlabel is not None else None, centroid[2]))
        layout.ids = _find(lower, "object id")
        layout.object_type = _find(lower, "object type")
        return layout
    if xi is not None and yi is not None and image is not None:
        fmt = "CellViewer cells CSV" if cells_csv else "points table"
        layout = _Layout(fmt, ColumnMap(header[xi], header[yi], header[image],
                                        header[label] if label is not None else None,
                                        numeric=numeric))
        layout.ids = _find(lower, "cell_id", "id", "object id", "object_id")
        layout.sources = _find(lower, "label_source")
        layout.statuses = _find(lower, "review_status")
        # a detections CSV's "score", the cells CSV's "detection_score"; a "score" column of
        # a labelled table is the user's own (kept as metadata)
        layout.scores = _find(lower, "detection_score")
        if layout.scores is None and label is None and not cells_csv:
            layout.scores = _find(lower, "score")
        layout.proposed = _find(lower, "proposed")
        if layout.scores is not None and label is None and not cells_csv:
            layout.format = "detections CSV"  # ``cellviewer detect``: image,x,y,score
            layout.all_proposed = True
        if cells_csv:
            layout.derived = {j for j, h in enumerate(lower)
                              if h in CELLS_CSV_DERIVED or h.startswith("p_")}
        return layout
    axes = sorted((h for h in lower if h.startswith("axis-") and h[5:].isdigit()),
                  key=lambda h: int(h[5:]))
    if len(axes) >= 2 and image is None:
        layout = _Layout("napari points CSV", ColumnMap(
            header[lower.index(axes[-1])], header[lower.index(axes[-2])], None,
            header[label] if label is not None else None, numeric=numeric))
        layout.derived = {j for j, h in enumerate(lower) if h == "index"}
        return layout
    return None


def _layout_of_map(header: list[str], columns: ColumnMap, path: Path) -> _Layout:
    lower = [h.strip().lower() for h in header]
    for role in ("x", "y", "image", "label"):
        name = getattr(columns, role)
        if name is not None and name.strip().lower() not in lower:
            raise file_error(path, "line 1", f"no column {brief(name)} (the header has: "
                                             f"{_columns(header)})")
    layout = _Layout("table (columns chosen)", columns)
    layout.ids = _find(lower, "cell_id", "object id")
    return layout


def _columns(header: list[str]) -> str:
    shown = ", ".join(h if len(h) <= 40 else f"{h[:40]}..." for h in header[:20])
    return shown + (f", ... ({len(header)} columns)" if len(header) > 20 else "")


def read_table(path: str | os.PathLike, *, columns: ColumnMap | None = None,
               class_names: list[str] | None = None,
               label_column: str | None = None) -> ParsedFile:
    """Read and check a delimited table of cells (see the module doc). ``class_names`` maps
    class ids (integers, or a name of the list) to names; without it a ``class_id`` column
    leaves ``numeric_classes`` set for the caller to resolve. ``label_column`` picks the class
    column of a recognised table."""
    path = Path(path)
    notices: list[str] = []
    text = decode_text(path, read_bytes(path), notices)
    first = text.split("\n", 1)[0]
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first, path))
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise file_error(path, "line 1", "empty file (expected a header such as "
                                             "image,x,y,class)")
        header = [h.strip() for h in header]
        lower = [h.lower() for h in header]
        if len(set(lower)) != len(lower):
            dup = next(h for h in header if lower.count(h.lower()) > 1)
            raise file_error(path, "line 1", f"column {brief(dup)} appears twice")
        if columns is not None:
            layout = _layout_of_map(header, columns, path)
        else:
            found = recognise(header)
            if found is None:
                sample = [r for _, r in zip(range(5), reader, strict=False)]
                raise _columns_needed(path, header, sample)
            layout = found
        if label_column is not None:
            if label_column.strip().lower() not in lower:
                raise file_error(path, "line 1", f"no class column {brief(label_column)} (the "
                                                 f"header has: {_columns(header)})")
            layout.columns.label = label_column
            layout.columns.numeric = label_column.strip().lower() in CLASS_ID_NAMES
        parsed = ParsedFile(path, layout.format, notices=notices, units=layout.columns.units,
                            header=header)
        _read_rows(path, reader, header, layout, class_names, parsed)
    except csv.Error as e:
        raise file_error(path, f"line {reader.line_num}", f"malformed table ({e})") from None
    if not parsed.rows and not parsed.skipped:
        raise file_error(path, None, "no cells in the file (only a header)")
    return parsed


def _columns_needed(path: Path, header: list[str], sample: list[list[str]]) -> ColumnsNeeded:
    lower = [h.lower() for h in header]
    guess = {role: header[i] for role, i in (
        ("image", _find(lower, *IMAGE_NAMES)), ("x", _find(lower, "x")),
        ("y", _find(lower, "y")), ("label", _find(lower, *CLASS_NAMES, *CLASS_ID_NAMES)))
        if i is not None}
    missing = [r for r in ("image", "x", "y") if r not in guess]
    return ColumnsNeeded(f"{path}, line 1: missing column(s) {', '.join(missing)} (the header "
                         f"has: {_columns(header)}); choose the columns", header, sample, guess)


def _read_rows(path: Path, reader, header: list[str], layout: _Layout,
               class_names: list[str] | None, parsed: ParsedFile) -> None:
    lower = [h.lower() for h in header]
    cols = layout.columns

    def index(name: str | None) -> int | None:
        return lower.index(name.strip().lower()) if name is not None else None

    xi, yi, ii, ki = index(cols.x), index(cols.y), index(cols.image), index(cols.label)
    used = {i for i in (xi, yi, ii, ki, layout.ids, layout.sources, layout.statuses)
            if i is not None}
    extra = [(j, header[j]) for j in range(len(header))
             if j not in used | layout.derived | set(layout.probs)]
    numeric = cols.numeric and class_names is None
    parsed.numeric_classes = numeric
    if layout.probs:
        parsed.prediction_model = path.name
    width = len(header)
    seen_ids: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        where = f"line {line}"
        if not row or all(not v.strip() for v in row):
            continue  # a blank line
        if len(row) != width:
            raise file_error(path, where, f"expected {width} fields, found {len(row)}")
        if layout.object_type is not None:
            kind = row[layout.object_type].strip().lower()
            if kind and kind not in QUPATH_CELL_TYPES:
                parsed.skipped.append((where, f"a QuPath {kind} (not a cell)"))
                continue
        image = None
        if ii is not None:
            image = row[ii].strip()
            if not image:
                raise file_error(path, where, "the image is empty")
        x = number(path, where, "x", row[xi])
        y = number(path, where, "y", row[yi])
        label = row[ki].strip() if ki is not None else ""
        if label and class_names is not None and ki is not None:
            label = class_name(path, where, header[ki], label, class_names)
        cell = CellRow(x, y, where, image, label or None)
        if layout.ids is not None and row[layout.ids].strip():
            raw = row[layout.ids].strip()
            cell_id = normal_uuid(raw)
            if cell_id is None:
                cell.metadata["source_id"] = raw
            elif cell_id in seen_ids:
                raise file_error(path, where, f"cell id {cell_id} already on line "
                                              f"{seen_ids[cell_id]}")
            else:
                seen_ids[cell_id] = line
                cell.cell_id = cell_id
        if layout.sources is not None and row[layout.sources].strip():
            cell.label_source = _one_of(path, where, "label source",
                                        row[layout.sources].strip(), LABEL_SOURCES)
        if layout.statuses is not None and row[layout.statuses].strip():
            cell.review_status = _one_of(path, where, "review status",
                                         row[layout.statuses].strip(), REVIEW_STATUSES)
        if layout.probs:
            probs = {}
            for j, name in layout.probs.items():
                if row[j].strip():
                    probs[name] = number(path, where, header[j], row[j])
            cell.probs = probs if len(probs) == len(layout.probs) else None
        if layout.scores is not None and row[layout.scores].strip():
            cell.score = number(path, where, header[layout.scores], row[layout.scores])
        if layout.all_proposed:
            cell.proposed, cell.label_source = True, "detector"
        elif layout.proposed is not None:
            cell.proposed = row[layout.proposed].strip().lower() in ("true", "1", "yes")
        cell.metadata.update({name: row[j] for j, name in extra if row[j] != ""
                              and j not in (layout.scores, layout.proposed)})
        if isinstance(cell.metadata.get("outline"), str):  # CellViewer's cells CSV: JSON
            cell.outline = _outline(cell.metadata["outline"])
            if cell.outline is not None:
                del cell.metadata["outline"]
        parsed.rows.append(cell)


def _outline(text: str) -> list[list[float]] | None:
    """A cell outline written as JSON ``[[x, y], …]`` (finite, at least 3 points), else None
    (the text stays metadata)."""
    import json
    import math

    if not text.lstrip().startswith("[") or len(text) > MAX_FIELD:
        return None
    try:
        points = json.loads(text)
        ring = [[float(p[0]), float(p[1])] for p in points if len(p) == 2]
    except (ValueError, TypeError, IndexError, KeyError, RecursionError):
        return None
    if len(ring) < 3 or len(ring) != len(points) or not all(math.isfinite(v) for p in ring
                                                            for v in p):
        return None
    return ring


def _one_of(path: Path, where: str, what: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise file_error(path, where, f"{what} {brief(value)} is not one of "
                                      f"{', '.join(allowed)}")
    return value


def number(path: Path, where: str, name: str, text: str) -> float:
    """A finite number, or ``CellFileError`` naming the column and the value."""
    try:
        value = float(text)
    except ValueError:
        raise file_error(path, where, f"{name} {brief(text.strip())} is not a number") from None
    if not math.isfinite(value):
        raise file_error(path, where, f"{name} {brief(text.strip())} is not a finite number")
    return value


def class_name(path: Path, where: str, column: str, value: str,
               class_names: list[str]) -> str:
    """A class value through a class set: one of its names, or an index into it (a negative
    index is refused: Python's indexing would quietly pick a class from the end)."""
    if value in class_names:
        return value
    try:
        k = int(value)
    except ValueError:
        k = -1
    if not 0 <= k < len(class_names):
        raise file_error(path, where, f"{column} {brief(value)} is neither a class id "
                                      f"0..{len(class_names) - 1} nor a class name of the "
                                      f"{len(class_names)} classes given")
    return class_names[k]
