"""``cellviewer import PROJECT FILE [--image-dir D] [--image NAME] [--user U] [--json]``: cells from
a points CSV (``image,x,y,class``: cellviewer.core.io.points_csv) or a QuPath GeoJSON file (of one
image of the project, ``--image``) into a project, as one undoable action, all or nothing.

The app runs it in a child process for big files, so its window never waits for the import
(``--json``: one protocol object per line, ``started``, ``finished`` or ``error``, the trainer's
shape; see ``../shared/design/cli.md``). A user is needed: ``--user``, else
``CELLVIEWER_USER``, else the command refuses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("import", help="cells from a points CSV or a QuPath GeoJSON file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("project", type=Path, help="a CellViewer project (.cvproj)")
    p.add_argument("file", type=Path, help="a points CSV, or a GeoJSON file (with --image)")
    p.add_argument("--image-dir", type=Path, default=None,
                   help="where the CSV's images are (default: beside the CSV)")
    p.add_argument("--image", default=None,
                   help="for GeoJSON: the project image (its file name) the cells belong to")
    p.add_argument("--user", default=None, help="who makes the change (else CELLVIEWER_USER)")
    p.add_argument("--json", action="store_true", help="progress as JSON lines on stdout")
    p.set_defaults(func=run)


def _say(as_json: bool, event: str, **fields: Any) -> None:
    if as_json:
        from trainer.formats.protocol import encode_event

        print(encode_event(event, **fields), flush=True)


def run(args: argparse.Namespace) -> int:
    from cellviewer.cli.main import CommandError
    from cellviewer.core.project.users import NoUserError, headless_user
    from cellviewer.core.store import ProjectError, ProjectStore

    t0 = time.monotonic()
    try:
        user = headless_user(args.user)
    except NoUserError as exc:
        _say(args.json, "error", kind="usage", message=str(exc))
        raise CommandError(str(exc)) from exc
    _say(args.json, "started", file=str(args.file), project=str(args.project))
    try:
        with ProjectStore.open(args.project) as store:
            store.user = user
            result = _import(store, args)
    except (ProjectError, OSError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        _say(args.json, "error", kind="input", message=message)
        raise CommandError(message) from exc
    _say(args.json, "finished", n_cells=result.n_cells, images_added=len(result.images_added),
         classes_added=list(result.classes_added), elapsed_s=round(time.monotonic() - t0, 3))
    if not args.json:
        print(f"imported {result.n_cells:,} cells from {args.file} into {args.project}",
              file=sys.stderr)
    return 0


def _import(store: Any, args: argparse.Namespace) -> Any:
    from cellviewer.cli.main import CommandError

    if args.file.suffix.lower() in (".geojson", ".json"):
        from cellviewer.core.io.geojson import import_geojson

        if not args.image:
            raise CommandError(f"{args.file}: a GeoJSON file holds one image's cells: name "
                               "the project image with --image")
        matches = [r for r in store.images() if r.name == args.image or str(r.path) == args.image]
        if len(matches) != 1:
            raise CommandError(f"{args.project}: no single image named {args.image!r}")
        return import_geojson(store, args.file, matches[0].id)
    from cellviewer.core.io.points_csv import import_points_csv

    return import_points_csv(store, args.file, image_dir=args.image_dir)
