"""Real data: a Chula RBC-12 patch set from a few images, and its sampling report."""

import csv

import numpy as np
import pytest
from PIL import Image

from trainer.data.build import CHULA_RBC12_CLASSES, build_from_points_csv, read_points_csv
from trainer.formats.patchset import crop_window, load_patchset
from trainer.formats.sampling import sampling_report

pytestmark = pytest.mark.realdata
IMAGES = ["1.jpg", "100.jpg", "250.jpg", "600.jpg"]


def test_chula_patch_set_from_a_few_images(shared_data, tmp_path):
    chula = shared_data / "chula-rbc-12"
    with open(chula / "points.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["image"] in IMAGES]
    subset = tmp_path / "points.csv"
    with open(subset, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "x", "y", "class_id"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "chula.patches"
    build_from_points_csv(subset, chula / "Dataset", out, class_column="class_id",
                          class_names=CHULA_RBC12_CLASSES)
    ps = load_patchset(out)
    assert len(ps) == len(rows) > 50
    assert ps.classes == CHULA_RBC12_CLASSES
    want = np.bincount([int(r["class_id"]) for r in rows], minlength=13)
    assert np.bincount(ps.labels, minlength=13).tolist() == want.tolist()
    image = np.asarray(Image.open(chula / "Dataset" / rows[7]["image"]).convert("RGB"))
    crop, pad = crop_window(image, float(rows[7]["x"]), float(rows[7]["y"]), 40)
    np.testing.assert_array_equal(ps.patches[7], crop)
    x0 = np.floor(ps.xy[:, 0]) - 20
    y0 = np.floor(ps.xy[:, 1]) - 20
    edge = (x0 < 0) | (y0 < 0) | (x0 + 40 > 640) | (y0 + 40 > 480)
    assert ps.n_padded == int(edge.sum())


def test_chula_sampling_report_excludes_uncategorised_at_4096(shared_data):
    chula = shared_data / "chula-rbc-12"
    table = read_points_csv(chula / "points.csv", class_column="class_id",
                            class_names=CHULA_RBC12_CLASSES)
    report = sampling_report(table.labels, table.classes)
    assert report.n_available == 22106
    unc = CHULA_RBC12_CLASSES.index("uncategorised")
    assert report.available[unc] == 184
    at_4096 = report.summary(4096)
    assert at_4096.flag_min == 205 and at_4096.excluded[unc]
    assert len(at_4096.kept_classes) == 12
    assert not report.summary(2048).excluded[unc]
