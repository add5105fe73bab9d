"""Images of a project: paths (relative to the project when inside it), sizes, µm/px."""

from __future__ import annotations

import math
import os
from pathlib import Path

from cellviewer.core.store import undo as _undo
from cellviewer.core.store.base import StoreBase
from cellviewer.core.store.common import (
    inserted_id,
    utc_now,
)
from cellviewer.core.store.records import (
    ImageRecord,
    ProjectError,
)


class ImagesMixin(StoreBase):
    """The image half of ProjectStore (see project.py)."""

    # ------------------------------------------------------------------ images

    def _stored_path(self, path: str | os.PathLike) -> str:
        p = Path(path).expanduser().absolute()
        try:
            return p.relative_to(self.folder).as_posix()
        except ValueError:
            return str(p)

    def _resolve(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.folder / p

    def add_image(self, path: str | os.PathLike, width: int, height: int,
                  mpp: float | None = None, fingerprint: str | None = None) -> int:
        """Add an image (its level-0 size, µm per pixel when known, a content fingerprint).
        The path is stored relative to the project's folder when the image lies inside it."""
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"{path}: image size {width}x{height} is not positive")
        if mpp is not None:
            mpp = float(mpp)
            if not (math.isfinite(mpp) and mpp > 0):
                mpp = None
        stored = self._stored_path(path)
        existing = self.image_id_for_path(path)
        if existing is not None:
            raise ProjectError(f"{path}: already in the project (image {existing})")
        with self._operation("add-image", f"Add image {Path(stored).name}") as op:
            image_id = inserted_id(self._conn.execute(
                "INSERT INTO images (path, width, height, mpp, fingerprint, added_by, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stored, width, height, mpp, fingerprint, self._user, utc_now()),
            ))
            op.tables.setdefault("images", {})[str(image_id)] = None  # absent before
            op.note("images", [image_id])
        return image_id

    def image_id_for_path(self, path: str | os.PathLike) -> int | None:
        row = self._conn.execute(
            "SELECT id FROM images WHERE path = ?", (self._stored_path(path),)
        ).fetchone()
        return row[0] if row else None

    def _counts_fresh(self) -> bool:
        """Whether the cached per-image counts are still right (no change since, here or by
        another connection)."""
        if self._counts is None:
            return False
        return self._conn.execute("PRAGMA data_version").fetchone()[0] == self._data_version

    def _forget_counts(self) -> None:
        """This connection changed how many cells some image has: count again when asked."""
        self._counts = None
        self._one_count.clear()

    def _image_count(self, image_id: int) -> int:
        """One image's cells: from the per-image counts while they are fresh, else an
        index-only count, kept until the file changes (the cell panel and the preview each ask
        for the image of the selected cell; after a worker's write each ask counted again, a
        few ms at 100,000 cells on the GUI thread)."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if self._counts is not None and version == self._data_version:  # _counts_fresh()
            return int(self._counts.get(int(image_id), 0))
        known = self._one_count.get(int(image_id))
        if known is not None and known[0] == version:
            return known[1]
        n = int(self._conn.execute(
            "SELECT count(*) FROM cells WHERE image_id = ?", (int(image_id),)).fetchone()[0])
        self._one_count[int(image_id)] = (version, n)
        return n

    def _cell_counts(self) -> dict[int, int]:
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if self._counts is None or version != self._data_version:
            self._counts = dict(self._conn.execute(
                "SELECT image_id, count(*) FROM cells GROUP BY image_id"
            ).fetchall())
            self._data_version = version
        return self._counts

    def _image_record(self, row: tuple, count: int | None = None) -> ImageRecord:
        image_id, stored, width, height, mpp, fingerprint = row
        if count is None:
            count = self._cell_counts().get(image_id, 0)
        return ImageRecord(image_id, self._resolve(stored), width, height, mpp, fingerprint,
                           count, stored)

    def images(self) -> list[ImageRecord]:
        rows = self._conn.execute(
            "SELECT id, path, width, height, mpp, fingerprint FROM images ORDER BY id"
        ).fetchall()
        return [self._image_record(r) for r in rows]

    def image_names(self) -> dict[int, str]:
        """Image id → file name, without counting cells (for labels and menus)."""
        return {int(i): self._resolve(p).name for i, p in self._conn.execute(
            "SELECT id, path FROM images ORDER BY id")}

    def image(self, image_id: int) -> ImageRecord:
        row = self._conn.execute(
            "SELECT id, path, width, height, mpp, fingerprint FROM images WHERE id = ?",
            (int(image_id),),
        ).fetchone()
        if row is None:
            raise KeyError(f"no image {image_id} in {self.path}")
        # one image's count, not the whole project's recount
        return self._image_record(row, self._image_count(int(image_id)))

    def missing_images(self) -> list[ImageRecord]:
        """Images whose file is not where the project says (moved or on an unplugged disk)."""
        return [im for im in self.images() if not im.path.exists()]

    def relink_image(self, image_id: int, path: str | os.PathLike) -> None:
        """Point an image at its file's new place (not an undoable edit: it fixes a path)."""
        self.image(image_id)
        with self._write(kinds=("images",), image_ids=(image_id,)):
            self._conn.execute(
                "UPDATE images SET path = ? WHERE id = ?", (self._stored_path(path), image_id)
            )

    def set_image_content(self, image_id: int, width: int, height: int,
                          fingerprint: str | None) -> None:
        """Record what an image's file holds now (its level-0 size and content fingerprint),
        after the user accepted a replaced file (``cellviewer.core.sources.replaced``). Not an
        undoable edit: like relinking, it makes the record describe the file."""
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"image {image_id}: size {width}x{height} is not positive")
        self.image(image_id)
        with self._write(kinds=("images",), image_ids=(image_id,)):
            self._conn.execute(
                "UPDATE images SET width = ?, height = ?, fingerprint = ? WHERE id = ?",
                (width, height, fingerprint, int(image_id)),
            )

    def remove_image(self, image_id: int) -> int:
        """Remove an image and all its cells (undoable). Returns the number of cells removed."""
        image = self.image(image_id)
        with self._operation("remove-image", f"Remove image {image.name}") as op:
            self._conn.execute("DELETE FROM temp._sel")
            self._conn.execute(
                "INSERT INTO temp._sel (id) SELECT id FROM cells WHERE image_id = ?", (image_id,)
            )
            n = self._delete_selected(op, "delete")
            regions = [r[0] for r in self._conn.execute(
                "SELECT id FROM regions WHERE image_id = ?", (image_id,))]
            if regions:
                self._delete_region_rows(op, regions)
                op.note("regions", [image_id])
            _undo.snapshot_rows(self._conn, op, "images", [(image_id,)])
            self._conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
            op.note("images", [image_id])
        return n
