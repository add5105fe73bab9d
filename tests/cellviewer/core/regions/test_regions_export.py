"""Regions leave the project as a per-region summary CSV (a registered exporter) and as QuPath
annotations in the GeoJSON export, with their uuid as the id; and come back by that uuid."""

from __future__ import annotations

import csv
import json

import pytest

from cellviewer.core.export import get_exporter, run_export, select_cells
from cellviewer.core.io.geojson import export_geojson
from cellviewer.core.regions import editing
from cellviewer.core.regions.export import add_region_from_feature, is_annotation
from cellviewer.core.regions.proposals import add_detections
from cellviewer.core.store import ProjectStore


@pytest.fixture
def store(tmp_path):
    s = ProjectStore.create(tmp_path / "p.cvproj")
    s.user = "ana"
    tumour, immune = s.add_class("tumour", "#ff0000"), s.add_class("immune", "#0000ff")
    a = s.add_image(tmp_path / "a.png", 400, 400, mpp=0.5)
    b = s.add_image(tmp_path / "b.png", 400, 400)  # no pixel size
    s.add_cells(a, [[10, 10], [20, 20], [30, 30], [300, 300]], [tumour, tumour, immune, None])
    s.add_cells(b, [[50, 50]], immune)
    editing.add_rectangle(s, a, 0, 0, 100, 100, "core", "tumour")
    editing.add_polygon(s, b, [[0, 0], [200, 0], [0, 200]], "edge", "tissue")
    editing.add_rectangle(s, b, 300, 300, 390, 390, "empty")
    add_detections(s, a, [[60, 60]], [0.7], method="m")
    yield s
    s.close()


def test_the_regions_csv_has_a_row_per_region_with_counts_proportions_and_density(store,
                                                                                 tmp_path):
    assert get_exporter("regions").suffix == ".csv"
    out = run_export(store, tmp_path / "out.csv", ["regions"], select_cells(store, "project"))
    path = next(p for p in out if p.name.endswith("_regions.csv"))
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [r["name"] for r in rows] == ["core", "edge", "empty"]
    core, edge, empty = rows
    assert (core["kind"], core["status"], core["cells"], core["proposed"]) == \
        ("tumour", "unreviewed", "3", "1")
    assert (core["n_tumour"], core["n_immune"]) == ("2", "1")
    assert float(core["p_tumour"]) == pytest.approx(2 / 3)
    assert float(core["area_mm2"]) == pytest.approx(0.0025)
    assert float(core["density_per_mm2"]) == pytest.approx(3 / 0.0025)
    assert core["region_id"] == store.regions()[0].uuid
    assert (edge["cells"], edge["area_mm2"], edge["density_per_mm2"]) == ("1", "", "")
    assert "no pixel size" in edge["density_note"]
    assert (empty["cells"], empty["n_tumour"], empty["p_tumour"]) == ("0", "0", "0")


def test_regions_are_qupath_annotations_in_the_geojson_export(store, tmp_path):
    image = store.images()[0].id
    path = export_geojson(store, tmp_path / "a.geojson", image)
    features = json.loads(path.read_text())["features"]
    annotations = [f for f in features if is_annotation(f)]
    assert len(annotations) == 1 and len(features) == 1 + 5  # 4 cells and a proposal
    region = store.regions(image)[0]
    ann = annotations[0]
    assert ann["id"] == region.uuid
    assert ann["properties"]["classification"] == {"name": "tumour", "color": [230, 25, 75]}
    assert ann["properties"]["name"] == "core"
    assert ann["geometry"]["type"] == "Polygon"
    assert all(f["properties"]["objectType"] == "detection" for f in features[1:])
    # and back, by uuid: nothing doubles, a new project gets the same region
    assert add_region_from_feature(store, image, ann) is None
    with ProjectStore.create(tmp_path / "other.cvproj") as other:
        other.user = "bo"
        im = other.add_image(tmp_path / "a.png", 400, 400)
        assert add_region_from_feature(other, im, ann) == region.uuid
        back = other.region(region.uuid)
        assert (back.name, back.kind, back.geometry) == ("core", "tumour", region.geometry)
