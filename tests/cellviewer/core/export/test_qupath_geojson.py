"""Each row of ``../shared/design/qupath-geojson.md`` (what QuPath 0.4, 0.5 and 0.6 write and
read, from its source) against our GeoJSON export and import, in the default mode and in the
QuPath-0.4 mode. One test per row of the document's table, named after the row."""

from __future__ import annotations

import gzip
import json
import uuid
import zipfile
from pathlib import Path

import pytest
from export_study import OUTLINE, cells_of, new_store

from cellviewer.core.export.geojson_write import export_geojson
from cellviewer.core.io.cell_import import ImportChoices, import_cells, plan_import

# The keys QuPath 0.4.4 itself writes and reads, level by level (the 0.4 mode writes no other)
QUPATH_04_FEATURE_KEYS = {"type", "id", "geometry", "properties"}
QUPATH_04_GEOMETRY_KEYS = {"type", "coordinates", "plane", "isEllipse"}
QUPATH_04_PROPERTY_KEYS = {"objectType", "name", "color", "classification", "isLocked",
                           "measurements"}
MODES = {"default": {}, "qupath-0.4": {"qupath_04": True}}


def _export(study, tmp_path: Path, image: str = "sub2/a.png", name: str = "out.geojson",
            **options) -> tuple[Path, dict]:
    path = export_geojson(study.store, tmp_path / name, study.images[image], **options)
    return path, json.loads(path.read_text())


def _features_with_pairs(path: Path) -> list[list[tuple[str, object]]]:
    """Each feature's properties as written, duplicate keys included (json.loads keeps the
    last of a repeated key silently)."""
    seen: list[list[tuple[str, object]]] = []

    def hook(pairs):
        if any(k == "objectType" for k, _ in pairs):
            seen.append(pairs)
        return dict(pairs)

    json.loads(path.read_text(), object_pairs_hook=hook)
    return seen


def _by_id(data: dict, cell_id: str) -> dict:
    return next(f for f in data["features"] if f["id"] == cell_id)


# --- top level ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_top_level_a_feature_collection_and_every_form_quPath_writes_reads_back(
        study, tmp_path, mode):
    path, data = _export(study, tmp_path, **MODES[mode])
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 3
    # 0.4 mode: only "type" and "features" (QuPath reads no more); default: also our header
    extra = set(data) - {"type", "features"}
    assert extra == (set() if mode == "qupath-0.4" else {"cellviewer"})
    if mode == "default":
        assert data["cellviewer"] == {"image": "sub2/a.png"}
    # What QuPath's Export objects can write, and we read: an array, a bare Feature, .gz, .zip
    forms = {"array.geojson": json.dumps(data["features"]).encode(),
             "one.geojson": json.dumps(data["features"][0]).encode(),
             "c.geojson.gz": gzip.compress(path.read_bytes())}
    for name, raw in forms.items():
        (tmp_path / name).write_bytes(raw)
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.writestr("a.geojson", path.read_bytes())
    expected = {"array.geojson": 3, "one.geojson": 1, "c.geojson.gz": 3, "d.zip": 3}
    with new_store(tmp_path / "new.cvproj") as store:
        image = store.add_image(study.folder / "sub2/a.png", 80, 60)
        for name, n in expected.items():
            plan = plan_import(store, [tmp_path / name],
                               ImportChoices(on_unknown_class="create", image_id=image))
            assert not plan.problems and len(plan.cells) == n, (name, plan.problems)


def test_top_level_a_bare_geometry_reads_as_an_annotation(tmp_path):
    (tmp_path / "g.geojson").write_text(json.dumps(
        {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 0]]]}))
    with new_store(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "x.png", 10, 10)
        plan = plan_import(store, [tmp_path / "g.geojson"], ImportChoices(image_id=image))
    assert len(plan.cells) == 0 and len(plan.regions) == 1  # an annotation: a region


# --- type, id -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_type_every_feature_is_a_feature(study, tmp_path, mode):
    _, data = _export(study, tmp_path, **MODES[mode])
    assert {f["type"] for f in data["features"]} == {"Feature"}
    for feature in data["features"]:
        if mode == "qupath-0.4":
            assert set(feature) <= QUPATH_04_FEATURE_KEYS


@pytest.mark.parametrize("mode", MODES)
def test_id_every_id_is_the_cells_uuid(study, tmp_path, mode):
    _, data = _export(study, tmp_path, **MODES[mode])
    ids = [f["id"] for f in data["features"]]
    assert all(str(uuid.UUID(i)) == i for i in ids)
    assert set(ids) == {study.ids["outline"], study.ids["same-name"], study.ids["accepted"]}


def test_id_a_cell_id_that_is_no_uuid_gets_a_stable_uuid(tmp_path):
    from cellviewer.core.export.geojson_write import feature_id

    made = feature_id("cell-7")
    assert str(uuid.UUID(made)) == made == feature_id("cell-7") != feature_id("cell-8")
    assert feature_id("0F8FAD5B-D9CB-469F-A165-70867728950E") == \
        "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_id_on_import_a_uuid_is_kept_any_other_id_goes_to_the_metadata(tmp_path):
    (tmp_path / "q.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "5b0e7c4a-2f1d-4d7e-9a51-0c3f2b8e6a11",
         "geometry": {"type": "Point", "coordinates": [1, 2]},
         "properties": {"objectType": "detection"}},
        {"type": "Feature", "id": "PathCellObject",
         "geometry": {"type": "Point", "coordinates": [3, 4]},
         "properties": {"objectType": "detection"}}]}))
    with new_store(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "x.png", 10, 10)
        import_cells(store, [tmp_path / "q.geojson"], ImportChoices(image_id=image))
        table = store.cell_table()
    assert "5b0e7c4a-2f1d-4d7e-9a51-0c3f2b8e6a11" in table["ids"]
    assert {"geojson_id": "PathCellObject"} in table["metadata"]


# --- geometry, nucleusGeometry --------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_geometry_points_and_outlines_with_the_plane_only_when_not_the_default(
        study, tmp_path, mode):
    _, data = _export(study, tmp_path, **MODES[mode])
    point = _by_id(data, study.ids["same-name"])["geometry"]
    assert point == {"type": "Point", "coordinates": [40.0, 30.0]}  # no default plane written
    outlined = _by_id(data, study.ids["outline"])
    polygon = outlined["geometry"]
    assert polygon["type"] == "Polygon" and polygon["coordinates"] == [OUTLINE]
    assert polygon["coordinates"][0][0] == polygon["coordinates"][0][-1]  # a closed ring
    assert polygon["plane"] == {"c": -1, "z": 2, "t": 0}
    # the cell's own point beside its outline (not the outline's centroid, 15.0, 16.0)
    m = outlined["properties"]["measurements"]
    assert (m["CellViewer x"], m["CellViewer y"]) == (15.0, 16.5)
    for feature in data["features"]:
        assert set(feature["geometry"]) <= QUPATH_04_GEOMETRY_KEYS


def test_geometry_on_import_every_type_plane_and_ellipse(tmp_path):
    square = [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1],
                                         "plane": {"c": -1, "z": 3, "t": 0}},
         "properties": {"objectType": "detection"}},
        {"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": [[2, 2], [3, 3]]},
         "properties": {"objectType": "annotation"}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [5, 5]]},
         "properties": {"objectType": "annotation"}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square},
         "properties": {"objectType": "detection"}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square,
                                         "isEllipse": True},
         "properties": {"objectType": "annotation"}},
        {"type": "Feature", "geometry": {"type": "GeometryCollection", "geometries": [
            {"type": "Point", "coordinates": [4, 4]}]}, "properties": {"objectType": "detection"}},
    ]
    (tmp_path / "g.geojson").write_text(json.dumps({"type": "FeatureCollection",
                                                    "features": features}))
    with new_store(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "x.png", 20, 20)
        plan = plan_import(store, [tmp_path / "g.geojson"], ImportChoices(image_id=image))
    assert len(plan.cells) == 5 and len(plan.regions) == 1
    assert plan.regions[0][0].metadata["isEllipse"] is True
    assert {"c": -1, "z": 3, "t": 0} in [c.row.metadata.get("plane") for c in plan.cells]
    assert [why for _, _, why in plan.skipped] == ["a line (not a cell or a region)"]


@pytest.mark.parametrize("mode", MODES)
def test_nucleus_geometry_is_never_written_and_a_cell_object_reads_as_one_cell(
        study, tmp_path, mode):
    path, _ = _export(study, tmp_path, **MODES[mode])
    assert "nucleusGeometry" not in path.read_text()
    (tmp_path / "cell.geojson").write_text(json.dumps([{
        "type": "Feature", "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [8, 0], [8, 8], [0, 8],
                                                         [0, 0]]]},
        "nucleusGeometry": {"type": "Polygon", "coordinates": [[[2, 2], [4, 2], [4, 4],
                                                                [2, 2]]]},
        "properties": {"objectType": "cell"}}]))
    with new_store(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "x.png", 10, 10)
        plan = plan_import(store, [tmp_path / "cell.geojson"], ImportChoices(image_id=image))
    assert [(c.row.x, c.row.y) for c in plan.cells] == [(4.0, 4.0)]


# --- properties -----------------------------------------------------------------------------------
@pytest.mark.parametrize("objects", ["detection", "annotation"])
@pytest.mark.parametrize("mode", MODES)
def test_object_type_is_always_written_as_chosen(study, tmp_path, mode, objects):
    _, data = _export(study, tmp_path, objects=objects, **MODES[mode])
    # never missing: QuPath reads a missing objectType as an annotation
    assert {f["properties"]["objectType"] for f in data["features"]} == {objects}
    for feature in data["features"]:
        if mode == "qupath-0.4":
            assert set(feature["properties"]) <= QUPATH_04_PROPERTY_KEYS


@pytest.mark.parametrize("mode", MODES)
def test_name_is_written_as_a_string_when_the_cell_has_one(study, tmp_path, mode):
    _, data = _export(study, tmp_path, **MODES[mode])
    assert _by_id(data, study.ids["outline"])["properties"]["name"] == "nucleus 7"
    assert "name" not in _by_id(data, study.ids["same-name"])["properties"]


@pytest.mark.parametrize("mode", MODES)
def test_color_and_is_locked_are_not_written(study, tmp_path, mode):
    _, data = _export(study, tmp_path, **MODES[mode])
    for feature in data["features"]:
        assert "color" not in feature["properties"] and "isLocked" not in feature["properties"]


@pytest.mark.parametrize("classification", ["label", "prediction", "label-else-prediction"])
@pytest.mark.parametrize("mode", MODES)
def test_classification_every_one_has_a_name_and_an_rgb_colour(study, tmp_path, mode,
                                                                classification):
    path, data = _export(study, tmp_path, image="sub1/a.png", classification=classification,
                         **MODES[mode])
    given = [f["properties"]["classification"] for f in data["features"]
             if "classification" in f["properties"]]
    assert given
    for c in given:
        # {name} without a colour makes QuPath 0.4-0.6 refuse the file; no alpha, no names
        assert set(c) == {"name", "color"} and isinstance(c["name"], str)
        assert len(c["color"]) == 3 and all(isinstance(v, int) and 0 <= v <= 255
                                            for v in c["color"])
    got = {f["id"]: f["properties"].get("classification", {}).get("name")
           for f in data["features"]}
    ids = study.ids
    expected = {
        "label": {ids["manual"]: "Tumour", ids["corrected"]: "Stroma", ids["unlabelled"]: None},
        "prediction": {ids["manual"]: "Tumour", ids["corrected"]: None,
                       ids["unlabelled"]: "Stroma"},
        "label-else-prediction": {ids["manual"]: "Tumour", ids["corrected"]: "Stroma",
                                  ids["unlabelled"]: "Stroma"},
    }[classification]
    assert {k: got[k] for k in expected} == expected
    assert got[ids["unlabelled-no-prediction"]] is None
    tumour = next(c for c in given if c["name"] == "Tumour")
    assert tumour["color"] == [0xc8, 0x1e, 0x1e]  # the project class's colour


def test_classification_a_model_class_the_project_lacks_gets_a_colour_too(study, tmp_path):
    _, data = _export(study, tmp_path, classification="prediction", qupath_04=True)
    other = _by_id(data, study.ids["same-name"])["properties"]["classification"]
    assert other["name"] == "Other" and len(other["color"]) == 3


def test_classification_on_import_every_form_quPath_reads(tmp_path):
    forms = [None, "Tumour", {"name": "Tumour", "colorRGB": -16711936},
             {"name": "Tumour", "color": [255, 0, 0, 128]},
             {"names": ["Tumour", "Positive"], "color": [1, 2, 3]}]
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [k, k]},
                 "properties": {"objectType": "detection", "classification": c}}
                for k, c in enumerate(forms)]
    (tmp_path / "c.geojson").write_text(json.dumps(features))
    with new_store(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "x.png", 10, 10)
        plan = plan_import(store, [tmp_path / "c.geojson"],
                           ImportChoices(image_id=image, on_unknown_class="create"))
    assert [c.row.label for c in plan.cells] == [None, "Tumour", "Tumour", "Tumour",
                                                 "Tumour: Positive"]


@pytest.mark.parametrize("mode", MODES)
def test_measurements_numbers_only_and_never_a_bare_nan(study, tmp_path, mode):
    path, data = _export(study, tmp_path, **MODES[mode])
    text = path.read_text()
    assert ":NaN" not in text and "Infinity" not in text.replace('"Infinity"', "")
    outlined = _by_id(data, study.ids["outline"])["properties"]["measurements"]
    assert outlined["Prediction: Tumour"] == outlined["Prediction confidence"] == 0.9
    assert (outlined["p_Tumour"], outlined["p_Stroma"], outlined["p_Other"]) == (0.9, 0.05, 0.05)
    assert outlined["Nucleus: Area"] == 120.0
    # a cell without a prediction has no prediction measurements (not "NaN")
    assert "measurements" not in _by_id(data, study.ids["accepted"])["properties"]
    for feature in data["features"]:
        for value in feature["properties"].get("measurements", {}).values():
            if mode == "qupath-0.4":  # 0.4.x throws ClassCastException on any string
                assert isinstance(value, float)
            else:  # 0.5+ writes and reads "NaN"
                assert isinstance(value, float) or value in ("NaN", "Infinity", "-Infinity")
    assert "missing" not in outlined  # the store keeps a NaN of the metadata as null: omitted


def test_measurements_on_import_bare_tokens_strings_and_the_old_list(tmp_path):
    text = ('[{"type":"Feature","geometry":{"type":"Point","coordinates":[1,1]},'
            '"properties":{"objectType":"detection","measurements":{"a":NaN,"b":"inf",'
            '"c":"0.75","p_X":0.5,"p_Y":"0.5"}}},'
            '{"type":"Feature","geometry":{"type":"Point","coordinates":[2,2]},'
            '"properties":{"objectType":"detection","measurements":[{"name":"a","value":1}]}}]')
    (tmp_path / "m.geojson").write_text(text)
    with new_store(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "x.png", 10, 10)
        plan = plan_import(store, [tmp_path / "m.geojson"], ImportChoices(image_id=image))
    first, second = plan.cells
    assert first.row.metadata == {"a": None, "b": None, "c": 0.75}
    assert first.row.probs == {"X": 0.5, "Y": 0.5}
    assert second.row.metadata == {"a": 1.0}


@pytest.mark.parametrize("mode", MODES)
def test_metadata_written_once_as_strings_and_not_at_all_in_the_04_mode(study, tmp_path, mode):
    path, data = _export(study, tmp_path, **MODES[mode])
    for pairs in _features_with_pairs(path):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys))  # QuPath 0.5/0.6 write "metadata" twice; we once
        assert keys.count("metadata") == (1 if mode == "default" else 0)
    if mode == "default":
        outlined = _by_id(data, study.ids["outline"])["properties"]["metadata"]
        assert all(isinstance(v, str) for v in outlined.values())
        assert outlined == {"stain": "H&E", "labelSource": "imported",
                            "reviewStatus": "annotated", "predictedClass": "Tumour"}


def test_metadata_on_import_twice_the_last_wins(tmp_path):
    text = ('[{"type":"Feature","id":"0f8fad5b-d9cb-469f-a165-70867728950e",'
            '"geometry":{"type":"Point","coordinates":[1,1]},'
            '"properties":{"objectType":"detection","metadata":{"reviewStatus":"annotated"},'
            '"metadata":{"reviewStatus":"checked","labelSource":"corrected"}}}]')
    (tmp_path / "t.geojson").write_text(text)
    with new_store(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "x.png", 10, 10)
        import_cells(store, [tmp_path / "t.geojson"], ImportChoices(image_id=image))
        assert [c[5:] for c in cells_of(store)] == [("corrected", "checked")]


@pytest.mark.parametrize("mode", MODES)
def test_child_objects_are_not_written_and_are_read_with_their_parent(study, tmp_path, mode):
    path, _ = _export(study, tmp_path, **MODES[mode])
    assert "childObjects" not in path.read_text()
    (tmp_path / "c.geojson").write_text(json.dumps([{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]},
        "properties": {"objectType": "detection", "childObjects": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2, 2]},
             "properties": {"objectType": "detection"}}]}}]))
    with new_store(tmp_path / "p.cvproj") as store:
        image = store.add_image(tmp_path / "x.png", 10, 10)
        plan = plan_import(store, [tmp_path / "c.geojson"], ImportChoices(image_id=image))
    assert len(plan.cells) == 2


def test_on_import_existing_objects_are_never_updated(study, tmp_path):
    """QuPath adds the objects and never updates existing ones; our import refuses ids that are
    already cells of the project (nothing written) rather than duplicating or changing them."""
    path, _ = _export(study, tmp_path)
    before = cells_of(study.store)
    plan = plan_import(study.store, [path], ImportChoices(on_unknown_class="create"))
    assert plan.problems and all("already" in p for p in plan.problems)
    assert cells_of(study.store) == before
