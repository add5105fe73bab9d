"""The dialog's "Start from" choice (``RunConfig.init_from``): random weights by default; the
best model of the project's finished runs and its registered models, only those of the chosen
architecture; any model file picked by hand, checked from its header; the chosen file's
absolute path in the run's config.json, and a real trainer that starts from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PySide6.QtWidgets import QFileDialog
from test_training_dialog import open_dialog, project_with_copied_images

from cellviewer.core.training import runs
from cellviewer.ui.train.dialog import SCRATCH_LABEL
from trainer.engine.modelfile import save_model_file
from trainer.formats.protocol import encode_event

pytestmark = pytest.mark.slow  # the first dialog asks a trainer process for its devices


def model_file(path: Path, arch: str, classes: list[str], real: bool = False) -> Path:
    """A model file of ``arch``: tiny stand-in weights (the dialog reads only the header), or
    with ``real`` the architecture's own random weights (for a trainer to start from)."""
    torch.manual_seed(0)
    if real:
        from trainer.models import create_model

        state = create_model(arch, len(classes)).state_dict()
    else:
        state = torch.nn.Linear(2, len(classes)).state_dict()
    return save_model_file(path, state_dict=state, mean_image=torch.rand(3, 40, 40),
                           meta={"arch": arch, "classes": classes})


def finished_run(project: Path, name: str, arch: str, classes: list[str], val_acc: float,
                 finished: bool = True) -> runs.Run:
    """A run folder as the trainer leaves it: config, events (best epoch 2), best model."""
    run = runs.RunRegistry(project).create(name, project=str(project), classes=classes)
    runs.write_json_atomic(run.config_path, {"patchset": str(run.patchset_path),
                                             "out_dir": str(run.folder), "model": arch})
    best = model_file(run.folder / "best.cvmodel", arch, classes)
    lines = [encode_event("started", model=arch, classes=classes),
             encode_event("epoch", epoch=1, val_acc=val_acc / 2),
             encode_event("epoch", epoch=2, val_acc=val_acc)]
    if finished:
        lines.append(encode_event("finished", model_path=str(best), best_epoch=2,
                                  classes=classes))
    else:  # still going: its best model changes under it
        run.update(launched_at="2026-01-01T00:00:00", pid=None, app_status=runs.RUNNING)
    run.events_path.write_text("\n".join(lines) + "\n")
    return run


def choices(dialog) -> list[str]:
    c = dialog.start_combo
    return [c.itemText(i) for i in range(c.count()) if c.itemText(i)]  # not the separator


def choose(dialog, path: Path) -> None:
    dialog.start_combo.setCurrentIndex(dialog.start_combo.findData(str(path)))


def select_model(dialog, name: str) -> None:
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData(name))


def test_random_weights_by_default_write_null(qtbot, tmp_path: Path):
    store = project_with_copied_images(tmp_path)
    dialog = open_dialog(qtbot, store)
    select_model(dialog, "cnn")
    assert choices(dialog) == [SCRATCH_LABEL, "Choose file…"]  # no saved model yet
    assert dialog.start_combo.currentText() == SCRATCH_LABEL
    assert dialog.init_from_path() is None
    assert dialog.start_combo.toolTip().startswith("The weights the run starts from")
    dialog.set_flag_limit(256)  # both classes kept: the form can start a run
    run = runs.RunRegistry(store.path).create("r")
    dialog.request().run_config(run).save(run.config_path)  # as Start writes it
    written = json.loads(run.config_path.read_text())
    assert "init_from" in written and written["init_from"] is None
    store.close()


def test_runs_and_registered_models_offered_per_architecture(qtbot, tmp_path: Path):
    store = project_with_copied_images(tmp_path)  # classes a, b
    project = Path(store.path)
    cnn = finished_run(project, "cnn-old", "cnn", ["a", "c"], 0.8125)
    vit = finished_run(project, "vit-old", "custom_vit", ["a", "b"], 0.5)
    finished_run(project, "cnn-going", "cnn", ["a", "b"], 0.9, finished=False)
    store.add_model("cnn-old", str(cnn.folder / "best.cvmodel"), "cnn", ["a", "c"])  # listed once
    imported = model_file(tmp_path / "elsewhere" / "imported.cvmodel", "cnn", ["a", "b"])
    store.add_model("imported", str(imported), "cnn", ["a", "b"],
                    {"final": {"metrics": {"val_acc": 0.7}}})
    store.add_model("gone", str(tmp_path / "gone.cvmodel"), "cnn", ["a", "b"])  # file missing
    dialog = open_dialog(qtbot, store)
    select_model(dialog, "cnn")
    dialog.set_flag_limit(256)  # both classes kept
    dialog.update_report()
    assert choices(dialog) == [SCRATCH_LABEL, "run cnn-old · best model (val acc 0.812)",
                               "model: imported (val acc 0.700)", "Choose file…"]
    assert "2 saved cnn models" in dialog.start_info.text()

    choose(dialog, cnn.folder / "best.cvmodel")
    info = dialog.start_info.text()
    assert "classes carried over: a;" in info and "new (fresh weights): b" in info
    assert "dropped: c." in info and info.startswith("Starting from this cnn model")
    cfg = dialog.request().run_config(runs.RunRegistry(project).create("r"))
    assert cfg.init_from == str((cnn.folder / "best.cvmodel").resolve())
    assert Path(cfg.init_from).is_absolute()

    # another architecture: the cnn entries go, the choice falls back to random weights
    select_model(dialog, "custom_vit")
    assert choices(dialog) == [SCRATCH_LABEL, "run vit-old · best model (val acc 0.500)",
                               "Choose file…"]
    assert dialog.init_from_path() is None
    assert "is not a custom_vit model" in dialog.start_info.text()
    choose(dialog, vit.folder / "best.cvmodel")
    select_model(dialog, "custom_vit")  # the same model again keeps the choice
    assert dialog.init_from_path() == (vit.folder / "best.cvmodel").resolve()
    select_model(dialog, "cnn")
    assert dialog.init_from_path() is None and len(choices(dialog)) == 4
    store.close()


def test_choose_file_checks_the_header(qtbot, tmp_path: Path, monkeypatch):
    store = project_with_copied_images(tmp_path)
    dialog = open_dialog(qtbot, store)
    select_model(dialog, "cnn")
    dialog.set_flag_limit(256)
    dialog.update_report()
    not_model = tmp_path / "notes.cvmodel"
    not_model.write_text("these are notes, not weights")
    assert not dialog.choose_start_file(not_model)
    assert str(not_model) in dialog.start_info.text()
    assert "not a CellViewer model file" in dialog.start_info.text()
    vit = model_file(tmp_path / "vit.cvmodel", "custom_vit", ["a", "b"])
    assert not dialog.choose_start_file(vit)
    assert "a custom_vit model; a cnn run can only start from a cnn model" in \
        dialog.start_info.text()
    assert dialog.init_from_path() is None and dialog.start_button.isEnabled()

    # the combo's "Choose file…" entry opens a file dialog; what it returns is taken
    picked = model_file(tmp_path / "picked.cvmodel", "cnn", ["b", "a"])
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(picked), "")))
    dialog.start_combo.setCurrentIndex(dialog.start_combo.findText("Choose file…"))
    qtbot.waitUntil(lambda: dialog.init_from_path() == picked, timeout=5000)
    assert dialog.start_combo.currentText() == "file: picked.cvmodel (2 classes)"
    assert "classes carried over: a, b." in dialog.start_info.text()
    assert "new (fresh weights)" not in dialog.start_info.text()

    picked.unlink()  # gone before Start: refused, naming it, no run made
    dialog.start()
    assert dialog.writer is None and not dialog.start_button.isEnabled()
    assert str(picked) in dialog.status.text() and "model file not found" in dialog.status.text()
    assert runs.RunRegistry(store.path).runs() == []
    store.close()


def test_a_run_started_from_a_saved_model(qtbot, tmp_path: Path):
    """Start for real: the run's config.json names the model file and the trainer (a separate
    process, one CPU epoch) reports which classes it carried over."""
    store = project_with_copied_images(tmp_path)
    project = Path(store.path)
    old = finished_run(project, "cnn-old", "cnn", ["a", "c"], 0.8)
    model_file(old.folder / "best.cvmodel", "cnn", ["a", "c"], real=True)
    dialog = open_dialog(qtbot, store)
    select_model(dialog, "cnn")
    choose(dialog, old.folder / "best.cvmodel")
    dialog.set_flag_limit(None)
    dialog.epochs_spin.setValue(1)
    dialog.batch_spin.setValue(16)
    dialog.set_device("cpu")
    dialog.name_edit.setText("fine-tuned")
    launched = []
    dialog.run_launched.connect(launched.append)
    dialog.start()
    qtbot.waitUntil(lambda: bool(launched), timeout=30_000)
    run = launched[0]
    assert run.config()["init_from"] == str((old.folder / "best.cvmodel").resolve())
    qtbot.waitUntil(lambda: run.status() in runs.TERMINAL, timeout=60_000)
    assert run.status() == runs.FINISHED, run.events()[-1]
    started = run.summary().started
    assert started["init_from"] == str((old.folder / "best.cvmodel").resolve())
    assert (started["init_classes_matched"], started["init_classes_new"]) == (["a"], ["b"])
    dialog.manager.shutdown()
    store.close()


def test_fine_tune_presets_the_model_and_the_start(qtbot, tmp_path: Path):
    """What a results window's "Fine-tune…" does: set before the dialog's lists have come,
    the model and "Start from" follow once they have."""
    from cellviewer.ui.train.dialog import TrainingDialog
    from cellviewer.ui.train.runs import TrainingManager

    store = project_with_copied_images(tmp_path)
    run = finished_run(store.path, "mlp-1", "mlp", ["a", "b"], 0.9)
    dialog = TrainingDialog(store, TrainingManager(store.path))
    qtbot.addWidget(dialog)
    dialog.start_from("mlp", run.folder / "best.cvmodel")  # the lists are still coming
    qtbot.waitUntil(dialog.ready, timeout=90_000)
    assert dialog.model_combo.currentData() == "mlp"  # not the default cnn
    assert dialog.init_from_path() == (run.folder / "best.cvmodel").resolve()
    assert "run mlp-1" in dialog.start_combo.currentText()
    dialog.start_from("no-such-model", run.folder / "best.cvmodel")  # ready now: at once
    assert "does not offer" in dialog.start_info.text()
    assert dialog.init_from_path() == (run.folder / "best.cvmodel").resolve()  # kept
