"""Exporting a selection of cells (``export_cells_csv(cell_ids=...)``) and the bulk arrays the
viewer reads (``cell_arrays``/``cells_in_rect``), both checked cell by cell against the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellviewer.core.export import export_cells_csv
from cellviewer.core.store import REVIEW_STATUSES, ProjectStore


@pytest.fixture
def store(tmp_path):
    """Two images, three classes, 60 cells (some unlabelled, every review status), metadata on
    a few, and one model's predictions for every other cell."""
    rng = np.random.default_rng(3)
    with ProjectStore.create(tmp_path / "p.cvproj") as s:
        images = [s.add_image(tmp_path / f"img{i}.png", 400, 300, mpp=0.5 if i == 0 else None)
                  for i in range(2)]
        classes = [s.add_class(n) for n in ("tumour", "stroma", "immune")]
        for image in images:
            xy = rng.uniform(0, 1, (30, 2)) * (400, 300)
            labels = rng.choice(classes + [-1], 30)
            statuses = [REVIEW_STATUSES[i % len(REVIEW_STATUSES)] for i in range(30)]
            meta = [{"score": str(i)} if i % 7 == 0 else None for i in range(30)]
            s.add_cells(image, xy, labels, source="imported", review_status=statuses,
                        metadata=meta)
        ids = [c for im in images for c in s.cell_arrays(im).ids.tolist()]
        model = s.add_model("m", None, "cnn", ["tumour", "stroma", "immune"])
        probs = rng.dirichlet([1, 1, 1], len(ids[::2])).astype(np.float32)
        s.put_predictions(model, ids[::2], probs)
        yield s


def test_selection_export_has_exactly_the_selected_rows(store, tmp_path):
    images = [im.id for im in store.images()]
    every = [c for im in images for c in store.cell_arrays(im).ids.tolist()]
    rng = np.random.default_rng(0)
    chosen = [every[i] for i in rng.choice(len(every), 17, replace=False)]  # both images
    path = export_cells_csv(store, tmp_path / "sel.csv", cell_ids=chosen + chosen[:2])
    df = pd.read_csv(path, keep_default_na=False, dtype={"cell_id": str})
    # One row per selected cell (duplicates in the selection ignored), in store order.
    assert df["cell_id"].tolist() == [c for c in every if c in set(chosen)]
    classes = {c.id: c.name for c in store.classes()}
    model = store.models()[0].id
    pred = store.predictions(model, df["cell_id"].tolist())
    for k, row in df.iterrows():
        cell = store.cell(row["cell_id"])
        assert (row["x"], row["y"]) == (cell.x, cell.y)
        assert row["image"] == store.image(cell.image_id).name
        assert row["label"] == (classes[cell.class_id] if cell.class_id is not None else "")
        assert (row["label_source"], row["review_status"]) == ("imported", cell.review_status)
        assert str(row["score"]) == cell.metadata.get("score", "")
        if pred.has_prediction[k]:
            assert row["predicted_class"] == pred.predicted_names[k]
            assert float(row["confidence"]) == pytest.approx(float(pred.confidence[k]), abs=1e-6)
            assert int(row["model_id"]) == model
        else:
            assert row["predicted_class"] == "" and row["confidence"] == ""
    # image_ids and cell_ids together: the selected cells of those images only.
    first = images[0]
    df1 = pd.read_csv(export_cells_csv(store, tmp_path / "sel1.tsv", image_ids=[first],
                                       cell_ids=chosen), sep="\t", dtype={"cell_id": str})
    assert df1["cell_id"].tolist() == [c for c in store.cell_arrays(first).ids.tolist()
                                       if c in set(chosen)]
    # An empty selection: the header only.
    assert pd.read_csv(export_cells_csv(store, tmp_path / "none.csv", cell_ids=[])).empty


def test_unknown_cell_id_names_it_and_keeps_the_old_file(store, tmp_path):
    target = tmp_path / "sel.csv"
    target.write_text("previous export\n")
    some = store.cell_arrays(store.images()[0].id).ids.tolist()[:3]
    with pytest.raises(KeyError, match="no-such-cell"):
        export_cells_csv(store, target, cell_ids=some + ["no-such-cell"])
    assert target.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".sel")] == []


def test_cell_arrays_and_rect_match_the_store(store):
    image = store.images()[1].id
    arrays = store.cell_arrays(image)
    assert len(arrays) == 30
    assert (arrays.ids.dtype, arrays.xy.dtype, arrays.class_id.dtype, arrays.review.dtype,
            arrays.rows.dtype) == (object, np.float64, np.int64, np.int8, np.int64)
    assert arrays.xy.shape == (30, 2) and arrays.xy.flags.c_contiguous
    assert len(set(arrays.rows.tolist())) == 30
    for k, cell_id in enumerate(arrays.ids.tolist()):
        cell = store.cell(cell_id)
        assert isinstance(cell_id, str)
        assert tuple(arrays.xy[k]) == (cell.x, cell.y)
        assert arrays.class_id[k] == (-1 if cell.class_id is None else cell.class_id)
        assert REVIEW_STATUSES[arrays.review[k]] == cell.review_status
    assert (arrays.class_id == -1).any()  # some unlabelled cells were checked
    inside = (arrays.xy[:, 0] >= 100) & (arrays.xy[:, 0] <= 300) & (arrays.xy[:, 1] <= 150)
    rect = store.cells_in_rect(image, 300, 150, 100, 0)  # corners in any order
    assert sorted(rect.ids.tolist()) == sorted(arrays.ids[inside].tolist())
    order = {c: k for k, c in enumerate(arrays.ids.tolist())}
    for k, cell_id in enumerate(rect.ids.tolist()):
        j = order[cell_id]
        assert (tuple(rect.xy[k]), rect.class_id[k], rect.review[k], rect.rows[k]) == (
            tuple(arrays.xy[j]), arrays.class_id[j], arrays.review[j], arrays.rows[j])
    empty = store.cells_in_rect(image, 1000, 1000, 2000, 2000)
    assert len(empty) == 0 and empty.xy.shape == (0, 2)
