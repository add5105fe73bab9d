"""File → Export…'s QuPath GeoJSON choices: classified by the label, the prediction or the
label else the prediction (the default), detections or annotations, QuPath 0.4 compatibility;
they are enabled while GeoJSON is ticked, and the file written says what was chosen. The default
target lies beside the project."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtWidgets import QWidget

from cellviewer.core.store import ProjectStore
from cellviewer.ui.export.dialog import SCOPE_IMAGE, ExportDialog


class _Host(QWidget):
    def __init__(self, store, image_id):
        super().__init__()
        self.store, self._image = store, image_id

    def current_image_id(self):
        return self._image

    def selected_cell_ids(self):
        return []


@pytest.fixture
def project(tmp_path):
    with ProjectStore.create(tmp_path / "study.cvproj") as s:
        image = s.add_image(tmp_path / "slide.png", 100, 100)
        tumour = s.add_class("tumour", "#ff0000")
        s.add_class("stroma", "#0000ff")
        labelled, unlabelled = s.add_cells(image, [[10, 10], [50, 50]], [tumour, None])
        model = s.add_model("cnn", None, "cnn", ["tumour", "stroma"])
        s.put_predictions(model, [labelled, unlabelled],
                          np.array([[0.6, 0.4], [0.2, 0.8]], np.float32))
        yield s, image, labelled, unlabelled


def _dialog(qtbot, store, image):
    host = _Host(store, image)
    qtbot.addWidget(host)
    dialog = ExportDialog(host)
    qtbot.addWidget(dialog)
    return dialog


def _write(qtbot, dialog, path):
    dialog.path_edit.setText(str(path))
    with qtbot.waitSignal(dialog.exported, timeout=30000) as done:
        dialog.export_button.click()
    return done.args[0]


def test_the_defaults_and_the_target_beside_the_project(qtbot, project, tmp_path):
    store, image, labelled, unlabelled = project
    dialog = _dialog(qtbot, store, image)
    assert dialog.path_edit.text() == str(tmp_path / "study_cells.csv")  # beside the project
    assert dialog.classification_combo.currentData() == "label-else-prediction"
    assert dialog.objects_combo.currentData() == "detection"
    assert not dialog.qupath_04_box.isChecked()
    assert not dialog.qupath_group.isEnabled()  # GeoJSON is not ticked by default
    dialog.format_boxes["geojson"].setChecked(True)
    assert dialog.qupath_group.isEnabled()
    for name, box in dialog.format_boxes.items():
        box.setChecked(name == "geojson")
    dialog.set_scope(SCOPE_IMAGE)
    (path,) = _write(qtbot, dialog, tmp_path / "out.geojson")
    data = json.loads(path.read_text())
    got = {f["id"]: f["properties"]["classification"]["name"] for f in data["features"]}
    # the label where there is one, else the prediction: no cell arrives unclassified
    assert got == {labelled: "tumour", unlabelled: "stroma"}
    assert {f["properties"]["objectType"] for f in data["features"]} == {"detection"}
    assert all("metadata" in f["properties"] for f in data["features"])


def test_prediction_annotations_and_qupath_04_reach_the_file(qtbot, project, tmp_path):
    store, image, labelled, unlabelled = project
    dialog = _dialog(qtbot, store, image)
    for name, box in dialog.format_boxes.items():
        box.setChecked(name == "geojson")
    dialog.set_scope(SCOPE_IMAGE)
    dialog.classification_combo.setCurrentIndex(
        dialog.classification_combo.findData("prediction"))
    dialog.objects_combo.setCurrentIndex(dialog.objects_combo.findData("annotation"))
    dialog.qupath_04_box.setChecked(True)
    assert dialog.request().options["qupath_04"] is True
    (path,) = _write(qtbot, dialog, tmp_path / "out.geojson")
    data = json.loads(path.read_text())
    assert set(data) == {"type", "features"}  # 0.4: nothing QuPath does not read
    got = {f["id"]: f["properties"]["classification"]["name"] for f in data["features"]}
    assert got == {labelled: "tumour", unlabelled: "stroma"}  # the predictions
    for f in data["features"]:
        props = f["properties"]
        assert props["objectType"] == "annotation" and "metadata" not in props
        assert all(isinstance(v, float) for v in props["measurements"].values())
    confidence = {f["id"]: f["properties"]["measurements"]["Prediction confidence"]
                  for f in data["features"]}
    assert confidence == {labelled: 0.6, unlabelled: 0.8}
