"""An export as the app does it: which cells, which files under which names, written with progress.

The steps, each usable on its own by a script:

- :func:`select_cells`: the cells of the whole project, of one image, or a selection (and the
  images that selection touches);
- :func:`plan_files`: the file each chosen format writes, named from one path the user chose
  (``<project>_cells.csv`` by default, :func:`default_base_path`);
- :func:`run_export`: checks the request (formats known, folder there, model known, no target
  that is the project's own file, its log, lock or backups, or a folder) before it writes
  anything, then writes the files one by one, each atomically, reporting progress.

:class:`ExportRequest` is the same as plain data, so it can travel to a worker thread, which
opens its own read-only connection (:func:`run_request`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import ExportError, check_target, remove_leftovers
from .registry import (
    SCOPE_IMAGE,
    SCOPE_PROJECT,
    SCOPE_SELECTION,
    SCOPES,
    Exporter,
    Progress,
    Selection,
    get_exporter,
)
from .tables import resolve_model

if TYPE_CHECKING:
    from cellviewer.core.store import ProjectStore

IMAGE_PLACEHOLDER = "<image>"


def default_base_path(project_path: str | os.PathLike) -> Path:
    """Where an export goes unless the user says otherwise: ``<project>_cells.csv`` beside
    the project file."""
    project_path = Path(project_path)
    return project_path.with_name(f"{project_path.stem}_cells.csv")


def select_cells(store: ProjectStore, scope: str, *, image_id: int | None = None,
                 cell_ids: Iterable[str] | None = None) -> Selection:
    """The cells an export of ``scope`` covers. ``image``: every cell of ``image_id``;
    ``selection``: ``cell_ids`` (duplicates dropped), on the images they lie on; ``project``:
    everything. Unknown images or cells raise KeyError naming them."""
    if scope == SCOPE_PROJECT:
        return Selection(SCOPE_PROJECT)
    if scope == SCOPE_IMAGE:
        if image_id is None:
            raise ValueError("an export of one image needs the image")
        store.image(int(image_id))  # KeyError naming it when unknown
        return Selection(SCOPE_IMAGE, (int(image_id),))
    if scope == SCOPE_SELECTION:
        if cell_ids is None:
            raise ValueError("an export of a selection needs the cells")
        ids = tuple(dict.fromkeys(str(i) for i in cell_ids))
        # One query for the images of the whole selection (KeyError naming an unknown cell).
        images = store.cell_table(None, ids)["image_id"] if ids else []
        return Selection(SCOPE_SELECTION, tuple(sorted({int(i) for i in images})), ids)
    raise ValueError(f"unknown export scope {scope!r} (one of {', '.join(SCOPES)})")


@dataclass(frozen=True)
class PlannedFile:
    """One file an export will write: by which format, where, and of which image (per-image
    formats) or None."""

    format: str
    path: Path
    image_id: int | None = None


def unique_stems(image_names: Mapping[int, str]) -> dict[int, str]:
    """A file stem per image (id -> stem), distinct ignoring case (Windows and macOS folders
    are): the image's own stem, else ``<stem>_<id>``, else ``<stem>_<id>_<n>`` for the first
    n that is free. Images that have their stem alone keep it whatever their order."""
    stems = {i: Path(name).stem or f"image_{i}" for i, name in image_names.items()}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    used = {stem.lower() for stem in stems.values() if counts[stem.lower()] == 1}
    out: dict[int, str] = {}
    first: set[str] = set()
    for image_id, stem in stems.items():
        key = stem.lower()
        if counts[key] == 1 or key not in first and key not in used:
            first.add(key)  # the first of several keeps the plain name
            used.add(key)
            out[image_id] = stem
            continue
        candidate, n = f"{stem}_{image_id}", 1
        while candidate.lower() in used or candidate.lower() in counts:
            candidate, n = f"{stem}_{image_id}_{n}", n + 1
        used.add(candidate.lower())
        out[image_id] = candidate
    return out


def plan_files(base: str | os.PathLike, formats: Sequence[str | Exporter],
               image_names: Mapping[int, str]) -> list[PlannedFile]:
    """The files ``formats`` write for the path ``base`` when the export covers the images
    ``image_names`` (id -> file name). Per-image formats name each file after its image; two
    images of the same file name get distinct names (:func:`unique_stems`), so neither
    overwrites the other."""
    base = Path(base)
    planned: list[PlannedFile] = []
    for fmt in formats:
        exporter = fmt if isinstance(fmt, Exporter) else get_exporter(fmt)
        if not exporter.per_image:
            planned.append(PlannedFile(exporter.name, exporter.single_path(base)))
        elif len(image_names) == 1:
            (image_id,) = image_names
            planned.append(PlannedFile(exporter.name, exporter.single_path(base), image_id))
        else:
            folder, suffix = exporter.folder(base), exporter.file_suffix(base)
            stems = unique_stems(image_names)
            for image_id in image_names:
                planned.append(PlannedFile(exporter.name, folder / f"{stems[image_id]}{suffix}",
                                           image_id))
    return planned


def describe_files(base: str | os.PathLike, formats: Sequence[str | Exporter],
                   n_images: int) -> list[str]:
    """The names of the files an export will write, for a user to read before it starts
    (per-image files of several images as ``<folder>/<image>.<suffix>``)."""
    base = Path(base)
    names: list[str] = []
    for fmt in formats:
        exporter = fmt if isinstance(fmt, Exporter) else get_exporter(fmt)
        if exporter.per_image and n_images != 1:
            names.append(f"{exporter.folder(base).name}/{IMAGE_PLACEHOLDER}"
                         f"{exporter.file_suffix(base)}")
        else:
            names.append(exporter.single_path(base).name)
    return names


def run_export(store: ProjectStore, base: str | os.PathLike, formats: Sequence[str | Exporter],
               selection: Selection | None = None, options: Mapping[str, Any] | None = None,
               progress: Progress | None = None) -> list[Path]:
    """Write the files of ``formats`` for the cells of ``selection`` (default: the whole
    project); returns the paths written, in order.

    Everything that can be checked is checked before the first file: the formats exist, the
    folder of ``base`` exists, no file would replace the project's own files or be a folder
    (:func:`.atomic.check_target`, an :class:`.atomic.ExportError` naming it), the model of
    ``options["model_id"]`` exists ("latest" is resolved once, so every file shows the same
    model). ``progress(fraction, message)`` is
    called as the files are written (from the calling thread)."""
    base = Path(base)
    selection = selection or Selection()
    chosen = [f if isinstance(f, Exporter) else get_exporter(f) for f in formats]
    if not chosen:
        raise ValueError("nothing to export: choose at least one format")
    remove_leftovers()  # temporary files of exports that were killed
    if not base.parent.is_dir():
        raise ExportError(f"{base}: folder {base.parent} does not exist")
    given = dict(options or {})
    given["model_id"] = resolve_model(store, given.get("model_id", "latest"))
    image_ids = (selection.image_ids if selection.image_ids is not None
                 else tuple(im.id for im in store.images()))
    names = {int(i): store.image(int(i)).path.name for i in image_ids}
    planned = plan_files(base, chosen, names)
    for item in planned:  # every target refused before the first file is written
        check_target(item.path, store.path)
    by_name = {e.name: e for e in chosen}
    written: list[Path] = []
    total = len(planned)
    for k, item in enumerate(planned):
        exporter = by_name[item.format]

        def step(fraction: float, message: str, k: int = k) -> None:
            if progress is not None:
                progress((k + min(1.0, max(0.0, fraction))) / total, message)

        step(0.0, f"Writing {item.path.name}")
        part = selection if item.image_id is None else selection.for_image(item.image_id)
        item.path.parent.mkdir(parents=True, exist_ok=True)
        written.append(exporter.write(store, item.path, selection=part,
                                      options=exporter.option_values(given), progress=step))
    if progress is not None:
        progress(1.0, f"Written {len(written)} file(s)")
    return written


@dataclass(frozen=True)
class ExportRequest:
    """Everything an export needs, as plain data (it travels to a worker thread)."""

    project_path: Path
    base_path: Path
    formats: tuple[str, ...]
    selection: Selection = field(default_factory=Selection)
    options: Mapping[str, Any] = field(default_factory=dict)


def run_request(request: ExportRequest, progress: Progress | None = None) -> list[Path]:
    """:func:`run_export` through a read-only connection of its own, so it may run in any
    thread (WAL lets it read while the app's connection writes)."""
    from cellviewer.core.store import ProjectStore

    with ProjectStore.open(request.project_path, readonly=True) as store:
        return run_export(store, request.base_path, request.formats, request.selection,
                          request.options, progress)
