"""The one reader (trainer.formats): files in the exact forms the tools write them become the
expected cells, regions and skipped lines, or are refused naming the file, line or feature
and the cause."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import pytest

from trainer.formats import tables
from trainer.formats.cell_rows import CellFileError, read_cell_file
from trainer.formats.geojson_read import measurement_number
from trainer.formats.tables import ColumnMap, ColumnsNeeded

FIXTURES = Path(__file__).parents[2] / "fixtures" / "import"
PANNUKE = ["no label", "neoplastic", "inflammatory", "connective", "dead", "epithelial"]


def _labels(parsed) -> list:
    return [r.label for r in parsed.rows]


def test_the_vocabularies_are_the_projects():
    from cellviewer.core.store import LABEL_SOURCES, REVIEW_STATUSES

    assert tables.LABEL_SOURCES == LABEL_SOURCES
    assert tables.REVIEW_STATUSES == REVIEW_STATUSES


def test_qupath_04_annotations_are_regions_points_and_detections_are_cells():
    parsed = read_cell_file(FIXTURES / "qupath-0.4.geojson")
    assert parsed.format == "QuPath GeoJSON"
    assert len(parsed.rows) == 6 and len(parsed.regions) == 3
    assert _labels(parsed) == ["Lymphocyte"] * 3 + ["Tumor: Positive", "Stroma", None]
    assert [(r.kind, r.name) for r in parsed.regions] == [
        ("Tumor", "Tumour area"), (None, None), ("Stroma", None)]
    assert parsed.regions[2].metadata == {"isEllipse": True}
    points = parsed.rows[:3]
    assert [(p.x, p.y) for p in points] == [(20.5, 30.25), (40.0, 50.0), (60.75, 70.0)]
    assert all(p.cell_id is None and p.metadata["geojson_id"] ==
               "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d" for p in points)
    detection = parsed.rows[3]
    assert (detection.x, detection.y) == (83.0, 83.0)
    assert detection.outline == [[80, 80], [86, 80], [86, 86], [80, 86], [80, 80]]
    assert detection.metadata == {"Area µm^2": 36.0, "DAB: Mean": 0.42, "Circularity": None}
    assert detection.color == (255, 100, 0)
    assert parsed.rows[4].cell_id == "c3d4e5f6-a7b8-4c9d-8e1f-2a3b4c5d6e7f"


def test_qupath_05_nan_strings_alpha_colours_plane_lines_and_metadata_twice():
    parsed = read_cell_file(FIXTURES / "qupath-0.5.geojson")
    assert len(parsed.rows) == 3 and len(parsed.regions) == 1
    assert parsed.skipped == [("feature 1", "a line (not a cell or a region)")]
    assert parsed.regions[0].kind == "Tissue" and parsed.regions[0].color == (20, 40, 60)
    immune, tumour, point = parsed.rows
    assert immune.label == "Immune cells" and immune.color == (160, 90, 160)
    assert immune.metadata == {"Area px^2": 36.0, "Solidity": None, "Max": None, "Min": None,
                               "Score": 0.75, "source": "model A",
                               "plane": {"c": -1, "z": 2, "t": 0}}
    assert tumour.color == (200, 0, 0)  # legacy colorRGB -3670016 = 0xFFC80000
    assert tumour.probs == {"Tumor": 0.8, "Immune cells": 0.2}
    assert parsed.prediction_model == "qupath-0.5.geojson"
    assert (point.x, point.y, point.label) == (70.0, 30.0, "Tumor")


def test_qupath_06_child_objects_are_read_with_their_parents():
    parsed = read_cell_file(FIXTURES / "qupath-0.6-children.geojson")
    assert [r.where for r in parsed.rows] == [
        "feature 0, child 0", "feature 0, child 1", "feature 0, child 2, child 0"]
    assert _labels(parsed) == ["Tumor", "Stroma", "Tumor"]
    assert [r.kind for r in parsed.regions] == ["Tumor", "Necrosis"]
    assert parsed.regions[0].metadata == {"note": "exported with children"}
    assert parsed.rows[1].label_source == "manual" and parsed.rows[1].review_status == "checked"


@pytest.mark.parametrize("wrap", ["gz", "zip"])
def test_compressed_qupath_exports_read_the_same(tmp_path, wrap):
    source = FIXTURES / "qupath-0.4.geojson"
    if wrap == "gz":
        path = tmp_path / "export.geojson.gz"
        path.write_bytes(gzip.compress(source.read_bytes()))
    else:
        path = tmp_path / "export.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.write(source, "export.geojson")
    parsed = read_cell_file(path)
    assert (len(parsed.rows), len(parsed.regions)) == (6, 3)
    assert parsed.image_hint == "export"


def test_single_features_bare_geometries_and_polygons_as_cells(tmp_path):
    path = tmp_path / "one.geojson"
    path.write_text('{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]},'
                    ' "properties": {"classification": "Tumor"}}')
    assert [(r.x, r.y, r.label) for r in read_cell_file(path).rows] == [(1, 2, "Tumor")]
    path.write_text('{"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 0]]]}')
    parsed = read_cell_file(path)
    assert (len(parsed.rows), len(parsed.regions)) == (0, 1) and parsed.notices
    assert len(read_cell_file(path, polygons_as_cells=True).rows) == 1
    path.write_text('{"type": "Feature", "geometry": {"type": "LineString", "coordinates": '
                    '[[0, 0], [4, 4]]}, "properties": {}}')
    assert read_cell_file(path).skipped == [("feature 0", "a line (not a cell or a region)")]


def test_cellvit_multipolygons_are_one_cell_per_polygon():
    parsed = read_cell_file(FIXTURES / "cellvit-cells.geojson")
    assert parsed.format == "CellViT GeoJSON" and not parsed.regions
    assert _labels(parsed) == ["Neoplastic"] * 4 + ["Inflammatory"] * 3
    assert (parsed.rows[0].x, parsed.rows[0].y) == (13.0, 13.0)
    assert parsed.rows[0].where == "feature 0, polygon 0"
    points = read_cell_file(FIXTURES / "cellvit-cell_detection.geojson")
    assert _labels(points) == ["Neoplastic"] * 4 + ["Inflammatory"] * 3


def test_hovernet_nuclei_with_and_without_a_class_set():
    parsed = read_cell_file(FIXTURES / "hovernet-tile.json")
    assert parsed.format == "HoVer-Net JSON" and parsed.numeric_classes
    assert _labels(parsed) == ["1", "2", "1", "3", "0"]
    named = read_cell_file(FIXTURES / "hovernet-tile.json", class_names=PANNUKE)
    assert not named.numeric_classes
    assert _labels(named) == ["neoplastic", "inflammatory", "neoplastic", "connective",
                              "no label"]
    assert named.rows[0].outline[0] == named.rows[0].outline[-1] == [17.0, 17.0]
    assert named.image_hint == "hovernet-tile"


def test_shipped_csv_formats():
    crc = read_cell_file(FIXTURES / "crc-points.csv")
    assert crc.format == "points table" and len(crc.rows) == 6
    assert crc.rows[0].metadata == {"split": "train"} and crc.rows[0].image == "img1.png"
    chula = read_cell_file(FIXTURES / "chula-points.csv")
    assert chula.numeric_classes and _labels(chula)[:3] == ["0", "0", "11"]
    from trainer.data.build import CHULA_RBC12_CLASSES

    named = read_cell_file(FIXTURES / "chula-points.csv", class_names=CHULA_RBC12_CLASSES)
    assert _labels(named) == ["normal", "normal", "hypochromia", "elliptocyte", "macrocyte"]


def test_qupath_measurement_tables_are_recognised_with_their_units():
    old = read_cell_file(FIXTURES / "qupath-0.4-measurements.tsv")
    assert old.format == "QuPath measurement table" and old.units == "um"
    assert _labels(old) == ["Tumor", "Stroma", None]
    assert old.skipped == [("line 5", "a QuPath annotation (not a cell)")]
    assert old.rows[0].cell_id == "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"
    assert (old.rows[1].x, old.rows[1].y) == (20.5, 40.25)
    new = read_cell_file(FIXTURES / "qupath-0.5-measurements.tsv")
    assert new.units == "px" and _labels(new) == ["Immune cells", "Tumor: Positive"]


def test_napari_points_have_row_and_column_axes_and_no_image():
    parsed = read_cell_file(FIXTURES / "napari-points.csv")
    assert parsed.format == "napari points CSV"
    assert [(r.x, r.y, r.image) for r in parsed.rows][:2] == [(30.0, 12.0, None),
                                                               (10.25, 40.5, None)]


def test_the_trainers_predict_csv_brings_its_probabilities(tmp_path):
    path = tmp_path / "pred.csv"
    path.write_text("cell_id,source,x,y,label,predicted,confidence,p_a,p_b\n"
                    "points.csv:2,a.png,1.5,2.5,a,b,0.700000,0.300000,0.700000\n"
                    "points.csv:3,a.png,3.0,4.0,,a,0.900000,0.900000,0.100000\n")
    parsed = read_cell_file(path)
    assert parsed.format == "CellViewer predict CSV" and parsed.prediction_model == "pred.csv"
    assert [r.probs for r in parsed.rows] == [{"a": 0.3, "b": 0.7}, {"a": 0.9, "b": 0.1}]
    assert _labels(parsed) == ["a", None] and parsed.rows[0].metadata == {}


@pytest.mark.parametrize(("encoding", "notice"), [
    ("utf-8", False), ("utf-8-sig", False), ("utf-16", False), ("cp1252", True)])
def test_encodings_and_delimiters(tmp_path, encoding, notice):
    path = tmp_path / "p.csv"
    path.write_text("Image;X;Y;Class\nméta.png;1,5;2;tumeur\n".replace(",5", ".5"),
                    encoding=encoding)
    parsed = read_cell_file(path)
    assert [(r.image, r.x, r.label) for r in parsed.rows] == [("méta.png", 1.5, "tumeur")]
    assert bool(parsed.notices) == notice
    if notice:
        assert str(path) in parsed.notices[0] and "cp1252" in parsed.notices[0]


@pytest.mark.parametrize(("data", "where", "cause"), [
    (b"image,x,y\na.png,1,2\nb.png\x00,1,2\n", "line 3", "NUL"),
    (b"image,x,y\na.png,1,2\n\x81.png,1,2\n", "line 3", "neither UTF-8"),
    (b"image,x,y\na.png,1\n", "line 2", "expected 3 fields, found 2"),
    (b"image,x,y\na.png,one,2\n", "line 2", "x 'one' is not a number"),
    (b"", "line 1", "empty file"),
    (b"a;b\n1;2\n", "line 1", "missing column(s) image, x, y"),
])
def test_bad_tables_name_the_file_the_line_and_the_cause(tmp_path, data, where, cause):
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    with pytest.raises(CellFileError) as info:
        read_cell_file(path)
    assert str(info.value).startswith(f"{path}, {where}: "), str(info.value)
    assert cause in str(info.value)


def test_unrecognised_columns_ask_for_a_map_and_read_with_it(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text("slide,cx,cy,type\ns1.png,1,2,t\ns1.png,3,4,u\n")
    with pytest.raises(ColumnsNeeded) as info:
        read_cell_file(path)
    assert info.value.header == ["slide", "cx", "cy", "type"]
    assert info.value.sample == [["s1.png", "1", "2", "t"], ["s1.png", "3", "4", "u"]]
    parsed = read_cell_file(path, columns=ColumnMap("cx", "cy", "slide", "type"))
    assert [(r.image, r.x, r.y, r.label) for r in parsed.rows] == [
        ("s1.png", 1, 2, "t"), ("s1.png", 3, 4, "u")]


@pytest.mark.parametrize(("text", "where", "cause"), [
    ('[{"type": "Feature", "geometry": {"type": "Curve"}}]', "feature 0", "geometry 'Curve'"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": '
     '"Point", "coordinates": [1, 2]}, "properties": {"measurements": {"a": "high"}}}]}',
     "feature 0", "is not a number"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, '
     '"properties": {"classification": {"name": "a", "color": [1, 2]}}}]', "feature 0",
     "is not [r, g, b]"),
    ('{"nuc": {"7": {"centroid": [1, "x"], "type": 1}}}', "nucleus '7'", "not numbers"),
])
def test_bad_json_names_the_feature(tmp_path, text, where, cause):
    path = tmp_path / "bad.geojson"
    path.write_text(text)
    with pytest.raises(CellFileError) as info:
        read_cell_file(path)
    assert str(info.value).startswith(f"{path}, {where}: "), str(info.value)
    assert cause in str(info.value)


def test_measurement_numbers_in_every_spelling_qupath_reads():
    assert measurement_number("Infinity") == float("inf")
    assert measurement_number("-INF") == float("-inf")
    assert measurement_number("nan") != measurement_number("nan")  # NaN
    assert measurement_number(" 1.5e3 ") == 1500.0 and measurement_number("2d") == 2.0
    assert measurement_number("high") is None


def test_a_trainer_crc_build_reads_the_same_rows(tmp_path):
    """build-patchset's reader is the app's: a semicolon cp1252 file with the CRC columns."""
    from trainer.data.build import read_points_csv

    path = tmp_path / "crc.csv"
    shutil.copy(FIXTURES / "crc-points.csv", path)
    text = path.read_text().replace(",", ";")
    path.write_bytes(text.encode("cp1252"))
    table = read_points_csv(path, split="train")
    assert table.images == ["img1.png"] * 3 + ["img2.png"] * 2
    assert table.classes == ["epithelial", "fibroblast", "inflammatory", "others"]
