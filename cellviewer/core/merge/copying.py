"""A copy of a project for one annotator, which records where it came from (the project's id
and the last history entry it holds) and the state it starts from (the merge base)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from cellviewer.core.store import ProjectError, ProjectStore


def copy_for(project: str | os.PathLike, out: str | os.PathLike, user: str) -> Path:
    """Copy ``project`` to ``out`` (a new file) for ``user`` to annotate; returns ``out``.

    The copy is taken with SQLite's backup API, so it is consistent even while the project is
    open in the app. ProjectError naming the file when ``out`` exists or ``project`` is not a
    project (nothing is left behind then)."""
    project, out = Path(project).absolute(), Path(out).absolute()
    if not user.strip():
        raise ProjectError(f"{out}: a copy is made for someone: give a user")
    if out.exists():
        raise ProjectError(f"{out}: a file of that name already exists")
    with ProjectStore.open(project, readonly=True) as source:
        origin, entry, name = source.project_id, source.last_history_entry(), source.name
    try:
        src = sqlite3.connect(f"{project.as_uri()}?mode=ro", uri=True)
        dst = sqlite3.connect(out)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        with ProjectStore.open(out) as copy:
            copy.user = user
            copy.become_copy(origin, entry, user, project.parent)
            copy.set_name(f"{name} ({user})")
            copy.wait_for_checkpoint()
    except BaseException:
        for p in (out, Path(f"{out}-wal"), Path(f"{out}-shm")):
            p.unlink(missing_ok=True)
        raise
    return out
