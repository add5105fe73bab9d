"""File → Merge project… in the real main window, on real copies made with the core API and
edited differently by three annotators: the merge runs in the background, the summary names
what each copy brought, the window shows the merged cells, the cell details list each
annotator's label, a second merge of the same files is a no-op, and Edit → Undo takes the
whole merge back. File → Copy for annotator… makes a copy the merge accepts."""

from __future__ import annotations

import pytest
from annotator_copies import make_cohort, make_project
from PySide6.QtWidgets import QFileDialog, QMessageBox

from cellviewer.core.merge.protocol import conflict_queue
from cellviewer.core.store import ProjectStore
from cellviewer.ui.main_window import MainWindow


@pytest.fixture
def cohort(tmp_path):
    return make_cohort(tmp_path)


def open_window(qtbot, path) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.install_tools()
    w.show()
    assert w.open_project(path)
    assert w.wait_idle(10000)
    return w


def merge_through_menu(qtbot, monkeypatch, w, paths, try_edit: str | None = None) -> None:
    """File → Merge project… with the file dialog answering ``paths``; ``try_edit``: a cell
    to delete while the merge runs (refused)."""
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *a, **k: ([str(p) for p in paths], "")))
    tools = w.annotator_tools
    with qtbot.waitSignal(tools.merge_flow.merged, timeout=30000):
        tools.merge_action.trigger()
        # in the background: a progress dialog counts the copies, edits wait
        assert tools.merge_flow.progress is not None
        assert tools.merge_flow.progress.maximum() == len(paths)
        assert w.edits_held()
        if try_edit is not None:
            w.select_cells([try_edit])
            assert w.delete_selection() == 0
            assert w.last_error.startswith("Wait until the merge of ana.cvproj")
    assert tools.merge_flow.progress is None
    assert w.wait_idle(10000)
    for box in w.findChildren(QMessageBox, "error_box"):
        box.close()


def class_names(w) -> dict[str, str | None]:
    """uuid -> class name of the cells the window shows (its cell model, not the store)."""
    cells = w.session.cells
    names = {c.id: c.name for c in w.store.classes()}
    return {str(u): names.get(int(c)) for u, c in zip(cells.ids, cells.class_id, strict=True)}


def test_merge_project_menu_summary_details_and_undo(qtbot, monkeypatch, cohort):
    w = open_window(qtbot, cohort.target)
    order = cohort.order
    before = class_names(w)
    assert len(before) == 28
    tools = w.annotator_tools
    assert tools.merge_action.isEnabled()
    assert tools.merge_action in w.menu("&File").actions()

    merge_through_menu(qtbot, monkeypatch, w, [cohort.copies[u] for u in ("ana", "ben", "cy")],
                       try_edit=order[5])
    summary = tools.merge_flow.last_summary
    assert "ana.cvproj: 0 added, 11 changed (10 relabelled, 1 review status, 0 moved), " \
           "1 deleted, 0 conflicts" in summary
    assert "ben.cvproj:" in summary and "4 conflicts" in summary
    assert "cy.cvproj:" in summary and "1 deleted, 1 conflict" in summary
    assert "3 copies: 0 added, 11 changed, 2 deleted, 5 conflicts\n" in summary
    assert summary.endswith("5 conflicts wait in the Annotators panel (queue: conflicts).")
    assert w.statusBar().currentMessage() == \
        "Merged 3 copies: 0 added, 11 changed, 2 deleted, 5 conflicts"
    box = w.findChild(QMessageBox, "merge_summary_box")
    assert box is not None and box.isVisible() and "Undo" in box.informativeText()
    box.close()
    assert not w.edits_held()

    # the window shows the merged cells: ana's labels, cy's and ana's deletions
    shown = class_names(w)
    assert len(shown) == 26 and order[12] not in shown and order[20] not in shown
    assert [shown[order[i]] for i in range(10)] == ["5", "6", "2", "7", "5", "6", "2", "7",
                                                    "5", "6"]
    assert set(conflict_queue(w.store)) == {order[i] for i in (1, 2, 4, 7, 12)}
    assert "Undo Merge ana.cvproj, ben.cvproj, cy.cvproj" in w.undo_action.text()

    # the cell details list what each annotator said of the selected cell
    w.select_cells([order[1]])
    assert tools.wait_idle(10000)
    qtbot.waitUntil(lambda: "ana: 6" in w.details.fields["Annotators"].text(), timeout=5000)
    text = w.details.fields["Annotators"].text()
    assert text == "ana: 6 · ben: 8 · cy: 6 — 1 open conflict"

    # merging the same files again changes nothing and records no action
    merge_through_menu(qtbot, monkeypatch, w, [cohort.copies[u] for u in ("ana", "ben", "cy")])
    assert tools.merge_flow.last_summary.count("nothing new (already merged)") == 3
    assert "Undo Merge ana.cvproj, ben.cvproj, cy.cvproj" in w.undo_action.text()

    # one undo takes the whole merge back, in the window too
    assert w.undo()
    assert w.wait_idle(10000)
    assert class_names(w) == before
    assert conflict_queue(w.store) == []
    w.close()


def test_merge_of_a_file_that_is_no_copy_changes_nothing(qtbot, monkeypatch, tmp_path):
    target = make_project(tmp_path / "a.cvproj")
    stranger = make_project(tmp_path / "b.cvproj")
    w = open_window(qtbot, target)
    before = class_names(w)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *a, **k: ([str(stranger)], "")))
    tools = w.annotator_tools
    with qtbot.waitSignal(tools.merge_flow.failed, timeout=30000) as failed:
        tools.merge_action.trigger()
    assert "b.cvproj: is not a copy of a.cvproj" in failed.args[0]
    assert "b.cvproj" in w.last_error and not w.edits_held()
    assert class_names(w) == before
    for box in w.findChildren(QMessageBox):
        box.close()
    w.close()


def test_copy_for_annotator_dialog_makes_a_copy_the_merge_takes(qtbot, tmp_path):
    target = make_project(tmp_path / "cohort.cvproj")
    w = open_window(qtbot, target)
    tools = w.annotator_tools
    tools.copy_action.trigger()
    dialog = tools.copy_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.user_edit.setText("dana")
    assert dialog.path_edit.text() == str(tmp_path / "cohort-dana.cvproj")
    dialog.buttons.accepted.emit()
    assert tools.wait_idle(20000)
    out = tmp_path / "cohort-dana.cvproj"
    assert out.exists() and "a copy of cohort.cvproj for dana" in w.statusBar().currentMessage()
    with ProjectStore.open(out, readonly=True) as copy:
        assert copy.origin()["project"] == w.store.project_id
        assert copy.origin()["user"] == "dana" and len(copy.cell_table()["ids"]) == 28
    # the same file again: refused in the dialog, naming it
    tools.copy_action.trigger()
    again = tools.copy_dialog
    again.user_edit.setText("dana")
    again.buttons.accepted.emit()
    assert again.isVisible() and "already exists" in again.error.text()
    again.reject()
    w.close()
