"""One slide of a cohort: detected in its regions only, its two files written whole; a bad
slide or regions file is an outcome with its cause, never an exception, and writes nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from cellviewer.core.cohort import CohortItem, CohortSummary, detect_slide

CENTRES = [(30, 30), (130, 30), (30, 130), (130, 130)]


def tile(path: Path) -> Path:
    yy, xx = np.mgrid[0:160, 0:160]
    rgb = np.full((160, 160, 3), 255, np.uint8)
    for cx, cy in CENTRES:
        rgb[np.hypot(xx - cx, yy - cy) <= 8] = (70, 50, 140)
    Image.fromarray(rgb).save(path)
    return path


def regions(path: Path, *rings: list[list[float]]) -> Path:
    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                 "properties": {"objectType": "annotation"}} for ring in rings]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_slide_is_detected_into_two_files(tmp_path):
    item = CohortItem("a.png", tile(tmp_path / "a.png"))
    out = tmp_path / "out"
    out.mkdir()
    outcome = detect_slide(item, out)
    assert outcome.ok and outcome.cells == 4
    found = rows(out / "a.cells.csv")
    assert list(found[0]) == ["cell_id", "image", "x", "y", "score"]
    assert sorted((round(float(r["x"])), round(float(r["y"]))) for r in found) == sorted(CENTRES)
    geo = json.loads((out / "a.geojson").read_text())
    assert geo["cellviewer"]["image"] == str(tmp_path / "a.png")
    assert [f["id"] for f in geo["features"]] == [r["cell_id"] for r in found]
    assert [f["geometry"]["coordinates"] for f in geo["features"]] == \
        [[float(r["x"]), float(r["y"])] for r in found]
    assert sorted(p.name for p in out.iterdir()) == ["a.cells.csv", "a.geojson"]  # no temp


def test_regions_restrict_the_cells_and_overlaps_count_once(tmp_path):
    square = [[0, 0], [80, 0], [80, 80], [0, 80], [0, 0]]
    overlapping = [[10, 10], [160, 10], [160, 60], [10, 60], [10, 10]]
    item = CohortItem("a.png", tile(tmp_path / "a.png"),
                      regions(tmp_path / "a-regions.geojson", square, overlapping))
    outcome = detect_slide(item, tmp_path)
    assert outcome.ok
    found = rows(tmp_path / "a.cells.csv")
    assert sorted((round(float(r["x"])), round(float(r["y"]))) for r in found) == \
        [(30, 30), (130, 30)]
    (tmp_path / "w").mkdir()
    whole = detect_slide(CohortItem("a.png", tmp_path / "a.png"), tmp_path / "w")
    ids = {r["cell_id"] for r in rows(tmp_path / "w" / "a.cells.csv")}
    assert whole.cells == 4 and {r["cell_id"] for r in found} <= ids  # the same ids


def test_a_bad_slide_or_regions_file_is_an_outcome_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    gone = detect_slide(CohortItem("gone.png", tmp_path / "gone.png", where="m.csv, line 2"),
                        out)
    assert not gone.ok and gone.message.startswith("m.csv, line 2: ")
    assert "gone.png: no such file" in gone.message
    (tmp_path / "bad.geojson").write_text("{not json")
    bad = detect_slide(CohortItem("a.png", tile(tmp_path / "a.png"), tmp_path / "bad.geojson",
                                  "m.csv, line 3"), out)
    assert not bad.ok and "bad.geojson" in bad.message
    empty = regions(tmp_path / "none.geojson")
    none = detect_slide(CohortItem("a.png", tmp_path / "a.png", empty), out)
    assert not none.ok and "no region polygons" in none.message
    assert list(out.iterdir()) == []
    summary = CohortSummary(3)
    for o in (gone, bad, none):
        summary.add(o)
    assert summary.lines()[0].startswith("3 slides: 0 done, 3 failed; 0 cells")


class FakeTrainedDetector:
    """What ``trainer.detect.infer``'s detector offers the cohort: ``detect_reader`` over a
    reader of full-resolution regions (here: a cell at each dark pixel's blob centre)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def detect_reader(self, width, height, read, *, progress=None, skip=None):
        from types import SimpleNamespace

        self.calls.append((width, height))
        rgb = read(0, 0, width, height)
        dark = rgb.mean(axis=2) < 128
        pts = [(cx, cy) for cx, cy in CENTRES if dark[cy, cx]]
        if progress is not None:
            progress(1, 1, len(pts))
        return SimpleNamespace(x=np.array([p[0] for p in pts], float),
                               y=np.array([p[1] for p in pts], float),
                               score=np.full(len(pts), 0.9, np.float32))


def test_a_trained_detector_runs_over_the_slide_and_its_regions(tmp_path):
    detector = FakeTrainedDetector()
    square = [[0, 0], [80, 0], [80, 80], [0, 80], [0, 0]]
    item = CohortItem("a.png", tile(tmp_path / "a.png"), regions(tmp_path / "r.geojson", square))
    seen: list[float] = []
    outcome = detect_slide(item, tmp_path, detector=detector,
                           progress=lambda f, c: seen.append(f))
    assert outcome.ok and outcome.cells == 1 and detector.calls == [(160, 160)]
    assert seen == [1.0]
    (found,) = rows(tmp_path / "a.cells.csv")
    assert (float(found["x"]), float(found["y"]), found["score"]) == (30.0, 30.0, "0.9")


def test_a_failed_write_is_the_slides_failure_not_an_exception(tmp_path):
    item = CohortItem("a.png", tile(tmp_path / "a.png"))
    outcome = detect_slide(item, tmp_path / "no-such-folder")
    assert not outcome.ok and "does not exist" in outcome.message
    assert "a.cells.csv" in outcome.message
