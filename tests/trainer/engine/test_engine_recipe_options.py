"""The training options of issue 18 in real runs: a tiny run with every option on finishes and
records them (config.json, the model file, the started event), the schedule's learning rates at
chosen steps, a resumed run with the options equals an uninterrupted one, bad values are
refused with messages naming the field, and the CLI flags reach the configuration."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from engine_testdata import TINY_CNN_ARGS, make_patchset, tiny_config

from trainer.engine.loop import check_config, run_training
from trainer.engine.modelfile import load_model_file, read_model_meta
from trainer.engine.step import LrSchedule
from trainer.formats.config import ConfigError, RunConfig
from trainer.formats.protocol import read_events

ALL_ON = {"label_smoothing": 0.1, "class_balance": "effective", "class_balance_beta": 0.99,
          "mixup": 0.4, "cutmix": 1.0, "color_jitter": 0.1, "schedule": "cosine",
          "warmup_epochs": 1}


@pytest.fixture(scope="module")
def patchset(tmp_path_factory):
    return make_patchset(tmp_path_factory.mktemp("recipe") / "train.patches", n_per_class=20)


def test_a_run_with_every_option_finishes_and_records_them(patchset, tmp_path):
    out = tmp_path / "run"
    result = run_training(tiny_config(patchset, out, epochs=3, **ALL_ON), log=lambda m: None)
    assert result.status == "finished", result.error
    saved = RunConfig.load(out / "config.json")
    for key, value in ALL_ON.items():
        assert getattr(saved, key) == value
    meta = read_model_meta(out / "last.cvmodel")
    assert {k: meta["config"][k] for k in ALL_ON} == ALL_ON
    # 16 cells per class in the training split: equal counts give equal weights of 1
    assert meta["class_weights"] == pytest.approx([1.0, 1.0, 1.0])
    started = next(e for e in read_events(out / "events.jsonl") if e["event"] == "started")
    assert started["schedule"] == "cosine" and started["config"]["mixup"] == 0.4
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4
    assert all(math.isfinite(float(r.split(",")[1])) for r in rows[1:])


def test_the_cosine_schedule_after_warm_up_at_chosen_steps(patchset, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(patchset, out, epochs=4, lr=0.01, schedule="cosine", warmup_epochs=1)
    assert run_training(cfg, log=lambda m: None).status == "finished"
    started = next(e for e in read_events(out / "events.jsonl") if e["event"] == "started")
    s = started["steps_per_epoch"]  # 48 training cells x 9.6 / 32 a batch
    assert s == 14 and started["warmup_steps"] == s
    lrs = [float(r.split(",")[-4]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[-4] == "lr"
    # the rate of each epoch's last step: warm-up ends at 0.01, then the cosine to 0
    expected = [0.01] + [0.01 * 0.5 * (1 + math.cos(math.pi * (e * s - 1 - s) / (3 * s)))
                         for e in (2, 3, 4)]
    assert lrs == pytest.approx(expected, rel=1e-5)  # metrics.csv: 6 digits
    sched = LrSchedule(0.01, "cosine", warmup_steps=14, total_steps=56)
    assert sched.at(0) == pytest.approx(0.01 / 14)
    assert sched.at(14 + 21) == pytest.approx(0.005)  # half-way through the cosine
    assert sched.at(55) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 41 / 42)))


def test_the_constant_schedule_overrides_the_models(patchset, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(patchset, out, epochs=2, lr=0.002, schedule="constant")
    assert run_training(cfg, log=lambda m: None).status == "finished"
    lrs = [float(r.split(",")[-4]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert lrs == [0.002, 0.002]


def test_a_resumed_run_with_the_options_equals_an_uninterrupted_one(patchset, tmp_path):
    # a constant rate (a cosine's length is the run's epochs) and no dropout (its masks come
    # from torch's generator, which a resume does not restore): the rest must match exactly
    opts = {**ALL_ON, "schedule": "constant", "warmup_epochs": 0,
            "model_args": {**TINY_CNN_ARGS, "input_dropout": 0.0, "hidden_dropout": 0.0}}
    whole = tmp_path / "whole"
    assert run_training(tiny_config(patchset, whole, epochs=3, **opts),
                        log=lambda m: None).status == "finished"
    part = tmp_path / "part"
    assert run_training(tiny_config(patchset, part, epochs=2, **opts),
                        log=lambda m: None).status == "finished"
    resumed = run_training(tiny_config(patchset, part, epochs=3, **opts),
                           resume_from=part / "last.cvmodel", log=lambda m: None)
    assert resumed.status == "finished"
    a = load_model_file(whole / "last.cvmodel").state_dict
    b = load_model_file(part / "last.cvmodel").state_dict
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


@pytest.mark.parametrize(("change", "message"), [
    ({"label_smoothing": 1.0}, "label_smoothing must be a number in [0, 1)"),
    ({"label_smoothing": -0.1}, "label_smoothing must be"),
    ({"class_balance": "square"}, 'class_balance must be "none" or "inverse" or "effective"'),
    ({"class_balance_beta": 1.0}, "class_balance_beta must be a number between 0 and 1"),
    ({"mixup": -1}, "mixup must be a Beta alpha in [0, 10]"),
    ({"cutmix": "yes"}, "cutmix must be a Beta alpha"),
    ({"color_jitter": 0.9}, "color_jitter must be a strength in [0, 0.5]"),
    ({"schedule": "plateau"}, 'schedule must be "constant" or "cosine" or null'),
    ({"warmup_epochs": -2}, "warmup_epochs must be an integer >= 0"),
    ({"warmup_epochs": 3, "epochs": 3}, "warmup_epochs (3) must be fewer than epochs (3)"),
])
def test_bad_values_are_refused(change, message, tmp_path):
    data = {"patchset": "a.patches", "out_dir": str(tmp_path), **change}
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(data, "run.json")
    assert message in str(err.value) and str(err.value).startswith("run.json: ")


def test_linear_probing_refuses_image_augmentation(tmp_path):
    cfg = RunConfig(patchset="a", out_dir=str(tmp_path), model="resnetrs50", mixup=0.2,
                    color_jitter=0.05)
    with pytest.raises(ConfigError, match="mixup, color_jitter: linear probing"):
        check_config(cfg)
    check_config(cfg.replace(mode="ft_last"))  # fine-tuning sees images: allowed


def test_cli_flags_reach_the_configuration_and_bad_ones_exit_2(patchset, tmp_path):
    from trainer.cli import build_parser
    from trainer.engine.commands import _train_config

    args = build_parser().parse_args([
        "train", "--patchset", str(patchset), "--out", str(tmp_path / "r"),
        "--label-smoothing", "0.1", "--class-balanced-loss", "inverse", "--mixup", "0.2",
        "--cutmix", "1", "--color-jitter", "0.05", "--schedule", "constant",
        "--warmup-epochs", "2", "--class-balance-beta", "0.9"])
    cfg, _ = _train_config(args)
    assert (cfg.label_smoothing, cfg.class_balance, cfg.mixup, cfg.cutmix, cfg.color_jitter,
            cfg.schedule, cfg.warmup_epochs, cfg.class_balance_beta) == (
        0.1, "inverse", 0.2, 1.0, 0.05, "constant", 2, 0.9)
    proc = subprocess.run([sys.executable, "-m", "trainer", "train", "--patchset",
                           str(patchset), "--out", str(tmp_path / "bad"), "--mixup", "-3",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "mixup must be a Beta alpha in [0, 10] (0: off), got -3.0" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "bad").exists()  # refused before any work


def test_class_weights_follow_the_training_counts(tmp_path):
    from trainer.formats.patchset import PatchSet, load_patchset

    full = load_patchset(make_patchset(tmp_path / "full.patches", n_per_class=20), mmap=False)
    keep = np.concatenate([np.arange(0, 20), np.arange(20, 30), np.arange(40, 45)])
    PatchSet(patches=full.patches[keep], labels=full.labels[keep], classes=full.classes,
             cell_ids=[full.cell_ids[i] for i in keep], sources=[full.sources[i] for i in keep],
             xy=full.xy[keep], padded=full.padded[keep]).save(tmp_path / "skewed.patches")
    out = tmp_path / "run"
    cfg = tiny_config(tmp_path / "skewed.patches", out, epochs=1, class_balance="inverse")
    assert run_training(cfg, log=lambda m: None).status == "finished"
    # the stratified 80% training split holds 16, 8 and 4 cells: N / (K n_c)
    meta = read_model_meta(out / "last.cvmodel")
    assert meta["class_weights"] == pytest.approx([28 / 48, 28 / 24, 28 / 12], rel=1e-6)
