"""Training on all GPUs, as the core plans it: the option appears with two or more CUDA
GPUs, the request asks for one trainer process per GPU on ``cuda``, the run remembers it, and
the command line is torchrun's (``python -m torch.distributed.run``) around the trainer's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cellviewer.core.training import runs
from cellviewer.core.training.devices import (
    ALL_GPUS,
    DeviceStatus,
    device_options,
    launch_plan,
)
from cellviewer.core.training.request import TrainingRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_training_form import filled_form, make_project

TWO = DeviceStatus(cuda=("NVIDIA H200", "NVIDIA H200"))


def test_all_gpus_is_offered_only_with_two_or_more():
    assert ALL_GPUS not in [o.value for o in device_options(DeviceStatus(cuda=("A100",)))]
    assert ALL_GPUS not in [o.value for o in device_options(None)]
    option = [o for o in device_options(TWO) if o.value == ALL_GPUS]
    assert len(option) == 1 and option[0].label.startswith("all 2 GPUs")
    four = DeviceStatus(cuda=("A",) * 4)
    assert launch_plan(ALL_GPUS, four) == ("cuda", 4)
    assert launch_plan("cuda:1", four) == ("cuda:1", 1)


def test_the_request_runs_one_process_per_gpu_through_torchrun(tmp_path: Path):
    form = filled_form(make_project(tmp_path))
    form.set_flag_limit(256)
    form.set_devices(TWO)
    form.set_device(ALL_GPUS)
    assert form.problem() == ""
    request = TrainingRequest.from_form(form)
    assert request.processes == 2 and request.settings["device"] == "cuda"
    run = request.create_run()
    assert run.processes == 2 and run.reload().processes == 2
    cfg = request.run_config(run)
    assert cfg.device == "cuda"  # the trainer's own device string
    cfg.save(run.config_path)

    program, args = runs.trainer_command(run.config_path, ["--resume"], run.processes)
    assert program == sys.executable
    assert args == ["-u", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                    "2", "-m", "trainer", "train", "--config", str(run.config_path),
                    "--resume"]
    assert runs.trainer_command(run.config_path)[1][:3] == ["-u", "-m", "trainer"]
    # a repeat trains the same way
    assert runs.RunRegistry(form.project_path).repeat(run).processes == 2


def test_all_gpus_without_them_is_refused_with_a_reason(tmp_path: Path, monkeypatch):
    form = filled_form(make_project(tmp_path))
    form.set_flag_limit(256)
    form.set_devices(DeviceStatus(cuda=("A100",)))
    form.set_device(ALL_GPUS)  # remembered from a run on another machine
    assert "needs two or more CUDA GPUs; 1 found" in form.problem()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(runs.RunError, match="Python installation"):
        runs.trainer_invocation(["train"], 2)
    assert ALL_GPUS not in [o.value for o in device_options(TWO)]
