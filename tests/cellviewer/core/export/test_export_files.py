"""The export's files: one per image whatever the images are called, created with the user's
umask, and the cells CSV naming the model by its name, file and SHA-256."""

from __future__ import annotations

import csv
import hashlib
import os
import stat

import pytest

from cellviewer.core.export import plan_files, run_export
from cellviewer.core.export.job import unique_stems


def test_images_of_the_same_file_name_get_files_of_their_own(study, tmp_path):
    (tmp_path / "out").mkdir()
    written = run_export(study.store, tmp_path / "out" / "cells.csv", ["geojson"])
    a1, a2 = study.images["sub1/a.png"], study.images["sub2/a.png"]
    assert [p.name for p in written] == ["a.geojson", f"a_{a2}.geojson", "b.geojson"]
    # each file holds its own image's cells (the first image's are not lost)
    assert written[0].read_text().count('"Feature"') == 4
    assert written[1].read_text().count('"Feature"') == 3
    assert a1 < a2


@pytest.mark.parametrize("names", [
    {1: "a.png", 2: "a.png", 3: "a_2.png"},  # the second's plain rename is the third's name
    {1: "a_3.png", 2: "a.png", 3: "a.png"},  # ... or the first's
    {1: "A.png", 2: "a.tif", 3: "a.PNG", 4: "a_3.png", 5: "a_3_1.png"},  # case, suffixes
    {1: ".png", 2: ".png"},  # no stem at all
])
def test_every_image_gets_a_distinct_file_name_ignoring_case(names):
    stems = unique_stems(names)
    assert set(stems) == set(names)
    assert len({s.lower() for s in stems.values()}) == len(names)
    assert all(s for s in stems.values())
    planned = plan_files("/tmp/x/cells.csv", ["geojson"], names)
    assert len({str(p.path).lower() for p in planned}) == len(names)


def test_a_stem_used_once_is_kept_whatever_the_order():
    assert unique_stems({5: "a.png", 1: "b.png", 3: "a.png"}) == {5: "a", 1: "b", 3: "a_3"}


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_are_created_with_the_users_umask(study, tmp_path, umask):
    out = tmp_path / f"out{umask:o}"
    out.mkdir()
    old = os.umask(umask)
    try:
        written = run_export(study.store, out / "cells.csv", ["cells", "summary", "geojson"])
    finally:
        os.umask(old)
    assert len(written) == 5
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_the_cells_csv_names_the_model_by_name_file_and_sha256(study, tmp_path):
    (path,) = run_export(study.store, tmp_path / "cells.csv", ["cells"])
    with open(path, newline="") as fh:
        rows = {r["cell_id"]: r for r in csv.DictReader(fh)}
    sha = hashlib.sha256(study.model_file.read_bytes()).hexdigest()
    row = rows[study.ids["manual"]]
    assert (row["model_id"], row["model"], row["model_file"], row["model_sha256"]) == \
        (str(study.model_id), "cnn-small", "cnn.cvmodel", sha)
    # a cell without a prediction names no model
    none = rows[study.ids["accepted"]]
    assert (none["model_id"], none["model"], none["model_sha256"]) == ("", "", "")


def test_a_model_whose_file_is_gone_is_named_without_a_hash(study, tmp_path):
    study.model_file.unlink()
    (path,) = run_export(study.store, tmp_path / "cells.csv", ["cells"])
    with open(path, newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["cell_id"] == study.ids["manual"])
    assert (row["model"], row["model_file"], row["model_sha256"]) == ("cnn-small",
                                                                      "cnn.cvmodel", "")
