"""``cellviewer export PROJECT [OUT] --out DIR|FILE --format csv|summary-csv|geojson …``: files
for other tools, written as the app's File → Export… writes them (the same exporters,
:mod:`cellviewer.core.export`), read-only on the project.

- ``--format`` (repeatable): ``csv`` (also ``cells-csv``: one row per cell), ``summary-csv``
  (per image and class), ``geojson`` (QuPath, one file per image).
- ``--out``: a folder (it exists, ends with a slash, or has no suffix; created when missing),
  which gets ``<project>_cells.csv``, ``<project>_summary.csv`` and one ``<image>.geojson`` per
  image (two images of the same file name get distinct names); or a file, for one format (and,
  for GeoJSON, one image).
- ``--images NAME…``: only these images (a file name, a path tail such as ``sub/a.png``, a path
  or an image id); default: every image.
- ``--model latest|none|ID|NAME``: whose predictions fill the prediction columns and
  measurements (default: the newest model with predictions).
- GeoJSON: ``--classification label|prediction|label-else-prediction`` (default: the label
  where there is one, else the prediction), ``--objects detections|annotations``,
  ``--qupath-0.4`` (only what QuPath 0.4 reads: no metadata, numbers only).
- An existing file is never replaced unless ``--overwrite`` is given: the command refuses and
  names it, before anything is written.

Prints the files written, one per line. Exit codes: 0 done, 1 refused or failed (the message
names the file and the cause; nothing written), 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cellviewer.core.store import ImageRecord, ProjectStore

FORMATS = {"csv": "cells", "cells-csv": "cells", "summary-csv": "summary", "geojson": "geojson"}
OBJECTS = {"detections": "detection", "annotations": "annotation"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="cells CSV, summary CSV or QuPath GeoJSON of a project",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("project", type=Path, help="a CellViewer project (.cvproj)")
    p.add_argument("out_positional", nargs="?", type=Path, default=None, metavar="OUT",
                   help="the same as --out")
    p.add_argument("--out", type=Path, default=None, metavar="DIR|FILE",
                   help="a folder for the files, or one file")
    p.add_argument("--format", dest="formats", action="append", choices=tuple(FORMATS),
                   metavar="FORMAT", help=f"one of {', '.join(FORMATS)} (repeatable)")
    p.add_argument("--classification", default="label-else-prediction",
                   choices=("label", "prediction", "label-else-prediction"),
                   help="GeoJSON: the class QuPath shows (default: label-else-prediction)")
    p.add_argument("--objects", default="detections", choices=tuple(OBJECTS),
                   help="GeoJSON: QuPath object type of the cells (default: detections)")
    p.add_argument("--qupath-0.4", dest="qupath_04", action="store_true",
                   help="GeoJSON: only what QuPath 0.4 reads (no metadata, numbers only)")
    p.add_argument("--images", nargs="+", default=None, metavar="IMAGE",
                   help="only these images (file name, path tail, path or id)")
    p.add_argument("--model", default="latest",
                   help="latest (default), none, or a model's id or name")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")
    p.set_defaults(func=run)


def _is_folder(out: Path, raw: str) -> bool:
    return out.is_dir() or raw.endswith(("/", os.sep)) or not out.suffix


def choose_images(store: ProjectStore, wanted: list[str] | None) -> list[ImageRecord]:
    """The images ``--images`` names, in the project's order (CommandError naming a value that
    names none or several)."""
    from cellviewer.cli.main import CommandError

    images = store.images()
    if wanted is None:
        return images
    chosen: set[int] = set()
    for value in wanted:
        tail = Path(value.replace("\\", "/")).parts
        same = [im for im in images
                if str(im.id) == value or im.path.parts[-len(tail):] == tail
                or str(im.path) == str(Path(value).expanduser().absolute())]
        if not same:
            raise CommandError(f"{store.path}: no image {value!r} in the project (it has "
                               f"{', '.join(im.name for im in images[:5]) or 'none'}"
                               f"{' …' if len(images) > 5 else ''})")
        if len(same) > 1:
            raise CommandError(f"{store.path}: image {value!r} matches {len(same)} images "
                               f"({', '.join(str(im.path) for im in same[:3])}); give more of "
                               f"its path or its id")
        chosen.add(same[0].id)
    return [im for im in images if im.id in chosen]


def _model(store: ProjectStore, value: str) -> int | str | None:
    from cellviewer.cli.main import CommandError

    if value in ("latest", "none"):
        return None if value == "none" else "latest"
    models = store.models()
    same = [m for m in models if str(m.id) == value or m.name == value]
    if len(same) != 1:
        known = ", ".join(f"{m.id} ({m.name})" for m in models) or "none"
        what = "no model" if not same else f"{len(same)} models named"
        raise CommandError(f"{store.path}: {what} {value!r} (models: {known}; or latest, "
                           f"none)")
    return int(same[0].id)


def plan(store: ProjectStore, out: Path, raw_out: str, formats: list[str],
         images: list[ImageRecord]) -> list[tuple[str, Path, int | None]]:
    """(exporter name, target, image id or None) for every file, in order."""
    from cellviewer.cli.main import CommandError
    from cellviewer.core.export.job import unique_stems

    stem = store.path.stem
    if _is_folder(out, raw_out):
        files: list[tuple[str, Path, int | None]] = []
        stems = unique_stems({im.id: im.path.name for im in images})
        for name in formats:
            if name == "geojson":
                files += [(name, out / f"{stems[im.id]}.geojson", im.id) for im in images]
            else:
                files.append((name, out / f"{stem}_{'cells' if name == 'cells' else name}.csv",
                              None))
        return files
    if len(formats) > 1:
        raise CommandError(f"{out}: one file cannot hold {len(formats)} formats; give a "
                           f"folder for --out")
    (name,) = formats
    if name == "geojson":
        if len(images) != 1:
            raise CommandError(f"{out}: a GeoJSON file holds one image's cells and the export "
                               f"covers {len(images)}; give a folder for --out, or one image "
                               f"with --images")
        return [(name, out, images[0].id)]
    return [(name, out, None)]


def run(args: argparse.Namespace) -> int:
    from cellviewer.cli.main import CommandError
    from cellviewer.core.export import ExportError, Selection, check_target, get_exporter
    from cellviewer.core.export.tables import resolve_model
    from cellviewer.core.store import ProjectError, ProjectStore

    out = args.out if args.out is not None else args.out_positional
    if out is None or (args.out is not None and args.out_positional is not None):
        print("cellviewer export: give the target once: --out DIR|FILE (or OUT)",
              file=sys.stderr)
        return 2
    if not args.formats:
        print(f"cellviewer export: choose a --format ({', '.join(FORMATS)})", file=sys.stderr)
        return 2
    raw_out = str(out)
    out = out.expanduser().absolute()
    formats = list(dict.fromkeys(FORMATS[f] for f in args.formats))
    try:
        with ProjectStore.open(args.project, readonly=True) as store:
            images = choose_images(store, args.images)
            options = {"model_id": resolve_model(store, _model(store, args.model)),
                       "classification": args.classification,
                       "objects": OBJECTS[args.objects], "qupath_04": args.qupath_04}
            files = plan(store, out, raw_out, formats, images)
            folder = out if _is_folder(out, raw_out) else out.parent
            if not folder.parent.is_dir() and not folder.is_dir():
                raise CommandError(f"{folder}: its folder {folder.parent} does not exist")
            existing = [p for _, p, _ in files if p.exists() or p.is_symlink()]
            if existing and not args.overwrite:
                more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
                raise CommandError(f"{existing[0]} exists{more}; nothing was written "
                                   f"(--overwrite replaces it)")
            for _, path, _ in files:  # the project's own files, a folder: refused first
                check_target(path, store.path)
            folder.mkdir(exist_ok=True)
            ids = tuple(im.id for im in images)
            for name, path, image_id in files:
                exporter = get_exporter(name)
                selection = Selection("project",
                                      (image_id,) if image_id is not None else ids)
                exporter.write(store, path, selection=selection,
                               options=exporter.option_values(options), progress=None)
                print(path, flush=True)
    except (ProjectError, ExportError, KeyError, OSError) as exc:
        raise CommandError(str(exc).strip("'\"")) from exc
    print(f"cellviewer export: {len(files)} file(s) written", file=sys.stderr)
    return 0
