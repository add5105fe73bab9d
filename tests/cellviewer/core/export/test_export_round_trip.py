"""Export → import (through cellviewer.core.io.cell_import) gives the same cells: ids, images
(two of them of the same file name), positions, labels, label sources, review statuses, for the
cells CSV and for QuPath GeoJSON; outlines go out as polygons and come back with the cell's own
point; predictions come back as a model's."""

from __future__ import annotations

import json
import math

from export_study import OUTLINE, cells_of, image_files, new_store, predictions_of

from cellviewer.core.export import run_export
from cellviewer.core.io.cell_import import ImportChoices, import_cells


def _export_all(study, tmp_path, formats, **options):
    (tmp_path / "out").mkdir(exist_ok=True)
    return run_export(study.store, tmp_path / "out" / "cells.csv", formats, options=options)


def test_the_cells_csv_comes_back_with_every_cell_into_a_project_holding_the_images(
        study, tmp_path):
    before = cells_of(study.store)
    (csv,) = _export_all(study, tmp_path, ["cells"])
    with new_store(tmp_path / "two.cvproj", image_files(study.folder)) as store:
        result = import_cells(store, [csv], ImportChoices(on_unknown_class="create"))
        assert result.n_cells == len(before) == 8
        assert cells_of(store) == before
        assert _ring(store.cell(study.ids["outline"])) == OUTLINE  # not text
    # a new, empty project: the images come with the cells, from the image folder
    with new_store(tmp_path / "three.cvproj") as store:
        import_cells(store, [csv], ImportChoices(on_unknown_class="create",
                                                 on_missing_image="add",
                                                 image_folder=study.folder))
        assert cells_of(store) == before
        assert sorted("/".join(im.path.parts[-2:]) for im in store.images()) == \
            ["images/b.png", "sub1/a.png", "sub2/a.png"]


def test_geojson_files_of_two_images_of_the_same_name_both_come_back(study, tmp_path):
    before = cells_of(study.store)
    predicted = predictions_of(study.store)
    written = _export_all(study, tmp_path, ["geojson"])
    # one file per image, none overwriting another although two images are both "a.png"
    assert len(written) == 3 and len({p.name for p in written}) == 3
    with new_store(tmp_path / "two.cvproj", image_files(study.folder)) as store:
        result = import_cells(store, written, ImportChoices(on_unknown_class="create"))
        assert result.n_cells == 8
        assert cells_of(store) == before  # ids, images, x, y, labels, sources, statuses
        assert predictions_of(store) == predicted
        outlined = store.cell(study.ids["outline"])
        assert _ring(outlined) == OUTLINE
        assert (outlined.x, outlined.y) == (15.0, 16.5)  # its own point, not the centroid
        assert {k: outlined.metadata[k] for k in ("Nucleus: Area", "stain", "name", "plane")} \
            == {"Nucleus: Area": 120.0, "stain": "H&E", "name": "nucleus 7",
                "plane": {"c": -1, "z": 2, "t": 0}}
        assert not any(k.startswith(("Prediction", "CellViewer", "predicted"))
                       for k in outlined.metadata)


def test_label_else_prediction_comes_back_as_labels_only_where_there_were_labels(study,
                                                                               tmp_path):
    """The default classification shows predictions in QuPath for unlabelled cells; the way
    back knows them for predictions, not labels."""
    written = _export_all(study, tmp_path, ["geojson"], classification="prediction")
    with new_store(tmp_path / "two.cvproj", image_files(study.folder)) as store:
        import_cells(store, written, ImportChoices(on_unknown_class="create"))
        assert cells_of(store) == cells_of(study.store)


def test_the_qupath_04_file_brings_back_cells_labels_and_predictions(study, tmp_path):
    """The 0.4 mode has no metadata: label sources and review statuses are the import's."""
    written = _export_all(study, tmp_path, ["geojson"], classification="label", qupath_04=True)
    by_image = {p.stem: p for p in written}
    with new_store(tmp_path / "two.cvproj", image_files(study.folder)) as store:
        images = {"/".join(im.path.parts[-2:]): im.id for im in store.images()}
        # no header naming the image: each file is imported into its image
        for stem, image in (("a", "sub1/a.png"), ("b", "images/b.png")):
            import_cells(store, [by_image[stem]],
                         ImportChoices(on_unknown_class="create", image_id=images[image]))
        got = {c[0]: (c[1], c[2], c[3], c[4]) for c in cells_of(store)}
        want = {c[0]: (c[1], c[2], c[3], c[4]) for c in cells_of(study.store)
                if c[1] != "sub2/a.png"}
        assert got == want
        assert {c[5] for c in cells_of(store)} == {"imported"}
        expected = {k: v for k, v in predictions_of(study.store).items() if k in want}
        assert predictions_of(store) == expected
        assert all(math.isfinite(p) for _, probs in expected.values() for p in probs)


def _ring(cell) -> list:
    """The outer ring of a cell's stored outline (the cells' outline column)."""
    return json.loads(cell.outline)["coordinates"][0]
