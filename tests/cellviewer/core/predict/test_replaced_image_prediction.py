"""A replaced image is never predicted, cropped or written into a patch set as if it were the
recorded one: the content fingerprint is checked (once per file state) before any crop, the
refusal names the file and what changed, nothing stored is overwritten, and the user's choices
(relink, accept the new content with its predictions marked stale) let the work go ahead.

Real parts: a real project file, real image files replaced on disk, the real trainer Predictor
with an untrained model written by the trainer's own model-file writer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.io.project_import import add_images
from cellviewer.core.predict.job import run_prediction
from cellviewer.core.sources import ImageOpenError
from cellviewer.core.store import ProjectStore

CLASSES = ["a", "b", "c"]


def _picture(path: Path, w: int, h: int, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    import torch

    from trainer.engine.modelfile import save_model_file
    from trainer.models import create_model
    from trainer.predict import Predictor

    torch.manual_seed(0)
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("model") / "untrained.cvmodel"
    save_model_file(path, state_dict=create_model("cnn", len(CLASSES)).state_dict(),
                    mean_image=torch.full((3, 40, 40), 0.5),
                    meta={"arch": "cnn", "classes": CLASSES, "fov_px": 40})
    return Predictor.load(path, device="cpu")


@pytest.fixture
def project(tmp_path, predictor):
    """Two BMP images (a BMP's byte size follows from its pixel size alone, so a replacement of
    the same pixel size is also of the same byte size), cells on both, one model."""
    images = tmp_path / "images"
    images.mkdir()
    _picture(images / "one.bmp", 200, 160, 1)
    _picture(images / "two.bmp", 120, 100, 2)
    store = ProjectStore.create(tmp_path / "p.cvproj")
    for name in CLASSES:
        store.add_class(name)
    one, two = add_images(store, [images / "one.bmp", images / "two.bmp"])  # fingerprints
    rng = np.random.default_rng(3)
    store.add_cells(one, rng.uniform(20, 140, (30, 2)))
    store.add_cells(two, rng.uniform(20, 80, (12, 2)))
    model = store.add_model("m", None, "cnn", CLASSES)
    yield store, model, one, two, images
    store.close()


def _probs(store, image_id, model):
    return store.predictions(model, list(store.cell_arrays(image_id).ids)).probs


@pytest.mark.parametrize("replacement", ["same size", "other size"])
def test_prediction_refuses_a_replaced_image_and_overwrites_nothing(project, predictor,
                                                                    replacement):
    store, model, one, two, images = project
    run_prediction(store, predictor, [one, two], model_id=model)
    before = {i: _probs(store, i, model).copy() for i in (one, two)}
    recorded_bytes = (images / "one.bmp").stat().st_size
    if replacement == "same size":
        _picture(images / "one.bmp", 200, 160, 99)  # other pixels, same bytes and dimensions
        assert (images / "one.bmp").stat().st_size == recorded_bytes
    else:
        _picture(images / "one.bmp", 90, 70, 99)
    with pytest.raises(ImageOpenError) as info:
        run_prediction(store, predictor, [two, one], model_id=model)  # one is checked first too
    from cellviewer.core.sources import ImageChangedError

    error = info.value
    assert isinstance(error, ImageChangedError) and error.image_id == one
    message = str(error)
    assert "one.bmp" in message and "the file was replaced" in message
    if replacement == "same size":
        assert "its content differs" in message
        assert error.found_bytes == error.recorded_bytes == recorded_bytes
    else:
        assert "it is 90x70 pixels but the project recorded 200x160" in message
        assert f"the project recorded {recorded_bytes:,}" in message
    for image_id in (one, two):  # nothing was overwritten, not even the unchanged image's
        np.testing.assert_array_equal(_probs(store, image_id, model), before[image_id])


def test_accepting_the_new_content_marks_its_predictions_stale_and_prediction_proceeds(
        project, predictor):
    from cellviewer.core.sources import ImageChangedError
    from cellviewer.core.sources.replaced import accept_new_content, is_stale, stale_marks

    store, model, one, two, images = project
    other = store.add_model("other", None, "cnn", CLASSES)
    run_prediction(store, predictor, [one, two], model_id=model)
    run_prediction(store, predictor, [one], model_id=other)
    old = _probs(store, one, model).copy()
    recorded = store.image(one).fingerprint
    _picture(images / "one.bmp", 200, 160, 7)
    with pytest.raises(ImageChangedError):
        run_prediction(store, predictor, [one], model_id=model)
    mark = accept_new_content(store, one)
    assert mark is not None and set(mark.model_ids) == {model, other}
    assert mark.by == store.user
    record = store.image(one)
    assert record.fingerprint == mark.fingerprint != recorded
    assert is_stale(store, one, model) and is_stale(store, one, other)
    assert not is_stale(store, two, model)
    # The marks survive reopening the project (they are in the project file).
    path = store.path
    store.close()
    store = ProjectStore.open(path)
    try:
        assert set(stale_marks(store)[one].model_ids) == {model, other}
        summary = run_prediction(store, predictor, [one], model_id=model)  # proceeds
        assert summary.done == summary.total == 30
        assert not np.allclose(_probs(store, one, model), old)  # from the new pixels
        assert not is_stale(store, one, model)  # predicted again: no longer stale
        assert is_stale(store, one, other)  # the other model's predictions still are
        run_prediction(store, predictor, [one], model_id=other)
        assert stale_marks(store) == {} and store.setting("stale-predictions") is None
    finally:
        store.close()


def test_relinking_checks_the_chosen_file_against_the_record(project, predictor, tmp_path):
    from cellviewer.core.sources import ImageChangedError
    from cellviewer.core.sources.replaced import relink_checked

    store, model, one, two, images = project
    keep = tmp_path / "backup"
    keep.mkdir()
    shutil.copy2(images / "one.bmp", keep / "one.bmp")  # the original, elsewhere
    _picture(images / "one.bmp", 200, 160, 5)
    _picture(keep / "impostor.bmp", 200, 160, 6)
    with pytest.raises(ImageChangedError, match="impostor.bmp.*not the image the project recorded"):
        relink_checked(store, one, keep / "impostor.bmp")
    assert store.image(one).path == images / "one.bmp"  # unchanged
    relink_checked(store, one, keep / "one.bmp")
    assert store.image(one).path == keep / "one.bmp"
    assert run_prediction(store, predictor, [one], model_id=model).done == 30


def test_the_check_hashes_a_file_once_per_state(tmp_path):
    from cellviewer.core.sources.identity import FingerprintCache, check_image

    _picture(tmp_path / "x.bmp", 64, 48, 1)
    store = ProjectStore.create(tmp_path / "p.cvproj")
    try:
        (image_id,) = add_images(store, [tmp_path / "x.bmp"])
        record = store.image(image_id)
        cache = FingerprintCache()
        for _ in range(5):  # the gallery, the blur preview, a prediction...: hashed once
            check_image(record, cache=cache)
        assert cache.hashed == 1
        st = os.stat(tmp_path / "x.bmp")
        os.utime(tmp_path / "x.bmp", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        check_image(record, cache=cache)  # a new modification time: hashed again, still ok
        assert cache.hashed == 2
    finally:
        store.close()


def test_the_patch_set_writer_refuses_a_replaced_image_of_the_same_size(project, tmp_path):
    from cellviewer.core.training.patchset import write_project_patchset

    store, model, one, two, images = project
    first, second = (c.id for c in store.classes()[:2])
    store.set_labels(list(store.cell_arrays(one).ids), first)
    store.set_labels(list(store.cell_arrays(two).ids), second)
    _picture(images / "two.bmp", 120, 100, 42)  # same pixel and byte size, other content
    out = tmp_path / "set.patches"
    with pytest.raises(ImageOpenError, match="two.bmp.*its content differs"):
        write_project_patchset(store, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".set.patches")]


def test_cropping_with_the_record_refuses_a_replaced_image(project):
    from cellviewer.core.cells.crop import crop_patches
    from cellviewer.core.sources import ImageChangedError, open_image

    store, model, one, two, images = project
    record = store.image(one)
    with open_image(record.path) as source:
        assert len(crop_patches(source, [[50, 50]], image=record)) == 1
    _picture(images / "one.bmp", 200, 160, 11)
    with open_image(record.path) as source, pytest.raises(ImageChangedError, match="one.bmp"):
        crop_patches(source, [[50, 50]], image=record)
