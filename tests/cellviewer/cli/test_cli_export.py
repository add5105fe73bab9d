"""``cellviewer export``, ``cellviewer info`` and ``--version`` run as a user runs them: the real
command in a child process, on a real project with two images of the same file name, a real
model file and predictions. Refusals name the file and the cause, with exit 1 and nothing
written; usage errors exit 2."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer import __version__
from cellviewer.core.store import SCHEMA_VERSION, ProjectStore

ROOT = Path(__file__).resolve().parents[3]


def cellviewer(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "cellviewer", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env,
                          cwd=cwd or ROOT)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli-export")
    rng = np.random.default_rng(3)
    with ProjectStore.create(folder / "study.cvproj") as store:
        store.user = "tester"
        ids = {}
        for name in ("sub1/a.png", "sub2/a.png", "b.png"):
            path = folder / "images" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(path)
            ids[name] = store.add_image(path, 50, 40, mpp=0.25)
        tumour, stroma = store.add_class("Tumour"), store.add_class("Stroma")
        cells = store.add_cells(ids["sub1/a.png"], [[5, 5], [10, 10]], [tumour, None])
        cells += store.add_cells(ids["sub2/a.png"], [[20, 20]], [stroma])
        store.add_cells(ids["b.png"], [[1, 1]], [tumour])
        model_file = folder / "cnn.cvmodel"
        model_file.write_bytes(b"model bytes " * 100)
        model = store.add_model("cnn-small", model_file, "cnn", ["Tumour", "Stroma"])
        store.put_predictions(model, cells, np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]],
                                                     np.float32))
    return folder / "study.cvproj"


def test_export_a_folder_of_csv_and_geojson_then_refuse_to_overwrite(project, tmp_path):
    out = tmp_path / "out"
    done = cellviewer("export", project, "--out", out, "--format", "csv", "--format", "geojson")
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.splitlines()]
    assert [p.name for p in written] == ["study_cells.csv", "a.geojson", "a_2.geojson",
                                         "b.geojson"]
    assert all(p.is_file() for p in written)
    geo = [json.loads(p.read_text()) for p in written[1:]]
    assert [g["cellviewer"]["image"] for g in geo] == ["sub1/a.png", "sub2/a.png", "b.png"]
    assert [len(g["features"]) for g in geo] == [2, 1, 1]
    with open(written[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    sha = hashlib.sha256((project.parent / "cnn.cvmodel").read_bytes()).hexdigest()
    assert {(r["model"], r["model_sha256"]) for r in rows if r["predicted_class"]} == \
        {("cnn-small", sha)}
    before = {p: p.read_bytes() for p in written}
    again = cellviewer("export", project, "--out", out, "--format", "csv", "--format",
                       "geojson")
    assert again.returncode == 1
    assert str(written[0]) in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr and again.stdout == ""
    assert {p: p.read_bytes() for p in written} == before
    forced = cellviewer("export", project, out, "--format", "csv", "--overwrite")
    assert forced.returncode == 0 and forced.stdout.strip() == str(written[0])


def test_one_geojson_file_of_one_image_with_every_qupath_choice(project, tmp_path):
    target = tmp_path / "one.geojson"
    refused = cellviewer("export", project, "--out", target, "--format", "geojson")
    assert refused.returncode == 1 and "one.geojson" in refused.stderr
    assert "covers 3" in refused.stderr and "--images" in refused.stderr
    assert not target.exists()
    ambiguous = cellviewer("export", project, "--out", target, "--format", "geojson",
                           "--images", "a.png")
    assert ambiguous.returncode == 1 and "matches 2 images" in ambiguous.stderr
    done = cellviewer("export", project, "--out", target, "--format", "geojson",
                      "--images", "sub1/a.png", "--classification", "prediction",
                      "--objects", "annotations", "--qupath-0.4")
    assert done.returncode == 0, done.stderr
    data = json.loads(target.read_text())
    assert set(data) == {"type", "features"}
    props = [f["properties"] for f in data["features"]]
    assert [p["classification"]["name"] for p in props] == ["Tumour", "Stroma"]
    assert {p["objectType"] for p in props} == {"annotation"}
    assert all("metadata" not in p for p in props)


def test_bad_input_is_named_and_usage_errors_exit_2(project, tmp_path):
    junk = tmp_path / "notes.cvproj"
    junk.write_text("not a project\n" * 40)
    bad = cellviewer("export", junk, "--out", tmp_path / "o", "--format", "csv")
    assert bad.returncode == 1 and "notes.cvproj" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "o").exists()
    unknown = cellviewer("export", project, "--out", tmp_path / "o", "--format", "csv",
                         "--images", "c.png")
    assert unknown.returncode == 1 and "no image 'c.png'" in unknown.stderr
    model = cellviewer("export", project, "--out", tmp_path / "o", "--format", "csv",
                       "--model", "resnet")
    assert model.returncode == 1 and "cnn-small" in model.stderr
    into_project = cellviewer("export", project, "--out", project, "--format", "csv",
                              "--overwrite")
    assert into_project.returncode == 1 and "the project file" in into_project.stderr
    assert cellviewer("export", project, "--out", tmp_path / "o").returncode == 2  # no format
    assert cellviewer("export", project, "--format", "csv").returncode == 2  # no target
    assert cellviewer("export", project, "--out", tmp_path / "o",
                      "--format", "xlsx").returncode == 2


def test_info_names_images_classes_models_with_their_hash_and_the_schema(project):
    done = cellviewer("info", project, "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["schema_version"] == SCHEMA_VERSION
    assert [(im["name"], im["cells"]) for im in info["images"]] == [("a.png", 2), ("a.png", 1),
                                                                  ("b.png", 1)]
    assert {c["name"]: c["cells"] for c in info["classes"]} == {"Tumour": 2, "Stroma": 1}
    assert info["unlabelled"] == 1
    sha = hashlib.sha256((project.parent / "cnn.cvmodel").read_bytes()).hexdigest()
    (model,) = info["models"]
    assert (model["name"], model["file"], model["sha256"], model["predictions"]) == \
        ("cnn-small", "cnn.cvmodel", sha, 3)
    text = cellviewer("info", project)
    assert text.returncode == 0
    assert f"schema {SCHEMA_VERSION}" in text.stdout and sha in text.stdout
    assert "image a.png (50x40 px, 0.25 µm/px): 2 cells" in text.stdout


def test_version_on_both_entry_points():
    done = cellviewer("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"cellviewer {__version__}"
    trainer = subprocess.run([sys.executable, "-m", "trainer", "--version"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert trainer.returncode == 0 and trainer.stdout.startswith("trainer ")
