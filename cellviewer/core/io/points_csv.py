"""Importing cell points from CSV: ``image,x,y,class`` plus any extra columns.

Accepted files:

- a points CSV as our data sets and most tools write it: columns ``image``, ``x``, ``y`` and a
  class column (``class``, ``label``, ``class_id`` or ``classification``; empty = unlabelled);
  every other column is kept per cell as metadata (strings), so nothing the file said is lost;
- CellViewer's own results CSV (``export.export_cells_csv``): its ``cell_id``, ``label_source``
  and ``review_status`` columns are restored, and its derived columns (µm, predictions, who and
  when) are not turned into metadata.

Tab-separated files are recognised by their header. Coordinates are level-0 pixels. Parsing uses
the stdlib ``csv`` module, not pandas: errors can name the exact line, and the GUI can import
this module at start-up.

An import is all or nothing: the whole file is read and checked first (every error names the
file and line), then written as one undoable action in one transaction.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellviewer.core.io.files import file_problem, open_regular
from cellviewer.core.io.messages import brief
from cellviewer.core.store import LABEL_SOURCES, REVIEW_STATUSES, ProjectError, ProjectStore
from cellviewer.core.store.ids import normalise_id

CLASS_COLUMNS = ("class", "label", "class_id", "classification")
ID_COLUMNS = ("cell_id", "id", "object id", "object_id")
# Columns of our own results CSV that are derived from other fields: not metadata on re-import.
EXPORT_DERIVED = frozenset({
    "x_um", "y_um", "predicted_class", "confidence", "model_id", "updated_by", "updated_at",
})


@dataclass
class PointsTable:
    """A checked points file, one entry per cell, in file order."""

    path: Path
    images: list[str]
    xy: np.ndarray  # (N, 2) float64
    labels: list[str | None]
    ids: list[str | None]
    label_sources: list[str | None]
    review_statuses: list[str | None]
    metadata: list[dict | None]
    lines: list[int]  # the line of the file each cell came from

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ImportResult:
    path: Path
    n_cells: int = 0
    ids: list[str] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    images_added: list[int] = field(default_factory=list)
    classes_added: list[str] = field(default_factory=list)
    model_id: int | None = None  # GeoJSON probabilities become a model's predictions
    skipped: int = 0
    updated: int = 0


def _error(path: Path, line: int | None, message: str) -> ProjectError:
    where = f"{path}, line {line}" if line is not None else str(path)
    return ProjectError(f"{where}: {message}")


def _columns(header: list[str]) -> str:
    """The header's columns for a message (at most the first 20, each briefly)."""
    shown = ", ".join(h if len(h) <= 40 else f"{h[:40]}..." for h in header[:20])
    return shown + (f", ... ({len(header)} columns)" if len(header) > 20 else "")


def _sniff_delimiter(header: str, path: Path) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    return "\t" if "\t" in header and "," not in header else ","


def read_points_csv(path: str | os.PathLike, *, class_column: str | None = None,
                    class_names: Sequence[str] | None = None) -> PointsTable:
    """Read and check a points CSV; ``ProjectError`` naming the file and line on bad input.

    ``class_column`` picks the class column (default: the first of ``CLASS_COLUMNS`` present);
    ``class_names`` maps integer class values to names (``class_id`` files such as Chula's).
    """
    path = Path(path)
    # Not open(): a FIFO or a device named like a CSV is refused instead of read (for ever).
    fh = io.TextIOWrapper(open_regular(path), newline="", encoding="utf-8-sig")
    with fh:
        try:
            header_line = fh.readline()
            fh.seek(0)
            reader = csv.reader(fh, delimiter=_sniff_delimiter(header_line, path))
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise _error(path, 1, "the file is empty (expected a header: image,x,y,class)")
            return _parse(path, reader, [h.strip() for h in header], class_column, class_names)
        except UnicodeDecodeError as e:
            raise _error(path, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
        except csv.Error as e:
            raise _error(path, reader.line_num, f"malformed CSV ({e})") from e


def _parse(path: Path, reader, header: list[str], class_column: str | None,
           class_names: Sequence[str] | None) -> PointsTable:
    lower = [h.lower() for h in header]
    if len(set(lower)) != len(lower):
        dup = next(h for h in header if lower.count(h.lower()) > 1)
        raise _error(path, 1, f"column {brief(dup)} appears twice")

    def find(*names: str) -> int | None:
        for name in names:
            if name.lower() in lower:
                return lower.index(name.lower())
        return None

    missing = [c for c in ("image", "x", "y") if find(c) is None]
    if missing:
        raise _error(path, 1, f"missing column(s) {', '.join(missing)} (the header has: "
                              f"{_columns(header)})")
    ci, xi, yi = find("image"), find("x"), find("y")
    if class_column is not None:
        ki = find(class_column)
        if ki is None:
            raise _error(path, 1, f"no class column {class_column!r} (the header has: "
                                  f"{_columns(header)})")
    else:
        ki = find(*CLASS_COLUMNS)
    ii = find(*ID_COLUMNS)
    si, ri = find("label_source"), find("review_status")
    ours = ii is not None and si is not None  # a results CSV written by CellViewer
    used = {i for i in (ci, xi, yi, ki, ii, si, ri) if i is not None}
    derived = {j for j in range(len(header))
               if ours and (lower[j] in EXPORT_DERIVED or lower[j].startswith("p_"))}
    extra = [(j, header[j]) for j in range(len(header)) if j not in used | derived]

    images: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    labels: list[str | None] = []
    ids: list[str | None] = []
    sources: list[str | None] = []
    statuses: list[str | None] = []
    metadata: list[dict | None] = []
    lines: list[int] = []
    seen_ids: dict[str, int] = {}
    width = len(header)
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != width:
            raise _error(path, line, f"expected {width} fields, found {len(row)}")
        image = row[ci].strip()
        if not image:
            raise _error(path, line, "the image is empty")
        x = _number(path, line, "x", row[xi])
        y = _number(path, line, "y", row[yi])
        label = row[ki].strip() if ki is not None else ""
        if label and class_names is not None:
            label = _class_name(path, line, label, class_names)
        cell_id = None
        if ii is not None and row[ii].strip():
            cell_id = normalise_id(row[ii])
            if cell_id is None:
                raise _error(path, line, f"cell id {brief(row[ii])} is not a UUID")
            if cell_id in seen_ids:
                raise _error(path, line, f"cell id {cell_id} already on line {seen_ids[cell_id]}")
            seen_ids[cell_id] = line
        source = row[si].strip() if si is not None and row[si].strip() else None
        if source is not None and source not in LABEL_SOURCES:
            raise _error(path, line, f"label source {brief(source)} is not one of "
                                     f"{', '.join(LABEL_SOURCES)}")
        status = row[ri].strip() if ri is not None and row[ri].strip() else None
        if status is not None and status not in REVIEW_STATUSES:
            raise _error(path, line, f"review status {brief(status)} is not one of "
                                     f"{', '.join(REVIEW_STATUSES)}")
        meta = {name: row[j] for j, name in extra if row[j] != ""}
        images.append(image)
        xs.append(x)
        ys.append(y)
        labels.append(label or None)
        ids.append(cell_id)
        sources.append(source)
        statuses.append(status)
        metadata.append(meta or None)
        lines.append(line)
    if not images:
        raise _error(path, None, "no cells in the file (only a header)")
    xy = np.column_stack([np.array(xs, dtype=np.float64), np.array(ys, dtype=np.float64)])
    return PointsTable(path, images, xy, labels, ids, sources, statuses, metadata, lines)


def _class_name(path: Path, line: int, label: str, class_names: Sequence[str]) -> str:
    """The name of class index ``label``; a negative index is refused (Python's indexing would
    quietly pick a class from the end of the list)."""
    try:
        index = int(label)
    except ValueError:
        index = -1
    if not 0 <= index < len(class_names):
        raise _error(path, line, f"class {brief(label)} is not an index into the "
                                 f"{len(class_names)} class names given (0-"
                                 f"{len(class_names) - 1})")
    return class_names[index]


def _number(path: Path, line: int, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(path, line, f"{name} {brief(text)} is not a number") from None
    if not math.isfinite(value):
        raise _error(path, line, f"{name} {brief(text)} is not a finite number")
    return value


ImageInfoFn = Callable[[Path], tuple[int, int, float | None, str | None]]


def import_points_csv(store: ProjectStore, path: str | os.PathLike,
                      image_dir: str | os.PathLike | None = None, *,
                      class_column: str | None = None, class_names: Sequence[str] | None = None,
                      source: str = "imported", image_info: ImageInfoFn | None = None,
                      allow_outside: bool = False) -> ImportResult:
    """Import a points CSV into ``store`` as one undoable action; all or nothing.

    Image names are resolved against ``image_dir`` (default: the CSV's folder) unless absolute;
    images already in the project are reused, others are opened (``image_info``, default
    :func:`cellviewer.core.io.project_import.image_info`) and added. Unknown classes are added.
    Points outside their image are an error unless ``allow_outside``.
    """
    table = read_points_csv(path, class_column=class_column, class_names=class_names)
    return import_points_table(store, table, image_dir, source=source, image_info=image_info,
                               allow_outside=allow_outside)


def import_points_table(store: ProjectStore, table: PointsTable,
                        image_dir: str | os.PathLike | None = None, *, source: str = "imported",
                        image_info: ImageInfoFn | None = None,
                        allow_outside: bool = False) -> ImportResult:
    """Write a checked ``PointsTable`` into ``store`` (see ``import_points_csv``)."""
    from cellviewer.core.io.project_import import image_info as default_image_info

    image_info = image_info or default_image_info
    base = Path(image_dir) if image_dir is not None else table.path.parent
    path = table.path
    result = ImportResult(path)

    # Resolve every image before writing anything: a missing or broken one stops the import.
    first_line: dict[str, int] = {}
    for name, line in zip(table.images, table.lines, strict=True):
        first_line.setdefault(name, line)
    # name -> (path, its image id when already in the project, (width, height, ...))
    resolved: dict[str, tuple[Path, int | None, tuple]] = {}
    for name, line in first_line.items():
        try:
            p = Path(name).expanduser()
        except RuntimeError:  # ~user of a user this system does not know
            raise _error(path, line, f"image {brief(name)}: no home folder for "
                                     f"{brief(name.split('/')[0])}") from None
        p = p if p.is_absolute() else base / p
        existing = store.image_id_for_path(p)
        if existing is not None:
            im = store.image(existing)
            resolved[name] = (p, existing, (im.width, im.height))
            continue
        problem = file_problem(p)  # never opens: a FIFO is named, not waited on
        if problem == "not found":
            raise _error(path, line, f"image {brief(name)} not found (looked for {brief(str(p))})")
        if problem is not None:
            raise _error(path, line, f"image {brief(name)} {problem}")
        try:
            info = image_info(p)
        except Exception as e:  # ImageOpenError and friends: name the line that needs it
            raise _error(path, line, f"image {brief(name)} cannot be opened: {e}") from e
        resolved[name] = (p, None, info)

    if not allow_outside:
        for i, name in enumerate(table.images):
            w, h = resolved[name][2][:2]
            x, y = table.xy[i]
            if not (0 <= x <= w and 0 <= y <= h):
                raise _error(path, table.lines[i], f"point ({x:g}, {y:g}) lies outside image "
                                                   f"{brief(name)} ({w}x{h} pixels)")

    known_ids = [i for i in table.ids if i is not None]
    if known_ids:
        clash = store.existing_cell_ids(known_ids)
        if clash:
            line = table.lines[table.ids.index(clash[0])]
            raise _error(path, line, f"cell id {clash[0]} is already in the project")

    with store.batch(f"Import {path.name}", action="import"):
        class_ids: dict[str, int] = {}
        for label in dict.fromkeys(lb for lb in table.labels if lb is not None):
            cid = store.class_id(label)
            if cid is None:
                cid = store.add_class(label)
                result.classes_added.append(label)
            class_ids[label] = cid
        by_image: dict[str, list[int]] = {}
        for i, name in enumerate(table.images):
            by_image.setdefault(name, []).append(i)
        ids: list[str | None] = [None] * len(table)
        for name, rows in by_image.items():
            p, image_id, info = resolved[name]
            if image_id is None:
                w, h, mpp, fp = info
                image_id = store.add_image(p, w, h, mpp=mpp, fingerprint=fp)
                result.images_added.append(image_id)
            result.image_ids.append(image_id)
            given = [table.ids[i] for i in rows]
            new = store.add_cells(
                image_id,
                table.xy[rows],
                [class_ids[lb] if (lb := table.labels[i]) else None for i in rows],
                source=[table.label_sources[i] or source for i in rows],
                ids=_fill_ids(given),
                review_status=[table.review_statuses[i] or "unreviewed" for i in rows],
                metadata=[table.metadata[i] for i in rows],
            )
            for i, cell_id in zip(rows, new, strict=True):
                ids[i] = cell_id
    result.ids = ids  # type: ignore[assignment]
    result.n_cells = len(ids)
    return result


def _fill_ids(given: list[str | None]) -> list[str]:
    """The given ids, a fresh one wherever none was given."""
    from cellviewer.core.store.ids import new_ids

    fresh = iter(new_ids(sum(g is None for g in given)))
    return [g if g is not None else next(fresh) for g in given]
