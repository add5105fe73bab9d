"""File → Merge project…: bring annotators' copies back into the open project.

The merge is the core's three-way merge (:func:`cellviewer.core.merge.merge_into`), run off the
UI thread on a worker's connection lent the window's session
(``ProjectStore.connection_for_worker``), so that it is one undoable action of this window's own
(Edit → Undo takes it back) and the window never waits on it. Meanwhile the window's edits are
held ("Wait until the merge of … has finished"), a progress dialog counts the copies, and at the
end the project is read again (the window shows the merged cells) and a summary says what each
copy brought: cells added, relabelled, deleted, and the conflicts left for the review.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QWidget

from cellviewer.core.merge import MergeResult, merge_into
from cellviewer.core.store import SUFFIX
from cellviewer.ui.common import folders
from cellviewer.ui.common.tasks import POOL, TaskRunner

#: what else a merge changes besides cells, classes and images (told to the other views)
MERGED_KINDS = ("regions", "conflicts", "history")


def ask_copies(parent: QWidget, project: str | None) -> list[str]:
    """The annotators' copies to merge (one or more project files); [] when cancelled."""
    paths, _ = QFileDialog.getOpenFileNames(parent, "Merge project",
                                            str(folders.start_folder("project", project)),
                                            f"CellViewer project (*{SUFFIX});;All files (*)")
    if paths:
        folders.remember("project", paths[0])
    return list(paths)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def summarise(results: Sequence[MergeResult]) -> str:
    """What the merge did, a line per copy and the totals (for the summary box)."""
    lines = []
    for r in results:
        if not r.changed_anything:
            lines.append(f"{r.source.name}: nothing new (already merged)")
            continue
        changed = r.relabelled + r.status_changed + r.moved + r.accepted
        text = (f"{r.source.name}: {r.added:,} added, {changed:,} changed "
                f"({r.relabelled:,} relabelled, {r.status_changed:,} review status, "
                f"{r.moved:,} moved), {r.deleted:,} deleted, "
                f"{_plural(r.conflicts, 'conflict')}")
        if r.matched_by_position:
            text += f"; {r.matched_by_position:,} matched by position"
        regions = r.regions_added + r.regions_changed + r.regions_deleted
        if regions or r.region_conflicts:
            text += (f"; regions {r.regions_added:,} added, {r.regions_changed:,} changed, "
                     f"{r.regions_deleted:,} deleted, {r.region_conflicts:,} kept ours")
        if r.images_added:
            text += f"; {_plural(r.images_added, 'image')} added"
        lines.append(text)
    conflicts = sum(r.conflicts for r in results)
    if len(results) > 1:
        lines.append(totals(results))
    if conflicts:
        lines.append(f"{_plural(conflicts, 'conflict')} wait in the Annotators panel "
                     "(queue: conflicts).")
    return "\n".join(lines)


def totals(results: Sequence[MergeResult]) -> str:
    """One line for all the copies (the status bar's)."""
    changed = sum(r.relabelled + r.status_changed + r.moved + r.accepted for r in results)
    return (f"{_plural(len(results), 'copy').replace('copys', 'copies')}: "
            f"{sum(r.added for r in results):,} added, {changed:,} changed, "
            f"{sum(r.deleted for r in results):,} deleted, "
            f"{_plural(sum(r.conflicts for r in results), 'conflict')}")


class MergeFlow(QObject):
    """Runs merges for a window (a :class:`~cellviewer.ui.host.Host`).

    Signals: ``merged(list)`` the MergeResults once the merge is in the project; ``failed(str)``
    the message when it was refused (nothing was merged then)."""

    merged = Signal(object)
    failed = Signal(str)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.runner = TaskRunner(POOL, 1, self)
        self.progress: QProgressDialog | None = None
        self.summary_box: QMessageBox | None = None
        self.last_summary = ""
        self._summary_pending = False
        window.add_close_guard(self.may_close)

    def running(self) -> bool:
        """A merge is running, or its summary is about to show."""
        return not self.runner.is_idle() or self._summary_pending

    def may_close(self, _reason: str) -> bool:
        """A close guard: the project stays open while a merge writes to it (it is one
        transaction of seconds at most; closing under it would lose the window's view of
        what it did)."""
        if self.running():
            self.window.show_status("Wait until the merge has finished.", 8000)
            return False
        return True

    def ask_and_merge(self) -> bool:
        """File → Merge project…: choose the copies, then merge them."""
        store = self.window.current_store()
        if store is None:
            self.window.show_status("Open the project the copies were made from first.")
            return False
        paths = ask_copies(self.window, str(store.path))
        return self.merge(paths) if paths else False

    def merge(self, paths: Sequence[str | Path]) -> bool:
        """Merge ``paths`` into the open project in the background; False when it could not
        start (no project, read-only, another write going on, no user: the window says why)."""
        title = "Cannot merge"
        store = self.window.current_store()
        if store is None or not paths:
            return False
        if store.readonly:
            self.window.report_error(title, f"{store.path}: {store.read_only_reason}; nothing "
                                     "was merged.")
            return False
        if self.window.edits_held():
            self.window.report_error(title, "Wait until the work on the project has finished.")
            return False
        try:
            self.window.session.require_user()  # asked here, on the UI thread
        except Exception as exc:  # declined: nothing is changed
            self.window.report_error(title, str(exc))
            return False
        paths = [Path(p) for p in paths]
        names = ", ".join(p.name for p in paths)

        def work(state) -> list[MergeResult]:
            worker = store.connection_for_worker()
            try:
                return merge_into(worker, list(paths), on_copy=lambda i, p: (
                    state.set_status(f"Merging {p.name}…"), state.set_progress(i)))
            finally:
                worker.close()

        self.window.hold_edits(f"the merge of {names}")
        self._show_progress(len(paths))
        self.window.show_status(f"Merging {names}…", 0)
        self.runner.start(work, done=lambda results: self._finished(store, results, None),
                          failed=lambda message: self._finished(store, None, message),
                          progress=self._on_progress, status=self._on_status)
        return True

    # --- progress and outcome ----------------------------------------------------------
    def _show_progress(self, n: int) -> None:
        dialog = QProgressDialog("Merging…", "", 0, n, self.window)
        dialog.setObjectName("merge_progress")
        dialog.setWindowTitle("Merge project")
        dialog.setCancelButton(None)  # one transaction: it finishes or changes nothing
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setValue(0)
        self.progress = dialog

    def _on_progress(self, value: Any) -> None:
        if self.progress is not None:
            self.progress.setValue(int(value))

    def _on_status(self, text: str) -> None:
        if self.progress is not None:
            self.progress.setLabelText(text)

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress.deleteLater()
            self.progress = None

    def _finished(self, store: Any, results: list[MergeResult] | None,
                  error: str | None) -> None:
        self._close_progress()
        if store is not self.window.current_store():  # the project was closed meanwhile
            self.window.release_edits(changed=False)
            return
        self.window.release_edits(changed=True)  # cells, classes, images read again
        store.external_change(MERGED_KINDS)  # and the regions, the queues, the details
        if error is not None:
            self.last_summary = ""
            self.window.report_error("Cannot merge", error)
            self.failed.emit(error)
            return
        assert results is not None
        self.last_summary = summarise(results)
        changed = any(r.changed_anything for r in results)
        self.window.show_status("Merged " + totals(results) if changed
                                else "Nothing new to merge", 10_000)
        # the box in the event loop's next turn: the project's refresh and the box are two
        # short blocks of the UI thread, not one long one
        self._summary_pending = True
        QTimer.singleShot(0, self, lambda: self._show_summary(store, results, changed))

    def _show_summary(self, store: Any, results: list[MergeResult], changed: bool) -> None:
        self._summary_pending = False
        box = QMessageBox(QMessageBox.Icon.Information, "Merge project",
                          "Merged into " + Path(store.path).name + "." if changed
                          else "Nothing new: these copies were merged already.",
                          QMessageBox.StandardButton.Ok, self.window)
        box.setObjectName("merge_summary_box")
        box.setInformativeText(self.last_summary + ("\n\nEdit → Undo takes the whole merge "
                                                    "back." if changed else ""))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()  # never blocks (tests and batch work read and close it)
        self.summary_box = box
        self.merged.emit(results)

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        """Process events until the merge is done and shown (tests)."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            if not self.running():
                QCoreApplication.processEvents()
                return True
        return False
