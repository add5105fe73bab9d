"""The New training run dialog without training: data choices drive the sampling table,
foundation models appear only with their weights file, a broken image fails the patch set with
a message that names it and leaves no half-made run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from cellviewer.core.store import ProjectStore
from cellviewer.core.training import runs
from cellviewer.paths import demo_dir
from cellviewer.ui.train.dialog import TrainingDialog
from cellviewer.ui.train.runs import TrainingManager

pytestmark = pytest.mark.slow  # the first dialog asks a trainer process for its devices


def project_with_copied_images(folder: Path) -> ProjectStore:
    """Two demo images copied into ``folder``; image A has 30 'a' + 20 'b' cells, B 10 'b'."""
    store = ProjectStore.create(folder / "p.cvproj")
    a, b = store.add_class("a"), store.add_class("b")
    rng = np.random.default_rng(0)
    for name, labels in (("A.jpg", [a] * 30 + [b] * 20), ("B.jpg", [b] * 10)):
        src = sorted((demo_dir() / "images").glob("*.jpg"))[0 if name == "A.jpg" else 1]
        shutil.copy(src, folder / name)
        w, h = Image.open(folder / name).size
        image_id = store.add_image(folder / name, w, h)
        xy = rng.uniform(30, min(w, h) - 30, size=(len(labels), 2))
        store.add_cells(image_id, xy, labels)
    return store


def open_dialog(qtbot, store) -> TrainingDialog:
    dialog = TrainingDialog(store, TrainingManager(store.path))
    qtbot.addWidget(dialog)
    qtbot.waitUntil(dialog.ready, timeout=90_000)
    return dialog


def rows(dialog) -> dict[str, dict]:
    dialog.update_report()
    return {r["class"]: r for r in dialog.sampling_rows()}


def test_images_classes_and_limits_drive_the_sampling_table(qtbot, tmp_path: Path):
    store = project_with_copied_images(tmp_path)
    dialog = open_dialog(qtbot, store)
    assert dialog.image_list.count() == 2 and dialog.class_list.count() == 2
    dialog.set_flag_limit(256)  # FlagMin 13: both classes kept
    assert {k: v["used"] for k, v in rows(dialog).items()} == {"a": 30, "b": 30}
    dialog.image_list.item(1).setCheckState(Qt.CheckState.Unchecked)  # without image B
    assert rows(dialog)["b"]["available"] == 20
    dialog.set_flag_limit(512)  # FlagMin 26: 'b' (20) is excluded, one class is not enough
    assert rows(dialog)["b"]["excluded"]
    assert not dialog.start_button.isEnabled()
    assert "At least two classes" in dialog.status.text()
    dialog.set_flag_limit(None)  # every labelled cell
    assert {k: v["used"] for k, v in rows(dialog).items()} == {"a": 30, "b": 20}
    assert dialog.start_button.isEnabled()
    dialog.class_list.item(0).setCheckState(Qt.CheckState.Unchecked)
    dialog.update_report()
    assert not dialog.start_button.isEnabled()
    note = dialog.device_note
    import torch

    if not torch.cuda.is_available():  # the trainer's answer says why there is no GPU
        assert note.text().startswith("no GPU found: ") and "PyTorch" in note.toolTip()
    store.close()


def test_foundation_models_need_their_weights_file(qtbot, tmp_path: Path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "ctranspath.safetensors").write_bytes(b"")
    store = project_with_copied_images(tmp_path)
    dialog = open_dialog(qtbot, store)
    names = [dialog.model_combo.itemData(i) for i in range(dialog.model_combo.count())]
    assert "cnn" in names and "ctranspath" not in names and "uni" not in names
    monkeypatch.setenv("CELLVIEWER_WEIGHTS_DIR", str(weights))
    dialog.set_weights_folder(weights)
    names = [dialog.model_combo.itemData(i) for i in range(dialog.model_combo.count())]
    assert "ctranspath" in names and "uni" not in names
    dialog.model_combo.setCurrentIndex(names.index("ctranspath"))
    assert dialog.mode_combo.isEnabled()
    dialog.mode_combo.setCurrentIndex(dialog.mode_combo.findData("ft_last"))
    assert dialog.lr_spin.value() == pytest.approx(1e-4) and dialog.wd_spin.value() == 0.01
    dialog.set_flag_limit(256)  # both classes kept: the form can start a run
    run = runs.RunRegistry(store.path).create("f")
    cfg = dialog.request().run_config(run)
    assert (cfg.model, cfg.mode, cfg.weights) == (
        "ctranspath", "ft_last", str(weights / "ctranspath.safetensors"))
    store.close()


def test_a_broken_image_fails_the_patch_set_and_leaves_no_run(qtbot, tmp_path: Path):
    store = project_with_copied_images(tmp_path)
    (tmp_path / "B.jpg").unlink()  # the file went missing after it was added
    dialog = open_dialog(qtbot, store)
    # Start at once, before the sampling table's 60 ms refresh: Start checks the FlagLimit just
    # chosen (the default 4096 keeps no class of this project, so a stale report refuses).
    dialog.set_flag_limit(256)
    dialog.start()
    assert dialog.writer is not None, dialog.status.text()
    assert not dialog.start_button.isEnabled()  # while the worker writes
    qtbot.waitUntil(lambda: dialog.writer is None, timeout=30_000)
    assert "Could not write the patch set" in dialog.status.text()
    assert "B.jpg" in dialog.status.text()
    # The message stays: no refresh left pending from before Start rewrites the status line
    # (one did, when the write failed within its 60 ms).
    qtbot.wait(150)
    assert "Could not write the patch set" in dialog.status.text()
    assert runs.RunRegistry(store.path).runs() == []  # the half-made run folder is gone
    assert dialog.isVisible() or not dialog.result()  # still open for another try
    assert dialog.start_button.isEnabled()
    store.close()


def test_models_at_once_and_the_values_go_into_the_form(qtbot, tmp_path: Path):
    """The models come from the trainer's catalogue (no trainer process to wait for); what the
    user types lands in the run's settings; the validation share drives the table."""
    store = project_with_copied_images(tmp_path)
    dialog = TrainingDialog(store, TrainingManager(store.path))
    qtbot.addWidget(dialog)
    names = [dialog.model_combo.itemData(i) for i in range(dialog.model_combo.count())]
    assert names[:2] == ["mlp", "cnn"] and dialog.model_combo.currentData() == "cnn"
    assert dialog.epochs_spin.value() == 100  # the study's default, before any answer
    qtbot.waitUntil(dialog.ready, timeout=90_000)
    dialog.set_flag_limit(None)
    dialog.val_spin.setValue(50)
    assert {k: (v["train"], v["val"]) for k, v in rows(dialog).items()} == {
        "a": (15, 15), "b": (15, 15)}
    dialog.epochs_spin.setValue(7)
    dialog.lr_spin.setValue(0.002)
    dialog.seed_spin.setValue(3)
    dialog.set_device("cpu")
    dialog.name_edit.setText("typed")
    settings = dialog.request().settings
    assert (settings["epochs"], settings["lr"], settings["seed"], settings["device"]) == (
        7, 0.002, 3, "cpu")
    assert settings["val_fraction"] == 0.5 and dialog.request().name == "typed"
    dialog.defaults_button.click()
    assert dialog.epochs_spin.value() == 100 and dialog.request().settings["epochs"] == 100
    store.close()
