"""The review queue in the real main window with a model trained in the test: predict the
project, walk the cells whose label differs from the prediction, accept one prediction with
Enter and correct another with a number key, then undo both; the slide follows the queue."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from test_predict_support import wait_for

from cellviewer.core.review import ReviewFilter, next_review_status
from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.predict.install import install
from cellviewer.ui.predict.model_panel import SCOPE_PROJECT

pytest_plugins = ["test_predict_support"]


@pytest.fixture
def window(qtbot, project_copy, trained_model):
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    assert w.open_project(project_copy)
    w.wait_idle(10000)
    tools = install(w)
    tools.model_panel.load_model(trained_model.path)
    wait_for(qtbot, lambda: tools.session.choice is not None)
    yield w
    tools.model_panel.wait_idle()
    w.close()


def _build(qtbot, panel, flt) -> list[str]:
    """Build a queue (in the background) and wait for it."""
    with qtbot.waitSignal(panel.built, timeout=30000) as built:
        panel.build(flt)
    return built.args[0]


def test_walk_accept_correct_and_undo(qtbot, window):
    tools = window.prediction_tools
    store = window.store
    with qtbot.waitSignal(tools.session.jobFinished, timeout=120000):
        tools.model_panel.predict(SCOPE_PROJECT)
    # The view recoloured by prediction as the results arrived.
    assert window.color_mode() == "prediction"
    layer = window.view.layer
    assert layer.pred_class is not None and (layer.pred_class >= 0).all()

    panel = tools.review_panel
    ids = _build(qtbot, panel, ReviewFilter(disagree=True))
    model_id = tools.session.choice.model_id
    preds = store.predictions(model_id, ids)
    labels = np.array([store.cell(i).class_id for i in ids])
    assert len(ids) > 3 and (preds.predicted_class_id != labels).all()
    assert list(preds.confidence) == sorted(preds.confidence)  # least confident first

    # The first cell: the slide shows its image, centred on it, and it is selected.
    first = panel.current_id()
    assert first == ids[0]
    cell = store.cell(first)
    assert window.current_image_id() == cell.image_id
    window.wait_idle(5000)
    wait_for(qtbot, lambda: window.selected_cell_ids() == [first], 10000)
    # On screen (centred, unless the view's clamping at the image border moved it a bit).
    x0, y0, x1, y1 = window.view.visible_image_rect()
    assert x0 + 10 < cell.x < x1 - 10 and y0 + 10 < cell.y < y1 - 10

    # Enter accepts the model's prediction.
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_Return)
    accepted = store.cell(first)
    assert accepted.class_id == preds.predicted_class_id[0]
    assert accepted.label_source == "model-accepted"
    assert accepted.review_status == next_review_status(cell.review_status)
    last = store.history(first)[-1]
    assert last.user == "test-user" and last.source == "model-accepted"

    # The queue moved on; a number key sets the class with that key (a correction).
    second = panel.current_id()
    assert second == ids[1]
    before = store.cell(second)
    key_class = next(c for c in store.classes()
                     if c.key and c.id not in (before.class_id, preds.predicted_class_id[1]))
    qtbot.keyClicks(panel.table, key_class.key)
    corrected = store.cell(second)
    assert corrected.class_id == key_class.id and corrected.label_source == "corrected"
    assert corrected.review_status == next_review_status(before.review_status)
    assert store.history(second)[-1].user == "test-user"
    assert panel.current_id() == ids[2]
    assert panel.model.data(panel.model.index(0, 6)).startswith("✓")
    # The main window picked up the edits (it listens to the store).
    window.wait_idle(5000)
    qtbot.waitUntil(lambda: window.view.layer.class_id[
        window.view.layer.rows_of([second])[0]] == key_class.id
        if window.current_image_id() == corrected.image_id else True, timeout=5000)

    # Shift+1 sets the class the class panel shows with Shift+1 (the tenth of the demo's 13
    # classes): the queue reads keys as the viewer does.
    third = panel.current_id()
    shifted = next(c for c in window.panels.classes if c.key == "Shift+1")
    qtbot.keyClick(panel.table, Qt.Key.Key_1, Qt.KeyboardModifier.ShiftModifier)
    assert store.cell(third).class_id == shifted.id
    assert panel.current_id() == ids[3]
    qtbot.keyClick(panel.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)

    # Ctrl+Z undoes the correction (label, source and status at once), then the acceptance.
    qtbot.keyClick(panel.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    restored = store.cell(second)
    assert (restored.class_id, restored.label_source, restored.review_status) == \
        (before.class_id, before.label_source, before.review_status)
    qtbot.keyClick(panel.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    restored = store.cell(first)
    assert (restored.class_id, restored.label_source, restored.review_status) == \
        (cell.class_id, cell.label_source, cell.review_status)
    assert not store.can_undo() or store.undo_description() != "Review: Accept"


def test_queue_filters(qtbot, window):
    tools = window.prediction_tools
    store = window.store
    with qtbot.waitSignal(tools.session.jobFinished, timeout=120000):
        tools.model_panel.predict(SCOPE_PROJECT)
    panel = tools.review_panel
    model_id = tools.session.choice.model_id
    low = _build(qtbot, panel, ReviewFilter(max_confidence=0.5))
    conf = store.predictions(model_id, low).confidence
    assert len(low) > 0 and (conf <= 0.5).all()
    assert len(low) == int(np.count_nonzero(
        store.predictions(model_id, store.query_cells(order=None)).confidence <= 0.5))
    some_class = store.cell(low[0]).class_id
    of_class = _build(qtbot, panel, ReviewFilter(class_id=some_class,
                                                 review_status="unreviewed"))
    assert of_class and all(store.cell(i).class_id == some_class for i in of_class)
    image = window.current_image_id()
    here = _build(qtbot, panel, ReviewFilter(image_id=image))
    assert len(here) == store.cell_count(image)


def test_sort_by_blur_sensitivity(qtbot, window):
    tools = window.prediction_tools
    with qtbot.waitSignal(tools.session.jobFinished, timeout=120000):
        tools.model_panel.predict(SCOPE_PROJECT)
    panel = tools.review_panel
    panel.blur_sigma = 1.6
    image = window.current_image_id()
    ids = _build(qtbot, panel, ReviewFilter(image_id=image, order="blur-sensitive-first"))
    wait_for(qtbot, lambda: panel.sensitivity(ids[0]) is not None, 60000)
    order = list(panel.model.ids)
    sens = [panel.sensitivity(i) for i in order]
    assert sorted(order) == sorted(ids)
    assert sens == sorted(sens, reverse=True) and sens[0] > 0
    assert "blur-sensitive first" in panel.status.text() or "Cell 1" in panel.status.text()
