"""Blur robustness in the app: the results view's "Blur robustness" tab (chart, table, drop
slopes and notes of a run's robustness.json, or the button that measures it with the real
`python -m trainer robustness` process: running, cancelled, failed, killed when another run is
shown) and the run list's ΔF1 column."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from test_training_views import CLASSES, finished_events, write_run

from cellviewer.core.training import runs
from cellviewer.ui.train.blur import BLUR_INTRO
from cellviewer.ui.train.install import ResultsWindow
from cellviewer.ui.train.results import ResultsView
from cellviewer.ui.train.runs import BLUR_COLUMN, COLUMNS, RunsPanel, TrainingManager
from trainer.formats.protocol import encode_event

SIGMAS = [0.1, 0.2, 0.4, 0.8, 1.6]
# the CNN on the real CRC split (5 epochs), post-resize; pre-resize made to differ
POST_F1 = [0.7099, 0.7086, 0.6875, 0.5660, 0.3797]
PRE_F1 = [0.7101, 0.7090, 0.6950, 0.6010, 0.4420]
CLEAN_F1, CLEAN_ACC = 0.7099, 0.7870


def write_robustness(folder: Path, post: list[float], pre: list[float] | None = None,
                     notes: tuple[str, ...] = (), sigmas: list[float] = SIGMAS,
                     clean_f1: float = CLEAN_F1) -> dict:
    """A robustness.json as trainer.robustness.RobustnessReport.write lays it out."""
    rows = []
    for mode, f1s in (("post", post), ("pre", pre)):
        for sigma, f1 in zip(sigmas, f1s or [], strict=False):
            rows.append({"mode": mode, "sigma": sigma, "accuracy": CLEAN_ACC - (clean_f1 - f1),
                         "macro_f1": f1, "delta_accuracy": f1 - clean_f1,
                         "delta_macro_f1": f1 - clean_f1})
    slopes = {"post": -0.1717, **({"pre": -0.1234} if pre else {})}
    report = {"n": 2268, "classes": CLASSES, "clean_accuracy": CLEAN_ACC,
              "clean_macro_f1": clean_f1, "rows": rows, "drop_slopes": slopes,
              "notes": list(notes)}
    (folder / runs.ROBUSTNESS_FILE).write_text(json.dumps(report, indent=2))
    return report


def finished_run(project: Path, name: str) -> runs.Run:
    run = write_run(project, name, [])
    with open(run.events_path, "w") as fh:
        for kind, fields in finished_events(run.folder):
            fh.write(encode_event(kind, **fields) + "\n")
    return run


def table_column(view: ResultsView, col: int) -> list[str]:
    table = view.blur.table
    return [table.item(r, col).text() for r in range(table.rowCount())]


def test_blur_tab_shows_the_report_as_chart_table_and_slopes(qtbot, tmp_path: Path):
    run = finished_run(tmp_path / "p.cvproj", "cnn")
    write_robustness(run.folder, POST_F1, PRE_F1)
    view = ResultsView()
    qtbot.addWidget(view)
    view.show_run(run)
    assert [view.tabs.tabText(i) for i in range(2)] == ["Confusion matrix", "Blur robustness"]
    blur = view.blur
    assert blur.stack.currentIndex() == 1  # the report, not the button

    # the chart: clean at σ 0, then each σ, on a log2(1 + σ) axis labelled in σ
    for mode, f1s in (("post", POST_F1), ("pre", PRE_F1)):
        xs, ys = blur.curves[mode].getData()
        assert list(xs) == pytest.approx([math.log2(1 + s) for s in [0.0, *SIGMAS]])
        assert list(ys) == pytest.approx([CLEAN_F1, *f1s])
    # 0.1 on the second level: left out, not printed over 0 and 0.2, where space is short
    major, minor = blur.plot.getAxis("bottom")._tickLevels
    assert [label for _x, label in major] == ["0", "0.2", "0.4", "0.8", "1.6"]
    assert minor == [(pytest.approx(math.log2(1.1)), "0.1")]
    legend = [label.text for _sample, label in blur.plot.getPlotItem().legend.items]
    assert legend == ["post-resize", "pre-resize"]

    # the table: σ | post F1 | Δ | pre F1 | Δ
    assert table_column(view, 0) == ["0 (clean)", "0.1", "0.2", "0.4", "0.8", "1.6"]
    assert table_column(view, 1) == ["0.710", "0.710", "0.709", "0.688", "0.566", "0.380"]
    assert table_column(view, 2) == ["", "+0.000", "-0.001", "-0.022", "-0.144", "-0.330"]
    assert table_column(view, 3)[4] == "0.601" and table_column(view, 4)[4] == "-0.109"
    assert not blur.table.isColumnHidden(3)
    text = blur.summary.text()
    assert "post-resize&nbsp;<b>-0.172</b> · pre-resize&nbsp;<b>-0.123</b>" in text
    assert "2,268 validation cells" in text and "clean accuracy 0.787" in text
    assert blur.again_button.isVisibleTo(blur) and blur.again_button.isEnabled()
    assert not blur.busy.isVisibleTo(blur)
    view.resize(1000, 760)
    view.show()
    qtbot.waitExposed(view)
    view.tabs.setCurrentWidget(blur)
    assert blur.table.isVisible() and blur.table.height() < blur.height()


def test_blur_tab_without_pre_resize_says_why(qtbot, tmp_path: Path):
    run = finished_run(tmp_path / "p.cvproj", "cnn")
    note = ("the patch set has no source crops: pre-resize blur was not measured (rebuild the "
            "patch set keeping source crops)")
    write_robustness(run.folder, POST_F1, None, notes=(note,))
    view = ResultsView()
    qtbot.addWidget(view)
    view.show_run(run)
    assert set(view.blur.curves) == {"post"}
    assert view.blur.table.isColumnHidden(3) and view.blur.table.isColumnHidden(4)
    assert "<i>Note:</i> The patch set has no source crops" in view.blur.summary.text()
    assert "pre-resize" not in view.blur.summary.text().split("<br>")[0]
    assert "measure again" not in view.blur.summary.text()
    # the model file was written again since (a resumed run): the report is of an older one
    later = (run.folder / runs.ROBUSTNESS_FILE).stat().st_mtime + 60
    os.utime(run.folder / "best.cvmodel", (later, later))
    view.show_run(run)
    assert "Measured before the run's current model file was written: measure again." in \
        view.blur.summary.text()


def test_blur_tab_offers_to_measure_and_names_a_damaged_report(qtbot, tmp_path: Path):
    project = tmp_path / "p.cvproj"
    run = finished_run(project, "cnn")
    view = ResultsView()
    qtbot.addWidget(view)
    view.show_run(run)
    blur = view.blur
    assert blur.stack.currentIndex() == 0
    assert blur.intro.text() == BLUR_INTRO and "σ 0.1 to 1.6" in BLUR_INTRO
    assert blur.measure_button.isEnabled()
    assert not blur.again_button.isVisibleTo(blur) and blur.error_label.isHidden()

    (run.folder / runs.ROBUSTNESS_FILE).write_text('{"rows": [')  # torn
    view.show_run(run)
    assert blur.stack.currentIndex() == 0 and not blur.error_label.isHidden()
    assert f"{run.folder / runs.ROBUSTNESS_FILE}: not valid JSON" in blur.error_label.text()

    no_model = write_run(project, "no-model", [("started", {"epochs": 3})])
    view.show_run(no_model)
    assert not blur.measure_button.isEnabled() and blur.error_label.isHidden()
    assert blur.status_label.text() == "This run has no model file to measure."


def test_measuring_a_broken_model_shows_the_trainers_error(qtbot, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = finished_run(tmp_path / "p.cvproj", "cnn")  # its best.cvmodel is not a model file
    view = ResultsView()
    qtbot.addWidget(view)
    view.show_run(run)
    blur = view.blur
    qtbot.mouseClick(blur.measure_button, Qt.MouseButton.LeftButton)
    assert blur.is_measuring() and not blur.measure_button.isEnabled()
    assert blur.busy.isVisibleTo(blur) and blur.cancel_button.isVisibleTo(blur)
    assert blur.status_label.text().startswith("Measuring blur robustness")
    assert blur.job.program == sys.executable and "robustness" in blur.job.args
    qtbot.waitUntil(lambda: not blur.is_measuring(), timeout=60_000)
    error = blur.error_label.text()
    assert error.startswith("The trainer exited with code 1:")
    assert "best.cvmodel" in error and "error (" in error  # the trainer's own words
    assert blur.measure_button.isEnabled() and not blur.busy.isVisibleTo(blur)
    assert not (run.folder / runs.ROBUSTNESS_FILE).exists()


def test_cancel_and_showing_another_run_kill_the_measurement(qtbot, tmp_path: Path,
                                                             monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    project = tmp_path / "p.cvproj"
    first, second = finished_run(project, "first"), finished_run(project, "second")
    write_robustness(second.folder, POST_F1)
    view = ResultsView()
    qtbot.addWidget(view)
    view.show_run(first)
    blur = view.blur

    def start(blur=blur) -> tuple[int, list]:
        """Start measuring; the trainer's pid and the list its end is recorded in."""
        blur.measure()
        ended: list = []
        blur.job.ended.connect(lambda ok, message: ended.append((ok, message)))
        assert blur.job.proc.pid  # spawned: the pid is known at once
        return blur.job.proc.pid, ended

    def gone(pid: int) -> bool:
        return not Path(f"/proc/{pid}").exists()  # killed and reaped

    pid, ended = start()
    qtbot.mouseClick(blur.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(ended) and gone(pid), timeout=10_000)
    assert ended == [(False, "")]  # cancelled: no error to show
    assert blur.status_label.text() == "Cancelled." and blur.error_label.isHidden()
    assert blur.measure_button.isEnabled() and not blur.cancel_button.isVisibleTo(blur)

    pid, ended = start()
    view.show_run(second)  # another run: the first run's measurement goes
    assert blur.job is None and not blur.is_measuring()
    qtbot.waitUntil(lambda: bool(ended) and gone(pid), timeout=10_000)
    assert ended == [(False, "")]  # killed, not ended on its own
    assert blur.stack.currentIndex() == 1 and blur.error_label.isHidden()
    assert blur.status_label.text() == ""
    assert not (first.folder / runs.ROBUSTNESS_FILE).exists()

    # closing the results window (it is hidden, not deleted) kills it too
    window = ResultsWindow()
    qtbot.addWidget(window)
    window.view.show_run(first)
    window.show()
    qtbot.waitExposed(window)
    pid, ended = start(window.view.blur)
    window.close()
    qtbot.waitUntil(lambda: bool(ended) and gone(pid), timeout=10_000)
    assert ended == [(False, "")]


def _robustness_runs(project: Path) -> None:
    for name, delta in (("fragile", -0.143), ("robust", -0.012), ("unmeasured", None),
                        ("sharper", 0.004)):
        run = finished_run(project, name)
        if delta is not None:
            post = [CLEAN_F1] * 5
            post[SIGMAS.index(0.8)] = CLEAN_F1 + delta
            write_robustness(run.folder, post)


def test_run_list_compares_blur_robustness(qtbot, tmp_path: Path):
    project = tmp_path / "p.cvproj"
    _robustness_runs(project)
    damaged = finished_run(project, "damaged")
    (damaged.folder / runs.ROBUSTNESS_FILE).write_text("{}")
    panel = RunsPanel(TrainingManager(project))
    qtbot.addWidget(panel)
    col = COLUMNS.index(BLUR_COLUMN)
    assert BLUR_COLUMN == "Blur ΔF1 σ0.8"
    assert "post-resize" in panel.table.horizontalHeaderItem(col).toolTip()

    def cell(name):
        return panel.table.item(panel.row_of(name), col)

    assert {n: cell(n).text() for n in ("fragile", "robust", "unmeasured", "sharper",
                                        "damaged")} == {
        "fragile": "-0.143", "robust": "-0.012", "unmeasured": "", "sharper": "+0.004",
        "damaged": ""}
    assert "robustness.json: not a blur robustness report" in cell("damaged").toolTip()
    assert "0.567 at σ 0.8" in cell("fragile").toolTip()

    def order():
        return [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]

    # most robust first, as a click on the header sorts; unmeasured runs last either way
    panel.table.sortItems(col, Qt.SortOrder.DescendingOrder)
    assert order()[:3] == ["sharper", "robust", "fragile"]
    assert set(order()[3:]) == {"unmeasured", "damaged"}
    panel.table.sortItems(col, Qt.SortOrder.AscendingOrder)
    assert order()[:3] == ["fragile", "robust", "sharper"]
    assert set(order()[3:]) == {"unmeasured", "damaged"}
    # a new report shows after a refresh, in the order the user chose
    write_robustness(runs.RunRegistry(project).get("unmeasured").folder,
                     [CLEAN_F1, CLEAN_F1, CLEAN_F1, CLEAN_F1 - 0.05, CLEAN_F1])
    panel.refresh()
    assert order()[:4] == ["fragile", "unmeasured", "robust", "sharper"]
    assert cell("unmeasured").text() == "-0.050"


@pytest.mark.slow
def test_measure_a_real_run_with_the_real_trainer(qtbot, tmp_path: Path, monkeypatch):
    """A tiny real run (trained in-process, as the trainer writes it, with source crops so
    both modes are measured); the button starts `python -m trainer robustness` and the view
    ends showing what it wrote."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "trainer" / "engine"))
    from engine_testdata import make_patchset, tiny_config

    from trainer.engine.events import EventSink
    from trainer.engine.loop import run_training

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the trainer process: one core
    torch.set_num_threads(1)
    cells = make_patchset(tmp_path / "cells.patches", n_per_class=20, crop_size=60)
    run = runs.RunRegistry(tmp_path / "p.cvproj").create("tiny")
    result = run_training(tiny_config(cells, run.folder, epochs=1), sink=EventSink())
    assert result.status == "finished", result.error
    assert run.status() == runs.FINISHED and run.model_path() == run.folder / "best.cvmodel"

    view = ResultsView()
    qtbot.addWidget(view)
    measured = []
    view.robustness_measured.connect(measured.append)
    view.show_run(run)
    view.tabs.setCurrentWidget(view.blur)
    blur = view.blur
    assert blur.stack.currentIndex() == 0
    qtbot.mouseClick(blur.measure_button, Qt.MouseButton.LeftButton)
    assert blur.is_measuring()
    qtbot.waitUntil(lambda: blur.stack.currentIndex() == 1, timeout=90_000)
    assert blur.error_label.isHidden(), blur.error_label.text()
    assert [r.folder for r in measured] == [run.folder]
    report = json.loads((run.folder / runs.ROBUSTNESS_FILE).read_text())
    assert report["n"] == 12  # the run's validation cells (20% of 60)
    post = [r for r in report["rows"] if r["mode"] == "post"]
    assert [r["sigma"] for r in post] == SIGMAS
    assert table_column(view, 0) == ["0 (clean)", "0.1", "0.2", "0.4", "0.8", "1.6"]
    assert table_column(view, 1) == [f"{report['clean_macro_f1']:.3f}",
                                     *(f"{r['macro_f1']:.3f}" for r in post)]
    _xs, ys = blur.curves["pre"].getData()
    assert list(ys)[1:] == pytest.approx(
        [r["macro_f1"] for r in report["rows"] if r["mode"] == "pre"])
    assert blur.status_label.text().startswith("Measured in")
    assert "Drop slope" in blur.summary.text()
