"""Training from the desktop app, end to end, with the real trainer in a subprocess (CPU, tiny):
open a project, open the dialog, watch the sampling table follow FlagLimit, start a 2-epoch
run, see both epochs arrive in the chart, open the results, make the model active and predict
with it."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from cellviewer.core.project.demo import demo_points, load_class_set
from cellviewer.core.store import ProjectStore
from cellviewer.core.training import runs
from cellviewer.paths import demo_dir
from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.train.install import install

SCREENSHOTS = Path(__file__).resolve().parents[2] / "resources" / "screenshots"
# three real red-cell classes of the demo, the last one rare enough for FlagMin to matter
CELLS_PER_CLASS = {"normal": 60, "target cell": 40, "teardrop": 10}


def make_project(path: Path, per_class: dict[str, int] = CELLS_PER_CLASS) -> ProjectStore:
    """A project of demo images with the first cells of a few classes (real pixels)."""
    store = ProjectStore.create(path)
    classes = {c["name"]: c for c in load_class_set()["classes"]}
    ids = {name: store.add_class(name, classes[name]["color"]) for name in per_class}
    left = dict(per_class)
    by_image: dict[str, list] = defaultdict(list)
    for p in demo_points():
        if left.get(p.label, 0) > 0:
            left[p.label] -= 1
            by_image[p.image].append(p)
    for name, points in by_image.items():
        image = demo_dir() / name
        width, height = Image.open(image).size
        image_id = store.add_image(image, width, height)
        store.add_cells(image_id, np.array([[p.x, p.y] for p in points]),
                        [ids[p.label] for p in points], source="imported")
    return store


def _rows(dialog) -> dict[str, dict]:
    return {r["class"]: r for r in dialog.sampling_rows()}


def _shows_limit(dialog, limit: int) -> bool:
    return dialog.report is not None and dialog.report.limits[0].limit == limit


def _save(widget, name: str) -> None:
    if os.environ.get("CELLVIEWER_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(SCREENSHOTS / name))


@pytest.mark.slow
def test_train_from_the_dialog_and_predict_with_the_result(qtbot, tmp_path: Path):
    t0 = time.monotonic()
    make_project(tmp_path / "blood.cvproj").close()
    window = MainWindow()
    qtbot.addWidget(window)
    training = install(window)
    assert training.menu.title() == "&Training"
    assert not training.new_action.isEnabled()  # no project yet
    assert window.open_project(tmp_path / "blood.cvproj")
    store = window.current_store()
    assert training.manager.project_path == tmp_path / "blood.cvproj"
    assert training.new_action.isEnabled()

    dialog = training.new_run()
    qtbot.waitUntil(dialog.ready, timeout=90_000)
    assert "cnn" in [m.name for m in dialog.models]

    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData("cnn"))
    # once the devices are known: without a GPU the dialog proposes a CPU-sized run, and
    # "Study defaults" gives the study's values back
    qtbot.waitUntil(lambda: dialog.form.devices is not None or bool(dialog.form.devices_error),
                    timeout=90_000)
    qtbot.mouseClick(dialog.defaults_button, Qt.MouseButton.LeftButton)
    assert dialog.epochs_spin.value() == 100  # the study's default for the CNN
    dialog.epochs_spin.setValue(2)
    dialog.batch_spin.setValue(64)
    dialog.set_device("cpu")
    dialog.name_edit.setText("cnn tiny")

    # the sampling table follows FlagLimit: at 256 FlagMin is 13 and the 10 teardrops go
    assert _shows_limit(dialog, 4096) and _rows(dialog)["normal"]["excluded"]  # the default
    dialog.set_flag_limit(256)
    qtbot.waitUntil(lambda: _shows_limit(dialog, 256), timeout=5000)
    rows = _rows(dialog)
    assert rows["teardrop"]["excluded"] and not rows["normal"]["excluded"]
    assert rows["normal"]["available"] == 60 and rows["normal"]["used"] == 60
    assert rows["normal"]["train"] + rows["normal"]["val"] == 60
    assert rows["teardrop"]["used"] == 0
    assert "2</b> of 3 classes kept" in dialog.totals_label.text()
    dialog.show()
    qtbot.waitExposed(dialog)
    _save(dialog, "training_dialog.png")
    # at 24, FlagMin is 2: every class is kept, each capped at 24 cells
    dialog.set_flag_limit(24)
    qtbot.waitUntil(lambda: _shows_limit(dialog, 24), timeout=5000)
    rows = _rows(dialog)
    assert not any(r["excluded"] for r in rows.values())
    assert [rows[c]["used"] for c in CELLS_PER_CLASS] == [24, 24, 10]
    assert sum(r["train"] for r in rows.values()) == 19 + 19 + 8
    assert "3</b> of 3 classes kept" in dialog.totals_label.text()

    dialog.start()
    qtbot.waitUntil(lambda: training.manager.runs() and training.monitor.run is not None,
                    timeout=60_000)
    run = training.manager.runs()[0]
    assert run.name == "cnn_tiny"
    assert run.folder == tmp_path / "blood.runs" / "cnn_tiny"
    config = run.config()
    assert (config["model"], config["epochs"], config["flag_limit"], config["device"]) == (
        "cnn", 2, 24, "cpu")
    proc = training.manager.process_for(run)
    assert proc is not None and proc.pid  # a separate process, not this one
    assert proc.pid != os.getpid()

    charts = training.monitor.charts
    qtbot.waitUntil(lambda: charts.epoch_count() == 2, timeout=120_000)
    qtbot.waitUntil(lambda: training.manager.status(run) == runs.FINISHED, timeout=60_000)
    assert [e["epoch"] for e in charts.epochs] == [1, 2]
    assert all(0.0 <= e["val_acc"] <= 1.0 for e in charts.epochs)
    assert training.runs_panel.row_status("cnn_tiny") == runs.FINISHED
    assert run.reload().status() == runs.FINISHED  # what the next session will see

    results = training.show_results(run)
    view = results.view
    assert view.class_table.rowCount() == 3
    assert [view.class_table.item(r, 0).text() for r in range(3)] == list(CELLS_PER_CLASS)
    matrix = view.heatmap.matrix
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-4)
    assert "Validation accuracy" in view.summary_label.text()
    qtbot.waitExposed(results)
    _save(results, "training_results.png")

    # The blur robustness of the new model, measured by a real trainer process in the
    # background; the run list then compares it.
    view.tabs.setCurrentWidget(view.blur)
    with qtbot.waitSignal(view.robustness_measured, timeout=120_000):
        view.blur.measure_button.click()
    assert view.blur.table.rowCount() == 6  # clean + the study's five sigmas
    from cellviewer.ui.train.runs import BLUR_COLUMN, COLUMNS

    panel = training.runs_panel
    qtbot.waitUntil(lambda: panel.table.item(panel.row_of("cnn_tiny"),
                                             COLUMNS.index(BLUR_COLUMN)).text() != "")
    _save(results, "training_blur.png")

    # Fine-tune: a new run set to start from this run's best model
    dialog = training.fine_tune(run)
    qtbot.waitUntil(lambda: dialog.init_from_path() is not None, timeout=90_000)
    assert dialog.init_from_path() == (run.folder / "best.cvmodel").resolve()
    assert dialog.model_combo.currentData() == "cnn"
    dialog.reject()

    model_id = training.make_active(run)
    assert model_id is not None
    record = next(m for m in store.models() if m.id == model_id)
    assert Path(record.path) == run.model_path() and record.classes == list(CELLS_PER_CLASS)
    assert "Active model" in view.active_label.text()
    assert training.make_active(run) == model_id  # registered once

    from trainer.formats.patchset import load_patchset
    from trainer.predict import Predictor

    patches = load_patchset(run.patchset_path)
    predictor = Predictor.load(record.path, device="cpu")
    result = predictor.predict(np.asarray(patches.patches[:8]))
    assert predictor.classes == list(CELLS_PER_CLASS)
    assert result.probs.shape == (8, 3)
    np.testing.assert_allclose(result.probs.sum(axis=1), 1.0, atol=1e-5)
    print(f"end-to-end training test: {time.monotonic() - t0:.1f} s")
