"""The conflicts and pathologist queues of the Annotators panel (beside the Review queue) on a
project merged from three annotators' copies: a conflict resolved by a number key, one by
picking an annotator's label (a button naming who said it and when), a deleted cell brought
back by picking the side that kept it, an undo that reopens a conflict, the pathologist's
decision (reviewed), and the roles recorded under Edit → Roles…."""

from __future__ import annotations

import pytest
from annotator_copies import make_cohort
from PySide6.QtCore import Qt
from test_annotators_merge import open_window

from cellviewer.core.merge import merge, protocol


@pytest.fixture
def window(qtbot, tmp_path):
    cohort = make_cohort(tmp_path)
    merge(cohort.target, [cohort.copies[u] for u in ("ana", "ben", "cy")], "lead")
    w = open_window(qtbot, cohort.target)
    w.cohort = cohort
    tools = w.annotator_tools
    tools.dock.show()
    tools.dock.raise_()
    yield w
    w.close()


def _name(store, cell: str) -> str | None:
    c = store.cell(cell)
    return store.class_record(c.class_id).name if c.class_id is not None and \
        c.class_id >= 0 else None


def _build(qtbot, panel, queue: str) -> list[str]:
    with qtbot.waitSignal(panel.built, timeout=30000) as built:
        if panel.queue() == queue:
            panel.build()
        else:
            panel.set_queue(queue)
    return built.args[0]


def _choices(qtbot, panel, cell: str) -> list:
    qtbot.waitUntil(lambda: panel.current_id() == cell and bool(panel.said)
                    and bool(panel.choice_buttons)
                    and panel.said_for == cell, timeout=10000)
    return panel.said


def test_resolve_by_key_by_choice_undo_and_the_pathologist(qtbot, window):
    w, order = window, window.cohort.order
    store, panel = w.store, w.annotator_tools.panel
    ids = _build(qtbot, panel, protocol.CONFLICTS)
    assert ids == protocol.conflict_queue(store)
    assert set(ids) == {order[i] for i in (1, 2, 4, 7, 12)}
    with qtbot.waitSignal(panel.built, timeout=30000) as built:  # the current image's
        panel.scope_combo.setCurrentIndex(panel.scope_combo.findData("image"))
    assert built.args[0] == protocol.conflict_queue(store, w.current_image_id()) == ids
    first = ids[0]
    assert first == order[1]
    said = _choices(qtbot, panel, first)
    assert [s.choice.text for s in said] == ["ana: 6", "ben: 8", "cy: 6"]
    assert all(s.when.startswith("20") for s in said)  # when each said it
    assert panel.choice_buttons[1].text().startswith("&2  ben: 8  (20")
    assert w.selected_cell_ids() == [first]  # the slide follows the queue

    # a number key: the class panel's key 3 is the third class, "2"
    panel.table.setFocus()
    with qtbot.waitSignal(panel.built, timeout=30000):
        qtbot.keyClick(panel.table, "3")
    assert _name(store, first) == "2"
    assert store.conflicts(cell_uuid=first) == []
    last = store.history(first)[-1]
    assert last.action == "resolve" and last.user == "test-user"
    assert first not in panel.rows and [r.cell for r in panel.rows] == ids[1:]

    # picking one annotator's label: ben's on cell 4 (ana and cy said 5)
    cell = order[4]
    panel.go_to([r.cell for r in panel.rows].index(cell))
    said = _choices(qtbot, panel, cell)
    assert [s.choice.text for s in said] == ["ana: 5", "ben: 6", "cy: 5"]
    with qtbot.waitSignal(panel.built, timeout=30000):
        qtbot.mouseClick(panel.choice_buttons[1], Qt.MouseButton.LeftButton)
    assert _name(store, cell) == "6" and store.conflicts(cell_uuid=cell) == []
    assert cell not in [r.cell for r in panel.rows]

    # Ctrl+Z in the queue undoes it: the conflict is open again and back in the queue
    with qtbot.waitSignal(panel.built, timeout=30000):
        qtbot.keyClick(panel.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _name(store, cell) == "5" and len(store.conflicts(cell_uuid=cell)) == 1
    assert cell in [r.cell for r in panel.rows]

    # a cell ana deleted and ben relabelled: picking ben's side brings it back
    gone = order[12]
    row = [r.cell for r in panel.rows].index(gone)
    assert panel.rows[row].label == "(deleted)" and "ana: deleted" in panel.rows[row].sides
    panel.go_to(row)
    said = _choices(qtbot, panel, gone)
    texts = [s.choice.text for s in said]
    assert "ben: 9" in texts and "ana: deleted" in texts
    with qtbot.waitSignal(panel.built, timeout=30000):
        panel.choose(texts.index("ben: 9"))
    assert store.existing_cell_ids([gone]) == [gone] and _name(store, gone) == "9"

    # the pathologist's queue: the open conflicts, then the double-checked cell
    ids = _build(qtbot, panel, protocol.PATHOLOGIST)
    assert ids == protocol.pathologist_queue(store)
    checked = order[13]
    assert ids[-1] == checked and store.cell(checked).review_status == "checked"
    panel.go_to(len(ids) - 1)
    qtbot.waitUntil(lambda: panel.current_id() == checked, timeout=5000)
    with qtbot.waitSignal(panel.built, timeout=30000):
        qtbot.keyClick(panel.table, Qt.Key.Key_Return)  # confirms the label it has
    assert store.cell(checked).review_status == "reviewed" and _name(store, checked) == "3"
    assert checked not in [r.cell for r in panel.rows]
    # and a conflict decided there is reviewed too
    cell = panel.current_id()
    assert cell in protocol.conflict_queue(store)
    with qtbot.waitSignal(panel.built, timeout=30000):
        qtbot.keyClick(panel.table, "8")  # the eighth class: "7"
    assert _name(store, cell) == "7" and store.cell(cell).review_status == "reviewed"
    assert store.conflicts(cell_uuid=cell) == []


def test_roles_under_edit(qtbot, window):
    w = window
    tools = w.annotator_tools
    assert tools.roles_action in w.menu("&Edit").actions()
    tools.roles_action.trigger()
    dialog = tools.roles_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.set_role("ana", "annotator")
    assert dialog.set_role("ben", "checker")
    assert dialog.set_role("test-user", "pathologist")
    assert dialog.table.rowCount() == 3
    assert not dialog.set_role("", "checker") and "give a name" in dialog.error.text()
    dialog.table.setCurrentCell(1, 0)  # ben
    dialog.remove_button.click()
    assert protocol.roles(w.store) == {"ana": "annotator", "test-user": "pathologist"}
    dialog.reject()
    assert tools.panel.who.text() == "You: test-user (pathologist)."
