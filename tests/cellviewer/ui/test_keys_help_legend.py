"""Keys beyond 9, the quick class picker, Help → Keyboard shortcuts and About, the legend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from cellviewer.core.training.devices import DeviceStatus
from cellviewer.ui.common import help as help_mod
from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.viewer.class_keys import effective_keys
from cellviewer.ui.viewer.class_picker import matching
from cellviewer.ui.viewer.markers import AGREE_COLOUR, DISAGREE_COLOUR, ClassStyle

REPO = Path(__file__).resolve().parents[3]


def _demo(qtbot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.install_tools()
    assert w.open_demo()
    w.show()
    assert w.wait_idle(10_000)
    return w


def _first_cell(w: MainWindow) -> str:
    return str(w.session.cells.ids[0])


def test_classes_beyond_nine_get_shift_keys():
    assert effective_keys(["1", None, "3"] + [None] * 10) == \
        ["1", "2", "3", "4", "5", "6", "7", "8", "9", "Shift+1", "Shift+2", "Shift+3",
         "Shift+4"]
    assert effective_keys(["5", None]) == ["5", "1"]
    assert effective_keys([None] * 19)[-1] == ""


def test_shift_digit_labels_with_the_tenth_class(qtbot):
    w = _demo(qtbot)
    classes = w._classes
    assert len(classes) >= 10  # the demo has 13
    tenth = classes[9]
    assert tenth.key == "Shift+1"
    assert w.class_panel.tree.topLevelItem(9).text(1) == "Shift+1"
    cid = _first_cell(w)
    w.select_cells([cid])
    qtbot.keyClick(w.view, Qt.Key.Key_1, Qt.KeyboardModifier.ShiftModifier)
    assert w.store.cell(cid).class_id == tenth.id
    w.select_cells([cid])
    qtbot.keyClick(w.view, Qt.Key.Key_Exclam, Qt.KeyboardModifier.ShiftModifier)  # US "!"
    assert w.store.cell(cid).class_id == tenth.id
    qtbot.keyClick(w.view, Qt.Key.Key_2)
    assert w.store.cell(cid).class_id == classes[1].id


def test_class_picker_matches_first_letters():
    classes = [ClassStyle(i, n, "#000000", "") for i, n in
               enumerate(["normal", "macrocyte", "microcyte", "target cell", "teardrop"])]
    assert [c.name for c in matching(classes, "m")] == ["macrocyte", "microcyte"]
    assert [c.name for c in matching(classes, "MAC")] == ["macrocyte"]
    assert [c.name for c in matching(classes, "t c")] == ["target cell"]
    assert [c.name for c in matching(classes, "cell")] == ["target cell"]


def test_label_as_picker_labels_the_selection(qtbot):
    w = _demo(qtbot)
    cid = _first_cell(w)
    w.select_cells([cid])
    w.label_as_action.trigger()
    picker = w.class_picker
    qtbot.keyClicks(picker.edit, "macro")
    qtbot.keyClick(picker.edit, Qt.Key.Key_Return)
    macro = next(c for c in w._classes if c.name == "macrocyte")
    assert w.store.cell(cid).class_id == macro.id


def test_shortcuts_list_is_generated_from_the_actions(qtbot):
    w = _demo(qtbot)
    late = QAction("Something new", w)
    late.setShortcut(QKeySequence("Ctrl+Alt+J"))
    w.menu("&Edit").addAction(late)
    w.help_actions["shortcuts"].trigger()
    dialog = w.shortcuts_dialog
    table = dialog.table
    rows = [tuple(table.item(r, c).text() for c in range(3)) for r in range(table.rowCount())]
    does = {r[1]: r[0] for r in rows}
    assert does["Something new"] == QKeySequence("Ctrl+Alt+J").toString(
        QKeySequence.SequenceFormat.NativeText)
    assert "Export…" in does and "Keyboard shortcuts" in does and "Label as…" in does
    assert any(r[0] == "Shift+1" and "Label as" in r[1] for r in rows)  # a class key
    dialog.filter.setText("export")
    assert 0 < table.rowCount() < len(rows)


def test_about_names_the_versions_and_the_device(qtbot, monkeypatch):
    monkeypatch.setattr(help_mod, "DEVICE_PROBE",
                        lambda: DeviceStatus(short="no CUDA build"))
    w = _demo(qtbot)
    w.help_actions["about"].trigger()
    dialog = w.about_dialog
    qtbot.waitUntil(lambda: "no GPU found" in dialog.text(), timeout=5000)
    text = dialog.text()
    for name in ("CellViewer", "Qt", "PyTorch", "OpenSlide", "Device", "0.1.0"):
        assert name in text


def test_about_reads_torchs_version_without_importing_it():
    code = ("import sys; from cellviewer.ui.common.help import version_lines; "
            "v = dict(version_lines()); assert 'torch' not in sys.modules, 'torch imported'; "
            "print(v['PyTorch'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ,
                                                       "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()[0].isdigit()  # a version, read from the metadata


def test_legend_follows_the_colour_mode(qtbot):
    w = _demo(qtbot)
    legend = w.legend
    assert legend.isVisible()
    names = [t for _c, t in legend.entries]
    assert "normal" in names and names[-1] == "unlabelled"
    w.set_color_mode("agreement")
    colours = [c for c, _t in legend.entries]
    assert colours[:2] == [AGREE_COLOUR, DISAGREE_COLOUR]
    w.set_color_mode("prediction")
    assert legend.entries[-1][1] == "no prediction"
    w.legend_action.trigger()
    assert not legend.isVisible()
    # it lies wholly inside the view, in its bottom-left corner
    assert w.view.rect().contains(legend.geometry())


def _wheel(widget, steps: int = -3) -> None:
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_over_the_blur_dock_scrolls_it_and_leaves_sigma(qtbot):
    w = _demo(qtbot)
    tools = w.prediction_tools
    dock = tools.blur_dock
    dock.setFloating(True)
    dock.resize(dock.width(), 160)  # shorter than the panel: it scrolls
    dock.show()
    dock.raise_()
    qtbot.waitUntil(lambda: dock.widget().verticalScrollBar().maximum() > 0, timeout=3000)
    slider = tools.blur_preview.sigma_slider.slider
    slider.setValue(5)
    bar = dock.widget().verticalScrollBar()
    before = bar.value()
    w.view.setFocus()
    _wheel(slider)
    assert slider.value() == 5  # σ unchanged
    assert bar.value() > before  # the panel scrolled
    slider.setFocus()
    qtbot.waitUntil(slider.hasFocus, timeout=2000)
    _wheel(slider)
    assert slider.value() != 5  # focused: the wheel is the slider's
