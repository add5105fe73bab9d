"""The trained model bundled with the demo: registered in the demo project, loadable without
torch for its header, and good on the demo's cells (so a first run can predict at once)."""

from __future__ import annotations

import numpy as np

from cellviewer.core.io.project_import import create_demo_project
from cellviewer.core.project.demo import DEMO_MODEL_NAME, demo_models, load_class_set
from cellviewer.core.store import ProjectStore
from trainer.formats.model_header import read_model_header


def test_the_demo_ships_one_small_model_of_its_classes():
    (path,) = demo_models()
    assert path.stat().st_size < 5_000_000  # float16 weights
    meta = read_model_header(path)
    assert meta["arch"] == "cnn" and meta["fov_px"] == 40
    assert meta["classes"] == sorted(c["name"] for c in load_class_set()["classes"])
    assert "not a model for diagnosis" in meta["demo"]
    assert "/tmp" not in str(meta["config"]) + str(meta["data"])  # no paths of the build


def test_the_demo_project_lists_it_once_with_every_class_matched():
    path = create_demo_project()
    with ProjectStore.open(path, readonly=True) as store:
        (model,) = store.models()
        assert model.name == DEMO_MODEL_NAME and model.arch == "cnn"
        assert None not in model.class_ids
    create_demo_project()  # reused: not registered twice
    with ProjectStore.open(path) as store:
        assert len(store.models()) == 1
        store.delete_model(model.id)  # as in a demo made before the model was bundled
    create_demo_project()
    with ProjectStore.open(path, readonly=True) as store:
        assert [m.name for m in store.models()] == [DEMO_MODEL_NAME]


def test_the_demo_model_recognises_the_demo_cells():
    import torch

    from cellviewer.core.training.patchset import write_project_patchset
    from trainer.predict import Predictor

    torch.set_num_threads(1)
    path = create_demo_project()
    with ProjectStore.open(path, readonly=True) as store:
        images = [im.id for im in store.images()[:8]]
        ps = write_project_patchset(store, path.parent / "check.patches", image_ids=images)
    predictor = Predictor.load(demo_models()[0], device="cpu")
    to_model = {c: i for i, c in enumerate(predictor.classes)}
    truth = np.array([to_model[ps.classes[k]] for k in ps.labels])
    predicted = predictor.predict(np.asarray(ps.patches)).predicted
    accuracy = float((predicted == truth).mean())
    majority = np.bincount(truth).max() / len(truth)
    assert len(truth) > 500 and accuracy > max(0.6, majority + 0.2), (accuracy, majority)
