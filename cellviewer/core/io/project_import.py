"""Building projects: from a points CSV and its images, from a list of image files, and the
bundled demo; and finding moved images again by their content fingerprint.

Image facts (size, µm/px, fingerprint) come from :mod:`cellviewer.core.sources`, which probes
each file (so a broken one is refused before anything is written); the store itself never opens
images.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cellviewer.core.io.files import file_problem
from cellviewer.core.io.points_csv import ImportResult, import_points_csv
from cellviewer.core.store import ProjectError, ProjectStore

DEMO_PROJECT_NAME = "demo.cvproj"
DEMO_USER = "demo (Chula RBC-12 labels)"  # whom the demo's history names for its labels


def image_info(path: str | os.PathLike) -> tuple[int, int, float | None, str | None]:
    """``(width, height, mpp, fingerprint)`` of an image file; ``ImageOpenError`` (naming the
    file and the cause) when it cannot be opened."""
    from cellviewer.core.sources import fingerprint, open_image

    with open_image(path) as source:
        width, height = source.dimensions
        mpp = source.mpp
    return int(width), int(height), mpp, fingerprint(path)


def add_classes(store: ProjectStore, classes: Iterable[dict]) -> list[int]:
    """Add classes given as ``{"name", "color", "key"}`` dicts (a class-set file's
    ``classes``), skipping names the project already has; returns every class's id."""
    ids = []
    with store.batch("Add classes", action="add-classes"):
        for c in classes:
            existing = store.class_id(c["name"])
            ids.append(existing if existing is not None else
                       store.add_class(c["name"], c.get("color"), c.get("key") or None))
    return ids


def add_images(store: ProjectStore, paths: Sequence[str | os.PathLike]) -> list[int]:
    """Add image files as one undoable action; all or nothing (the first file that cannot be
    opened raises ``ProjectError`` naming it, before anything is written). Only regular files
    are opened: a FIFO (which would block ``open`` for ever), a device or a folder is refused."""
    infos = []
    for p in paths:
        problem = file_problem(Path(p))  # never opens: a FIFO is refused, not waited on
        if problem is not None:
            raise ProjectError(f"{p}: cannot be added ({problem})")
        try:
            infos.append((Path(p), image_info(p)))
        except Exception as e:
            raise ProjectError(f"{p}: cannot be added ({e})") from e
    ids = []
    with store.batch(f"Add {len(infos)} image{'s' if len(infos) != 1 else ''}",
                     action="add-images"):
        for p, (w, h, mpp, fp) in infos:
            existing = store.image_id_for_path(p)
            ids.append(existing if existing is not None else
                       store.add_image(p, w, h, mpp=mpp, fingerprint=fp))
    return ids


def create_project_from_points(
    csv_path: str | os.PathLike, image_dir: str | os.PathLike | None,
    project_path: str | os.PathLike, *, classes: Iterable[dict] | None = None,
    name: str | None = None, class_column: str | None = None,
    class_names: Sequence[str] | None = None, overwrite: bool = False,
    user: str | None = None,
) -> tuple[ProjectStore, ImportResult]:
    """A new project holding the cells of a points CSV (``image,x,y,class``) and their images.

    ``classes`` (dicts with name/colour/key, e.g. a class set's list) are added first so they
    keep their colours, keys and order. On any error the half-made project file is removed.
    Returns the open store (the caller closes it) and the import's result.
    """
    store = ProjectStore.create(project_path, name=name, overwrite=overwrite)
    if user:
        store.user = user  # who the history names for the imported labels
    try:
        if classes:
            add_classes(store, classes)
        result = import_points_csv(store, csv_path, image_dir, class_column=class_column,
                                   class_names=class_names)
    except BaseException:
        path = store.path
        store.close()
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
        raise
    return store, result


def demo_project_path() -> Path:
    from cellviewer.paths import user_data_dir

    return user_data_dir() / "demo" / DEMO_PROJECT_NAME


def create_demo_project(*, rebuild: bool = False) -> Path:
    """The demo project in ``user_data_dir()/demo/``, made from ``cellviewer.core.project.demo``
    (the bundled Chula RBC-12 tiles with their labelled cells, the CMU slide, unlabelled, and the
    bundled demo model, registered).

    An existing demo project is reused unless ``rebuild`` or its images are no longer where it
    says (e.g. CellViewer was reinstalled elsewhere); then it is made afresh. The images stay in
    the package's resources; the project refers to them by absolute path.
    """
    from cellviewer.core.project.demo import (
        demo_images,
        load_class_set,
        missing_demo_models,
        register_demo_models,
    )
    from cellviewer.paths import demo_dir

    path = demo_project_path()
    if path.exists() and not rebuild:
        try:
            with ProjectStore.open(path, readonly=True) as store:
                usable = bool(store.images()) and not store.missing_images()
                lacks_model = bool(missing_demo_models(store))
            if usable:
                if lacks_model:  # a demo made before its model was bundled
                    with ProjectStore.open(path) as store:
                        register_demo_models(store)
                return path
        except ProjectError:
            pass  # unreadable or foreign: make it again
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.building")
    store, _ = create_project_from_points(
        demo_dir() / "points.csv", demo_dir(), tmp,
        classes=load_class_set()["classes"], name="CellViewer demo", overwrite=True,
        user=DEMO_USER,
    )
    with store:
        known = {im.path for im in store.images()}
        extra = [p for p in demo_images() if p.absolute() not in known]
        if extra:
            add_images(store, extra)
        register_demo_models(store)  # a trained model: predict at once, before any training
    # Closing the only connection folded the write-ahead log into the file: one file to move.
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, path)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    return path


def relink_missing(store: ProjectStore, folders: Iterable[str | os.PathLike], *,
                   recursive: bool = True) -> dict[int, Path]:
    """Find images the project cannot find any more among the files of ``folders``, by name
    and size first and then by content fingerprint; relink those found. Returns {image id:
    new path}."""
    from cellviewer.core.sources import fingerprint

    missing = {im.id: im for im in store.missing_images()}
    if not missing:
        return {}
    candidates: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        pattern = folder.rglob("*") if recursive else folder.glob("*")
        candidates.extend(p for p in pattern if p.is_file())
    found: dict[int, Path] = {}
    for image_id, im in missing.items():
        # Same name first (cheap), then any file of the same size; the fingerprint decides.
        size = int(im.fingerprint.split(":")[1]) if im.fingerprint and \
            im.fingerprint.startswith("v1:") else None
        name = im.path.name
        ordered = sorted(candidates, key=lambda p: p.name != name)
        for p in ordered:
            if size is not None and p.stat().st_size != size:
                continue
            if im.fingerprint is None:
                if p.name == im.path.name:
                    found[image_id] = p
                    break
                continue
            try:
                if fingerprint(p) == im.fingerprint:
                    found[image_id] = p
                    break
            except OSError:
                continue
    for image_id, p in found.items():
        store.relink_image(image_id, p)
    return found
