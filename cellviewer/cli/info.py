"""``cellviewer info PROJECT``: what a project holds, read-only, as text or ``--json``: its
schema version, its images (size, pixel size, cells), the cells per class, its models (id, name,
file and the file's SHA-256, predictions) and its training runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="images, classes and counts, models and runs of a project",
                       description=__doc__)
    p.add_argument("project", type=Path, help="a CellViewer project (.cvproj)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=run)


def project_info(path: Path) -> dict[str, Any]:
    """The summary ``info`` prints (ProjectError naming the file when it is not a project)."""
    from cellviewer.core.store import ProjectStore
    from cellviewer.core.training.runs import RunRegistry

    with ProjectStore.open(path, readonly=True) as store:
        table = store.cell_table()
        counts: dict[int, int] = {}
        for cid in table["class_id"].tolist():
            counts[cid] = counts.get(cid, 0) + 1
        classes = [{"name": c.name, "cells": counts.get(c.id, 0)} for c in store.classes()]
        images = [{"name": r.name, "width": r.width, "height": r.height, "mpp": r.mpp,
                   "cells": r.cell_count} for r in store.images()]
        from cellviewer.core.predict.identity import model_identity

        models = []
        for m in store.models():
            who = model_identity(m)
            models.append({"id": who.id, "name": who.name, "arch": m.arch, "file": who.file,
                           "sha256": who.sha256, "predictions": m.n_predictions})
        return {
            "project": str(store.path), "name": store.name,
            "schema_version": store.schema_version, "cells": store.cell_count(),
            "unlabelled": counts.get(-1, 0), "images": images, "classes": classes,
            "models": models, "runs": [run.name for run in RunRegistry(store.path).runs()],
        }


def run(args: argparse.Namespace) -> int:
    from cellviewer.cli.main import CommandError
    from cellviewer.core.store import ProjectError

    try:
        info = project_info(args.project)
    except (ProjectError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"{info['name']} ({info['project']}, schema {info['schema_version']})")
    print(f"{info['cells']:,} cells, {info['unlabelled']:,} unlabelled, "
          f"in {len(info['images'])} images")
    for im in info["images"]:
        size = f"{im['mpp']:g} µm/px" if im["mpp"] else "no pixel size"
        print(f"  image {im['name']} ({im['width']}x{im['height']} px, {size}): "
              f"{im['cells']:,} cells")
    for c in info["classes"]:
        print(f"  {c['cells']:>9,}  {c['name']}")
    for m in info["models"]:
        if not m["file"]:
            where = "no file"
        else:
            where = f"{m['file']}, sha256 {m['sha256'] or '? (the file is not there)'}"
        print(f"  model {m['id']} {m['name']} ({m['arch']}; {where}): "
              f"{m['predictions']:,} predictions")
    for r in info["runs"]:
        print(f"  run {r}")
    return 0
