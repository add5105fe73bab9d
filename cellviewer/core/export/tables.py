"""The two CSV exports (one row per cell; per image and class) and atomic writes for every export.

Both are CSV files written with pandas (imported inside the functions: the GUI's start-up path
must not pay for pandas) and written atomically (:func:`.atomic.atomic_write`): into a temporary
file beside the target, flushed to disk, then renamed over it, so a crash never leaves a
half-written export where a good one was, and a reader never sees a partial file; a target that
is the project's own file (or its log, lock or backups) or a folder is refused before any work
(:func:`.atomic.check_target`).

The cells file's columns: ``cell_id, image, x, y, x_um, y_um, label, label_source,
review_status, predicted_class, confidence, p_<class>... , model_id, model, model_file,
model_sha256, updated_by, updated_at``, (after merging annotators' copies) ``annotator_<name>...,
conflict``,
then the cells' metadata (e.g. extra columns of the imported CSV) under their own names. µm are
empty when the image's pixel size is unknown. The model of the predictions is named by its
project id, its name, its file's name and that file's SHA-256 (what ``export-onnx`` writes into
the ONNX file), so the table says which model outside the project too; the four are empty on
rows without a prediction. :mod:`cellviewer.core.io.cell_import` reads such a file back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellviewer.core.store import ImageRecord, ProjectStore

from .atomic import atomic_write as atomic_write  # where io.geojson has always found it
from .atomic import check_target

CELL_COLUMNS = (
    "cell_id", "image", "x", "y", "x_um", "y_um", "label", "label_source", "review_status",
    "predicted_class", "confidence",
)
TAIL_COLUMNS = ("model_id", "model", "model_file", "model_sha256", "updated_by", "updated_at")
UNLABELLED_ROW = "(unlabelled)"
ALL_IMAGES_ROW = "(all images)"


def resolve_model(store: ProjectStore, model_id: int | str | None) -> int | None:
    """``"latest"``: the newest model that has predictions (None when none has); an int: that
    model; None: no predictions."""
    if model_id is None:
        return None
    if model_id == "latest":
        with_predictions = [m for m in store.models() if m.n_predictions]
        return with_predictions[-1].id if with_predictions else None
    store.model(int(model_id))  # KeyError naming it when unknown
    return int(model_id)


def image_names(images: Sequence[ImageRecord], base: str | os.PathLike | None = None
                ) -> dict[int, str]:
    """How images are named in exports: relative to ``base`` (default: the folder all of them
    share), POSIX separators; absolute when outside ``base``."""
    if not images:
        return {}
    if base is None:
        parents = [str(im.path.parent) for im in images]
        base = os.path.commonpath(parents) if len(set(parents)) > 1 else parents[0]
    base = Path(base)
    out = {}
    for im in images:
        try:
            out[im.id] = im.path.relative_to(base).as_posix()
        except ValueError:
            out[im.id] = str(im.path)
    return out


def _cells_frame(store: ProjectStore, model_id, image_ids, image_base, include_metadata,
                 cell_ids=None):
    import pandas as pd

    table = store.cell_table(image_ids, cell_ids)
    images = store.images() if image_ids is None else [store.image(i) for i in image_ids]
    names = image_names(images, image_base)
    mpp = {im.id: (im.mpp if im.mpp else np.nan) for im in images}
    class_names = {c.id: c.name for c in store.classes()}
    n = len(table["ids"])
    image_col = table["image_id"]
    scale = np.array([mpp[i] for i in image_col.tolist()], dtype=np.float64)
    class_id = table["class_id"]
    df = pd.DataFrame({
        "cell_id": table["ids"],
        "image": [names[i] for i in image_col.tolist()],
        "x": table["x"],
        "y": table["y"],
        "x_um": table["x"] * scale,
        "y_um": table["y"] * scale,
        "label": [class_names.get(c) if c >= 0 else None for c in class_id.tolist()],
        "label_source": table["label_source"],
        "review_status": table["review_status"],
    })
    model = resolve_model(store, model_id)
    if model is not None:
        pred = store.predictions(model, table["rows"])
        df["predicted_class"] = pred.predicted_names
        # float32 columns: pandas writes the shortest decimal of each (0.9, not 0.89999998)
        df["confidence"] = pred.confidence
        for k, name in enumerate(pred.classes):
            df[f"p_{name}"] = pred.probs[:, k]
        df["model_id"] = pd.array([model if ok else None for ok in pred.has_prediction],
                                  dtype="Int64")
        from cellviewer.core.predict.identity import model_identity

        who = model_identity(store.model(model))
        for column, value in (("model", who.name), ("model_file", who.file),
                              ("model_sha256", who.sha256)):
            df[column] = [value if ok else None for ok in pred.has_prediction]
        pred_class_id = pred.predicted_class_id
    else:
        df["predicted_class"] = [None] * n
        df["confidence"] = np.full(n, np.nan)
        df["model_id"] = pd.array([None] * n, dtype="Int64")
        for column in ("model", "model_file", "model_sha256"):
            df[column] = [None] * n
        pred_class_id = np.full(n, -1, dtype=np.int64)
    df["updated_by"] = table["updated_by"]
    df["updated_at"] = table["updated_at"]
    if any(table["proposed"]):  # a detector's proposals, not yet accepted
        df["proposed"] = np.asarray(table["proposed"], dtype=bool)
    if np.isfinite(table["score"]).any():
        df["detection_score"] = table["score"]
    rings = [_ring(o) for o in table["outline"]]
    if include_metadata and any(r is not None for r in rings):
        df["outline"] = [None if r is None else json.dumps(r) for r in rings]
    if include_metadata:
        keys = list(dict.fromkeys(k for m in table["metadata"] for k in m))
        for key in keys:
            column = key if key not in df.columns else f"meta_{key}"
            if key == "outline":  # (an older import's ring) JSON, read back as the outline
                if "outline" in df.columns:
                    continue
                df[column] = [json.dumps(m[key]) if key in m else None
                              for m in table["metadata"]]
            else:
                df[column] = [m.get(key) for m in table["metadata"]]
    return df, class_id, pred_class_id


def _ring(outline: str | None) -> list | None:
    """The outer ring of a stored outline (a GeoJSON Polygon), as the CSV writes it."""
    if not outline:
        return None
    try:
        return json.loads(outline)["coordinates"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def export_cells_csv(store: ProjectStore, path: str | os.PathLike, *,
                     model_id: int | str | None = "latest", image_ids: Sequence[int] | None = None,
                     image_base: str | os.PathLike | None = None, include_metadata: bool = True,
                     sep: str | None = None, cell_ids: Sequence[str] | None = None) -> Path:
    """Write one row per cell (see the module docstring); returns the path written.

    ``model_id``: whose predictions fill the prediction columns ("latest": the newest model
    with predictions; None: leave them empty). ``cell_ids`` limits the rows to those cells
    (a selection; still in image then insertion order, and within ``image_ids`` when both are
    given); an id that is no cell of the project raises KeyError naming it, and nothing is
    written. ``sep`` defaults to a tab for ``.tsv``/``.txt`` files, else a comma.
    """
    path = check_target(path, store.path)  # before the work: a refusal costs nothing
    df, _, _ = _cells_frame(store, model_id, image_ids, image_base, include_metadata, cell_ids)
    _add_annotator_columns(store, df)
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    with atomic_write(path, project=store.path) as fh:
        df.to_csv(fh, index=False, sep=sep, lineterminator="\n")
    return path


def _add_annotator_columns(store: ProjectStore, df) -> None:
    """Where annotators' copies were merged (issue 19): each annotator's own label of each
    cell (``annotator_<name>``, empty where they did not label it; see
    :func:`cellviewer.core.merge.agreement.annotator_labels`) and ``conflict`` ("open" where
    annotators still disagree). The final label and its source are ``label`` and
    ``label_source``. Nothing is added where fewer than two people labelled cells: one
    annotator's column would only repeat ``label``."""
    from cellviewer.core.merge.agreement import annotator_labels

    labels = annotator_labels(store)
    people = sorted({u for by in labels.values() for u in by})
    if len(people) < 2:
        return
    ids = df["cell_id"].tolist()
    for who in people:
        column = f"annotator_{who}"
        df[column if column not in df.columns else f"meta_{column}"] = [
            labels.get(c, {}).get(who) for c in ids]
    open_cells = {c["cell_uuid"] for c in store.conflicts()}
    df["conflict"] = ["open" if c in open_cells else None for c in ids]


def export_summary_csv(store: ProjectStore, path: str | os.PathLike, *,
                       model_id: int | str | None = "latest",
                       image_ids: Sequence[int] | None = None,
                       image_base: str | os.PathLike | None = None,
                       cell_ids: Sequence[str] | None = None) -> Path:
    """Per image and class: ``cells`` labelled so, how many are ``reviewed`` (checked or
    reviewed), ``with_prediction``, ``predicted`` (cells the model assigns to the class, any
    label), ``agree`` (label = prediction) and ``agreement`` (agree / with_prediction), plus an
    "(unlabelled)" row per image and "(all images)" totals. ``cell_ids`` counts only those
    cells (a selection), as the cells CSV does. Written atomically."""
    import pandas as pd

    path = check_target(path, store.path)
    df, class_id, pred_class_id = _cells_frame(store, model_id, image_ids, image_base, False,
                                               cell_ids)
    class_names = [c.name for c in store.classes()]
    df["label"] = df["label"].fillna(UNLABELLED_ROW)
    df["reviewed"] = df["review_status"].isin(["checked", "reviewed"])
    df["with_prediction"] = df["predicted_class"].notna()
    df["agree"] = (class_id >= 0) & (pred_class_id == class_id)
    names_by_id = {c.id: c.name for c in store.classes()}
    df["predicted_label"] = [names_by_id.get(i) for i in pred_class_id.tolist()]

    def summarise(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        grouped = frame.groupby(by, sort=False).agg(
            cells=("cell_id", "size"), reviewed=("reviewed", "sum"),
            with_prediction=("with_prediction", "sum"), agree=("agree", "sum"),
        )
        predicted = frame[frame["predicted_label"].notna()].groupby(
            by[:-1] + ["predicted_label"], sort=False).size()
        predicted.index = predicted.index.set_names(by)
        return grouped.join(predicted.rename("predicted"), how="outer")

    labels = class_names + [UNLABELLED_ROW]
    images = list(dict.fromkeys(df["image"]))
    per_image = summarise(df, ["image", "label"]).reindex(
        pd.MultiIndex.from_product([images, labels], names=["image", "label"]))
    totals = summarise(df.assign(image=ALL_IMAGES_ROW), ["image", "label"]).reindex(
        pd.MultiIndex.from_product([[ALL_IMAGES_ROW], labels], names=["image", "label"]))
    out = pd.concat([per_image, totals]).fillna(0)
    for col in ("cells", "reviewed", "with_prediction", "agree", "predicted"):
        out[col] = out[col].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["agreement"] = out["agree"] / out["with_prediction"].where(out["with_prediction"] > 0)
    out = out.reset_index().rename(columns={"label": "class"})
    out = out[["image", "class", "cells", "reviewed", "with_prediction", "predicted", "agree",
               "agreement"]]
    with atomic_write(path, project=store.path) as fh:
        out.to_csv(fh, index=False, lineterminator="\n")
    return path
