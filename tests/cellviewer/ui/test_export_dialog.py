"""File → Export… in the real main window after predicting with a model trained in the test:
the cells CSV row by row against the store, a selection's CSV, the per-image-and-class
summary, QuPath GeoJSON; and on a small project, a format registered by a test listed and
written without a dialog edit, and a failed export."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from PySide6.QtWidgets import QWidget
from test_predict_support import wait_for

from cellviewer.core.export import Exporter, exporters, register, unregister
from cellviewer.core.store import ProjectStore
from cellviewer.ui.export.dialog import SCOPE_IMAGE, SCOPE_PROJECT, SCOPE_SELECTION, ExportDialog
from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.predict.install import install
from cellviewer.ui.predict.model_panel import SCOPE_PROJECT as PREDICT_PROJECT

pytest_plugins = ["test_predict_support"]


@pytest.fixture
def window(qtbot, project_copy, trained_model):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.open_project(project_copy)
    w.wait_idle(10000)
    tools = install(w)
    tools.model_panel.load_model(trained_model.path)
    wait_for(qtbot, lambda: tools.session.choice is not None)
    with qtbot.waitSignal(tools.session.jobFinished, timeout=120000):
        tools.model_panel.predict(PREDICT_PROJECT)
    yield w
    tools.model_panel.wait_idle()
    w.close()


def _export(qtbot, window, scope, path, **boxes):
    dialog = ExportDialog(window, default_model_id=window.prediction_tools.session.choice.model_id)
    qtbot.addWidget(dialog)
    dialog.set_scope(scope)
    dialog.path_edit.setText(str(path))
    for name, on in boxes.items():
        dialog.format_boxes[name].setChecked(on)
    with qtbot.waitSignal(dialog.exported, timeout=60000) as done:
        dialog.export_button.click()
    return done.args[0]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_project_csv_rows_match_the_store(qtbot, window, tmp_path):
    store = window.store
    choice = window.prediction_tools.session.choice
    written = _export(qtbot, window, SCOPE_PROJECT, tmp_path / "cells.csv", geojson=False)
    assert [p.name for p in written] == ["cells.csv", "cells_summary.csv"]
    rows = _rows(tmp_path / "cells.csv")
    assert len(rows) == store.cell_count()
    names = {c.id: c.name for c in store.classes()}
    ids = [r["cell_id"] for r in rows]
    pred = store.predictions(choice.model_id, ids)
    for i, row in enumerate(rows):
        cell = store.cell(row["cell_id"])
        assert row["label"] == (names[cell.class_id] if cell.class_id is not None else "")
        assert row["label_source"] == cell.label_source
        assert row["review_status"] == cell.review_status
        assert float(row["x"]) == cell.x and float(row["y"]) == cell.y
        assert row["predicted_class"] == choice.classes[pred.predicted[i]]
        assert float(row["confidence"]) == pytest.approx(float(pred.confidence[i]), abs=1e-6)
        probs = [float(row[f"p_{c}"]) for c in choice.classes]
        np.testing.assert_allclose(probs, pred.probs[i], atol=1e-6)
        assert int(row["model_id"]) == choice.model_id
        assert row["updated_by"] == cell.updated_by

    summary = _rows(tmp_path / "cells_summary.csv")
    totals = {r["class"]: r for r in summary if r["image"] == "(all images)"}
    labels = Counter(names.get(store.cell(i).class_id) for i in ids)
    for name, n in labels.items():
        assert int(totals[name]["cells"]) == n
    agree = int(np.count_nonzero(pred.predicted_class_id == np.array(
        [store.cell(i).class_id for i in ids])))
    assert sum(int(r["agree"]) for r in totals.values()) == agree


def test_selection_and_geojson_of_the_current_image(qtbot, window, tmp_path):
    store = window.store
    image = window.current_image_id()
    some = list(store.cell_arrays(image).ids[:3])
    window.select_cells(some)
    wait_for(qtbot, lambda: sorted(window.selected_cell_ids()) == sorted(some), 5000)
    _export(qtbot, window, SCOPE_SELECTION, tmp_path / "sel.csv", summary=True)
    rows = _rows(tmp_path / "sel.csv")
    assert sorted(r["cell_id"] for r in rows) == sorted(some)
    assert all(r["predicted_class"] and float(r["confidence"]) > 0 for r in rows)
    summary = _rows(tmp_path / "sel_summary.csv")  # counts the selection, not the image
    assert sum(int(r["cells"]) for r in summary if r["image"] == "(all images)") == 3

    written = _export(qtbot, window, SCOPE_IMAGE, tmp_path / "image.csv", cells=False,
                      summary=False, geojson=True)
    assert [p.name for p in written] == ["image.geojson"]
    features = json.loads((tmp_path / "image.geojson").read_text())["features"]
    assert sorted(f["id"] for f in features) == sorted(store.cell_arrays(image).ids)
    assert all(any(k.startswith("p_") for k in f["properties"]["measurements"])
               for f in features)


def test_file_menu_has_export(window):
    actions = [a.text() for a in window.menu("&File").actions()]
    assert "&Export…" in actions
    model_actions = [a.text() for a in window.menu("&Model").actions()]
    assert "&Predict…" in model_actions and "&Review queue" in model_actions


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
def small_project(tmp_path):
    with ProjectStore.create(tmp_path / "small.cvproj") as s:
        images = [s.add_image(tmp_path / f"img{i}.png", 100, 100) for i in range(2)]
        tumour = s.add_class("tumour")
        for image in images:
            s.add_cells(image, np.random.default_rng(image).uniform(0, 100, (10, 2)),
                        [tumour] * 10)
        yield s


def test_a_registered_format_is_listed_and_written_without_a_dialog_edit(qtbot, small_project,
                                                                         tmp_path):
    def write(store, path, *, selection, options, progress):
        ids = store.cell_table(selection.image_ids, selection.cell_ids)["ids"]
        progress(0.5, "counting")
        path.write_text(f"{len(ids)}\n")
        return path

    register(Exporter("count", "Cell count", (".txt",), "how many cells", write,
                      name_tail="_count"))
    try:
        image = small_project.images()[1].id
        some = small_project.cell_arrays(image).ids[:3].tolist()
        host = _Host(small_project, image, some)
        qtbot.addWidget(host)
        dialog = ExportDialog(host)
        qtbot.addWidget(dialog)
        assert list(dialog.format_boxes) == [e.name for e in exporters()]
        assert dialog.format_boxes["count"].text() == "Cell count"
        assert dialog.path_edit.text() == str(tmp_path / "small_cells.csv")
        for name, box in dialog.format_boxes.items():
            box.setChecked(name in ("count", "geojson"))
        dialog.set_scope(SCOPE_SELECTION)
        assert dialog.files_label.text() == "Writes: small_cells.geojson, small_cells_count.txt"
        dialog.set_scope(SCOPE_PROJECT)
        assert "small_cells_geojson/<image>.geojson" in dialog.files_label.text()
        dialog.set_scope(SCOPE_SELECTION)
        with qtbot.waitSignal(dialog.exported, timeout=30000) as done:
            dialog.export_button.click()
        assert [p.name for p in done.args[0]] == ["small_cells.geojson", "small_cells_count.txt"]
        assert (tmp_path / "small_cells_count.txt").read_text() == "3\n"
        features = json.loads((tmp_path / "small_cells.geojson").read_text())["features"]
        assert sorted(f["id"] for f in features) == sorted(some)
        assert dialog.progress.value() == dialog.progress.maximum()
    finally:
        unregister("count")


def test_a_failed_export_says_why_and_keeps_the_dialog_open(qtbot, small_project, tmp_path):
    host = _Host(small_project, None, [])
    qtbot.addWidget(host)
    dialog = ExportDialog(host)
    qtbot.addWidget(dialog)
    assert not dialog.image_radio.isEnabled() and not dialog.selection_radio.isEnabled()
    assert dialog.scope() == SCOPE_PROJECT
    dialog.path_edit.setText(str(tmp_path / "no" / "such" / "x.csv"))
    with qtbot.waitSignal(dialog.failed, timeout=30000) as failed:
        dialog.export_button.click()
    assert "does not exist" in failed.args[0]
    assert dialog.status.text().startswith("Export failed")
    assert dialog.export_button.isEnabled() and dialog.result() == 0
    for box in dialog.format_boxes.values():
        box.setChecked(False)
    assert dialog.files_label.text() == "Nothing to write: tick a file."
    assert not dialog.export_button.isEnabled()
