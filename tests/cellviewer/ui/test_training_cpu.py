"""The New training run dialog on a machine without a GPU: it proposes CPU settings, says how
long the run would take (from a timing of the model here) before Start, and opens with the
project's last settings."""

from __future__ import annotations

from pathlib import Path

from test_training_dialog import project_with_copied_images

from cellviewer.core.training.devices import DeviceStatus
from cellviewer.core.training.proposal import CPU_EPOCHS, Timing, save_last
from cellviewer.ui.train import dialog as dialog_mod
from cellviewer.ui.train.dialog import TrainingDialog
from cellviewer.ui.train.runs import TrainingManager


def _open(qtbot, store, monkeypatch, timed: list) -> TrainingDialog:
    monkeypatch.setattr(dialog_mod, "probe_devices", lambda: DeviceStatus(short="no CUDA"))

    def fake_time(model, device, batch, n):  # the trainer's benchmark, without the process
        timed.append((model, device, batch, n))
        return Timing(800.0, 3000.0, 2.0, "cpu")

    monkeypatch.setattr(dialog_mod, "TIME_MODEL", fake_time)
    monkeypatch.setattr(dialog_mod, "TIMING_DELAY_MS", 10)
    d = TrainingDialog(store, TrainingManager(store.path))
    qtbot.addWidget(d)
    d.show()
    qtbot.waitUntil(d.ready, timeout=30_000)
    return d


def test_cpu_proposal_and_estimate_before_start(qtbot, tmp_path: Path, monkeypatch):
    store = project_with_copied_images(tmp_path)
    timed: list = []
    d = _open(qtbot, store, monkeypatch, timed)
    qtbot.waitUntil(lambda: d.epochs_spin.value() == CPU_EPOCHS, timeout=10_000)
    assert d.model_combo.currentData() == "cnn"
    assert "No GPU found" in d.estimate_label.text()
    qtbot.waitUntil(lambda: "About " in d.estimate_label.text(), timeout=10_000)
    assert timed and timed[0][0] == "cnn"
    d.set_flag_limit(256)  # (both classes kept: the run could start)
    assert d.start_button.isEnabled()  # the estimate is there before Start
    d.epochs_spin.setValue(3)  # typed: kept, and the estimate follows
    assert d.form.numbers_typed and d.form.epochs == 3
    assert "3 epochs" in d.estimate_label.text()


def test_the_dialog_opens_with_the_projects_last_settings(qtbot, tmp_path: Path, monkeypatch):
    store = project_with_copied_images(tmp_path)
    save_last(store.path, {"model": "resnet_d4", "epochs": 9, "batch_size": 32, "lr": 0.002,
                           "seed": 5, "flag_limit": 256, "val_fraction": 0.25})
    d = _open(qtbot, store, monkeypatch, [])
    qtbot.waitUntil(lambda: d.form.restored, timeout=10_000)
    assert d.model_combo.currentData() == "resnet_d4"
    assert (d.epochs_spin.value(), d.batch_spin.value(), d.seed_spin.value()) == (9, 32, 5)
    assert d.val_spin.value() == 25
    assert "last run" in d.estimate_label.text()


def test_a_split_column_can_be_the_validation(qtbot, tmp_path: Path, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
    from test_training_split import make_split_project

    from cellviewer.core.store import ProjectStore

    store = ProjectStore.open(make_split_project(tmp_path))
    d = _open(qtbot, store, monkeypatch, [])
    qtbot.waitUntil(lambda: d.split_combo.count() == 2, timeout=10_000)
    assert d.split_combo.itemData(1) == "split"
    d.set_flag_limit(None)
    d.split_combo.setCurrentIndex(1)
    assert not d.val_spin.isEnabled()
    assert {r["class"]: r["val"] for r in d.sampling_rows()} == {"a": 10, "b": 8}
    assert d.request().split_column == "split"
    store.close()
