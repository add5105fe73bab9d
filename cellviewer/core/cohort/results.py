"""A cohort run's files: per slide, ``<key>.cells.csv`` and ``<key>.geojson`` in one folder.

Both are written atomically (a temporary file beside the target, renamed over it:
:func:`cellviewer.core.export.atomic.atomic_write`), so a shard killed mid-slide leaves the
previous files or none, never half a file, and a slide whose two files exist is finished (a
re-run may skip it). The contents depend only on the slide and the settings (ids from
:mod:`.ids`, cells in a fixed order, numbers written exactly), so a shard run twice, or the
same slide run by another shard, writes the same bytes.

- ``<key>.cells.csv``: ``cell_id, image, x, y`` then ``score`` (detection) and, after a
  prediction, ``predicted_class, confidence, p_<class>…``; x and y in level-0 pixels, written
  as the shortest decimal that reads back as the same float.
- ``<key>.geojson``: the same cells as QuPath detections, by the project's own GeoJSON writer
  (:mod:`cellviewer.core.export.geojson_write`), the slide named in its ``cellviewer`` header,
  so ``cellviewer import PROJECT FOLDER`` (which reads these files) finds each slide's image.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CELLS_SUFFIX = ".cells.csv"
GEOJSON_SUFFIX = ".geojson"


@dataclass
class SlideResult:
    """The cells of one slide, in the order they are written."""

    image: str  # the slide as the files name it (relative to the folder, else absolute)
    ids: list[str]
    xy: np.ndarray  # (N, 2) float64
    scores: np.ndarray | None = None  # (N,) the detector's
    classes: list[str] | None = None  # a model's classes, with probs
    probs: np.ndarray | None = None  # (N, K) float32

    def __len__(self) -> int:
        return len(self.ids)

    def class_counts(self) -> dict[str, int]:
        """Cells per predicted class (empty without a prediction)."""
        if self.probs is None or self.classes is None or not len(self.ids):
            return {}
        counts = np.bincount(self.probs.argmax(axis=1), minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts.tolist(), strict=True) if n}


def result_paths(folder: str | os.PathLike, key: str) -> tuple[Path, Path]:
    folder = Path(folder)
    return folder / f"{key}{CELLS_SUFFIX}", folder / f"{key}{GEOJSON_SUFFIX}"


def is_done(folder: str | os.PathLike, key: str) -> bool:
    """Whether both of the slide's files exist (each is written whole or not at all)."""
    return all(p.is_file() for p in result_paths(folder, key))


def image_name(slide: Path, folder: str | os.PathLike) -> str:
    """The slide as the result files name it: relative to ``folder`` when under it (so a
    results folder beside its slides moves with them), else absolute."""
    full = Path(os.path.abspath(slide))
    try:
        return full.relative_to(Path(os.path.abspath(folder))).as_posix()
    except ValueError:
        return str(full)


def _number(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ""


def write_result(folder: str | os.PathLike, key: str, result: SlideResult) -> tuple[Path, Path]:
    """Write the slide's two files atomically (``ExportError`` naming the file on failure)."""
    from cellviewer.core.export.atomic import atomic_write
    from cellviewer.core.export.geojson_write import point_features, write_feature_collection

    csv_path, geojson_path = result_paths(folder, key)
    header = ["cell_id", "image", "x", "y"]
    if result.scores is not None:
        header.append("score")
    classes = list(result.classes or []) if result.probs is not None else []
    if classes:
        header += ["predicted_class", "confidence", *(f"p_{c}" for c in classes)]
    with atomic_write(csv_path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(_csv_rows(result, classes))
    features = point_features(result.ids, result.xy, scores=result.scores,
                              classes=classes or None, probs=result.probs if classes else None)
    with atomic_write(geojson_path) as fh:
        write_feature_collection(fh, features, header={"cellviewer": {"image": result.image}})
    return csv_path, geojson_path


def _csv_rows(result: SlideResult, classes: Sequence[str]) -> Iterator[list[str]]:
    from cellviewer.core.export.geojson_write import float32_text

    for i, cell_id in enumerate(result.ids):
        row = [cell_id, result.image, _number(result.xy[i, 0]), _number(result.xy[i, 1])]
        if result.scores is not None:
            row.append(float32_text(result.scores[i]))
        if classes and result.probs is not None:
            p = result.probs[i]
            k = int(p.argmax())
            row += [classes[k], float32_text(p[k]), *(float32_text(v) for v in p)]
        yield row


def read_cells(folder: str | os.PathLike, key: str) -> tuple[list[str], np.ndarray]:
    """The ids and points of a slide's ``<key>.cells.csv`` (what ``cellviewer predict``
    classifies after ``cellviewer detect``); ``ValueError`` naming the file and line."""
    path = result_paths(folder, key)[0]
    ids: list[str] = []
    pts: list[tuple[float, float]] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"cell_id", "x", "y"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}, line 1: no column {', '.join(sorted(missing))} "
                                 "(not a cohort cells CSV)")
            for row in reader:
                try:
                    pts.append((float(row["x"]), float(row["y"])))
                except (TypeError, ValueError):
                    raise ValueError(f"{path}, line {reader.line_num}: x or y is not a "
                                     "number") from None
                ids.append(row["cell_id"])
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (no detections of this slide in "
                         f"{folder}; run cellviewer detect first)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read it ({exc})") from None
    return ids, np.array(pts, dtype=np.float64).reshape(-1, 2)


def result_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """``paths`` with each folder replaced by the GeoJSON files of a results folder (sorted):
    what ``cellviewer import`` reads from a cohort run. ``ValueError`` naming a folder that
    holds none."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            out.append(p)
            continue
        found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(GEOJSON_SUFFIX)
                       and not f.name.startswith("."))
        if not found:
            raise ValueError(f"{p}: a folder without result files (*{GEOJSON_SUFFIX}); a "
                             "cohort run (cellviewer detect or predict --out) writes them")
        out.extend(found)
    return out
