"""The export dialog when the core refuses the target (a folder, the project's backups folder):
the error is shown in a message box over the dialog, and the dialog keeps every choice, so the
user changes the file name and exports again."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox, QWidget

from cellviewer.core.store import ProjectStore
from cellviewer.ui.export.dialog import SCOPE_SELECTION, ExportDialog


class _Host(QWidget):
    """What the dialog asks of the main window: the store, the current image, the selection."""

    def __init__(self, store, image_id, selected):
        super().__init__()
        self.store, self._image, self._selected = store, image_id, selected

    def current_image_id(self):
        return self._image

    def selected_cell_ids(self):
        return list(self._selected)


@pytest.fixture
def store(tmp_path):
    with ProjectStore.create(tmp_path / "small.cvproj") as s:
        image = s.add_image(tmp_path / "img.png", 100, 100)
        tumour = s.add_class("tumour")
        s.add_cells(image, np.random.default_rng(0).uniform(0, 100, (10, 2)), [tumour] * 10)
        yield s


def _choices(dialog: ExportDialog) -> tuple:
    return (dialog.scope(), dialog.chosen_formats(), dialog.model_combo.currentIndex(),
            dialog.path_edit.text())


@pytest.mark.parametrize("where", ["folder", "backups"])
def test_a_refused_target_is_shown_in_a_message_box_and_the_dialog_keeps_its_choices(
        qtbot, store, tmp_path, where):
    image = store.images()[0].id
    some = store.cell_arrays(image).ids[:4].tolist()
    host = _Host(store, image, some)
    qtbot.addWidget(host)
    dialog = ExportDialog(host)
    qtbot.addWidget(dialog)
    dialog.show()
    if where == "folder":  # a folder named like the file the cells CSV would write
        target = tmp_path / "results.csv"
        target.mkdir()
        why = "it is a folder"
    else:
        backups = tmp_path / "small.cvproj.backups"
        backups.mkdir()
        target = backups / "results.csv"
        why = "backups folder"
    dialog.set_scope(SCOPE_SELECTION)
    for name, box in dialog.format_boxes.items():
        box.setChecked(name == "cells")
    dialog.model_combo.setCurrentIndex(dialog.model_combo.count() - 1)  # labels only
    dialog.path_edit.setText(str(target))
    before = _choices(dialog)
    with qtbot.waitSignal(dialog.failed, timeout=30000) as failed:
        dialog.export_button.click()
    assert str(target) in failed.args[0] and why in failed.args[0]
    boxes = [b for b in dialog.findChildren(QMessageBox) if b.isVisible()]
    assert len(boxes) == 1 and boxes[0] is dialog.error_box
    assert boxes[0].windowTitle() == "Export failed"
    assert str(target) in boxes[0].text() and why in boxes[0].text()
    assert dialog.isVisible() and dialog.result() == 0
    assert _choices(dialog) == before and dialog.export_button.isEnabled()
    boxes[0].accept()
    # The user changes only the file name; everything else is as it was.
    good = tmp_path / "cells.csv"
    dialog.path_edit.setText(str(good))
    with qtbot.waitSignal(dialog.exported, timeout=30000) as done:
        dialog.export_button.click()
    assert done.args[0] == [good]
    assert len(good.read_text().splitlines()) == 1 + len(some)
