"""A metadata column (``split``) as the validation split: the form's sampling numbers, the
request's two patch sets and the trainer's configuration follow it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.store import ProjectStore
from cellviewer.core.training.form import TrainingForm
from cellviewer.core.training.project_data import ProjectCounts, read_project
from cellviewer.core.training.request import TrainingRequest
from cellviewer.core.training.split import read_splits, side_of
from cellviewer.core.training.start_from import start_candidates
from trainer.formats.patchset import load_patchset


def make_split_project(folder: Path) -> Path:
    """One image: class a 40 train + 10 validation + 5 test, class b 30 train + 8 validation,
    2 'a' cells without a value (training), as an imported CSV with a split column keeps."""
    store = ProjectStore.create(folder / "p.cvproj")
    a, b = store.add_class("a"), store.add_class("b")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (200, 240, 3), np.uint8)).save(folder / "A.png")
    image_id = store.add_image(folder / "A.png", 240, 200)
    labels = [a] * 55 + [b] * 38 + [a] * 2
    splits = ["train"] * 40 + ["validation"] * 10 + ["test"] * 5 + ["train"] * 30 + \
        ["validation"] * 8
    meta = [{"split": s, "stain": "HE"} for s in splits] + [None, {"stain": "HE"}]
    store.add_cells(image_id, rng.uniform(25, 175, size=(len(labels), 2)), labels,
                    metadata=meta)
    store.close()
    return folder / "p.cvproj"


def form_of(project: Path) -> TrainingForm:
    form = TrainingForm(project)
    form.set_counts(read_project(project, ProjectCounts.from_store))
    form.set_start_candidates(read_project(project, lambda s: start_candidates(s, project)))
    form.set_splits(read_project(project, lambda s: read_splits(
        s, [i.id for i in s.images()], [c.id for c in s.classes()])))
    return form


def test_sides():
    assert side_of("Validation") == side_of(" val ") == 1
    assert side_of("test") == 2
    assert side_of("train") == side_of(None) == side_of("") == 0


def test_the_split_column_is_found_and_drives_the_numbers(tmp_path: Path):
    form = form_of(make_split_project(tmp_path))
    assert form.split_columns() == ["split"]  # "stain" has no validation value
    form.set_flag_limit(None)
    random = {r.name: (r.train, r.val) for r in form.sampling_rows()}
    assert sum(random["a"]) == 57  # every labelled 'a' cell, split 80/20
    form.choose_split("split")
    rows = {r.name: (r.available, r.train, r.val) for r in form.sampling_rows()}
    assert rows == {"a": (42, 42, 10), "b": (30, 30, 8)}  # test cells are in neither
    t = form.totals()
    assert (t.train, t.val) == (72, 18)
    with pytest.raises(ValueError, match="no split column 'stain'"):
        form.choose_split("stain")


def test_the_request_writes_a_validation_patch_set(tmp_path: Path):
    project = make_split_project(tmp_path)
    form = form_of(project)
    form.set_flag_limit(None)
    form.choose_split("split")
    form.epochs, form.batch_size, form.device = 1, 8, "cpu"
    request = TrainingRequest.from_form(form)
    assert request.split_column == "split"
    run = request.create_run()
    job = request.patchset_job(run)
    job.run()
    train = load_patchset(run.patchset_path)
    val = load_patchset(request.val_patchset_path(run))
    assert np.bincount(train.labels).tolist() == [42, 30]
    assert np.bincount(val.labels).tolist() == [10, 8]
    cfg = request.run_config(run)
    assert cfg.val_patchset == str(request.val_patchset_path(run))
    assert job.done == job.total == 2  # the two patch sets, image by image


def test_without_the_column_nothing_changes(tmp_path: Path):
    form = form_of(make_split_project(tmp_path))
    form.epochs, form.batch_size = 1, 8
    form.set_flag_limit(None)
    request = TrainingRequest.from_form(form)
    assert request.split_column is None
    assert request.run_config(request.create_run()).val_patchset is None
