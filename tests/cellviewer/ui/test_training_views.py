"""The training views on run folders written with the trainer's own protocol encoder and metrics
(no trainer process): replaying a run in the monitor, the per-batch loss curve, error wording,
the results view and its heatmap, the run list's statuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from cellviewer.core.training import runs
from cellviewer.ui.train.monitor import (
    RunMonitor,
    TrainingCharts,
    error_text,
)
from cellviewer.ui.train.results import ResultsView, normalised_confusion
from cellviewer.ui.train.runs import COLUMNS, RunsPanel, TrainingManager
from trainer.evaluate import write_report
from trainer.formats.protocol import encode_event
from trainer.metrics import classification_metrics

CLASSES = ["normal", "target cell", "teardrop"]


def write_run(project: Path, name: str, events: list[tuple[str, dict]], **meta) -> runs.Run:
    run = runs.RunRegistry(project).create(name, **meta)
    runs.write_json_atomic(run.config_path, {"patchset": "p", "out_dir": str(run.folder),
                                             "model": "cnn", "flag_limit": 256})
    with open(run.events_path, "w") as fh:
        for kind, fields in events:
            fh.write(encode_event(kind, **fields) + "\n")
    return run


def finished_events(run_folder: Path, epochs: int = 3) -> list[tuple[str, dict]]:
    evs = [("started", {"epochs": epochs, "steps_per_epoch": 4, "device": "cpu",
                        "classes": CLASSES, "n_train": 80, "n_train_augmented": 768,
                        "n_val": 20})]
    for e in range(1, epochs + 1):
        evs.append(("epoch", {"epoch": e, "epochs": epochs, "train_loss": 1.0 / e,
                              "val_loss": 1.2 / e, "train_acc": 0.5 + 0.1 * e,
                              "val_acc": 0.4 + 0.1 * e, "macro_f1": 0.3 + 0.1 * e,
                              "lr": 1e-3, "samples_per_s": 500.0, "elapsed_s": 10.0 * e,
                              "eta_s": 10.0 * (epochs - e)}))
    model = run_folder / "best.cvmodel"
    model.write_bytes(b"not read here")
    evs += [("stopped", {"reason": "finished", "epoch": epochs}),
            ("finished", {"reason": "finished", "model_path": str(model), "best_epoch": epochs,
                          "epochs_run": epochs, "elapsed_s": 30.0,
                          "metrics": {"val_acc": 0.7, "macro_f1": 0.6}, "classes": CLASSES})]
    return evs


def test_the_pyside_emit_guard_keeps_true_alive():
    import sys

    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        ping = Signal()

    e = Emitter()
    for _ in range(5000):  # PySide6 6.12.0 without cellviewer.ui's guard aborts here
        e.ping.emit()
    assert sys.getrefcount(True) > 1000


def test_monitor_replays_a_finished_run(qtbot, tmp_path: Path):
    reg = runs.RunRegistry(tmp_path / "p.cvproj")
    run = reg.create("r")
    events = finished_events(run.folder)
    with open(run.events_path, "w") as fh:
        for kind, fields in events:
            fh.write(encode_event(kind, **fields) + "\n")
    run.mark_launched(pid=1)
    run.mark_ended(0, crashed=False)
    monitor = RunMonitor()
    qtbot.addWidget(monitor)
    monitor.show_run(run)
    assert monitor.status == runs.FINISHED
    assert monitor.charts.epoch_count() == 3
    assert monitor.figures["epoch"].text() == "3 of 3"
    assert monitor.figures["val_acc"].text() == "0.700"
    assert monitor.figures["elapsed"].text() == "0:30"
    assert monitor.error_label.isHidden()
    assert monitor.results_button.isEnabled() and not monitor.stop_button.isEnabled()
    xs, ys = monitor.charts._series("val_acc")
    assert xs == [1, 2, 3] and ys == pytest.approx([0.5, 0.6, 0.7])


def test_batch_curve_recovers_the_loss_between_heartbeats(qtbot):
    charts = TrainingCharts()
    qtbot.addWidget(charts)
    # running means over the epoch: 1.0 after 2 batches, 0.8 after 4 -> batches 3-4 mean 0.6
    charts.add_batch({"epoch": 1, "step": 2, "train_loss": 1.0}, 0.5)
    charts.add_batch({"epoch": 1, "step": 4, "train_loss": 0.8}, 1.0)
    assert charts.batch_y[0] == pytest.approx(1.0)
    assert charts.batch_y[1] == pytest.approx(0.7 * 1.0 + 0.3 * 0.6)
    # a new epoch starts a new running mean
    charts.add_batch({"epoch": 2, "step": 1, "train_loss": 0.5}, 1.25)
    assert charts.batch_y[2] == pytest.approx(0.7 * charts.batch_y[1] + 0.3 * 0.5)


def test_error_events_become_advice_for_the_app():
    text = error_text({"event": "error", "kind": "out-of-memory",
                       "message": "The device ran out of memory (CUDA out of memory)."})
    assert text.startswith("The device ran out of memory")
    assert "lower the batch size" in text
    assert "Foundation weights" in error_text({"kind": "missing-weights", "message": "m"})
    assert "fault in the trainer" in error_text({"kind": "something-new", "message": "m"})


def test_results_view_shows_the_evaluation(qtbot, tmp_path: Path):
    run = write_run(tmp_path / "p.cvproj", "done", [])
    with open(run.events_path, "w") as fh:
        for kind, fields in finished_events(run.folder):
            fh.write(encode_event(kind, **fields) + "\n")
    y_true = np.array([0] * 10 + [1] * 8 + [2] * 2)
    y_pred = np.array([0] * 9 + [1] + [1] * 6 + [0, 2] + [2, 0])
    metrics = classification_metrics(y_true, y_pred, 3)
    write_report(run.folder, metrics, CLASSES, {"model": "best.cvmodel"})
    view = ResultsView()
    qtbot.addWidget(view)
    view.show_run(run)
    assert view.class_table.rowCount() == 3
    assert [view.class_table.item(r, 0).text() for r in range(3)] == CLASSES
    assert view.class_table.item(0, 2).text() == "0.900"  # recall of normal: 9 of 10
    assert view.class_table.item(1, 4).text() == "8"
    expected = metrics.confusion / metrics.confusion.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(view.heatmap.matrix, expected, atol=1e-6)
    assert view.heatmap.classes == CLASSES
    assert f"{metrics.accuracy:.3f}" in view.summary_label.text()
    assert "FlagLimit 256" in view.summary_label.text()
    assert view.charts.epoch_count() == 3
    assert view.activate_button.isEnabled()
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    assert view.heatmap.grab().width() > 0


def test_results_say_which_model_a_fine_tuned_run_started_from(qtbot, tmp_path: Path):
    project = tmp_path / "p.cvproj"
    first = write_run(project, "cnn-1", [])
    events = finished_events(tmp_path)
    events[0][1].update(init_from=str(first.folder / "best.cvmodel"),
                        init_classes_matched=CLASSES[:2], init_classes_new=CLASSES[2:])
    second = write_run(project, "cnn-2", events)
    view = ResultsView()
    qtbot.addWidget(view)
    view.show_run(second)
    text = view.summary_label.text()
    assert "started from</b> run cnn-1's best model" in text
    assert f"2 of 3 classes carried over; new: {CLASSES[2]}" in text
    view.show_run(write_run(project, "scratch", finished_events(tmp_path)))
    assert "started from" not in view.summary_label.text()


def test_fine_tune_asks_for_a_run_with_a_best_model(qtbot, tmp_path: Path):
    project = tmp_path / "p.cvproj"
    run = write_run(project, "done", finished_events(tmp_path))
    view = ResultsView()
    qtbot.addWidget(view)
    view.show_run(run)
    assert not view.finetune_button.isEnabled()  # no best.cvmodel in its folder
    (run.folder / "best.cvmodel").write_bytes(b"x")
    view.show_run(run)
    with qtbot.waitSignal(view.finetune_requested) as asked:
        view.finetune_button.click()
    assert asked.args[0] is run


def test_normalised_confusion_from_counts():
    m = normalised_confusion({"confusion": [[3, 1], [0, 0]]})
    np.testing.assert_allclose(m, [[0.75, 0.25], [0.0, 0.0]])
    assert normalised_confusion({}) is None


def test_run_list_shows_each_runs_state(qtbot, tmp_path: Path):
    project = tmp_path / "p.cvproj"
    write_run(project, "never-started", [])
    gone = write_run(project, "app-went-away", [("started", {"epochs": 5})])
    gone.mark_launched(pid=999_999_999)  # no such process: the app died while it trained
    (gone.folder / runs.LAST_MODEL).write_bytes(b"x")
    crashed = write_run(project, "trainer-died", [("started", {"epochs": 5})])
    crashed.mark_launched(pid=1)
    crashed.mark_ended(-9, crashed=True, failure="The trainer was killed")
    done = write_run(project, "done", [])
    with open(done.events_path, "w") as fh:
        for kind, fields in finished_events(done.folder):
            fh.write(encode_event(kind, **fields) + "\n")
    done.mark_launched(pid=1)
    done.mark_ended(0, crashed=False)

    panel = RunsPanel(TrainingManager(project))
    qtbot.addWidget(panel)
    assert {r.name: panel.row_status(r.name) for r in panel.runs()} == {
        "never-started": runs.CREATED, "app-went-away": runs.INTERRUPTED,
        "trainer-died": runs.FAILED, "done": runs.FINISHED}
    panel.select(gone)
    assert panel.resume_button.isEnabled() and not panel.stop_button.isEnabled()
    panel.select(done)
    assert panel.results_button.isEnabled() and panel.repeat_button.isEnabled()
    assert not panel.resume_button.isEnabled()
    row = panel.row_of("done")
    assert panel.table.item(row, COLUMNS.index("Epochs")).text() == "3 / 3"
    assert panel.table.item(row, COLUMNS.index("Best val. acc.")).text() == "0.700"
    assert panel.table.item(row, COLUMNS.index("Best epoch")).text() == "3"


def _run_with_curve(project: Path, name: str, val_accs: list[float], flag_limit=None):
    """A finished run whose validation accuracy follows ``val_accs`` (best = the first max)."""
    run = write_run(project, name, [])
    cfg = run.config()
    cfg["flag_limit"] = flag_limit
    runs.write_json_atomic(run.config_path, cfg)
    best = val_accs.index(max(val_accs)) + 1
    with open(run.events_path, "w") as fh:
        fh.write(encode_event("started", epochs=len(val_accs)) + "\n")
        for e, acc in enumerate(val_accs, 1):
            fh.write(encode_event("epoch", epoch=e, epochs=len(val_accs), val_acc=acc,
                                  macro_f1=acc - 0.1, train_loss=1.0, val_loss=1.0) + "\n")
        fh.write(encode_event("stopped", reason="early-stop", epoch=len(val_accs)) + "\n")
        fh.write(encode_event("finished", reason="early-stop", best_epoch=best,
                              model_path=str(run.folder / "best.cvmodel")) + "\n")
    run.mark_launched(pid=1)
    run.mark_ended(0, crashed=False)
    return run


def test_run_list_compares_runs_by_their_best_epoch(qtbot, tmp_path: Path):
    project = tmp_path / "p.cvproj"
    # early-stopped: the kept model is epoch 2's (0.9), not the last epoch's (0.6)
    _run_with_curve(project, "vit", [0.7, 0.9, 0.8, 0.6], flag_limit=4096)
    _run_with_curve(project, "cnn", [0.5, 0.6, 0.85, 0.85, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7])
    _run_with_curve(project, "mlp", [0.4, 0.5])
    panel = RunsPanel(TrainingManager(project))
    qtbot.addWidget(panel)
    col = {name: i for i, name in enumerate(COLUMNS)}

    def cell(name, column):
        return panel.table.item(panel.row_of(name), col[column]).text()

    assert [cell(n, "Best val. acc.") for n in ("vit", "cnn", "mlp")] == \
        ["0.900", "0.850", "0.500"]
    assert [cell(n, "Macro-F1") for n in ("vit", "cnn", "mlp")] == ["0.800", "0.750", "0.400"]
    assert [cell(n, "Best epoch") for n in ("vit", "cnn", "mlp")] == ["2", "3", "2"]
    assert [cell(n, "FlagLimit") for n in ("vit", "cnn", "mlp")] == ["4,096", "all", "all"]

    # sort by best epoch, largest first: numbers compare as numbers ("3" > "2"; "11" > "4")
    panel.table.sortItems(col["Best epoch"], Qt.SortOrder.DescendingOrder)
    assert panel.row_of("cnn") == 0
    panel.table.sortItems(col["Epochs"], Qt.SortOrder.DescendingOrder)
    assert [panel.table.item(r, 0).text() for r in range(3)] == ["cnn", "vit", "mlp"]
    # the selection follows the row the user sees, after sorting and after a refresh
    panel.table.selectRow(0)
    assert panel.selected().name == "cnn"
    panel.refresh()
    assert panel.selected().name == "cnn" and panel.row_of("cnn") == 0
