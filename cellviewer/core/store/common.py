"""Small helpers shared by the store's modules: who, when, checks of user input, and how a call
names cells and new rows in SQL."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from cellviewer.core.store.schema import LABEL_SOURCES, REVIEW_STATUSES

SUFFIX = ".cvproj"
UNLABELLED = -1  # class_id value meaning "no label" in arrays and query_cells
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
# Distinct colours for classes created without one (Sasha Trubetskoy's 20 colours).
PALETTE = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
    "#808000", "#ffd8b1", "#000075", "#a9a9a9",
)


def current_user() -> str:
    """Who a store records when nobody said (scripts, tests): see cellviewer.core.project.users."""
    from cellviewer.core.project.users import default_user

    return default_user()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def norm_color(color: str) -> str:
    if not isinstance(color, str) or not _COLOR_RE.match(color.strip()):
        raise ValueError(f"colour {color!r} is not of the form #rrggbb")
    return color.strip().lower()


def norm_key(key: str | None) -> str:
    key = (key or "").strip()
    if len(key) > 1:
        raise ValueError(f"class key {key!r} must be one character (\"1\"..\"9\") or empty")
    return key


def check_source(source: str) -> None:
    if source not in LABEL_SOURCES:
        raise ValueError(f"label source {source!r} is not one of {LABEL_SOURCES}")


def check_status(status: str) -> None:
    if status not in REVIEW_STATUSES:
        raise ValueError(f"review status {status!r} is not one of {REVIEW_STATUSES}")


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just made (``lastrowid`` is None only before one)."""
    row_id = cur.lastrowid
    assert row_id is not None, "inserted_id() needs the cursor of an INSERT"
    return row_id


def cell_keys(ids: Sequence[str] | np.ndarray) -> tuple[str, list]:
    """How ``ids`` name cells in SQL: ``("id", ints)`` for an integer array (CellArrays
    ``rows``, the internal keys), else ``("uuid", strings)``."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        return "id", ids.tolist()
    return "uuid", [str(i) for i in ids]
