"""``cellviewer import PROJECT FILE… [choices] [--user U] [--json]``: cells (and, once the
project keeps them, regions) from every file the app imports — delimited tables (points
tables, QuPath measurement tables, napari points, CellViewer's cells and predict CSVs),
GeoJSON (QuPath 0.4–0.6, CellViT, plain; also ``.geojson.gz`` and ``.zip``) and HoVer-Net
JSON — as one undoable action, all or nothing (:mod:`cellviewer.core.io.cell_import`).
A folder stands for the per-slide ``*.geojson`` files of a cohort run (``cellviewer detect``
or ``predict`` with a manifest or ``--shard``): their cells keep their ids, so the folders of
the shards of one cohort import as one unsharded run's would.

A headless run never asks: each question the app's preview asks has a flag, and by default
the command refuses with a message naming it (``../shared/design/cli.md``):

- ``--on-missing-image skip|add|refuse``: rows whose image is not in the project (``add``
  looks in ``--image-folder``, the file's folder and the project's folder);
- ``--on-unknown-class create|skip|refuse`` and ``--map-class NAME=EXISTING``: class names
  the project lacks (created classes get the next free number keys);
- ``--class-set NAME``: the class set numeric class ids index (a shipped set such as
  ``chula-rbc-12``, a class-set JSON file, or ``name1,name2,...``);
- ``--image NAME``: the project image of files that name none (GeoJSON, HoVer-Net, napari),
  when the file's name does not name one;
- ``--units px|um``: override the file's units (µm are converted with each image's pixel size);
- ``--polygons-as-cells``: annotation polygons become cells, not regions;
- ``--on-existing-cell refuse|predictions``: cells whose ids the project already has (the
  results of ``cellviewer predict PROJECT``): refused, or only their predictions taken;
- ``--columns image=COL,x=COL,y=COL[,class=COL]``: the columns of a table that is not
  recognised.

The app may run it in a child process (``--json``: one protocol object per line, ``started``,
``finished`` or ``error``, the trainer's shape). A user is needed: ``--user``, else
``CELLVIEWER_USER``, else the command refuses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("import", help="cells from tables, GeoJSON or HoVer-Net JSON",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("project", type=Path, help="a CellViewer project (.cvproj)")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE",
                   help="tables (.csv .tsv .txt), GeoJSON (.geojson .json .geojson.gz .zip), "
                        "HoVer-Net JSON, or a folder of cohort results (cellviewer detect or "
                        "predict --out: its per-slide GeoJSON files)")
    p.add_argument("--image-folder", "--image-dir", dest="image_folder", type=Path,
                   default=None, help="where the files' images are")
    p.add_argument("--image", default=None,
                   help="the project image (file name or path) of files that name none")
    p.add_argument("--on-missing-image", choices=("skip", "add", "refuse"), default="refuse",
                   help="rows whose image is not in the project (default: refuse)")
    p.add_argument("--on-unknown-class", choices=("create", "skip", "refuse"),
                   default="refuse", help="class names the project lacks (default: refuse)")
    p.add_argument("--on-existing-cell", choices=("refuse", "predictions"), default="refuse",
                   help="cells whose ids the project has (cellviewer predict PROJECT's "
                        "results): refuse (default), or take only their predictions")
    p.add_argument("--map-class", action="append", default=[], metavar="NAME=EXISTING",
                   help="import class NAME as the project's class EXISTING (repeatable)")
    p.add_argument("--class-set", default=None,
                   help="class set of numeric class ids (e.g. chula-rbc-12)")
    p.add_argument("--units", choices=("px", "um"), default=None,
                   help="coordinates in pixels or µm (default: as the file says)")
    p.add_argument("--polygons-as-cells", action="store_true",
                   help="annotation polygons become one cell each (default: regions)")
    p.add_argument("--columns", default=None, metavar="image=COL,x=COL,y=COL,class=COL",
                   help="the columns of a table whose columns are not recognised")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be imported and write nothing")
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
    _say(args.json, "started", file=", ".join(map(str, args.files)), project=str(args.project))
    try:
        with ProjectStore.open(args.project) as store:
            store.user = user
            result = _import(store, args)
    except (ProjectError, OSError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        _say(args.json, "error", kind="input", message=message)
        raise CommandError(message) from exc
    if result is None:  # a dry run
        return 0
    _say(args.json, "finished", n_cells=result.n_cells, predictions_of_existing=result.updated,
         images_added=len(result.images_added),
         classes_added=list(result.classes_added), regions=len(result.regions),
         skipped=result.skipped, elapsed_s=round(time.monotonic() - t0, 3))
    if not args.json:
        n_files = len(getattr(args, "read_files", args.files))
        also = (f" (and predictions of {result.updated:,} cells it had)" if result.updated
                else "")
        print(f"imported {result.n_cells:,} cells from {n_files} file"
              f"{'s' if n_files != 1 else ''} into {args.project}{also}", file=sys.stderr)
    return 0


def choices_of(store: Any, args: argparse.Namespace) -> Any:
    """The import's choices from the flags; ValueError naming a bad flag value."""
    from cellviewer.core.io.cell_import import ImportChoices, class_set_names
    from trainer.formats.tables import ColumnMap

    class_map: dict[str, str | None] = {}
    for spec in args.map_class:
        name, sep, to = spec.partition("=")
        if not sep or not name.strip() or not to.strip():
            raise ValueError(f"--map-class {spec!r}: expected NAME=EXISTING")
        class_map[name.strip()] = to.strip()
    image_id = None
    if args.image:
        matches = [r for r in store.images() if args.image in (r.name, str(r.path))]
        if len(matches) != 1:
            raise ValueError(f"--image {args.image!r}: {len(matches)} images of "
                             f"{args.project} have that name or path (need exactly one)")
        image_id = matches[0].id
    columns = None
    if args.columns:
        given = dict(part.split("=", 1) for part in args.columns.split(",") if "=" in part)
        if "x" not in given or "y" not in given:
            raise ValueError(f"--columns {args.columns!r}: name at least x=COL,y=COL")
        columns = ColumnMap(given["x"], given["y"], given.get("image"), given.get("class"),
                            args.units or "px")
    return ImportChoices(
        image_folder=args.image_folder, on_missing_image=args.on_missing_image,
        on_unknown_class=args.on_unknown_class, class_map=class_map,
        class_set=class_set_names(args.class_set) if args.class_set else None,
        units=args.units, polygons_as_cells=args.polygons_as_cells, image_id=image_id,
        columns=columns, existing_cells=getattr(args, "on_existing_cell", "refuse"))


def _import(store: Any, args: argparse.Namespace) -> Any:
    from cellviewer.core.cohort import result_files
    from cellviewer.core.io.cell_import import apply_import, plan_import
    from cellviewer.core.store import ProjectError

    args.read_files = result_files(args.files)
    plan = plan_import(store, args.read_files, choices_of(store, args))
    if not args.json:
        for line in plan.summary() + plan.notices:
            print(line, file=sys.stderr)
    if plan.problems:
        raise ProjectError("nothing imported:\n  " + "\n  ".join(plan.problems))
    if args.dry_run:
        return None
    return apply_import(store, plan)
