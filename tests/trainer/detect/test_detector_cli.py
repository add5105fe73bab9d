"""The model-kind refusals (a detector loaded as a classifier and the reverse, in both loaders)
and the command lines: python -m trainer detect / train-detector, cellviewer detect --method
MODEL.cvmodel."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from detector_testdata import DIAMETER, read_points

from trainer.cli import main as trainer_main
from trainer.detect.match import match

REPO = Path(__file__).resolve().parents[3]
CLASSIFIER = REPO / "resources" / "demo" / "models" / "demo-cnn.cvmodel"


def test_a_classifier_is_refused_as_a_detector_by_name():
    from trainer.detect.infer import load_detector
    from trainer.formats.errors import BadModelError

    with pytest.raises(BadModelError) as exc:
        load_detector(CLASSIFIER, device="cpu")
    text = str(exc.value)
    assert str(CLASSIFIER) in text and "not a cell detector" in text
    assert "is a cell classifier" in text


def test_a_detector_is_refused_as_a_classifier_by_name(trained):
    from trainer.engine.modelfile import load_model_file
    from trainer.formats.errors import BadModelError
    from trainer.predict import Predictor

    for load in (load_model_file, lambda p: Predictor.load(p, device="cpu")):
        with pytest.raises(BadModelError) as exc:
            load(trained.model)
        assert f"{trained.model}: not a cell classifier" in str(exc.value)
        assert "is a cell detector" in str(exc.value)


def test_trainer_predict_refuses_a_detector_with_exit_1(trained, tmp_path, capsys):
    code = trainer_main(["predict", "--model", str(trained.model), "--points",
                         str(trained.data / "points.csv"), "--images", str(trained.data),
                         "--out", str(tmp_path / "p.csv")])
    assert code == 1
    assert "not a cell classifier" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_trainer_detect_writes_image_x_y_score(trained, tmp_path, capsys):
    out = tmp_path / "d.csv"
    images = sorted(trained.data.glob("img*.png"))
    assert trainer_main(["detect", str(trained.model), *map(str, images), "--out", str(out),
                         "--device", "cpu"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["image", "x", "y", "score"]
    truth = read_points(trained.data / "points.csv")
    got = np.array([(float(r["x"]), float(r["y"])) for r in rows
                    if Path(r["image"]).name == "img0.png"])
    assert match(got, truth["img0.png"], DIAMETER / 4)[0] >= 0.9 * len(truth["img0.png"])
    assert all(0 < float(r["score"]) <= 1 for r in rows)


def test_trainer_detect_exit_codes(trained, tmp_path, capsys):
    img = str(trained.data / "img0.png")
    out = tmp_path / "d.csv"
    assert trainer_main(["detect", str(trained.model), img, "--out", str(out),
                         "--threshold", "1.5"]) == 2
    assert "--threshold 1.5: must be between 0 and 1" in capsys.readouterr().err
    assert trainer_main(["detect", str(tmp_path / "none.cvmodel"), img, "--out", str(out)]) == 1
    assert "none.cvmodel: model file not found" in capsys.readouterr().err
    assert trainer_main(["detect", str(CLASSIFIER), img, "--out", str(out)]) == 1
    assert "not a cell detector" in capsys.readouterr().err
    assert trainer_main(["detect", str(trained.model), str(tmp_path / "gone.png"), "--out",
                         str(out)]) == 1
    assert "every input failed" in capsys.readouterr().err and not out.exists()
    assert trainer_main(["detect", str(trained.model), img, str(tmp_path / "gone.png"),
                         "--out", str(out), "--device", "cpu"]) == 3
    err = capsys.readouterr().err
    assert "gone.png: image not found" in err and out.exists()
    assert trainer_main(["detect", str(trained.model), img, "--out", str(out)]) == 1
    assert "exists already; give --overwrite" in capsys.readouterr().err


def test_train_detector_refusals_are_protocol_errors(tmp_path):
    """A real subprocess: a configuration without data is an ``error`` event of kind
    bad-config on stdout and exit code 2; an unparsable command line is bad-arguments."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "trainer", "train-detector", "--out",
                          str(tmp_path / "r"), "--json"], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120)
    assert run.returncode == 2
    ev = json.loads(run.stdout.strip().splitlines()[-1])
    assert ev["event"] == "error" and ev["kind"] == "bad-config"
    assert "training data needed" in ev["message"]
    assert not (tmp_path / "r").exists()
    bad = subprocess.run([sys.executable, "-m", "trainer", "train-detector", "--epochs", "x"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and json.loads(bad.stdout)["kind"] == "bad-arguments"


def test_cellviewer_detect_with_a_trained_model(trained, tmp_path, capsys):
    from cellviewer.cli.main import main

    out = tmp_path / "cv.csv"
    assert main(["detect", str(trained.data / "img1.png"), "--out", str(out), "--method",
                 str(trained.model), "--device", "cpu"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    truth = read_points(trained.data / "points.csv")["img1.png"]
    got = np.array([(float(r["x"]), float(r["y"])) for r in rows])
    assert match(got, truth, DIAMETER / 4)[0] >= 0.9 * len(truth)
    assert "trained detector best.cvmodel" in capsys.readouterr().err
    # --tta: the 8 orientations averaged, said in the summary; the cells found as well
    tta = tmp_path / "tta.csv"
    assert main(["detect", str(trained.data / "img1.png"), "--out", str(tta), "--method",
                 str(trained.model), "--device", "cpu", "--tta"]) == 0
    assert "8 orientations averaged" in capsys.readouterr().err
    with open(tta, newline="") as fh:
        got_tta = np.array([(float(r["x"]), float(r["y"])) for r in csv.DictReader(fh)])
    assert match(got_tta, truth, DIAMETER / 4)[0] >= 0.9 * len(truth)
    assert main(["detect", str(trained.data / "img1.png"), "--out", str(tmp_path / "c.csv"),
                 "--tta"]) == 2
    assert "--tta: only for a trained detector" in capsys.readouterr().err
    assert main(["detect", str(trained.data / "img1.png"), "--out", str(tmp_path / "x.csv"),
                 "--method", str(CLASSIFIER)]) == 1
    assert "not a cell detector" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
