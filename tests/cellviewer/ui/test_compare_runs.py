"""The Compare runs window (Training > Compare runs…): over a project's run folders or a sweep
folder, the scaling chart's points are the mean and sd over seeds per model and FlagLimit, the
table lists every evaluated run and sorts by number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fake_host import FakeHost
from PySide6.QtCore import Qt

from cellviewer.core.store import ProjectStore
from cellviewer.core.training import runs
from cellviewer.ui.train.compare import COLUMNS, CompareRunsWindow
from cellviewer.ui.train.install import install
from trainer.evaluate import write_report
from trainer.metrics import classification_metrics

CLASSES = ["tumour", "stroma", "lymphocyte"]


def write_run(folder: Path, model: str, limit: int | None, seed: int, correct: int) -> None:
    """A run folder as ``train`` leaves it: config.json and the evaluation of 20 validation
    cells of which ``correct`` are right (the trainer's own metrics and report writer)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"patchset": "x", "out_dir": str(folder), "model": model, "flag_limit": limit,
         "seed": seed}))
    y = np.arange(20) % 3
    pred = y.copy()
    pred[correct:] = (pred[correct:] + 1) % 3
    write_report(folder, classification_metrics(y, pred, 3), CLASSES)


def expected(correct: list[int]) -> tuple[float, float]:
    y = np.arange(20) % 3
    f1s = []
    for c in correct:
        pred = y.copy()
        pred[c:] = (pred[c:] + 1) % 3
        f1s.append(classification_metrics(y, pred, 3).macro_f1)
    return float(np.mean(f1s)), float(np.std(f1s, ddof=1))


def test_the_window_charts_the_project_runs_and_sorts_them(qtbot, tmp_path: Path):
    project = tmp_path / "p.cvproj"
    store = ProjectStore.create(project)
    root = runs.runs_root(project)
    grid = {("cnn", 256): [12, 14], ("cnn", None): [17, 19], ("custom_vit", 256): [10, 16],
            ("custom_vit", None): [18, 20]}
    for (model, limit), correct in grid.items():
        for seed, c in zip((1, 2), correct, strict=True):
            write_run(root / f"{model}-{limit}-{seed}", model, limit, seed, c)
    (root / "not-a-run").mkdir()  # a stray folder is no run
    window = FakeHost(store)
    qtbot.addWidget(window)
    training = install(window)
    action = next(a for a in training.menu.actions() if a.text() == "&Compare runs…")
    action.trigger()
    compare = training.compare_window
    assert isinstance(compare, CompareRunsWindow)
    qtbot.waitUntil(lambda: compare.table.rowCount() == 8, timeout=20_000)
    assert "8 evaluated runs, 2 models" in compare.source.text()
    # the chart: one series per model, at FlagLimit 256 then all, mean and sd over the seeds
    assert set(compare.series) == {"cnn", "custom_vit"}
    for model in ("cnn", "custom_vit"):
        s = compare.series[model]
        assert s["x"] == [0.0, 1.0]
        for i, limit in enumerate((256, None)):
            mean, sd = expected(grid[(model, limit)])
            assert abs(s["mean"][i] - mean) < 1e-9 and abs(s["sd"][i] - sd) < 1e-9
    ticks = compare.plot.getAxis("bottom")._tickLevels[0]
    assert [t[1] for t in ticks] == ["256", "all"]
    # sorting by validation macro-F1 orders the rows by number, both ways
    col = [c[0] for c in COLUMNS].index("val_macro_f1")
    compare.table.sortItems(col)
    values = [float(compare.table.item(i, col).text()) for i in range(8)]
    assert values == sorted(values) and values[0] < values[-1]
    compare.table.sortItems(col, Qt.SortOrder.DescendingOrder)
    values = [float(compare.table.item(i, col).text()) for i in range(8)]
    assert values == sorted(values, reverse=True)
    # another metric redraws the chart: no test set, so no series
    compare.metric_box.setCurrentIndex([compare.metric_box.itemData(i) for i in range(
        compare.metric_box.count())].index("test_macro_f1"))
    assert compare.series == {}
    window.set_store(None)
    store.close()


def test_a_sweep_folder_is_read_from_its_runs(qtbot, tmp_path: Path):
    sweep = tmp_path / "sweep"
    for seed, c in ((1, 15), (2, 18), (3, 20)):
        write_run(sweep / "runs" / f"mlp-fl512-s{seed}", "mlp", 512, seed, c)
    compare = CompareRunsWindow()
    qtbot.addWidget(compare)
    compare.load([sweep])
    qtbot.waitUntil(lambda: compare.table.rowCount() == 3, timeout=20_000)
    mean, sd = expected([15, 18, 20])
    assert compare.series["mlp"]["mean"] == [mean]
    assert abs(compare.series["mlp"]["sd"][0] - sd) < 1e-12
    compare.load([tmp_path / "nothing-here"])
    qtbot.waitUntil(lambda: "no evaluated runs" in compare.source.text(), timeout=20_000)
    assert compare.table.rowCount() == 0
