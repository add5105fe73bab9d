"""The training form and request without Qt: a real project's label counts drive the sampling
numbers and the validation messages; models and their study defaults come from the trainer's
catalogue; foundation models need their weights file; the start-from choice follows the model;
the request makes the run folder, its patch set and the trainer's configuration."""

from __future__ import annotations

import datetime as dt
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.store import ProjectStore
from cellviewer.core.training import runs
from cellviewer.core.training.devices import AUTO, DeviceStatus, device_options
from cellviewer.core.training.form import TrainingForm
from cellviewer.core.training.models import catalogue
from cellviewer.core.training.project_data import ProjectCounts, read_project
from cellviewer.core.training.request import FormError, PatchSetCancelled, TrainingRequest
from cellviewer.core.training.start_from import start_candidates
from trainer.formats.augment_plan import augmented_count
from trainer.formats.catalog import model_info
from trainer.formats.config import RunConfig
from trainer.formats.patchset import load_patchset
from trainer.formats.protocol import encode_event


def make_project(folder: Path) -> Path:
    """Images A (30 'a' + 20 'b' + 1 unlabelled) and B (10 'b'), real PNG files."""
    store = ProjectStore.create(folder / "p.cvproj")
    a, b = store.add_class("a"), store.add_class("b")
    rng = np.random.default_rng(0)
    for name, labels in (("A.png", [a] * 30 + [b] * 20 + [None]), ("B.png", [b] * 10)):
        pixels = rng.integers(0, 256, (120, 160, 3), np.uint8)
        Image.fromarray(pixels).save(folder / name)
        image_id = store.add_image(folder / name, 160, 120)
        store.add_cells(image_id, rng.uniform(25, 95, size=(len(labels), 2)), labels)
    store.close()
    return folder / "p.cvproj"


def filled_form(project: Path, **kwargs) -> TrainingForm:
    form = TrainingForm(project, **kwargs)
    form.set_counts(read_project(project, ProjectCounts.from_store))
    form.set_start_candidates(read_project(project, lambda s: start_candidates(s, project)))
    return form


def header_only_model(path: Path, arch: str, classes: list[str]) -> Path:
    """A file with a CellViewer model header and no weights: all the form reads."""
    meta = {"format": "cellviewer-model", "format_version": "1",
            "meta": json.dumps({"arch": arch, "classes": classes})}
    header = json.dumps({"__metadata__": meta}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def finished_run(project: Path, name: str, arch: str, classes: list[str]) -> runs.Run:
    run = runs.RunRegistry(project).create(name, project=str(project), classes=classes)
    runs.write_json_atomic(run.config_path, {"patchset": str(run.patchset_path),
                                             "out_dir": str(run.folder), "model": arch})
    best = header_only_model(run.folder / runs.BEST_MODEL, arch, classes)
    run.events_path.write_text("\n".join([
        encode_event("started", model=arch, classes=classes),
        encode_event("epoch", epoch=1, val_acc=0.75),
        encode_event("finished", model_path=str(best), best_epoch=1, classes=classes)]) + "\n")
    return run


def by_class(form: TrainingForm) -> dict[str, tuple[int, int, int, int, bool]]:
    return {r.name: (r.available, r.used, r.train, r.val, r.excluded)
            for r in form.sampling_rows()}


def test_a_new_form_has_the_study_defaults_and_waits_for_the_counts(tmp_path: Path):
    form = TrainingForm(make_project(tmp_path))
    assert form.models == catalogue() and form.model == "cnn"
    cnn = model_info("cnn").defaults
    assert (form.epochs, form.lr, form.weight_decay, form.batch_size) == (
        cnn.epochs, cnn.lr, cnn.weight_decay, cnn.batch_size) == (100, 1e-3, 0.0, 512)
    assert (form.flag_limit, form.val_fraction, form.device, form.seed) == (4096, 0.2, AUTO, 42)
    assert form.start_path is None and not form.ready()
    assert form.problem() == "Counting the project's labelled cells…"
    form.counts_failed("disk on fire")
    assert form.problem() == "Could not read the project's labels: disk on fire"


def test_the_sampling_numbers_follow_images_classes_limit_and_split(tmp_path: Path):
    form = filled_form(make_project(tmp_path))
    assert form.data.image_names == ["A.png", "B.png"] and form.selected_classes() == ["a", "b"]
    assert form.data.counts.tolist() == [[30, 20], [0, 10]]  # the unlabelled cell not counted
    assert form.flag_min() == 205
    assert by_class(form) == {"a": (30, 0, 0, 0, True), "b": (30, 0, 0, 0, True)}
    assert form.problem().startswith("At least two classes must keep cells")

    form.set_flag_limit(256)  # FlagMin 13: both kept, 80/20 split
    assert by_class(form) == {"a": (30, 30, 24, 6, False), "b": (30, 30, 24, 6, False)}
    totals = form.totals()
    assert (totals.classes, totals.kept, totals.available, totals.used) == (2, 2, 60, 60)
    assert (totals.train, totals.val, totals.flag_min) == (48, 12, 13)
    assert totals.train_augmented == augmented_count(48)
    assert form.problem() == ""

    form.choose_image(1, False)  # without image B
    form.set_flag_limit(512)  # FlagMin 26: b (20) is out
    assert by_class(form)["b"] == (20, 0, 0, 0, True)
    assert form.run_classes() == ["a"] and form.problem().startswith("At least two classes")
    form.set_flag_limit(None)  # every labelled cell
    assert by_class(form) == {"a": (30, 30, 24, 6, False), "b": (20, 20, 16, 4, False)}
    assert form.totals().flag_min is None
    form.val_fraction = 0.5
    assert by_class(form)["b"] == (20, 20, 10, 10, False)
    assert form.label_counts() == {"a": 30, "b": 20}

    form.choose_class(0, False)
    assert form.selected_classes() == ["b"] and list(by_class(form)) == ["b"]
    form.choose_all_classes(False)
    assert form.problem() == "Choose at least one class."
    form.choose_all_images(False)
    assert form.problem() == "Choose at least one image."
    with pytest.raises(ValueError, match="positive number of cells"):
        form.set_flag_limit(0)


def test_values_are_checked_with_messages_that_name_them(tmp_path: Path):
    form = filled_form(make_project(tmp_path))
    form.set_flag_limit(256)
    form.epochs, form.batch_size, form.lr = 0, 0, 0.0
    form.weight_decay, form.val_fraction, form.seed, form.device = -1.0, 1.0, -3, "gpu"
    problems = form.problems()
    assert problems == [
        "Epochs must be a whole number of at least 1, not 0.",
        "The batch size must be a whole number of at least 1, not 0.",
        "The learning rate must be above 0, not 0.0.",
        "The weight decay must be 0 or more, not -1.0.",
        "The validation share must be between 0 and 1, not 1.0.",
        "The seed must be a whole number of 0 or more, not -3.",
        "Unknown device 'gpu': use auto, cpu, cuda:N or mps."]
    with pytest.raises(FormError, match="Epochs must be"):
        TrainingRequest.from_form(form)
    form.apply_defaults()  # epochs, lr, weight decay, batch size back to the study's
    form.val_fraction, form.seed, form.device = 0.25, 7, "cuda:1"
    assert form.problem() == ""


def test_models_defaults_and_foundation_weights(tmp_path: Path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "ctranspath.safetensors").write_bytes(b"")
    form = filled_form(make_project(tmp_path))
    names = [o.name for o in form.offered_models()]
    assert "cnn" in names and "ctranspath" not in names
    assert form.hidden_models() == ["resnetrs50", "ctranspath", "uni"]

    form.select_model("custom_vit")
    vit = model_info("custom_vit").defaults
    assert (form.epochs, form.lr, form.weight_decay) == (vit.epochs, vit.lr, vit.weight_decay)
    assert form.run_mode() is None and form.run_name.startswith("custom_vit-L4096-")
    form.epochs = 3  # typed: kept until the defaults are asked for again
    form.select_model("custom_vit")
    assert form.epochs == 3

    form.set_weights_dir(weights)
    assert form.hidden_models() == ["resnetrs50", "uni"]
    form.select_model("ctranspath")
    assert form.run_mode() == "lp" and (form.lr, form.batch_size) == (5e-4, 256)
    form.set_mode("ft_last")
    assert (form.epochs, form.lr, form.weight_decay) == (50, 1e-4, 0.01)
    with pytest.raises(ValueError, match="has no mode"):
        form.set_mode("full")
    form.set_flag_limit(256)
    settings = TrainingRequest.from_form(form).settings
    assert (settings["model"], settings["mode"], settings["weights"]) == (
        "ctranspath", "ft_last", str(weights / "ctranspath.safetensors"))

    form.set_weights_dir(None)  # its weights gone: back to the default model
    assert form.model == "cnn" and form.run_mode() is None and form.epochs == 100


def test_the_run_name_is_suggested_until_the_user_names_it(tmp_path: Path):
    form = filled_form(make_project(tmp_path))
    form.suggest_name(dt.datetime(2026, 3, 4, 5, 6))
    assert form.run_name == "cnn-L4096-20260304-0506"
    form.set_flag_limit(None)
    assert form.run_name.startswith("cnn-Lall-")
    form.set_name("my run")
    form.select_model("mlp")
    assert form.run_name == "my run"


def test_devices_and_what_auto_means():
    assert [o.value for o in device_options(None)] == [AUTO, "cpu"]
    assert device_options(None)[0].label == "auto (CUDA, then Apple MPS, then CPU)"
    status = DeviceStatus.from_json({"cuda_devices": ["H200", "A100"], "mps": False,
                                     "short": None, "advice": None})
    assert [o.value for o in device_options(status, "mps")] == [AUTO, "cpu", "cuda:0",
                                                                "cuda:1", "all-gpus", "mps"]
    assert device_options(status)[2].label == "cuda:0 · H200"
    assert status.note() == "2 CUDA GPU(s)"
    none = DeviceStatus.from_json({"cuda_devices": [], "mps": False,
                                   "short": "this PyTorch is built for the CPU only",
                                   "advice": "install a CUDA build"})
    assert none.note() == "no GPU found: this PyTorch is built for the CPU only"


def test_start_from_follows_the_model_and_checks_the_header(tmp_path: Path):
    project = make_project(tmp_path)
    cnn = finished_run(project, "cnn-old", "cnn", ["a", "c"])
    finished_run(project, "vit-old", "custom_vit", ["a", "b"])
    form = filled_form(project)
    form.set_flag_limit(256)
    assert [c.label for c in form.start_options()] == ["run cnn-old · best model (val acc 0.750)"]
    assert form.start_info()[0].text.startswith("1 saved cnn model of this project")

    form.select_start(cnn.folder / runs.BEST_MODEL)
    assert form.start_path == (cnn.folder / runs.BEST_MODEL).resolve()
    assert form.start_info()[-1].text == ("Starting from this cnn model (2 classes); classes "
                                          "carried over: a; new (fresh weights): b; dropped: c.")
    form.select_model("custom_vit")  # not a cnn: back to random weights, saying why
    assert form.start_path is None
    assert form.start_info()[0].text == ("“run cnn-old · best model (val acc 0.750)” is not a "
                                         "custom_vit model: the run starts from random weights.")

    notes = header_only_model(tmp_path / "notes.cvmodel", "cnn", ["a"])
    notes.write_text("these are notes, not weights")
    assert not form.choose_start_file(notes)
    assert form.start_note.error and "not a CellViewer model file" in form.start_note.text
    mlp = header_only_model(tmp_path / "elsewhere" / "m.cvmodel", "mlp", ["b", "a"])
    assert not form.choose_start_file(mlp)
    assert "a mlp model; a custom_vit run can only start from a custom_vit model" in \
        form.start_note.text
    form.select_model("mlp")
    assert form.choose_start_file(mlp)
    assert [c.label for c in form.start_options()] == ["file: m.cvmodel (2 classes)"]
    assert form.problem() == ""
    mlp.unlink()  # gone before Start
    form.refresh_start_header()
    assert form.problem() == f"Cannot start from this model: {mlp.resolve()}: model file not found"


def test_a_preset_waits_for_the_project_files(tmp_path: Path):
    project = make_project(tmp_path)
    run = finished_run(project, "mlp-1", "mlp", ["a", "b"])
    form = TrainingForm(project)
    form.preset_start("mlp", run.folder / runs.BEST_MODEL)
    assert form.model == "cnn"  # the project's model files are not listed yet
    form.set_start_candidates(read_project(project, lambda s: start_candidates(s, project)))
    assert form.model == "mlp" and form.start_path == (run.folder / runs.BEST_MODEL).resolve()
    form.preset_start("no-such-model", run.folder / runs.BEST_MODEL)
    assert "which this trainer does not offer" in form.start_note.text
    assert form.start_path == (run.folder / runs.BEST_MODEL).resolve()


def test_the_request_makes_the_run_its_patch_set_and_its_config(tmp_path: Path):
    project = make_project(tmp_path)
    form = filled_form(project)
    form.set_flag_limit(256)
    form.choose_image(1, False)
    form.epochs, form.batch_size, form.device = 2, 16, "cpu"
    form.set_name("  first try ")
    request = TrainingRequest.from_form(form)
    run = request.create_run()
    assert run.folder == runs.runs_root(project) / "first_try"
    meta = json.loads(run.run_file.read_text())
    assert (meta["images"], meta["image_names"], meta["classes"]) == (
        form.selected_images(), ["A.png"], ["a", "b"])
    assert meta["label_counts"] == {"a": 30, "b": 20}

    job = request.patchset_job(run)
    assert job.run() == run.patchset_path
    assert job.done == job.total == 1  # images
    patches = load_patchset(run.patchset_path)
    assert len(patches) == 50 and np.bincount(patches.labels).tolist() == [30, 20]

    cfg = request.run_config(run)
    assert isinstance(cfg, RunConfig) and cfg.patchset == str(run.patchset_path)
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.flag_limit, cfg.device) == (
        "cnn", 2, 16, 256, "cpu")
    assert (cfg.lr, cfg.val_fraction, cfg.name, cfg.mode, cfg.init_from) == (
        1e-3, 0.2, "first_try", None, None)

    cancelled = request.patchset_job(request.create_run())
    cancelled.cancel()
    with pytest.raises(PatchSetCancelled):
        cancelled.run()


def test_the_core_needs_neither_qt_nor_torch(tmp_path: Path):
    """What a script imports to fill the form and launch a run."""
    import subprocess

    code = ("import sys, cellviewer.core.training.form, cellviewer.core.training.request, "
            "cellviewer.core.training.devices, cellviewer.core.formatting; "
            "print(sorted(m for m in ('torch', 'PySide6') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "[]"
