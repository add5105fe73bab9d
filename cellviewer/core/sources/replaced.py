"""What to do about a replaced image (an :class:`~.identity.ImageChangedError`): the three
choices the app offers, and the stale marks that accepting leaves on its predictions.

- **Relink** (:func:`relink_checked`): the original file is elsewhere; point the image at it.
  The chosen file is checked against the record first, so relinking cannot swap in yet another
  image (a mismatch raises :class:`~.identity.ImageChangedError` naming the chosen file).
- **Accept the new content** (:func:`accept_new_content`): the file is now the image. Its new
  fingerprint and size are recorded, and the predictions of its cells, made from the old
  pixels, are *marked stale* rather than deleted: nothing the user made is lost, and predicting
  the image again with a model clears that model's mark. The mark is written before the new
  fingerprint, so a crash between the two leaves the image reported as changed again, never a
  new fingerprint with trusted old predictions.
- **Cancel**: nothing changes; the work that hit the image does not run.

Stale marks live in the project's key/value settings (``ProjectStore.setting`` under
:data:`STALE_SETTING`, JSON ``{image id: {"models": [...], "since", "by", "fingerprint"}}``),
so no schema change is needed and older versions of the app simply ignore them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .identity import SESSION_CACHE, FingerprintCache, check_image
from .opening import open_image

STALE_SETTING = "stale-predictions"


@dataclass(frozen=True)
class StaleMark:
    """Predictions of one image that were made before its file was replaced."""

    image_id: int
    model_ids: tuple[int, ...]  # the models whose predictions of the image are stale
    since: str  # when the new content was accepted (ISO 8601 UTC)
    by: str  # who accepted it
    fingerprint: str  # the content accepted


def stale_marks(store: Any) -> dict[int, StaleMark]:
    """The project's stale marks by image id (a damaged setting reads as none)."""
    try:
        raw = json.loads(store.setting(STALE_SETTING) or "{}")
    except (TypeError, ValueError):
        return {}
    out: dict[int, StaleMark] = {}
    if not isinstance(raw, dict):
        return out
    for key, mark in raw.items():
        try:
            out[int(key)] = StaleMark(int(key), tuple(int(m) for m in mark.get("models", [])),
                                      str(mark.get("since", "")), str(mark.get("by", "")),
                                      str(mark.get("fingerprint", "")))
        except (AttributeError, TypeError, ValueError):
            continue
    return out


def is_stale(store: Any, image_id: int, model_id: int) -> bool:
    """Whether ``model_id``'s predictions of ``image_id`` predate the image's current content."""
    mark = stale_marks(store).get(int(image_id))
    return mark is not None and int(model_id) in mark.model_ids


def _save_marks(store: Any, marks: dict[int, StaleMark]) -> None:
    kept = {str(i): {"models": list(m.model_ids), "since": m.since, "by": m.by,
                     "fingerprint": m.fingerprint}
            for i, m in sorted(marks.items()) if m.model_ids}
    store.set_setting(STALE_SETTING, json.dumps(kept) if kept else None)


def clear_stale(store: Any, image_ids: Any, model_id: int) -> None:
    """``model_id`` has predicted ``image_ids`` again: its marks on them go."""
    marks = stale_marks(store)
    wanted = {int(i) for i in image_ids}
    changed = False
    for image_id in wanted & set(marks):
        mark = marks[image_id]
        if int(model_id) in mark.model_ids:
            marks[image_id] = StaleMark(image_id, tuple(m for m in mark.model_ids
                                                        if m != int(model_id)),
                                        mark.since, mark.by, mark.fingerprint)
            changed = True
    if changed:
        _save_marks(store, marks)


def _models_with_predictions(store: Any, image_id: int) -> list[int]:
    ids = list(store.cell_arrays(image_id).ids)
    if not ids:
        return []
    found = []
    for model in store.models():
        if getattr(model, "n_predictions", 1) and store.predictions(model.id, ids)\
                .has_prediction.any():
            found.append(int(model.id))
    return found


@dataclass(frozen=True)
class NewContent:
    """What a replaced file holds now: read by :func:`inspect_new_content` (slow: it opens the
    image; run it off the GUI thread), recorded by :func:`accept_new_content`."""

    path: Path
    width: int
    height: int
    fingerprint: str


def inspect_new_content(path: str | os.PathLike, *,
                        cache: FingerprintCache | None = None) -> NewContent:
    """Open the file (only an image that opens can be accepted) and fingerprint it; touches no
    project, so it may run in any thread. ``ImageOpenError`` names the file and the cause."""
    path = Path(path).expanduser().absolute()
    with open_image(path) as source:
        width, height = source.dimensions
    return NewContent(path, int(width), int(height), (cache or SESSION_CACHE).fingerprint(path))


def accept_new_content(store: Any, image_id: int, content: NewContent | None = None, *,
                       cache: FingerprintCache | None = None) -> StaleMark | None:
    """Record the image's file as it is now (its size and fingerprint: ``content``, else
    :func:`inspect_new_content` of the image's file) and mark the predictions of its cells
    stale; returns the mark (None when no model had predicted the image). ``ImageOpenError``
    when the file cannot be opened, or when ``content`` is of another file."""
    from cellviewer.core.store.common import utc_now

    from .base import ImageOpenError

    record = store.image(image_id)
    if content is None:
        content = inspect_new_content(record.path, cache=cache)
    elif content.path != Path(record.path).absolute():
        raise ImageOpenError(content.path, f"it is not the file of image {image_id} "
                                           f"({record.path})")
    models = _models_with_predictions(store, image_id)
    mark = None
    if models:
        marks = stale_marks(store)
        old = marks.get(int(image_id))
        merged = tuple(sorted(set(models) | set(old.model_ids if old else ())))
        mark = StaleMark(int(image_id), merged, utc_now(), str(store.user or ""),
                         content.fingerprint)
        marks[int(image_id)] = mark
        _save_marks(store, marks)  # first the mark, then the fingerprint (see the docstring)
    store.set_image_content(image_id, content.width, content.height, content.fingerprint)
    return mark


def relink_checked(store: Any, image_id: int, path: str | os.PathLike, *,
                   cache: FingerprintCache | None = None) -> None:
    """Point the image at ``path`` after checking that it is the recorded image (raises
    :class:`~.identity.ImageChangedError` naming ``path`` when it is not)."""
    record = store.image(image_id)
    path = Path(path).expanduser().absolute()
    check_image(record, path=path, cache=cache)
    existing = store.image_id_for_path(path)
    if existing is not None and existing != int(image_id):
        from cellviewer.core.store import ProjectError

        raise ProjectError(f"{path}: already in the project as image {existing}")
    store.relink_image(image_id, path)
