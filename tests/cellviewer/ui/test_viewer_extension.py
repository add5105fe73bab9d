"""The surface other panels use: docks and menus, colour modes fed by the active model's
predictions, signals after edits, centring on a cell of another image; and the user's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDockWidget, QLabel

from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.project.demo import load_class_set
from cellviewer.core.store import ProjectStore
from cellviewer.paths import demo_dir
from cellviewer.ui.common.dialogs import ask_user_name, saved_user
from cellviewer.ui.common.settings import app_settings
from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.viewer.markers import AGREE_COLOUR, DISAGREE_COLOUR

IMAGES = [demo_dir() / "images" / "12.jpg", demo_dir() / "images" / "198.jpg"]


@pytest.fixture
def window(qtbot, tmp_path: Path):
    path = tmp_path / "x.cvproj"
    with ProjectStore.create(path) as store:
        ids = add_classes(store, load_class_set()["classes"])
        a, b = add_images(store, IMAGES)
        store.add_cells(a, [[100, 100], [300, 200]], [ids[0], ids[1]])
        store.add_cells(b, [[50, 60]], ids[2])
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1100, 750)
    w.show()
    qtbot.waitExposed(w)
    assert w.open_project(path)
    qtbot.waitUntil(lambda: w.view.handle is not None and len(w.view.layer) == 2,
                    timeout=10000)
    return w


def test_panels_and_menus_dock_in(qtbot, window):
    dock = QDockWidget("Model", window)
    dock.setObjectName("model_dock")
    dock.setWidget(QLabel("model panel"))
    assert window.add_panel(dock, Qt.DockWidgetArea.RightDockWidgetArea) is dock
    panels = window._panels_menu.actions()
    assert dock.toggleViewAction() in panels
    assert {a.text() for a in panels} >= {"Images", "Classes", "Cell", "Gallery", "Model"}
    model = window.menu("&Model")
    assert window.menu("&Model") is model  # found again, not duplicated
    assert sum(a.text() == "&Model" for a in window.menuBar().actions()) == 1


def _predict(window, calls: dict[str, tuple[str, float]]) -> int:
    """Store a model's predictions (cell id -> (class name, confidence)) and make it the
    active model; returns its id once the window's cells carry them."""
    store = window.store
    names = [c.name for c in store.classes()]
    model = store.add_model("test model", None, "cnn", names)
    ids = list(calls)
    probs = np.zeros((len(ids), len(names)), dtype=np.float32)
    for row, cid in enumerate(ids):
        name, conf = calls[cid]
        probs[row, :] = (1 - conf) / (len(names) - 1)
        probs[row, names.index(name)] = conf
    store.put_predictions(model, ids, probs)
    window.session.set_active_model(model)
    window.wait_idle()
    return model


def test_the_active_models_predictions_recolour_by_agreement(qtbot, window):
    store = window.store
    image_id = window.current_image_id()
    cells = store.cell_arrays(image_id)
    order = np.argsort(cells.xy[:, 0])
    left, right = (str(cells.ids[i]) for i in order)  # (100, 100) and (300, 200)
    normal, macro = store.class_id("normal"), store.class_id("macrocyte")
    modes = []
    window.colorModeChanged.connect(modes.append)
    # right is labelled macrocyte
    _predict(window, {left: ("normal", 0.9), right: ("normal", 0.8)})
    assert window.session.cells.has_predictions()
    window.view.set_marker_style("dot", 14)
    window.set_color_mode("agreement")
    assert modes == ["agreement"]
    shot = window.view.grab().toImage()
    assert shot.pixelColor(window.view.image_to_view(100, 100).toPoint()) == QColor(AGREE_COLOUR)
    assert shot.pixelColor(window.view.image_to_view(300, 200).toPoint()) == \
        QColor(DISAGREE_COLOUR)
    window.set_color_mode("prediction")
    shot = window.view.grab().toImage()
    colour = {c.id: c.color for c in store.classes()}
    assert shot.pixelColor(window.view.image_to_view(300, 200).toPoint()) == \
        QColor(colour[normal])
    window.set_color_mode("label")
    shot = window.view.grab().toImage()
    assert shot.pixelColor(window.view.image_to_view(300, 200).toPoint()) == QColor(colour[macro])
    with pytest.raises(ValueError):
        window.set_color_mode("rainbow")


def test_gallery_orders_cells_by_the_models_confidence(qtbot, window):
    image_id = window.current_image_id()
    cells = window.store.cell_arrays(image_id)
    order = np.argsort(cells.xy[:, 0])
    left, right = (str(cells.ids[i]) for i in order)
    panel = window.gallery_panel
    panel.set_filter("all")
    panel.set_order("unsure-first")  # no predictions yet: slide order, and it says why
    assert "no predictions" in panel.count.text()
    _predict(window, {left: ("normal", 0.9), right: ("normal", 0.35)})
    qtbot.waitUntil(lambda: window.gallery.ids() == [right, left], timeout=3000)
    # the doubtful call first, each crop captioned with the model's call and confidence
    assert [window.gallery.caption(i) for i in range(2)] == ["0.35 normal", "0.90 normal"]
    panel.set_order("sure-first")
    assert window.gallery.ids() == [left, right]
    panel.set_order("slide")
    assert window.gallery.caption(0) in ("normal", "macrocyte")
    assert "no predictions" not in panel.count.text()


def test_ordering_by_confidence_puts_cells_without_a_prediction_last():
    from cellviewer.core.cells.order import order_by_confidence

    conf = np.array([0.5, np.nan, 0.2, 0.9, 0.2])
    rows = np.array([0, 1, 2, 3, 4])
    assert order_by_confidence(rows, conf, "unsure-first").tolist() == [2, 4, 0, 3, 1]
    assert order_by_confidence(rows, conf, "sure-first").tolist() == [3, 0, 2, 4, 1]
    assert order_by_confidence(rows, conf, "slide").tolist() == [0, 1, 2, 3, 4]
    assert order_by_confidence(rows[::-1], None, "unsure-first").tolist() == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="'blur' is not one of"):
        order_by_confidence(rows, conf, "blur")


def test_signals_and_centring_on_a_cell_of_another_image(qtbot, window):
    store = window.store
    other = store.images()[1]
    (far,) = store.cell_arrays(other.id).ids
    images, selections, changes = [], [], []
    window.imageChanged.connect(images.append)
    window.selectionChanged.connect(selections.append)
    window.cellsChanged.connect(lambda: changes.append(1))
    assert window.centre_on_cell(str(far))
    qtbot.waitUntil(lambda: window.current_image_id() == other.id and
                    window.selected_cell_ids() == [str(far)] and
                    window.current_image_source() is not None, timeout=10000)
    assert other.id in images and selections[-1] == [str(far)]
    x, y = window.view.view_to_image(window.view.rect().center())
    assert abs(x - 50) <= 1.5 and abs(y - 60) <= 1.5
    window.label_selection(store.class_id("teardrop"))
    assert changes and store.cell(str(far)).class_id == store.class_id("teardrop")
    assert window.visible_cell_ids() == [str(far)]
    assert not window.centre_on_cell("01a21d7d-0000-7000-8000-000000000000")


def test_class_editor_changes_reach_the_panel(qtbot, window):
    window.edit_classes()
    editor = window.class_editor
    store = window.store
    cid = editor.add_class("blast", "#123456", "")
    assert store.class_id("blast") == cid
    editor.rename(cid, "myeloblast")
    editor.set_key(cid, "9")  # takes the key from burr cell
    assert store.class_record(cid).key == "9"
    editor.move(cid, -100)
    assert store.classes()[0].id == cid
    qtbot.waitUntil(lambda: window.class_panel.tree.topLevelItem(0).text(0) == "myeloblast",
                    timeout=3000)
    # a bad key is refused with a message, nothing changes
    editor.set_key(cid, "x")
    assert store.class_record(cid).key == "9"
    # merging normal into myeloblast relabels its cell on screen
    normal = store.class_id("normal")
    editor.merge(normal, cid)
    assert store.class_id("normal") is None
    qtbot.waitUntil(lambda: (window.view.layer.class_id == cid).sum() == 1, timeout=3000)
    # the whole action is undoable from the window
    window.undo()
    assert store.class_id("normal") is not None
    editor.close()


def test_the_user_comes_from_the_environment_else_is_asked_pre_filled(qtbot, monkeypatch):
    from cellviewer.core.project.session import ProjectSession

    assert ProjectSession().user == "test-user"  # CELLVIEWER_USER
    monkeypatch.delenv("CELLVIEWER_USER")
    assert ProjectSession().user is None  # asked at the first edit
    app_settings().setValue("user/name", "dr-who")
    assert saved_user() == "dr-who"
    seen = []

    def answer():
        from PySide6.QtWidgets import QApplication, QInputDialog

        box = QApplication.activeModalWidget()
        if isinstance(box, QInputDialog):
            seen.append(box.textValue())
            box.setTextValue("  dr   watson ")
            box.accept()

    from PySide6.QtCore import QTimer

    timer = QTimer(interval=20)
    timer.timeout.connect(answer)
    timer.start()
    assert ask_user_name(None, saved_user()) == "dr watson"
    timer.stop()
    assert seen == ["dr-who"] and saved_user() == "dr watson"  # kept for the next launch


def test_import_points_and_undo_labels(qtbot, window, tmp_path):
    csv = tmp_path / "more.csv"
    csv.write_text(f"image,x,y,class\n{IMAGES[0]},400,400,teardrop\n{IMAGES[0]},410,50,\n")
    window.import_points(str(csv))
    qtbot.waitUntil(lambda: len(window.view.layer) == 4, timeout=5000)
    assert window.store.cell_count() == 5
    assert window.undo_action.isEnabled() and "Undo" in window.undo_action.text()
    assert window.undo()
    qtbot.waitUntil(lambda: len(window.view.layer) == 2, timeout=5000)
    assert window.redo_action.isEnabled()
    # a CSV that names a missing image is refused whole, naming the file
    bad = tmp_path / "bad.csv"
    bad.write_text("image,x,y,class\nnowhere.jpg,1,1,normal\n")
    window.import_points(str(bad))
    qtbot.waitUntil(lambda: "bad.csv" in window.last_error or "nowhere.jpg" in
                    window.last_error, timeout=5000)
    assert window.store.cell_count() == 3


def test_resizing_the_window_keeps_the_centred_cell_centred(qtbot, window):
    window.view.centre_on(300, 200, 2.0)
    before = window.view.view_to_image(window.view.rect().center())
    assert abs(before[0] - 300) <= 1.5 and abs(before[1] - 200) <= 1.5
    window.resize(1300, 850)  # e.g. a dock opening or the user enlarging the window
    qtbot.waitUntil(lambda: window.view.width() > 700, timeout=3000)
    x, y = window.view.view_to_image(window.view.rect().center())
    assert abs(x - 300) <= 1.5 and abs(y - 200) <= 1.5
