"""QuPath GeoJSON export and import, and the CSV -> project -> GeoJSON -> project -> CSV trip."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellviewer.core.export import export_cells_csv
from cellviewer.core.io.geojson import export_geojson, import_geojson, read_geojson
from cellviewer.core.io.points_csv import import_points_csv
from cellviewer.core.store import ProjectError, ProjectStore


@pytest.fixture
def tiles(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,x,y,class,split"]
    for t in range(3):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(
            folder / f"tile{t}.png")
        for _ in range(200):
            label = rng.choice(["tumour", "stroma", "immune cell", ""])
            rows.append(f"tile{t}.png,{rng.uniform(0, 400)!r},{rng.uniform(0, 300)!r},{label},"
                        f"{rng.choice(['train', 'validation'])}")
    (folder / "points.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_round_trip_csv_project_geojson_project_csv_keeps_everything(tiles, tmp_path):
    with ProjectStore.create(tmp_path / "a.cvproj") as a:
        first = import_points_csv(a, tiles / "points.csv")
        model = a.add_model("cnn", None, "cnn", ["immune cell", "stroma", "tumour"])
        probs = np.random.default_rng(1).dirichlet([1, 1, 1], 450).astype(np.float32)
        a.put_predictions(model, first.ids[:450], probs)  # some cells have no prediction
        a.set_review_status(first.ids[:30], "reviewed")
        a.set_labels(first.ids[30:40], a.class_id("immune cell"), source="corrected")
        export_cells_csv(a, tmp_path / "a.csv")
        with ProjectStore.create(tmp_path / "b.cvproj") as b:
            for im in a.images():
                geo = tmp_path / f"{im.path.stem}.geojson"
                export_geojson(a, geo, im.id)
                bid = b.add_image(im.path, im.width, im.height, im.mpp, im.fingerprint)
                import_geojson(b, geo, bid)
            export_cells_csv(b, tmp_path / "b.csv")

    before, after = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert len(before) == 600 and sorted(before.cell_id) == sorted(first.ids)
    before = before.set_index("cell_id").sort_index()
    after = after.set_index("cell_id").sort_index()
    # Every cell, id, position, label, source, status, prediction and extra column survives.
    keep = ["image", "x", "y", "label", "label_source", "review_status", "predicted_class",
            "confidence", "p_immune cell", "p_stroma", "p_tumour", "split"]
    pd.testing.assert_frame_equal(before[keep], after[keep])
    assert after.loc[first.ids[500], "label_source"] == "imported"
    assert after.model_id.notna().sum() == 450


def test_export_writes_qupath_detections(tiles, tmp_path):
    with ProjectStore.create(tmp_path / "a.cvproj") as store:
        result = import_points_csv(store, tiles / "points.csv")
        image = store.image_id_for_path(tiles / "tile0.png")
        model = store.add_model("cnn", None, "cnn", ["tumour", "stroma"])
        store.put_predictions(model, result.ids[:1], np.array([[0.93, 0.07]], np.float32))
        path = export_geojson(store, tmp_path / "tile0.geojson", image)
        tumour = store.class_record(store.class_id("tumour"))
    text = path.read_text()
    data = json.loads(text)
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 200
    by_id = {f["id"]: f for f in data["features"]}
    feature = by_id[result.ids[0]]
    assert uuid.UUID(feature["id"])
    assert feature["geometry"]["type"] == "Point"
    props = feature["properties"]
    assert props["objectType"] == "detection"
    assert props["measurements"] == {"p_tumour": 0.93, "p_stroma": 0.07,
                                     "Prediction: tumour": 0.93, "Prediction confidence": 0.93}
    # no prediction: no measurements at all (a "NaN" string makes QuPath 0.4 refuse the file)
    assert "measurements" not in by_id[result.ids[1]]["properties"]
    assert "NaN" not in text
    labelled = next(f for f in data["features"] if "classification" in f["properties"]
                    and f["properties"]["classification"]["name"] == "tumour")
    rgb = labelled["properties"]["classification"]["color"]
    assert "#{:02x}{:02x}{:02x}".format(*rgb) == tumour.color
    unlabelled = [f for f in data["features"] if "classification" not in f["properties"]]
    assert unlabelled  # unlabelled cells without a prediction carry no classification


QUPATH_FILE = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "id": "5b0e7c4a-2f1d-4d7e-9a51-0c3f2b8e6a11",
         "geometry": {"type": "Point", "coordinates": [102.5, 88.25]},
         "properties": {"objectType": "detection",
                        "classification": {"name": "Lymphocyte", "color": [255, 0, 0]},
                        "measurements": {"p_Lymphocyte": 0.9, "p_Tumor": 0.1,
                                         "Nucleus: Area": 31.5}}},
        {"type": "Feature",  # QuPath's Points tool: no objectType, one class, many points
         "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
         "geometry": {"type": "MultiPoint", "coordinates": [[10, 10], [20, 30], [35, 5]]},
         "properties": {"classification": {"name": "Tumor", "colorRGB": -16711936}}},
        {"type": "Feature", "id": "not-a-uuid",
         "geometry": {"type": "Polygon",
                      "coordinates": [[[0, 0], [10, 0], [10, 20], [0, 20], [0, 0]]]},
         "properties": {"objectType": "cell", "classification": "Stroma",
                        "measurements": {"p_Lymphocyte": "NaN", "p_Tumor": "NaN"}}},
    ],
}


def test_import_reads_points_multipoints_polygons_and_qupath_classifications(tmp_path):
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps(QUPATH_FILE))
    with ProjectStore.create(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "slide.svs", 1000, 1000)
        result = import_geojson(store, path, image)
        assert result.n_cells == 5 and result.classes_added == ["Lymphocyte", "Tumor", "Stroma"]
        assert store.class_record(store.class_id("Lymphocyte")).color == "#ff0000"
        assert store.class_record(store.class_id("Tumor")).color == "#00ff00"
        cell = store.cell("5b0e7c4a-2f1d-4d7e-9a51-0c3f2b8e6a11")
        assert (cell.x, cell.y, cell.label_source) == (102.5, 88.25, "imported")
        assert cell.metadata == {"Nucleus: Area": 31.5}
        multi = [store.cell(i) for i in result.ids[1:4]]
        assert [(c.x, c.y) for c in multi] == [(10, 10), (20, 30), (35, 5)]
        assert all(c.metadata["geojson_id"] == "0f8fad5b-d9cb-469f-a165-70867728950e"
                   for c in multi)
        polygon = store.cell(result.ids[4])
        assert (polygon.x, polygon.y) == (5.0, 10.0)  # centroid
        assert polygon.metadata == {"geojson_id": "not-a-uuid",  # and its outline, kept
                                    "outline": [[0, 0], [10, 0], [10, 20], [0, 20], [0, 0]]}
        # p_ measurements became a model's predictions; NaN ones did not.
        model = store.model(result.model_id)
        assert model.classes == ["Lymphocyte", "Tumor"] and model.n_predictions == 1
        pred = store.predictions(model.id, [cell.id, polygon.id])
        np.testing.assert_allclose(pred.probs[0], [0.9, 0.1])
        assert pred.predicted[1] == -1


@pytest.mark.parametrize(("edit", "where", "message"), [
    (lambda d: d["features"][2]["geometry"].update(type="Curve"), "feature 2",
     "geometry 'Curve'"),
    (lambda d: d["features"][1]["geometry"].update(coordinates=[[1, 2], ["a", 3]]),
     "feature 1", "not numbers"),
    (lambda d: d["features"][0]["properties"]["classification"].update(color=[300, 0, 0]),
     "feature 0", "is not [r, g, b]"),
    (lambda d: d["features"][0]["properties"]["measurements"].update(p_Tumor="high"),
     "feature 0", "is not a number"),
    (lambda d: d["features"][2].update(id=d["features"][0]["id"]), "feature 2",
     "already used by feature 0"),
    (lambda d: d["features"][0]["geometry"].update(coordinates=[5000, 10]), "feature 0",
     "lies outside image"),
])
def test_malformed_geojson_names_the_feature_and_imports_nothing(tmp_path, edit, where,
                                                                 message):
    data = json.loads(json.dumps(QUPATH_FILE))
    edit(data)
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(data))
    with ProjectStore.create(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "slide.svs", 1000, 1000)
        with pytest.raises(ProjectError) as info:
            import_geojson(store, path, image)
        assert str(info.value).startswith(f"{path}, {where}:"), str(info.value)
        assert message in str(info.value)
        assert store.cell_count() == 0 and store.classes() == [] and store.models() == []


def test_json_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection",\n "features": [\n  {"type": "Feature",}\n]}')
    with pytest.raises(ProjectError, match=r"broken.geojson, line 3, column \d+: not valid JSON"):
        read_geojson(path)


def test_a_file_back_from_qupath_updates_labels_and_positions(tiles, tmp_path):
    with ProjectStore.create(tmp_path / "a.cvproj") as store:
        import_points_csv(store, tiles / "points.csv")
        image = store.image_id_for_path(tiles / "tile1.png")
        path = export_geojson(store, tmp_path / "tile1.geojson", image, model_id=None)
        data = json.loads(path.read_text())
        f0, f1 = data["features"][0], data["features"][1]
        f0["properties"]["classification"] = {"name": "necrosis", "color": [0, 0, 0]}
        f1["geometry"]["coordinates"] = [1.5, 2.5]
        path.write_text(json.dumps(data))
        with pytest.raises(ProjectError, match="feature 0: cell id .* already in the project"):
            import_geojson(store, path, image)
        result = import_geojson(store, path, image, existing="update", source="corrected")
        assert result.updated == 2 and result.n_cells == 0
        assert store.class_record(store.cell(f0["id"]).class_id).name == "necrosis"
        assert store.cell(f0["id"]).label_source == "corrected"
        assert (store.cell(f1["id"]).x, store.cell(f1["id"]).y) == (1.5, 2.5)
        store.undo()  # the whole update is one action
        assert store.class_id("necrosis") is None
        assert not math.isclose(store.cell(f1["id"]).x, 1.5)
