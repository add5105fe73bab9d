"""The user-visible defects of issue 13, each driven through the real main window with its tools
installed, the way a user meets it: who is recorded for a Review-queue correction, the queue and
the gallery after an undo or an add, the active model after reopening a project, what carries
over into the next project, the gallery's captions, and closing a project while training.

They describe the behaviour the session redesign must deliver, so they use what a user does and
sees (keys, buttons, menus, the model panel's list and messages, the review table's rows, what
the gallery and blur preview paint, the store's history) rather than internals. Every wait is
bounded, and a polling helper answers any modal dialog, so a missing behaviour fails instead of
hanging.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QDialog,
    QInputDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QWidget,
)

from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.project.demo import demo_points, load_class_set, register_demo_models
from cellviewer.core.store import ProjectStore
from cellviewer.paths import demo_dir
from cellviewer.ui.common.settings import app_settings
from cellviewer.ui.main_window import MainWindow

IMAGE = demo_dir() / "images" / "12.jpg"  # 640 x 480
OTHER_IMAGE = demo_dir() / "images" / "198.jpg"
POINTS = np.array([[100.0, 100.0], [250.0, 120.0], [400.0, 150.0], [500.0, 380.0]])
DEMO_MODEL = "Demo CNN"
USER_NAME_KEY = "user/name"  # where the settings keep the user's name

# The stored predictions of the demo model for POINTS (every cell is labelled "normal"):
# a doubtful burr-cell call, a sure normal one, none, and a spherocyte call.
PREDICTIONS = [("burr cell", 0.53), ("normal", 0.90), None, ("spherocyte", 0.70)]


# --- answering dialogs --------------------------------------------------------------------------
class ModalAnswerer:
    """Answers every modal dialog while a test runs, so nothing waits for a person.

    A ``QInputDialog`` (the user's name) gets ``name``; a ``QMessageBox`` is answered with the
    button whose text is ``press`` (else it is rejected); any other dialog is rejected. What was
    seen is kept: ``names_asked`` (the pre-filled text of each name dialog) and ``boxes``
    (objectName, text, button texts)."""

    def __init__(self, name: str = "alice") -> None:
        self.name = name
        self.press = "Cancel"
        self.names_asked: list[str] = []
        self.boxes: list[tuple[str, str, list[str]]] = []
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._poll)
        self.timer.start()

    def _poll(self) -> None:
        widget = QApplication.activeModalWidget()
        if widget is None or not widget.isVisible():
            return
        if isinstance(widget, QInputDialog):
            self.names_asked.append(widget.textValue())
            widget.setTextValue(self.name)
            widget.accept()
        elif isinstance(widget, QMessageBox):
            buttons = {b.text().replace("&", ""): b for b in widget.buttons()}
            self.boxes.append((widget.objectName(), widget.text(), list(buttons)))
            if self.press in buttons:
                buttons[self.press].click()
            else:
                widget.reject()
        elif isinstance(widget, QDialog):
            widget.reject()

    def boxes_named(self, object_name: str) -> list[tuple[str, str, list[str]]]:
        return [b for b in self.boxes if b[0] == object_name]

    def stop(self) -> None:
        self.timer.stop()


@pytest.fixture
def answerer(qapp) -> Iterator[ModalAnswerer]:
    helper = ModalAnswerer()
    yield helper
    helper.stop()


# --- what a widget paints ---------------------------------------------------------------------
@contextmanager
def _recording_text(into: list[str]) -> Iterator[None]:
    """Record every string drawn with ``QPainter.drawText`` by Python paint code meanwhile."""
    original = QPainter.drawText

    def spy(painter, *args):
        into.extend(a for a in args if isinstance(a, str))
        return original(painter, *args)

    QPainter.drawText = spy
    try:
        yield
    finally:
        QPainter.drawText = original


def painted_texts(widget: QWidget) -> list[str]:
    """The texts ``widget`` and its children paint (rendered off screen now)."""
    texts: list[str] = []
    with _recording_text(texts):
        widget.grab()
    return texts


def _unelided(text: str) -> str:
    return text.rstrip("…").rstrip(".").strip()


def names_among(texts: list[str], names: set[str]) -> set[str]:
    """Which of ``names`` appear in ``texts`` (a painted text may be elided: "burr c…")."""
    found = set()
    for t in texts:
        stem = _unelided(t)
        if len(stem) < 3:
            continue
        found |= {n for n in names if n == stem or (t != stem and n.startswith(stem))}
    return found


# --- projects ---------------------------------------------------------------------------------
def _probs(model_classes: list[str], name: str, confidence: float) -> np.ndarray:
    k = len(model_classes)
    p = np.full(k, (1.0 - confidence) / (k - 1), dtype=np.float32)
    p[model_classes.index(name)] = confidence
    return p


@pytest.fixture
def rbc_project(tmp_path: Path) -> tuple[Path, list[str]]:
    """One demo image with four cells labelled "normal", the demo model registered and its
    PREDICTIONS stored (cell 2 has none). Returns the project and the cell ids."""
    path = tmp_path / "rbc.cvproj"
    with ProjectStore.create(path) as store:
        class_ids = add_classes(store, load_class_set()["classes"])
        (image_id,) = add_images(store, [IMAGE])
        normal = class_ids[[c["name"] for c in load_class_set()["classes"]].index("normal")]
        ids = [str(i) for i in store.add_cells(image_id, POINTS, [normal] * len(POINTS),
                                               source="imported")]
        (model_id,) = register_demo_models(store)
        classes = store.model(model_id).classes
        have = [(cid, p) for cid, p in zip(ids, PREDICTIONS, strict=True) if p is not None]
        store.put_predictions(model_id, [cid for cid, _ in have],
                              np.stack([_probs(classes, *p) for _, p in have]))
    return path, ids


@pytest.fixture
def crc_project(tmp_path: Path) -> Path:
    """Another project: other classes (the colorectal set), another image, three cells."""
    path = tmp_path / "crc.cvproj"
    with ProjectStore.create(path) as store:
        class_ids = add_classes(store, load_class_set("crc-cd103-cd8.json")["classes"])
        (image_id,) = add_images(store, [OTHER_IMAGE])
        store.add_cells(image_id, POINTS[:3], class_ids[:3], source="imported")
    return path


@pytest.fixture
def empty_image_project(tmp_path: Path) -> Path:
    path = tmp_path / "empty.cvproj"
    with ProjectStore.create(path) as store:
        add_classes(store, load_class_set()["classes"])
        add_images(store, [IMAGE])
    return path


TRAIN_CLASSES = {"normal": 24, "target cell": 24, "spherocyte": 24}


@pytest.fixture
def training_project(tmp_path: Path) -> tuple[Path, Path]:
    """A project of 72 labelled demo cells in three classes and its patch set."""
    from cellviewer.core.training.patchset import write_project_patchset

    path = tmp_path / "train.cvproj"
    with ProjectStore.create(path) as store:
        ids = {name: store.add_class(name) for name in TRAIN_CLASSES}
        left = dict(TRAIN_CLASSES)
        by_image = defaultdict(list)
        for p in demo_points():
            if left.get(p.label, 0) > 0:
                left[p.label] -= 1
                by_image[p.image].append(p)
        for name, points in by_image.items():
            width, height = Image.open(demo_dir() / name).size
            image_id = store.add_image(demo_dir() / name, width, height)
            store.add_cells(image_id, np.array([[p.x, p.y] for p in points]),
                            [ids[p.label] for p in points])
        write_project_patchset(store, tmp_path / "cells.patches")
    return path, tmp_path / "cells.patches"


# --- the window -------------------------------------------------------------------------------
@pytest.fixture
def make_window(qtbot, answerer) -> Iterator[Callable[[], MainWindow]]:
    """Build the real main window with its tools (as the app does) when the test asks, so a
    test can set the environment up first."""
    made: list[MainWindow] = []

    def make() -> MainWindow:
        w = MainWindow()
        qtbot.addWidget(w)
        w.install_tools()
        w.resize(1400, 900)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        return w

    yield make
    answerer.press = "Stop"  # a question on quit about a run still going: stop it
    for w in made:
        training = getattr(w, "training", None)
        if training is not None:
            training.manager.shutdown()
        tools = getattr(w, "prediction_tools", None)
        if tools is not None:
            tools.model_panel.wait_idle(60000)
        w.close()


def settle(qtbot, condition: Callable[[], bool], timeout: int = 5000) -> bool:
    """Wait (bounded) for ``condition``; True if it came true. Tests assert on the outcome
    with a message of their own instead of a bare timeout."""
    try:
        qtbot.waitUntil(condition, timeout=timeout)
    except Exception:  # pytest-qt's TimeoutError (or an AssertionError from the condition)
        return False
    return True


def open_project(qtbot, w: MainWindow, path: Path) -> None:
    assert w.open_project(path), w.last_error
    qtbot.waitUntil(lambda: w.current_image_source() is not None, timeout=20000)
    w.wait_idle(10000)


def model_panel(w: MainWindow):
    return w.prediction_tools.model_panel


def review_panel(w: MainWindow):
    return w.prediction_tools.review_panel


def choose_model(qtbot, w: MainWindow, name: str = DEMO_MODEL) -> None:
    """Pick ``name`` in the Model panel's list, as a user does, and wait until it is chosen."""
    panel = model_panel(w)
    combo = panel.model_combo
    index = next((i for i in range(combo.count()) if combo.itemText(i).startswith(name)), -1)
    assert index >= 0, f"{name!r} is not in the model list: " + ", ".join(
        combo.itemText(i) for i in range(combo.count()))
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    qtbot.waitUntil(lambda: f"<b>{name}</b>" in panel.info.text(), timeout=90000)
    w.wait_idle(10000)


def shown_model(w: MainWindow) -> str:
    return model_panel(w).model_combo.currentText()


def status_bar_texts(w: MainWindow) -> list[str]:
    bar = w.statusBar()
    return ([bar.currentMessage()] + [label.text() for label in bar.findChildren(QLabel)]
            + [button.text() for button in bar.findChildren(QAbstractButton)])


def queue_row(w: MainWindow, cell_id: str) -> dict[str, str]:
    """What the review table shows for ``cell_id``: {column header: text}."""
    model = review_panel(w).table.model()
    headers = [str(model.headerData(c, Qt.Orientation.Horizontal)) for c in
               range(model.columnCount())]
    for r in range(model.rowCount()):
        if model.index(r, 0).data(Qt.ItemDataRole.UserRole) == cell_id:
            return {h: str(model.index(r, c).data() or "") for c, h in enumerate(headers)}
    raise AssertionError(f"cell {cell_id} is not in the review queue")


def build_disagreement_queue(qtbot, w: MainWindow) -> None:
    """Model → Review queue; tick "label ≠ prediction"; Build queue."""
    tools = w.prediction_tools
    tools.review_action.trigger()
    panel = review_panel(w)
    panel.disagree_box.setChecked(True)
    panel.build_button.click()
    qtbot.waitUntil(lambda: panel.table.model().rowCount() > 0, timeout=10000)
    panel.table.setFocus()


def gallery_captions(qtbot, w: MainWindow) -> list[str]:
    """The captions the gallery paints under its crops (a big floating gallery, crops x4, so
    every crop is on screen and no caption is elided)."""
    dock = w.gallery_dock
    dock.setFloating(True)
    dock.resize(1000, 700)
    dock.show()
    w.gallery_panel.zoom.setValue(4)
    qtbot.waitUntil(lambda: w.gallery.viewport().width() > 600, timeout=5000)
    return painted_texts(w.gallery.viewport())


# --- 1. who is recorded for a Review-queue correction -----------------------------------------
def test_a_review_correction_asks_the_user_name_first_and_records_it(
        qtbot, monkeypatch, answerer, rbc_project, make_window):
    monkeypatch.delenv("CELLVIEWER_USER", raising=False)
    settings = app_settings()
    settings.remove(USER_NAME_KEY)
    assert not settings.contains(USER_NAME_KEY)
    path, ids = rbc_project
    w = make_window()
    open_project(qtbot, w, path)
    choose_model(qtbot, w)
    build_disagreement_queue(qtbot, w)
    panel = review_panel(w)
    first = panel.current_id()
    assert first == ids[0]  # the least confident disagreement: the 0.53 burr-cell call
    asked_before = len(answerer.names_asked)

    qtbot.keyClick(panel.table, "5")  # "5": target cell, a correction in the queue
    store = w.current_store()
    last = store.history(first)[-1]
    assert last.new_class == "target cell"
    asked = len(answerer.names_asked) - asked_before
    assert (asked, last.user) == (1, "alice"), (
        f"the Review-queue correction was recorded as {last.user!r} after asking the user's "
        f"name {asked} time(s); expected the name asked once before it, and 'alice' recorded")
    assert any("alice" in t for t in status_bar_texts(w)), (
        f"the status bar does not show the user: {status_bar_texts(w)}")

    # Once per launch: the next correction is recorded by name without asking again.
    second = panel.current_id()
    assert second == ids[3]
    qtbot.keyClick(panel.table, "5")
    assert len(answerer.names_asked) - asked_before == 1
    assert store.history(second)[-1].user == "alice"


# --- 2. the review queue follows an undo --------------------------------------------------------
def test_the_review_queue_shows_the_old_label_and_status_after_an_undo(
        qtbot, answerer, rbc_project, make_window):
    path, ids = rbc_project
    w = make_window()
    open_project(qtbot, w, path)
    choose_model(qtbot, w)
    build_disagreement_queue(qtbot, w)
    panel = review_panel(w)
    cell = panel.current_id()
    before = queue_row(w, cell)
    assert before["label"] == "normal"

    qtbot.keyClick(panel.table, "5")
    after = queue_row(w, cell)
    assert (after["label"], after["status"]) != (before["label"], before["status"])
    assert after["label"] == "target cell"

    assert w.undo()
    assert w.current_store().cell(cell).class_id == w.current_store().class_id("normal")
    follows = settle(qtbot, lambda: (queue_row(w, cell)["label"], queue_row(w, cell)["status"])
                     == (before["label"], before["status"]))
    shown = queue_row(w, cell)
    assert follows, (
        f"after the undo the review queue still shows label {shown['label']!r}, status "
        f"{shown['status']!r} for the cell; the store has {before['label']!r}, "
        f"{before['status']!r} again")


# --- 3. the gallery follows an add and its undo -------------------------------------------------
def test_the_gallery_counts_an_added_cell_and_its_undo(
        qtbot, answerer, empty_image_project, make_window):
    w = make_window()
    open_project(qtbot, w, empty_image_project)
    w.gallery_panel.set_filter("all")
    assert w.gallery.count() == 0

    new_id = w.add_cell(320.0, 240.0)
    assert new_id is not None and w.current_store().cell_count() == 1
    counted = settle(qtbot, lambda: w.gallery.count() == 1)
    assert counted, (f"after adding a cell the gallery (all cells of this image) shows "
                     f"{w.gallery.count()} cells ({w.gallery_panel.count.text()!r}), not 1")
    assert w.gallery.ids() == [new_id]

    assert w.undo()
    assert settle(qtbot, lambda: w.gallery.count() == 0), (
        f"after undoing the add the gallery shows {w.gallery.count()} cells, not 0")


# --- 4. the active model survives reopening -----------------------------------------------------
def test_the_active_model_and_its_predictions_survive_reopening_the_project(
        qtbot, answerer, rbc_project, make_window):
    path, _ids = rbc_project
    w = make_window()
    open_project(qtbot, w, path)
    choose_model(qtbot, w)
    assert shown_model(w).startswith(DEMO_MODEL)

    assert w.close_project()
    open_project(qtbot, w, path)
    kept = settle(qtbot, lambda: shown_model(w).startswith(DEMO_MODEL), timeout=15000)
    assert kept, (f"after reopening the project the Model panel shows {shown_model(w)!r}, "
                  f"not the active model {DEMO_MODEL!r}")

    # Colouring by prediction and ordering the gallery by confidence use the stored
    # predictions at once: no "no predictions", the 0.53 call's confidence on its crop.
    w.set_color_mode("prediction")
    w.gallery_panel.set_filter("all")
    w.gallery_panel.set_order("unsure-first")
    w.wait_idle(10000)
    count = w.gallery_panel.count.text()
    assert "no predictions" not in count, count
    captions = gallery_captions(qtbot, w)
    assert any(c.startswith("0.53") for c in captions), captions


# --- 5. nothing leaks into the next project -----------------------------------------------------
def test_nothing_of_one_project_carries_over_into_the_next(
        qtbot, answerer, rbc_project, crc_project, make_window):
    path, _ids = rbc_project
    w = make_window()
    open_project(qtbot, w, path)
    choose_model(qtbot, w)
    panel = model_panel(w)
    panel.scope_combo.setCurrentIndex(panel.scope_combo.findData("image"))
    assert panel.predict_button.isEnabled()
    panel.predict_button.click()

    def predicted_messages() -> list[str]:
        return [lb.text() for lb in panel.findChildren(QLabel) if "Predicted" in lb.text()]

    qtbot.waitUntil(lambda: bool(predicted_messages()), timeout=180000)
    w.set_color_mode("agreement")
    w.prediction_tools.blur_action.trigger()  # Model → Blur preview
    bars = [b for b in panel.findChildren(QProgressBar) if b.isVisibleTo(panel)]
    assert any(b.value() == b.maximum() for b in bars)
    rbc_names = {c["name"] for c in load_class_set()["classes"]}
    crc_names = {c["name"] for c in load_class_set("crc-cd103-cd8.json")["classes"]}
    old_only = rbc_names - crc_names
    blur = w.prediction_tools.blur_preview
    assert names_among(painted_texts(blur), old_only), "the blur panel lists the model's classes"

    assert w.open_project(crc_project), w.last_error
    qtbot.waitUntil(lambda: w.current_image_source() is not None, timeout=20000)
    w.wait_idle(10000)
    leaks = []
    if w.color_mode() != "label":
        leaks.append(f"colour mode is {w.color_mode()!r}, not 'label'")
    if predicted_messages():
        leaks.append(f"the Model panel still says {predicted_messages()}")
    full = [f"{b.value()}/{b.maximum()}" for b in panel.findChildren(QProgressBar)
            if b.isVisibleTo(panel) and b.value() > b.minimum()]
    if full:
        leaks.append(f"the Model panel's progress bar still shows {full}")
    old_classes = names_among(painted_texts(blur), old_only)
    if old_classes:
        leaks.append(f"the blur panel lists the old project's classes {sorted(old_classes)}")
    assert not leaks, "carried over into the next project: " + "; ".join(leaks)


# --- 6. gallery captions ------------------------------------------------------------------------
def test_gallery_captions_pair_the_confidence_with_the_predicted_class(
        qtbot, answerer, rbc_project, make_window):
    path, _ids = rbc_project
    w = make_window()
    open_project(qtbot, w, path)
    choose_model(qtbot, w)
    w.gallery_panel.set_filter("all")
    w.gallery_panel.set_order("unsure-first")
    w.wait_idle(10000)
    assert w.gallery.count() == len(POINTS)
    captions = gallery_captions(qtbot, w)

    wrong = []
    zero = [c for c in captions if c.startswith("0.00")]
    if zero:
        wrong.append(f"a cell without a prediction is captioned {zero}")
    for name, confidence in (p for p in PREDICTIONS if p is not None):
        expected = f"{confidence:.2f} {name}"
        if expected not in captions:
            wrong.append(f"no caption {expected!r}")
    assert not wrong, "; ".join(wrong) + f" (the gallery paints {captions})"


# --- 7. closing a project while a training run is going ---------------------------------------
def test_closing_the_project_during_training_asks_and_cancel_keeps_it_open(
        qtbot, answerer, training_project, make_window):
    from cellviewer.core.training.runs import RunRegistry
    from trainer.formats.config import RunConfig

    path, patchset = training_project
    w = make_window()
    open_project(qtbot, w, path)
    run = RunRegistry(path).create("long-run")
    RunConfig(patchset=str(patchset), out_dir=str(run.folder), model="cnn", flag_limit=24,
              epochs=500, batch_size=32, device="cpu", patience=0, heartbeat_s=0.2,
              num_threads=1, name="long-run").save(run.config_path)
    manager = w.training.manager
    proc = manager.launch(run)
    try:
        assert proc.is_running(), proc.failure
        answerer.press = "Cancel"
        closed = w.close_project()
        boxes = answerer.boxes_named("training_running_box")
        assert boxes, ("closing the project while a training run is going asked nothing "
                       f"(questions seen: {answerer.boxes}); the project "
                       f"{'closed' if w.current_store() is None else 'stayed open'}")
        buttons = set(boxes[0][2])
        assert {"Keep running", "Stop", "Cancel"} <= buttons, buttons
        assert not closed and w.current_store() is not None, (
            "Cancel in the training question closed the project")
        assert proc.is_running()  # Cancel leaves the run alone
    finally:
        manager.shutdown()
    assert not proc.is_running()
