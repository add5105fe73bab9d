"""The one import path (cellviewer.core.io.cell_import): files in the forms the tools write
them, matched to the project's images (path, name, fingerprint), classes listed before
anything is written, µm converted, one undoable action; refusals write nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.export.tables import export_cells_csv
from cellviewer.core.io.cell_import import (
    ImportChoices,
    apply_import,
    class_set_names,
    import_cells,
    plan_import,
)
from cellviewer.core.io.geojson import export_geojson
from cellviewer.core.store import ProjectError, ProjectStore

FIXTURES = Path(__file__).parents[3] / "fixtures" / "import"
CRC_TILES = ("img1.png", "img2.png", "img3.png")


def _tiles(folder: Path, names=CRC_TILES, size=(500, 500)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    out = []
    for name in names:
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
        out.append(folder / name)
    return out


def _store(tmp_path: Path, images=(), mpp=None) -> ProjectStore:
    from cellviewer.core.io.project_import import image_info

    tmp_path.mkdir(parents=True, exist_ok=True)
    store = ProjectStore.create(tmp_path / "p.cvproj", overwrite=True)
    store.user = "tester"
    for p in images:
        w, h, _, fp = image_info(p)
        store.add_image(p, w, h, mpp=mpp, fingerprint=fp)
    return store


def _nothing_written(store: ProjectStore, n_classes: int = 0) -> bool:
    return store.cell_count() == 0 and len(store.classes()) == n_classes


def test_crc_points_go_to_the_projects_tiles_wherever_they_are(tmp_path):
    tiles = _tiles(tmp_path / "elsewhere" / "tiles")
    csv = tmp_path / "download" / "points.csv"
    csv.parent.mkdir()
    shutil.copy(FIXTURES / "crc-points.csv", csv)
    with _store(tmp_path, tiles) as store:
        plan = plan_import(store, [csv], ImportChoices(on_unknown_class="create"))
        assert plan.ready, plan.problems
        assert {m.how for m in plan.images} == {"name"}
        assert "cells (6) in 3 images" in plan.summary()
        result = apply_import(store, plan)
        assert result.n_cells == 6 and result.images_added == []
        assert [(c.name, c.key) for c in store.classes()] == [
            ("fibroblast", "1"), ("epithelial", "2"), ("inflammatory", "3"), ("others", "4")]
        cell = store.cell(result.ids[0])
        assert cell.metadata == {"split": "train"} and cell.label_source == "imported"
        assert store.undo() and _nothing_written(store)


def test_unknown_classes_are_listed_first_then_created_mapped_or_skipped(tmp_path):
    tiles = _tiles(tmp_path / "tiles")
    csv = FIXTURES / "crc-points.csv"
    with _store(tmp_path, tiles) as store:
        store.add_class("epithelial", key="1")
        plan = plan_import(store, [csv])
        assert plan.unknown_classes == {"fibroblast": 2, "inflammatory": 1, "others": 1}
        assert "--on-unknown-class" in plan.problems[0]
        with pytest.raises(ProjectError, match="fibroblast"):
            apply_import(store, plan)
        assert _nothing_written(store, 1)
        plan = plan_import(store, [csv], ImportChoices(
            class_map={"fibroblast": "epithelial", "others": None, "inflammatory": ""}))
        result = apply_import(store, plan)
        assert result.n_cells == 5 and result.skipped == 1
        assert [(c.name, c.key) for c in store.classes()] == [("epithelial", "1"),
                                                              ("inflammatory", "2")]
        names = sorted(store.class_record(store.cell(i).class_id).name for i in result.ids)
        assert names == ["epithelial"] * 4 + ["inflammatory"]


def test_images_not_in_the_project_are_refused_skipped_or_added(tmp_path):
    tiles = _tiles(tmp_path / "tiles")
    csv = FIXTURES / "crc-points.csv"
    with _store(tmp_path, tiles[:2]) as store:
        plan = plan_import(store, [csv], ImportChoices(on_unknown_class="create"))
        assert [m.name for m in plan.missing_images] == ["img3.png"]
        assert "--on-missing-image" in plan.problems[0] and "img3.png" in plan.problems[0]
        with pytest.raises(ProjectError):
            apply_import(store, plan)
        assert _nothing_written(store) and len(store.images()) == 2
        skip = import_cells(store, [csv], ImportChoices(on_missing_image="skip",
                                                        on_unknown_class="create"))
        assert skip.n_cells == 5 and skip.skipped == 1
        store.undo()
        with pytest.raises(ProjectError, match=r"img3.png' not found .*--image-folder"):
            import_cells(store, [csv], ImportChoices(on_missing_image="add",
                                                     on_unknown_class="create"))
        added = import_cells(store, [csv], ImportChoices(
            on_missing_image="add", on_unknown_class="create", image_folder=tmp_path / "tiles"))
        assert added.n_cells == 6 and len(added.images_added) == 1
        assert store.undo() and len(store.images()) == 2


def test_an_image_saved_elsewhere_under_another_name_is_found_by_fingerprint(tmp_path):
    tiles = _tiles(tmp_path / "tiles", names=("a.png",))
    copy = tmp_path / "csv" / "copy-of-a.png"
    copy.parent.mkdir()
    shutil.copy(tiles[0], copy)
    (tmp_path / "csv" / "p.csv").write_text("image,x,y\ncopy-of-a.png,1,2\n")
    with _store(tmp_path, tiles) as store:
        plan = plan_import(store, [tmp_path / "csv" / "p.csv"])
        assert [m.how for m in plan.images] == ["fingerprint"] and plan.ready
        assert apply_import(store, plan).image_ids == [store.images()[0].id]


def test_chula_class_ids_need_a_class_set(tmp_path):
    tiles = _tiles(tmp_path / "Dataset", names=("1.jpg", "2.jpg"), size=(640, 480))
    with _store(tmp_path, tiles) as store:
        plan = plan_import(store, [FIXTURES / "chula-points.csv"])
        assert "--class-set" in plan.problems[0]
        result = import_cells(store, [FIXTURES / "chula-points.csv"], ImportChoices(
            class_set=class_set_names("chula-rbc-12"), on_unknown_class="create"))
        assert result.classes_added == ["normal", "hypochromia", "elliptocyte", "macrocyte"]
        assert all(not c.name.isdigit() for c in store.classes())


def test_qupath_measurement_tables_in_micrometres_use_each_images_pixel_size(tmp_path):
    tiles = _tiles(tmp_path / "tiles", names=("slide.png",), size=(100, 100))
    path = FIXTURES / "qupath-0.4-measurements.tsv"
    with _store(tmp_path, tiles, mpp=0.5) as store:
        result = import_cells(store, [path], ImportChoices(on_unknown_class="create"))
        cells = sorted((store.cell(i).x, store.cell(i).y) for i in result.ids)
        assert cells == [(2.0, 2.0), (20.0, 10.0), (41.0, 80.5)]
        assert result.skipped == 1  # the annotation row
        assert store.cell("b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e").metadata == {
            "Object type": "Cell", "Parent": "Annotation", "ROI": "Polygon",
            "Nucleus: Area": "31.5"}
    with _store(tmp_path, tiles, mpp=None) as store:
        plan = plan_import(store, [path], ImportChoices(on_unknown_class="create"))
        assert "no known pixel size" in plan.problems[0] and "--units px" in plan.problems[0]


@pytest.mark.parametrize(("name", "cells", "regions", "classes"), [
    ("qupath-0.4.geojson", 6, 3, {"Lymphocyte", "Tumor: Positive", "Stroma"}),
    ("qupath-0.5.geojson", 3, 1, {"Immune cells", "Tumor"}),
    ("qupath-0.6-children.geojson", 3, 2, {"Tumor", "Stroma"}),
    ("cellvit-cells.geojson", 7, 0, {"Neoplastic", "Inflammatory"}),
    ("cellvit-cell_detection.geojson", 7, 0, {"Neoplastic", "Inflammatory"}),
])
def test_geojson_from_each_tool_imports_the_expected_cells_classes_and_regions(
        tmp_path, name, cells, regions, classes):
    tiles = _tiles(tmp_path / "tiles", names=("slide.png",), size=(200, 150))
    with _store(tmp_path, tiles) as store:
        choices = ImportChoices(on_unknown_class="create", image_id=store.images()[0].id)
        plan = plan_import(store, [FIXTURES / name], choices)
        assert plan.ready, plan.problems
        assert f"regions ({regions})" in " ".join(plan.summary())
        result = apply_import(store, plan)
        assert (result.n_cells, len(result.regions)) == (cells, regions)
        assert {c.name for c in store.classes()} == classes
        assert all(c.key for c in store.classes())
        # the annotation polygons are the image's regions now, in the same undoable action
        stored = store.regions(store.images()[0].id)
        assert len(stored) == len(result.regions_added) == regions, result.regions_skipped
        assert store.cell_count() == cells
        store.undo()
        assert store.cell_count() == 0 and store.regions(store.images()[0].id) == []


def test_outlines_and_probabilities_come_with_the_cells(tmp_path):
    tiles = _tiles(tmp_path / "tiles", names=("qupath-0.5.png",), size=(200, 150))
    with _store(tmp_path, tiles) as store:
        result = import_cells(store, [FIXTURES / "qupath-0.5.geojson"],
                              ImportChoices(on_unknown_class="create"))  # image by file name
        tumour = store.cell("3d4e5f60-7182-4394-a5a6-b7c8d9eafb0c")
        assert json.loads(tumour.outline) == {
            "type": "Polygon", "coordinates": [[[40, 40], [46, 40], [46, 46], [40, 46], [40, 40]]]}
        assert "outline" not in (tumour.metadata or {})
        model = store.model(result.model_id)
        assert model.classes == ["Tumor", "Immune cells"] and model.n_predictions == 1
        assert store.class_record(tumour.class_id).color == "#c80000"


def test_hovernet_json_with_a_class_set(tmp_path):
    tiles = _tiles(tmp_path / "tiles", names=("hovernet-tile.png",), size=(128, 128))
    with _store(tmp_path, tiles) as store:
        path = FIXTURES / "hovernet-tile.json"
        assert "--class-set" in plan_import(store, [path]).problems[0]
        names = "no label,neoplastic,inflammatory,connective,dead,epithelial"
        result = import_cells(store, [path], ImportChoices(
            class_set=class_set_names(names), on_unknown_class="create"))
        assert result.n_cells == 5 and len(store.classes()) == 4


def test_a_one_image_file_without_a_matching_image_asks_for_one(tmp_path):
    tiles = _tiles(tmp_path / "tiles", names=("x.png", "y.png"), size=(200, 150))
    with _store(tmp_path, tiles) as store:
        plan = plan_import(store, [FIXTURES / "napari-points.csv"])
        assert any("--image" in p for p in plan.problems)
        assert _nothing_written(store)


def test_a_bad_file_is_refused_naming_file_line_and_cause_with_nothing_written(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"image,x,y\na.png,1,2\na.png,1,\x00\n")
    with _store(tmp_path) as store, pytest.raises(ProjectError, match=r"bad.csv, line 3: .*NUL"):
        plan_import(store, [bad])


def test_cells_csv_and_geojson_exports_come_back_into_a_new_project(tmp_path):
    tiles = _tiles(tmp_path / "images" / "sub", names=("a.png", "b.png"), size=(60, 40))
    tiles += _tiles(tmp_path / "images", names=("c.png",), size=(60, 40))
    with _store(tmp_path / "one", tiles) as store:
        tumour, stroma = store.add_class("tumour"), store.add_class("stroma")
        ids = store.add_cells(store.images()[0].id, [[1.5, 2.5], [10, 20]], [tumour, stroma],
                              source=["manual", "corrected"],
                              review_status=["checked", "reviewed"])
        ids += store.add_cells(store.images()[2].id, [[30, 30]], None, source="imported")
        before = _cells(store)
        (tmp_path / "out").mkdir()
        export_cells_csv(store, tmp_path / "out" / "cells.csv")
        export_geojson(store, tmp_path / "out" / "a.geojson", store.images()[0].id)
    # the CSV's image paths are relative to the images' folder: a new project holding them
    with _store(tmp_path / "two", tiles) as store:
        result = import_cells(store, [tmp_path / "out" / "cells.csv"],
                              ImportChoices(on_unknown_class="create"))
        assert result.n_cells == 3 and _cells(store) == before
    # a new empty project: the images come with the cells from the image folder
    with _store(tmp_path / "three") as store:
        import_cells(store, [tmp_path / "out" / "cells.csv"], ImportChoices(
            on_unknown_class="create", on_missing_image="add",
            image_folder=tmp_path / "images"))
        assert _cells(store) == before
    with _store(tmp_path / "four", tiles) as store:
        import_cells(store, [tmp_path / "out" / "a.geojson"],
                     ImportChoices(on_unknown_class="create"))  # a.geojson -> a.png
        assert _cells(store) == [c for c in before if c[1] == "a.png"]


def _cells(store: ProjectStore) -> list[tuple]:
    names = {c.id: c.name for c in store.classes()}
    table = store.cell_table()
    images = store.image_names()
    return sorted(
        (table["ids"][i], images[int(table["image_id"][i])], float(table["x"][i]),
         float(table["y"][i]), names.get(int(table["class_id"][i])),
         table["label_source"][i], table["review_status"][i])
        for i in range(len(table["ids"])))


def test_regions_and_outlines_make_the_geojson_round_trip(tmp_path):
    """Export a region (with its status), an outlined cell and a plain one to QuPath GeoJSON;
    import into a new project: the region comes back as a region with its uuid, name, kind
    and status, the cells as cells with the outline in its column; a second import of the
    same file is refused (its cells are there), nothing added."""
    from cellviewer.core.regions import editing as regions

    tiles = _tiles(tmp_path / "tiles", names=("slide.png",), size=(200, 150))
    ring = [[10.0, 10.0], [30.0, 10.0], [30.0, 25.0], [10.0, 25.0], [10.0, 10.0]]
    with _store(tmp_path / "one", tiles) as store:
        image = store.images()[0].id
        cls = store.add_class("Tumor", "#c80000")
        store.add_cells(image, [[20.0, 18.0], [100.0, 100.0]], [cls, cls],
                        outlines=[json.dumps({"type": "Polygon", "coordinates": [ring]}), None])
        uuid = regions.add_rectangle(store, image, 5, 5, 150, 120, "Area A", "tumour").uuid
        regions.set_status(store, uuid, "annotated")
        out = export_geojson(store, tmp_path / "slide.geojson", image)
    with _store(tmp_path / "two", tiles) as store:
        choices = ImportChoices(on_unknown_class="create")
        result = import_cells(store, [out], choices)
        assert result.n_cells == 2 and result.regions_added == [uuid]
        (region,) = store.regions(store.images()[0].id)
        assert (region.uuid, region.name, region.kind, region.status) == \
            (uuid, "Area A", "tumour", "annotated")
        outlined = [store.cell(i) for i in result.ids if store.cell(i).outline]
        assert len(outlined) == 1
        assert json.loads(outlined[0].outline)["coordinates"][0] == ring
        again = plan_import(store, [out], ImportChoices(on_unknown_class="create"))
        assert not again.ready and "already" in " ".join(again.problems)  # refused, as cells
        assert len(store.regions(store.images()[0].id)) == 1


def test_a_detections_csv_comes_in_as_proposals_and_they_round_trip(tmp_path):
    """``cellviewer detect``'s image,x,y,score: proposals with their scores (label source
    detector, one recorded run), one undoable action; the cells CSV of such a project brings
    them back as proposals, accepted cells as accepted."""
    tiles = _tiles(tmp_path / "tiles", names=("a.png",), size=(120, 90))
    csv = tmp_path / "detections.csv"
    csv.write_text("image,x,y,score\na.png,10.5,20,0.91\na.png,50,40,0.62\na.png,80,70,0.55\n")
    with _store(tmp_path / "one", tiles) as store:
        result = import_cells(store, [csv])
        assert result.n_cells == 3
        cells = [store.cell(i) for i in result.ids]
        assert all(c.proposed and c.label_source == "detector" and c.run_id for c in cells)
        assert [round(c.score, 2) for c in cells] == [0.91, 0.62, 0.55]
        again = import_cells(store, [csv])  # the same detections again: nothing twice
        assert again.n_cells == 0 and again.skipped == 3 and store.cell_count() == 3
        assert store.undo_description().startswith("Import")  # (the first import's)
        store.accept_proposals([cells[0].id])
        out = export_cells_csv(store, tmp_path / "cells.csv")
        store.undo()
        store.undo()
        assert store.cell_count() == 0
    with _store(tmp_path / "two", tiles) as store:
        result = import_cells(store, [out])
        back = {c.id: c for c in (store.cell(i) for i in result.ids)}
        assert not back[cells[0].id].proposed and back[cells[1].id].proposed
        assert back[cells[2].id].label_source == "detector"
        assert round(back[cells[1].id].score, 2) == 0.62
