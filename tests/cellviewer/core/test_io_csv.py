"""Points CSV import (all or nothing, errors naming file and line) and the CSV exports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellviewer.core.export import atomic_write, export_cells_csv, export_summary_csv
from cellviewer.core.io.points_csv import import_points_csv, read_points_csv
from cellviewer.core.io.project_import import create_project_from_points
from cellviewer.core.store import ProjectError, ProjectStore
from cellviewer.paths import class_sets_dir

POINTS = """image,x,y,class,split,score
tiles/a.png,10.5,20.25,tumour,train,0.5
tiles/a.png,100,50,stroma,train,
tiles/b.png,5,5,,validation,1
tiles/b.png,150,90,tumour,train,2
"""


@pytest.fixture
def data(tmp_path):
    """Two real PNG tiles and a points CSV beside them."""
    (tmp_path / "tiles").mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (200, 100)), ("b.png", (160, 120))):
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "tiles" / name)
    (tmp_path / "points.csv").write_text(POINTS)
    return tmp_path


@pytest.fixture
def store(tmp_path):
    with ProjectStore.create(tmp_path / "p.cvproj") as s:
        yield s


def test_import_keeps_cells_classes_images_and_extra_columns(data, store):
    result = import_points_csv(store, data / "points.csv")
    assert result.n_cells == 4 and result.classes_added == ["tumour", "stroma"]
    images = {im.name: im for im in store.images()}
    assert (images["a.png"].width, images["a.png"].height) == (200, 100)
    assert images["b.png"].fingerprint.startswith("v1:")
    first = store.cell(result.ids[0])
    assert (first.x, first.y, first.label_source) == (10.5, 20.25, "imported")
    assert store.class_record(first.class_id).name == "tumour"
    assert first.metadata == {"split": "train", "score": "0.5"}
    assert store.cell(result.ids[1]).metadata == {"split": "train"}  # empty cells dropped
    assert store.cell(result.ids[2]).class_id is None
    # One undoable action: undo removes cells, classes and images together.
    assert store.operations(limit=1)[0].description == "Import points.csv"
    store.undo()
    assert (store.cell_count(), store.classes(), store.images()) == (0, [], [])


def _empty(store) -> bool:
    return not (store.cell_count() or store.classes() or store.images()
                or store.operations(None))


@pytest.mark.parametrize(("text", "line", "message"), [
    (POINTS.replace("100,50", "100,fifty"), 3, "y 'fifty' is not a number"),
    (POINTS.replace("150,90,tumour", "150,90,tumour,extra"), 5, "expected 6 fields, found 7"),
    (POINTS.replace("image,x,y", "img,x,y"), 1, "missing column(s) image"),
    (POINTS + "tiles/c.png,1,1,tumour,train,1\n", 6, "image 'tiles/c.png' not found"),
    (POINTS.replace("150,90", "150,900"), 5, "lies outside image"),
    (POINTS.replace("5,5", "inf,5"), 4, "not a finite number"),
    ("image,x,y,class\n", None, "no cells"),
    ("", 1, "empty"),
])
def test_malformed_csv_names_file_and_line_and_imports_nothing(data, store, text, line,
                                                               message):
    (data / "points.csv").write_text(text)
    with pytest.raises(ProjectError) as info:
        import_points_csv(store, data / "points.csv")
    where = f"{data / 'points.csv'}, line {line}" if line else str(data / "points.csv")
    assert str(info.value).startswith(where), str(info.value)
    assert message in str(info.value)
    assert _empty(store)


def test_a_broken_image_names_its_line_and_nothing_is_imported(data, store):
    (data / "tiles" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ProjectError, match=r"line 4: image 'tiles/b.png' cannot be opened"):
        import_points_csv(store, data / "points.csv")
    assert _empty(store)


def test_integer_classes_with_names_and_tab_separated_files(data, store):
    (data / "points.tsv").write_text("image\tx\ty\tclass_id\na.png\t1\t2\t1\na.png\t3\t4\t0\n")
    result = import_points_csv(store, data / "points.tsv", data / "tiles",
                               class_names=["normal", "macrocyte"])
    names = [store.class_record(store.cell(i).class_id).name for i in result.ids]
    assert names == ["macrocyte", "normal"]
    with pytest.raises(ProjectError, match="line 2: class_id '1' is neither a class id 0..0"):
        read_points_csv(data / "points.tsv", class_names=["only"])


def test_export_has_one_row_per_cell_with_every_column(data, store):
    result = import_points_csv(store, data / "points.csv")
    a = store.image_id_for_path(data / "tiles" / "a.png")
    model = store.add_model("cnn", None, "cnn", ["stroma", "tumour"])
    store.put_predictions(model, result.ids[:3],
                          np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]], np.float32))
    store.user = "dr-lee"
    store.set_labels(result.ids[1:2], store.class_id("tumour"), source="corrected")
    store.set_review_status(result.ids[:1], "reviewed")
    out = export_cells_csv(store, data / "cells.csv")
    df = pd.read_csv(out)
    assert list(df.columns) == [
        "cell_id", "image", "x", "y", "x_um", "y_um", "label", "label_source",
        "review_status", "predicted_class", "confidence", "p_stroma", "p_tumour", "model_id",
        "model", "model_file", "model_sha256", "updated_by", "updated_at", "split", "score"]
    assert df["cell_id"].tolist() == result.ids
    assert df["image"].tolist() == ["a.png", "a.png", "b.png", "b.png"]
    row = df.iloc[1]
    assert (row.label, row.label_source, row.updated_by) == ("tumour", "corrected", "dr-lee")
    assert (row.predicted_class, row.confidence, row.model_id) == ("stroma", 0.9, model)
    assert df.iloc[0].review_status == "reviewed" and df.iloc[0].p_tumour == 0.8
    assert df.iloc[0].updated_by == "test-user"
    assert pd.isna(df.iloc[3][["predicted_class", "confidence", "p_tumour", "model_id"]]).all()
    assert pd.isna(df.iloc[0].x_um)  # PNG tiles: pixel size unknown
    assert store.image(a).mpp is None
    assert not list(data.glob(".cells.csv.*"))  # no temporary file left behind


def test_export_gives_micrometres_when_the_pixel_size_is_known(tmp_path, store):
    slide = store.add_image(tmp_path / "slide.svs", 2220, 2967, mpp=0.499)
    store.add_cells(slide, [[100.0, 200.0]])
    df = pd.read_csv(export_cells_csv(store, tmp_path / "cells.csv", model_id=None))
    assert (df.x_um[0], df.y_um[0]) == pytest.approx((49.9, 99.8))
    assert df.image[0] == "slide.svs"


def test_exported_csv_imports_back_into_an_equal_project(data, store, tmp_path):
    import_points_csv(store, data / "points.csv")
    ids = store.query_cells(order=None)
    store.set_review_status(ids[:2], "checked")
    store.set_labels(ids[2:3], store.class_id("stroma"), source="model-accepted")
    export_cells_csv(store, data / "tiles" / "cells.csv")
    with ProjectStore.create(tmp_path / "again.cvproj") as again:
        import_points_csv(again, data / "tiles" / "cells.csv")
        for cell_id in ids:
            a, b = store.cell(cell_id), again.cell(cell_id)
            assert (a.x, a.y, a.label_source, a.review_status, a.metadata) == \
                (b.x, b.y, b.label_source, b.review_status, b.metadata)
            assert store.class_record(a.class_id).name == again.class_record(b.class_id).name \
                if a.class_id else b.class_id is None


def test_summary_counts_labels_predictions_and_agreement(data, store):
    result = import_points_csv(store, data / "points.csv")
    model = store.add_model("cnn", None, "cnn", ["tumour", "stroma"])
    # a: tumour->tumour (agree), stroma->tumour; b: unlabelled->stroma, tumour (no prediction)
    store.put_predictions(model, result.ids[:3],
                          np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6]], np.float32))
    store.set_review_status(result.ids[:1], "checked")
    df = pd.read_csv(export_summary_csv(store, data / "summary.csv"))
    rows = {(r.image, r["class"]): r for _, r in df.iterrows()}
    t = rows[("a.png", "tumour")]
    assert (t.cells, t.reviewed, t.with_prediction, t.predicted, t.agree, t.agreement) == \
        (1, 1, 1, 2, 1, 1.0)
    s = rows[("a.png", "stroma")]
    assert (s.cells, s.with_prediction, s.agree, s.agreement) == (1, 1, 0, 0.0)
    u = rows[("b.png", "(unlabelled)")]
    assert (u.cells, u.with_prediction, u.agree) == (1, 1, 0)
    bt = rows[("b.png", "tumour")]
    assert (bt.cells, bt.with_prediction) == (1, 0) and np.isnan(bt.agreement)
    total = rows[("(all images)", "tumour")]
    assert (total.cells, total.predicted, total.agree) == (2, 2, 1)


def test_summary_of_a_selection_counts_only_the_selected_cells(data, store):
    result = import_points_csv(store, data / "points.csv")
    chosen = result.ids[1:3]  # a.png's stroma cell and b.png's unlabelled one
    df = pd.read_csv(export_summary_csv(store, data / "selection.csv", cell_ids=chosen))
    counts = {(r.image, r["class"]): r.cells for _, r in df.iterrows()}
    assert counts[("a.png", "stroma")] == 1 and counts[("a.png", "tumour")] == 0
    assert counts[("b.png", "(unlabelled)")] == 1 and counts[("b.png", "tumour")] == 0
    assert df[df.image == "(all images)"].cells.sum() == 2


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write("half of the new")
        raise RuntimeError("disk trouble")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with pytest.raises(ProjectError, match="does not exist"), \
            atomic_write(tmp_path / "nope" / "x.csv"):
        pass


@pytest.mark.realdata
def test_crc_points_become_a_project(shared_data, tmp_path):
    classes = json.loads((class_sets_dir() / "crc-histophenotypes.json").read_text())["classes"]
    store, result = create_project_from_points(
        shared_data / "crc" / "points.csv", shared_data / "crc" / "tiles",
        tmp_path / "crc.cvproj", classes=classes)
    with store:
        assert result.n_cells == 17_801 and len(store.images()) == 80
        assert result.classes_added == []  # the class set's four, with its colours and keys
        assert [(c.name, c.key) for c in store.classes()] == [
            (c["name"], c["key"]) for c in classes]
        counts = {c.name: len(store.query_cells(class_id=c.id, order=None))
                  for c in store.classes()}
        assert counts == {"epithelial": 6229, "inflammatory": 5199, "fibroblast": 4536,
                          "others": 1837}
        assert store.cell(result.ids[0]).metadata == {"split": "train"}
