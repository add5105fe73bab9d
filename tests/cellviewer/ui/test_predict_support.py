"""Shared fixtures of the prediction UI tests (model panel, blur preview, review, export).

Not tests itself: ``test_predict_*``, ``test_blur_*``, ``test_review_*`` and ``test_export_*``
import their fixtures from here. A small real model is trained ONCE per test session with the
trainer's command line (``python -m trainer train``, an MLP, two epochs on the CPU) on a patch
set written from a project of a few demo images; every test then gets its own copy of that
project, so tests never see each other's labels or predictions.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

N_IMAGES = 8  # demo images in the test project (about 800 labelled cells)
EPOCHS = 2


@dataclass(frozen=True)
class TrainedModel:
    path: Path  # the .cvmodel file
    project: Path  # the project it was trained on (a template: tests copy it)
    run_dir: Path
    finished: dict  # the trainer's "finished" event


def _write_points_subset(out: Path) -> Path:
    from cellviewer.paths import demo_dir

    with open(demo_dir() / "points.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = sorted({r["image"] for r in rows})[:N_IMAGES]
    keep = [r for r in rows if r["image"] in images]
    path = out / "points.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "x", "y", "class"])
        w.writeheader()
        w.writerows(keep)
    return path


def _train(base: Path) -> TrainedModel:
    from cellviewer.core.io.project_import import create_project_from_points
    from cellviewer.core.project.demo import load_class_set
    from cellviewer.core.training.patchset import write_project_patchset
    from cellviewer.paths import demo_dir

    base.mkdir(parents=True, exist_ok=True)
    project = base / "template.cvproj"
    store, _ = create_project_from_points(_write_points_subset(base), demo_dir(), project,
                                          classes=load_class_set()["classes"], overwrite=True)
    with store:
        write_project_patchset(store, base / "train.patches")
    run_dir = base / "run"
    cmd = [sys.executable, "-m", "trainer", "train", "--patchset", str(base / "train.patches"),
           "--out", str(run_dir), "--model", "mlp", "--epochs", str(EPOCHS), "--device", "cpu",
           "--no-augment", "--threads", "1", "--batch-size", "64", "--seed", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    from trainer.formats.protocol import parse_line

    events = [e for e in (parse_line(line) for line in out.stdout.splitlines()) if e]
    finished = next(e for e in events if e.get("event") == "finished")
    model = Path(finished["model_path"])
    assert model.is_file()
    (base / "finished.json").write_text(json.dumps(finished))
    return TrainedModel(model, project, run_dir, finished)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """Trained once per session: test modules importing this fixture each get their own
    fixture definition, so the model on disk is reused rather than trained again."""
    base = tmp_path_factory.getbasetemp() / "predict-ui-model"
    done = base / "finished.json"
    if done.is_file():
        finished = json.loads(done.read_text())
        return TrainedModel(Path(finished["model_path"]), base / "template.cvproj",
                            base / "run", finished)
    return _train(base)


@pytest.fixture
def project_copy(tmp_path: Path, trained_model: TrainedModel) -> Path:
    """A fresh copy of the project the model was trained on (images stay where they are)."""
    path = tmp_path / "project.cvproj"
    shutil.copy(trained_model.project, path)
    return path


@pytest.fixture
def store(project_copy: Path):
    from cellviewer.core.store import ProjectStore

    s = ProjectStore.open(project_copy)
    yield s
    s.close()


def wait_for(qtbot, condition, timeout: int = 60000) -> None:
    qtbot.waitUntil(condition, timeout=timeout)
