"""Hostile GeoJSON: every input the importer cannot use ends in its own error (``ProjectError``)
naming the file, the feature and the cause, and nothing is written; an update cannot move a cell
out of its image or into another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellviewer.core.io.geojson import export_geojson, import_geojson
from cellviewer.core.store import ProjectError


def feature(x: float = 5, y: float = 6, **props) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"objectType": "detection", **props}}


def collection(*features) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def _deep(n: int, leaf: str = "1") -> str:
    return "[" * n + leaf + "]" * n


HOSTILE = {
    # RecursionError inside json.load
    "nested-too-deeply": ("[" * 100_000 + "]" * 100_000, None, "nested too deeply"),
    "nested-object": ('{"type": "FeatureCollection", "features": [' + '{"a":' * 50_000 + "1"
                      + "}" * 50_000 + "]}", None, "nested too deeply"),
    # nesting that parses but is kept as metadata (and would be re-encoded at depth)
    "deep-metadata": (collection(feature(metadata={"k": json.loads(_deep(900))})), 0,
                      "nested too deeply"),
    "deep-name": (collection(feature(name=json.loads(_deep(900)))), 0, "name"),
    "deep-id": (collection({**feature(), "id": json.loads(_deep(900))}), 0, "id"),
    # OverflowError converting to float
    "huge-int-coordinate": (collection(feature(10**400, 2)), 0, "integer"),
    "huge-int-measurement": (collection(feature(measurements={"area": 10**400})), 0,
                             "integer"),
    "huge-int-polygon": (collection({"type": "Feature", "geometry": {
        "type": "Polygon", "coordinates": [[[10**400, 1], [3, 4], [5, 1]]]}}), 0, "integer"),
    "huge-int-color": (collection(feature(classification={"name": "a", "colorRGB": 10**400})),
                       0, "colorRGB"),
    # accepted before, and then export_geojson raised OverflowError on the cell's metadata
    "huge-int-metadata": (collection(feature(metadata={"k": 10**400})), 0, "too large"),
    "huge-int-metadata-2**70": (collection(feature(metadata={"k": 2**70})), 0, "too large"),
    # ValueError: Python's 4300-digit limit for int()
    "5000-digit-int": ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": ['
                       + "1" * 5000 + ", 2]}}]", None,
                       "line 1: an integer of more than 4,300 digits"),
    # AttributeError: a measurement name that is no string
    "measurement-name-number": (collection(feature(measurements=[{"name": 5, "value": 1}])), 0,
                                "measurement name"),
    # TypeError: a polygon whose ring is no list
    "polygon-ring-not-a-list": (collection({"type": "Feature", "geometry": {
        "type": "Polygon", "coordinates": [5]}}), 0, "ring"),
    "multipolygon-not-lists": (collection({"type": "Feature", "geometry": {
        "type": "MultiPolygon", "coordinates": [5, 6]}}), 0, "polygon"),
    # overflow inside the centroid (RuntimeWarning, then a NaN point)
    "polygon-overflowing-area": (collection({"type": "Feature", "geometry": {
        "type": "Polygon", "coordinates": [[[1e308, 1e308], [-1e308, 1e308],
                                            [1e308, -1e308]]]},
        "properties": {"objectType": "detection"}}), 0, "centroid"),
    # UnicodeEncodeError in SQLite: an unpaired surrogate
    "surrogate-class": ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": '
                        '[1, 2]}, "properties": {"classification": "\\ud800"}}]', 0,
                        "surrogate"),
    "surrogate-metadata-key": ('[{"type": "Feature", "geometry": {"type": "Point", '
                               '"coordinates": [1, 2]}, "properties": {"metadata": '
                               '{"\\udc00": "x"}}}]', 0, "surrogate"),
    # ValueError (allow_nan=False) in the store: a NaN inside kept metadata
    "nan-in-metadata-list": ('[{"type": "Feature", "geometry": {"type": "Point", '
                             '"coordinates": [1, 2]}, "properties": {"metadata": '
                             '{"k": [NaN]}}}]', None, None),
    # refused before, and still: non-finite coordinates
    "nan-coordinate": ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": '
                       "[NaN, 2]}}]", 0, "not finite"),
    "inf-coordinate": (collection(feature(1e400, 2)), 0, "not finite"),
    "string-coordinate": (collection(feature("12", 2)), 0, "not numbers"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_geojson_is_the_importers_own_error_and_writes_nothing(project, snapshot,
                                                                      tmp_path, name):
    text, index, cause = HOSTILE[name]
    path = tmp_path / f"{name}.geojson"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = snapshot(project.store)
    try:
        result = import_geojson(project.store, path, project.image_ids["a.png"])
    except ProjectError as e:
        message = str(e)
        where = f"{path}, feature {index}:" if index is not None else f"{path}"
        assert message.startswith(where), message
        if cause is not None:
            assert cause in message, message
        assert len(message) < 600, message  # the cause, not a dump of the input
        assert snapshot(project.store) == before
    else:
        assert cause is None, f"imported {result.n_cells} cells"  # accepted, cleaned: fine
        cells = [project.store.cell(i) for i in result.ids]
        assert all(json.dumps(c.metadata, allow_nan=False) for c in cells)


@pytest.mark.filterwarnings("error")  # no RuntimeWarning from numpy on the way either
def test_a_polygon_with_overflowing_area_is_refused_without_warnings(project, tmp_path):
    path = tmp_path / "big.geojson"
    path.write_text(HOSTILE["polygon-overflowing-area"][0])
    with pytest.raises(ProjectError, match=r"feature 0: .*centroid"):
        import_geojson(project.store, path, project.image_ids["a.png"])


def test_a_class_name_of_spaces_is_no_class(project, tmp_path):
    """A bare string of spaces already meant "unlabelled"; an object's name of spaces means the
    same, rather than a crash in ``add_class``."""
    path = tmp_path / "spaces.geojson"
    path.write_text(collection(feature(classification={"name": "   ", "color": [1, 2, 3]}),
                               feature(classification="  ")))
    result = import_geojson(project.store, path, project.image_ids["a.png"])
    assert result.n_cells == 2 and result.classes_added == []
    assert all(project.store.cell(i).class_id is None for i in result.ids)


def _exported(project, tmp_path) -> tuple[Path, dict]:
    store, image = project.store, project.image_ids["a.png"]
    store.add_cells(image, [[10, 10], [20, 20]])
    path = export_geojson(store, tmp_path / "a.geojson", image, model_id=None)
    return path, json.loads(path.read_text())


@pytest.mark.parametrize("where", [[5000, 10], [10, -1], [40.5, 3]])
def test_an_update_cannot_move_a_cell_out_of_its_image(project, snapshot, tmp_path, where):
    path, data = _exported(project, tmp_path)
    data["features"][1]["geometry"]["coordinates"] = where
    path.write_text(json.dumps(data))
    before = snapshot(project.store)
    with pytest.raises(ProjectError) as info:
        import_geojson(project.store, path, project.image_ids["a.png"], existing="update")
    message = str(info.value)
    assert message.startswith(f"{path}, feature 1: "), message
    assert "outside image a.png (40x30 pixels)" in message
    assert snapshot(project.store) == before


def test_an_update_cannot_move_a_cell_into_another_image(project, snapshot, tmp_path):
    """The file is imported into one image; a cell of another image is not moved over."""
    path, data = _exported(project, tmp_path)
    path.write_text(json.dumps(data))
    before = snapshot(project.store)
    with pytest.raises(ProjectError, match=r"feature 0: cell id .* belongs to image a.png, "
                                           r"not b.png"):
        import_geojson(project.store, path, project.image_ids["b.png"], existing="update")
    assert snapshot(project.store) == before


def test_an_update_inside_the_image_still_moves_the_cell(project, tmp_path):
    path, data = _exported(project, tmp_path)
    data["features"][1]["geometry"]["coordinates"] = [40, 30]  # the far corner: inside
    path.write_text(json.dumps(data))
    result = import_geojson(project.store, path, project.image_ids["a.png"], existing="update")
    cell = project.store.cell(data["features"][1]["id"])
    assert result.updated == 1 and (cell.x, cell.y) == (40, 30)
