"""What the parts of ProjectStore share, declared once so that each part type-checks alone.

ProjectStore (project.py) is assembled from mixins, one per kind of data (images.py,
classes.py, cells.py, cell_columns.py, models.py), and they use each other: adding cells checks
the image and the classes, removing an image deletes its cells, every edit runs in the
transaction helpers of project.py. ``StoreBase``, which every mixin inherits, names that shared
state (set by ``ProjectStore.__init__``) and, for the type checker only, the methods defined in
a sibling part. At run time it adds nothing: the stubs exist only under ``TYPE_CHECKING``, so
method lookup is exactly that of the mixins and ProjectStore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: nothing here is needed at run time
    import sqlite3
    from collections.abc import Iterable, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path

    import numpy as np

    from cellviewer.core.store import undo as _undo
    from cellviewer.core.store.records import (
        ChangeEvent,
        ClassRecord,
        ImageRecord,
        ModelRecord,
    )


class StoreBase:
    """The state and cross-part methods of a ProjectStore (see the module docstring)."""

    # Set by ProjectStore.__init__.
    path: Path  # the project file
    _conn: sqlite3.Connection  # this thread's connection (None once closed)
    _readonly: bool
    _user: str  # who is recorded as making the changes
    _op: _undo.PendingOp | None  # the action being recorded, if any
    _counts: dict[int, int] | None  # cells per image, cached (None: read again)
    _data_version: int  # SQLite's data_version when _counts was read

    if TYPE_CHECKING:
        # project.py: the file, transactions and change events.
        @property
        def folder(self) -> Path: ...

        def _operation(self, action: str, description: str
                       ) -> AbstractContextManager[_undo.PendingOp]: ...

        def _write(self, kinds: Iterable[str] = (), image_ids: Iterable[int] = (),
                   needs_user: bool = True) -> AbstractContextManager[None]: ...

        def _notify(self, event: ChangeEvent) -> None: ...

        # images.py
        def image(self, image_id: int) -> ImageRecord: ...

        def _cell_counts(self) -> dict[int, int]: ...

        # classes.py
        def classes(self) -> list[ClassRecord]: ...

        def class_record(self, class_id: int) -> ClassRecord: ...

        # cells.py
        def _select(self, ids: Sequence[str] | np.ndarray, values: Sequence | None = None,
                    xy: np.ndarray | None = None) -> int: ...

        def _delete_selected(self, op: _undo.PendingOp, action: str) -> int: ...

        def _label_selected(self, op: _undo.PendingOp, source: str | None, action: str,
                            keep_source: bool = False) -> int: ...

        def _scan_instead(self, image_id: int) -> str: ...

        # models.py
        def model(self, model_id: int) -> ModelRecord: ...
