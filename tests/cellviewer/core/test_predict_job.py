"""Batch prediction (crop + infer + store) on a real project, a real model file and the real
trainer Predictor: results stored per model, progress reported, cancellation within a chunk or
two with everything reported before it kept, class matching by name.

The model here is an untrained CNN written with the trainer's own model-file writer: these
tests are about the pipeline, not accuracy (the UI tests train a model)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.predict.job import (
    blur_sensitivity,
    match_classes,
    run_prediction,
)
from cellviewer.core.project.demo import demo_points, load_class_set
from cellviewer.core.store import ProjectStore
from cellviewer.paths import demo_dir

N_IMAGES = 6


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> object:
    import torch

    from trainer.engine.modelfile import save_model_file
    from trainer.models import create_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    classes = [c["name"] for c in load_class_set()["classes"]]
    model = create_model("cnn", len(classes))
    path = tmp_path_factory.mktemp("model") / "untrained.cvmodel"
    save_model_file(path, state_dict=model.state_dict(), mean_image=torch.full((3, 40, 40), 0.5),
                    meta={"arch": "cnn", "classes": classes, "fov_px": 40})
    return path


@pytest.fixture
def demo_store(tmp_path) -> ProjectStore:
    store = ProjectStore.create(tmp_path / "demo.cvproj")
    ids = {c["name"]: store.add_class(c["name"], c["color"], c["key"] or None)
           for c in load_class_set()["classes"]}
    by_image: dict[str, list] = {}
    for p in demo_points():
        by_image.setdefault(p.image, []).append(p)
    for name in sorted(by_image)[:N_IMAGES]:
        path = demo_dir() / name
        width, height = Image.open(path).size
        image_id = store.add_image(path, width, height)
        pts = by_image[name]
        store.add_cells(image_id, np.array([[p.x, p.y] for p in pts]),
                        [ids[p.label] for p in pts], source="imported")
    yield store
    store.close()


@pytest.fixture(scope="module")
def predictor(model_file):
    from trainer.predict import Predictor

    return Predictor.load(model_file, device="cpu")


def test_predicts_every_cell_and_stores_per_model(demo_store, predictor, model_file):
    store = demo_store
    model_id = store.add_model("untrained", str(model_file), "cnn", predictor.classes)
    image_ids = [r.id for r in store.images()]
    seen: list = []
    summary = run_prediction(store, predictor, image_ids, model_id=model_id, first_chunk=64,
                             max_chunk=128, progress=seen.append)
    total = store.cell_count()
    assert summary.total == summary.done == total > 300
    assert not summary.cancelled
    # Progress: monotonic, ends at the total, and the chunks cover every cell exactly once.
    done = [p.done for p in seen]
    assert done == sorted(done) and done[-1] == total and len(seen) >= 3
    chunk_ids = [cid for p in seen for cid in p.chunk.cell_ids]
    assert len(chunk_ids) == len(set(chunk_ids)) == total
    assert seen[-1].cells_per_s > 0 and seen[-1].eta_s == 0
    # Stored probabilities equal a direct prediction of the same crops.
    first_image = image_ids[0]
    arrays = store.cell_arrays(first_image)
    stored = store.predictions(model_id, list(arrays.ids))
    from cellviewer.core.cells.crop import crop_patches
    from cellviewer.core.sources import open_image

    source = open_image(store.image(first_image).path)
    direct = predictor.predict(crop_patches(source, arrays.xy, 40).patches).probs
    source.close()
    np.testing.assert_allclose(stored.probs, direct, atol=1e-5)
    assert (stored.predicted_class_id >= 0).all()  # every model class is a project class
    # A second model keeps its own predictions: results are per model.
    other = store.add_model("again", str(model_file), "cnn", predictor.classes)
    run_prediction(store, predictor, [first_image], model_id=other)
    assert store.models()[1].n_predictions == len(arrays.ids)
    assert store.models()[0].n_predictions == total


def test_only_the_given_cells_are_predicted(demo_store, predictor, model_file):
    store = demo_store
    model_id = store.add_model("m", str(model_file), "cnn", predictor.classes)
    image_id = store.images()[1].id
    some = list(store.cell_arrays(image_id).ids[:5])
    summary = run_prediction(store, predictor, [image_id], model_id=model_id, cell_ids=some)
    assert summary.done == 5
    assert store.model(model_id).n_predictions == 5
    assert np.isfinite(store.predictions(model_id, some).probs).all()


def test_cancel_stops_within_two_chunks_and_keeps_what_was_reported(
        demo_store, predictor, model_file):
    store = demo_store
    model_id = store.add_model("m", str(model_file), "cnn", predictor.classes)
    cancel = threading.Event()
    seen: list = []

    def progress(p):
        seen.append(p)
        if len(seen) == 1:
            cancel.set()

    summary = run_prediction(store, predictor, [r.id for r in store.images()],
                             model_id=model_id, first_chunk=64, max_chunk=64,
                             progress=progress, cancel=cancel)
    assert summary.cancelled
    # After the cancel only the chunks already in flight finish: the one in the model and
    # the one waiting for the store (results computed are kept, not thrown away).
    assert len(seen) <= 3
    assert 0 < summary.done < summary.total
    # Everything reported as done is in the store, nothing more.
    assert store.model(model_id).n_predictions == summary.done


def test_a_broken_image_is_reported_with_its_name(demo_store, predictor, model_file, tmp_path):
    store = demo_store
    model_id = store.add_model("m", str(model_file), "cnn", predictor.classes)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    image_id = store.add_image(bad, 100, 100)
    store.add_cells(image_id, np.array([[50.0, 50.0]]))
    with pytest.raises(Exception, match="broken.png"):
        run_prediction(store, predictor, [image_id], model_id=model_id)


def test_class_matching_by_name():
    same = match_classes(["a", "b"], ["a", "b"])
    assert same.identical and same.compatible
    subset = match_classes(["b", "a"], ["a", "b", "c"])
    assert subset.compatible and not subset.identical
    assert subset.mapping == {0: 1, 1: 0} and subset.missing_in_model == ["c"]
    case = match_classes(["A", "b"], ["a", "b"])
    assert not case.compatible and case.mappable and case.case_differs == ["A"]
    foreign = match_classes(["x", "b"], ["a", "b"])
    assert not foreign.compatible and foreign.mappable
    assert foreign.missing_in_project == ["x"] and "Not in the project: x" in foreign.describe()
    none = match_classes(["x", "y"], ["a", "b"])
    assert not none.mappable and "cannot be used" in none.describe()


def test_blur_sensitivity_is_total_variation():
    clean = np.array([[1.0, 0.0], [0.5, 0.5]])
    blurred = np.array([[0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(blur_sensitivity(clean, blurred), [1.0, 0.0])


def test_cropping_takes_one_thread_beside_a_cpu_model(demo_store, predictor, monkeypatch):
    # On the CPU the model's intra-op threads fill the cores: a pool of croppers per chunk
    # would only take them from the model in turns. Beside an accelerator the cropper's own
    # default (a few threads) stays: cropping sets the pace there.
    from cellviewer.core.cells import crop
    from cellviewer.core.predict.job import crop_workers_for

    assert crop_workers_for(predictor) == 1
    assert crop_workers_for(type("Gpu", (), {"device": type("D", (), {"type": "cuda"})()})()) \
        is None
    assert crop_workers_for(object()) is None  # a predictor that does not say: the default
    real, workers = crop.crop_patches, []

    def recording(*args, **kwargs):
        workers.append(kwargs.get("workers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(crop, "crop_patches", recording)
    image_ids = [r.id for r in demo_store.images()]
    summary = run_prediction(demo_store, predictor, image_ids, store_results=False)
    assert summary.done == summary.total > 0
    assert workers and set(workers) == {1}
    workers.clear()
    run_prediction(demo_store, predictor, image_ids[:1], store_results=False, crop_workers=3)
    assert workers and set(workers) == {3}
