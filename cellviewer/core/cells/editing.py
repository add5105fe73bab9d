"""Editing the cells of a project as plain functions: label, review, add, move, delete, undo and
redo, the same for the app, a script and a test.

Each function is one undoable action of the store (recorded with the session's user, asked
first when not known) and returns an :class:`EditResult` saying what happened in words (the
app's status bar shows it). Views never copy an edit by hand: the store's change event reaches
:class:`~cellviewer.core.cells.image_cells.ImageCells`, and every view follows it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from cellviewer.core.project.session import ProjectSession
from cellviewer.core.project.users import NoUserError
from cellviewer.core.review import ACCEPTED, CORRECTED, next_review_status
from cellviewer.core.store import ProjectError, ProjectStore


class EditError(Exception):
    """An edit that could not be made; the message says why (nothing was changed)."""


@dataclass(frozen=True)
class EditResult:
    count: int  # cells changed
    message: str  # what happened, for the status bar
    ids: tuple[str, ...] = ()  # the cells an add created


def _store(session: ProjectSession) -> ProjectStore:
    if session.store is None:
        raise EditError("No project is open.")
    if session.store.readonly:
        raise EditError(f"{session.store.path} is open read-only: it cannot be changed.")
    return session.store


def _class_name(store: ProjectStore, class_id: int | None) -> str:
    if class_id is None or class_id < 0:
        return "unlabelled"
    return store.class_record(int(class_id)).name


def _keys(session: ProjectSession, ids: list[str]) -> list[str] | np.ndarray:
    """The store's internal keys of ``ids`` when they are all cells of the open image (its
    :class:`ImageCells` knows them): the store then finds each cell by its integer key instead
    of searching the uuid index, a random page read per cell in a large project. Otherwise
    the ids themselves (the store names an unknown one)."""
    cells = session.cells
    if not len(cells):
        return ids
    index = cells.indices_of(ids)
    if (index < 0).any():
        return ids
    return cells.rows[index]


@contextlib.contextmanager
def _guard(what: str) -> Iterator[None]:
    """Turn the store's refusals into an EditError that says what could not be done."""
    try:
        yield
    except EditError:
        raise
    except (NoUserError, ProjectError, KeyError, ValueError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise EditError(f"{what}: {text}") from exc


def label(session: ProjectSession, ids: Sequence[str], class_id: int | None,
          source: str = "manual") -> EditResult:
    """Give cells a class (None or -1: unlabelled)."""
    store = _store(session)
    ids = [str(i) for i in ids]
    if not ids:
        return EditResult(0, "No cells selected.")
    cid = None if class_id is None or int(class_id) < 0 else int(class_id)
    with _guard("Cannot set the class"):
        store.set_labels(_keys(session, ids), cid, source=source)
        name = _class_name(store, cid)
    return EditResult(len(ids), f"{len(ids):,} cell(s) → {name}")


def review(session: ProjectSession, cell_id: str, class_id: int, *, accepted: bool,
           status: str | None = None) -> EditResult:
    """A review decision on one cell as ONE undoable action: set its class (``accepted``: the
    model's call, label source ``model-accepted``; else a correction, ``corrected``) and move its
    review status one step up (or to ``status``)."""
    store = _store(session)
    source = ACCEPTED if accepted else CORRECTED
    with _guard("Cannot record the review"):
        name = _class_name(store, class_id)
        new_status = status or next_review_status(store.cell(cell_id).review_status)
        verb = "Accept" if accepted else "Correct to"
        with store.batch(f"Review: {verb} {name}", action="review"):
            store.set_labels([cell_id], int(class_id), source=source)
            store.set_review_status([cell_id], new_status)
    return EditResult(1, f"{'Accepted' if accepted else 'Corrected to'} {name} ({new_status})")


def set_review_status(session: ProjectSession, ids: Sequence[str], status: str) -> EditResult:
    store = _store(session)
    with _guard("Cannot set the review status"):
        n = store.set_review_status(_keys(session, [str(i) for i in ids]), status)
    return EditResult(n, f"{n:,} cell(s) marked {status}")


def add(session: ProjectSession, xy, class_id: int | None = None,
        image_id: int | None = None) -> EditResult:
    """Add cells at level-0 ``xy`` ((N, 2)) of ``image_id`` (default: the current image)."""
    store = _store(session)
    image_id = session.image_id if image_id is None else int(image_id)
    if image_id is None:
        raise EditError("Cannot add a cell: no image is shown.")
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    cid = None if class_id is None or int(class_id) < 0 else int(class_id)
    with _guard("Cannot add a cell"):
        new = store.add_cells(image_id, xy, [cid] * len(xy))
        name = _class_name(store, cid)
    what = f"a {name} cell" if len(new) == 1 else f"{len(new):,} {name} cells"
    return EditResult(len(new), f"added {what}", tuple(new))


def move(session: ProjectSession, cell_id: str, x: float, y: float) -> EditResult:
    store = _store(session)
    with _guard("Cannot move the cell"):
        store.move_cell(str(cell_id), float(x), float(y))
    return EditResult(1, "moved a cell")


def delete(session: ProjectSession, ids: Sequence[str]) -> EditResult:
    store = _store(session)
    ids = [str(i) for i in ids]
    if not ids:
        return EditResult(0, "No cells selected.")
    with _guard("Cannot delete cells"):
        n = store.delete_cells(_keys(session, ids))
    return EditResult(n, f"deleted {n:,} cell(s)")


def undo(session: ProjectSession) -> EditResult:
    return _flip(session, "undo")


def redo(session: ProjectSession) -> EditResult:
    return _flip(session, "redo")


#: An undo or redo that touches more cells than this runs on a worker's connection (see
#: :func:`flip_store` and ``ProjectStore.connection_for_worker``): reverting a 200,000-cell
#: import takes seconds of SQLite work, which must not freeze the window, and an undo costs
#: about 20 µs a cell on this kind of machine, so from a few thousand cells it would pass the
#: 50 ms a window may stall (issue 13; a merge of annotators' copies undid in ~270 ms).
BACKGROUND_FLIP_CELLS = 2_000


def flip_in_background(session: ProjectSession, which: str) -> bool:
    """Whether the next undo (``which="undo"``) or redo is big enough for the background."""
    return _store(session).flip_size(which) > BACKGROUND_FLIP_CELLS


def _flip(session: ProjectSession, which: str) -> EditResult:
    return flip_store(_store(session), which)


def flip_store(store: ProjectStore, which: str) -> EditResult:
    """Undo or redo on ``store`` (the session's, or a worker's connection lent its session)."""
    with _guard(f"Cannot {which}"):
        description = (store.undo_description() if which == "undo"
                       else store.redo_description())
        if description is None:
            return EditResult(0, f"Nothing to {which}")
        done = store.undo() if which == "undo" else store.redo()
    if not done:
        return EditResult(0, f"Nothing to {which}")
    return EditResult(1, f"{which.capitalize()}: {description}")
