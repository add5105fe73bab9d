"""``cellviewer copy-for PROJECT OUT --user U``: a copy of a project for one annotator, which
records its origin (the project's id and the last history entry it holds) so that
``cellviewer merge`` can bring the annotator's work back three ways."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("copy-for", help="a copy of a project for one annotator",
                       description=__doc__)
    p.add_argument("project", type=Path, help="a CellViewer project (.cvproj)")
    p.add_argument("out", type=Path, help="the copy to write (a new file)")
    p.add_argument("--user", default=None, help="whom the copy is for (else CELLVIEWER_USER)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cellviewer.cli.main import CommandError
    from cellviewer.core.merge import copy_for
    from cellviewer.core.project.users import NoUserError, headless_user
    from cellviewer.core.store import ProjectError

    try:
        user = headless_user(args.user)
        out = copy_for(args.project, args.out, user)
    except (NoUserError, ProjectError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"{out}: a copy of {args.project.name} for {user}")
    return 0
