"""``cellviewer merge TARGET OTHER… --user U``: bring annotators' copies (made with
``cellviewer copy-for`` from TARGET) back into TARGET, three ways against their common origin,
as one undoable action. A change made on one side only wins; a cell changed on both sides to
different labels, or deleted on one side and edited on the other, is a conflict kept side by
side (who set each and when) for review. Merging the same copy again changes nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("merge", help="merge annotators' copies into their project",
                       description=__doc__)
    p.add_argument("target", type=Path, help="the project the copies were made from")
    p.add_argument("others", type=Path, nargs="+", metavar="OTHER", help="annotators' copies")
    p.add_argument("--user", default=None, help="who merges (else CELLVIEWER_USER)")
    p.add_argument("--tolerance-um", type=float, default=2.0,
                   help="cells added on two sides within this distance are one (default 2)")
    p.add_argument("--tolerance-px", type=float, default=4.0,
                   help="the same where an image's pixel size is unknown (default 4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cellviewer.cli.main import CommandError
    from cellviewer.core.merge import merge
    from cellviewer.core.project.users import NoUserError, headless_user
    from cellviewer.core.store import ProjectError

    try:
        user = headless_user(args.user)
        results = merge(args.target, args.others, user, tolerance_um=args.tolerance_um,
                        tolerance_px=args.tolerance_px)
    except (NoUserError, ProjectError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    for r in results:
        if not r.changed_anything:
            print(f"{r.source.name}: nothing new (already merged)")
            continue
        print(f"{r.source.name}: {r.added} added, {r.relabelled} relabelled, "
              f"{r.status_changed} review status, {r.moved} moved, {r.deleted} deleted, "
              f"{r.matched_by_position} matched by position, {r.conflicts} conflicts; "
              f"regions {r.regions_added} added, {r.regions_changed} changed, "
              f"{r.regions_deleted} deleted, {r.region_conflicts} kept ours; "
              f"{r.history_copied} history entries")
    return 0
