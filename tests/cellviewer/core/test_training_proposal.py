"""Training settings that fit the machine: a CPU proposal where no GPU is found, the run's
duration from a timing, and the project's last settings remembered."""

from __future__ import annotations

import pytest
from test_training_form import filled_form, make_project

from cellviewer.core.training import proposal
from cellviewer.core.training.devices import DeviceStatus
from cellviewer.core.training.proposal import Timing, estimate_seconds, load_last, save_last

NO_GPU = DeviceStatus(short="no CUDA build of PyTorch")
GPU = DeviceStatus(cuda=("NVIDIA H200",))


def test_no_gpu_proposes_a_small_model_and_few_epochs(tmp_path):
    form = filled_form(make_project(tmp_path))
    assert (form.epochs, form.batch_size) == (100, 512)  # the study's GPU values
    form.set_devices(NO_GPU)
    assert form.model == proposal.CPU_MODEL
    assert form.epochs == proposal.CPU_EPOCHS and form.batch_size == proposal.CPU_BATCH
    assert "No GPU found" in form.proposal_note.text
    form.apply_defaults()  # "Study defaults"
    assert (form.epochs, form.batch_size) == (100, 512)


def test_a_gpu_or_typed_values_keep_the_settings(tmp_path):
    form = filled_form(make_project(tmp_path))
    form.set_devices(GPU)
    assert (form.epochs, form.batch_size) == (100, 512)
    (tmp_path / "x").mkdir()
    typed = filled_form(make_project(tmp_path / "x"))
    typed.epochs, typed.numbers_typed = 40, True
    typed.set_devices(NO_GPU)
    assert typed.epochs == 40


def test_estimate_from_a_timing(tmp_path):
    timing = Timing(train_samples_per_s=1000.0, infer_samples_per_s=4000.0, setup_s=5.0)
    assert estimate_seconds(10, 20_000, 4_000, timing) == pytest.approx(5 + 10 * (20 + 1))
    form = filled_form(make_project(tmp_path))
    form.set_devices(NO_GPU)
    key = form.timing_key()
    assert key == (proposal.CPU_MODEL, "auto", proposal.CPU_BATCH, 2)
    assert "Timing the model" in form.duration_line().text
    form.set_timing(key, Timing(500.0, 2000.0, 1.0, "cpu"))
    t = form.totals()
    assert form.estimate() == pytest.approx(
        1 + form.epochs * (t.train_augmented / 500 + t.val / 2000))
    assert form.duration_line().text.startswith("About ") and "on cpu" in form.duration_line().text
    form.batch_size = 64  # another batch size: timed again
    assert form.estimate() is None
    form.timing_failed(form.timing_key(), "the trainer exited with code 1")
    assert form.duration_line().error


def test_timing_is_read_from_the_trainers_benchmark():
    data = {"inference": {"large_batch_samples_per_s": 9000.0},
            "train": {"samples_per_s": 1200.0, "setup_s": 2.5, "device": "cpu"}}
    assert Timing.from_benchmark(data) == Timing(1200.0, 9000.0, 2.5, "cpu")
    with pytest.raises(ValueError, match="training rate"):
        Timing.from_benchmark({"inference": {}})
    args = proposal.benchmark_args("cnn", "cpu", 256, 5)
    assert args[:2] == ["benchmark", "cnn"] and "--train" in args and "--json" in args


def test_the_last_settings_are_remembered_per_project(tmp_path):
    project = make_project(tmp_path)
    form = filled_form(project)
    form.select_model("resnet_d4")
    form.epochs, form.batch_size, form.lr, form.seed = 7, 64, 0.0005, 3
    form.set_flag_limit(256)
    path = save_last(project, form.remembered())
    assert path.parent == project.parent / "p.runs"
    again = filled_form(project)
    assert again.apply_saved(load_last(project))
    assert (again.model, again.epochs, again.batch_size, again.lr, again.seed,
            again.flag_limit) == ("resnet_d4", 7, 64, 0.0005, 3, 256)
    again.set_devices(NO_GPU)  # the last run's settings are not replaced by the proposal
    assert again.epochs == 7 and again.model == "resnet_d4"
    path.write_text("{not json", encoding="utf-8")
    assert load_last(project) == {}
    assert not filled_form(project).apply_saved({})
