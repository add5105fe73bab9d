"""The model panel with a model trained in the test: its description, the class check, the
devices, and batch prediction in the background with progress and cancellation."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_predict_support import wait_for

from cellviewer.core.store import ProjectStore
from cellviewer.ui.predict.model_panel import SCOPE_PROJECT, ModelPanel, ModelSession

# The trained model and project fixtures (registered once, so the model is trained once).
pytest_plugins = ["test_predict_support"]


@pytest.fixture
def panel_session(qtbot, store):
    session = ModelSession()
    session.set_store(store)
    panel = ModelPanel(session)
    qtbot.addWidget(panel)
    yield panel, session
    assert panel.wait_idle()  # background reads and model loading end before the widgets go
    if session.job is not None:
        assert session.job.wait(10_000)  # ended: it does not wait for the event loop


def test_panel_describes_the_model_and_predicts_the_project(qtbot, store, trained_model,
                                                            panel_session):
    panel, session = panel_session
    panel.load_model(trained_model.path)
    wait_for(qtbot, lambda: session.choice is not None)
    text = panel.info.text()
    assert "mlp" in text
    classes = trained_model.finished["classes"]
    assert f"{len(classes)}: {classes[0]}" in text  # the model's classes, listed
    assert "accuracy 0." in text and "macro-F1" in text  # validation metrics
    assert "train" in text and "validation" in text  # training data size
    # The model was registered in the project, its classes matched to the project's by name.
    record = store.models()[-1]
    assert record.classes == classes and None not in record.class_ids
    # Devices: the list has CPU, and the device in use is shown once the model is loaded.
    panel.list_devices()
    wait_for(qtbot, lambda: panel.device_combo.findData("cpu") >= 0)
    wait_for(qtbot, lambda: "CPU" in panel.device_label.text())
    import torch

    if not torch.cuda.is_available():  # on the CPU for want of a GPU: why, and what to do
        assert "no GPU:" in panel.device_label.text()
        assert "PyTorch" in panel.device_label.toolTip()

    progress = []
    session.jobProgress.connect(progress.append)
    with qtbot.waitSignal(session.jobFinished, timeout=120000) as finished:
        job = panel.predict(SCOPE_PROJECT)
        assert job is not None and job.is_running()
        # The UI thread is free while the job runs: the panel shows it and offers Cancel.
        assert panel.cancel_button.isEnabled() and not panel.predict_button.isEnabled()
    summary = finished.args[0]
    total = store.cell_count()
    assert summary.done == summary.total == total and not summary.cancelled
    assert progress and progress[-1].done == total
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    # a first chunk of a few cells: with a slow model, Cancel (and closing) still act at once
    assert progress[0].done == 16
    assert "cells/s" in panel.rate_label.text()
    assert panel.progress.value() == 1000
    # Stored in the project, per model: every cell has this model's probabilities.
    assert store.model(record.id).n_predictions == total
    ids = store.query_cells(order=None)
    stored = store.predictions(record.id, ids)
    assert np.isfinite(stored.probs).all()
    np.testing.assert_allclose(stored.probs.sum(axis=1), 1.0, atol=1e-4)
    # Better than chance on the cells it was trained on (a real, trained model).
    labels = np.array([store.cell(i).class_id for i in ids])
    assert np.mean(stored.predicted_class_id == labels) > 0.4


def test_cancel_stops_the_job_and_keeps_what_it_stored(qtbot, store, trained_model,
                                                       panel_session):
    panel, session = panel_session
    panel.load_model(trained_model.path)
    wait_for(qtbot, lambda: session.choice is not None)
    first = []

    def on_progress(p):
        if not first:
            first.append(p.done)
            panel.cancel_button.click()

    session.jobProgress.connect(on_progress)
    image_ids = [r.id for r in store.images()]
    with qtbot.waitSignal(session.jobFinished, timeout=120000) as finished:
        # Small chunks (about 25 for the project), so the cancel lands mid-way.
        session.predict_scope(image_ids, chunk_seconds=0.01, min_chunk=32)
    summary = finished.args[0]
    assert summary.cancelled and 0 < summary.done < summary.total
    assert "Cancelled" in panel.rate_label.text()
    assert not panel.cancel_button.isEnabled() and panel.predict_button.isEnabled()
    # What the job reported as done is in the project (read through another connection).
    with ProjectStore.open(store.path, readonly=True) as other:
        assert other.model(session.choice.model_id).n_predictions == summary.done


def test_a_cancelled_job_ends_while_the_ui_thread_waits_for_it(qtbot, store, trained_model,
                                                              panel_session):
    """Closing the window cancels the job and waits for it on the UI thread, which runs no
    events meanwhile: the job's thread must end by itself, not sit out the whole wait (it
    once needed the UI thread to deliver its quit, and every such wait timed out)."""
    panel, session = panel_session
    panel.load_model(trained_model.path)
    wait_for(qtbot, lambda: session.choice is not None)
    waited = []

    def on_progress(_p):
        if not waited:  # the first chunk: cancel and wait right here, as a close would
            session.cancel()
            t0 = time.perf_counter()
            waited.append((session.job.wait(15_000), time.perf_counter() - t0))

    session.jobProgress.connect(on_progress)
    image_ids = [r.id for r in store.images()]
    with qtbot.waitSignal(session.jobFinished, timeout=120000) as finished:
        session.predict_scope(image_ids, chunk_seconds=0.01, min_chunk=32)
    ended, seconds = waited[0]
    assert ended and not session.job.is_running(), f"still running after {seconds:.1f} s"
    summary = finished.args[0]
    assert summary.cancelled and 0 < summary.done < summary.total
    assert "Cancelled" in panel.rate_label.text() and panel.predict_button.isEnabled()


def test_a_model_with_foreign_classes_is_refused_or_mapped(qtbot, store, trained_model,
                                                          tmp_path, panel_session):
    from trainer.engine.modelfile import load_model_file, save_model_file

    mf = load_model_file(trained_model.path)
    panel, session = panel_session

    def variant(name, classes):
        path = tmp_path / f"{name}.cvmodel"
        meta = {**mf.meta, "classes": classes, "num_classes": len(classes)}
        save_model_file(path, state_dict=mf.state_dict, mean_image=mf.mean_image, meta=meta)
        return path

    k = len(mf.classes)
    foreign = variant("foreign", [f"tumour {i}" for i in range(k)])
    panel.load_model(foreign, ask=lambda match: True)
    wait_for(qtbot, lambda: panel.last_message is not None, timeout=30000)
    assert panel.last_message.windowTitle() == "Model refused"
    assert "No class names in common" in panel.last_message.text()
    assert "refused" in panel.info.text()
    assert session.choice is None and len(store.models()) == 0
    panel.last_message.close()

    shouted = variant("shouted", [c.upper() for c in mf.classes])
    asked = []
    panel.load_model(shouted, ask=lambda match: asked.append(match) or False)
    wait_for(qtbot, lambda: bool(asked), timeout=30000)
    assert session.choice is None and "not used" in panel.info.text()
    assert asked[0].case_differs and asked[0].mappable

    panel.load_model(shouted, ask=lambda match: True)  # the user agrees to map by name
    wait_for(qtbot, lambda: session.choice is not None, timeout=30000)
    assert session.choice.class_ids == store.models()[-1].class_ids
    assert None not in session.choice.class_ids
    assert "by name" in panel.info.text()


def test_tta_stores_the_mean_over_the_eight_orientations(qtbot, store, trained_model,
                                                         panel_session):
    """With the TTA box ticked the stored probabilities are the predictor's own TTA answer
    (the mean over the dihedral group), not the plain one."""
    from cellviewer.core.cells.crop import crop_patches
    from cellviewer.core.sources.identity import open_recorded_image
    from trainer.predict import Predictor

    panel, session = panel_session
    panel.load_model(trained_model.path)
    wait_for(qtbot, lambda: session.choice is not None)
    panel.tta_box.setChecked(True)
    with qtbot.waitSignal(session.jobFinished, timeout=120000):
        assert panel.predict(SCOPE_PROJECT) is not None
    record = store.models()[-1]
    ids = store.query_cells(order=None)[:12]
    stored = store.predictions(record.id, ids)
    cell = store.cell(ids[0])
    source = open_recorded_image(store.image(cell.image_id))
    try:
        xy = np.array([[store.cell(i).x, store.cell(i).y] for i in ids
                       if store.cell(i).image_id == cell.image_id])
        patches = crop_patches(source, xy, fov_px=session.choice.meta.get("fov_px") or 40).patches
    finally:
        source.close()
    predictor = Predictor.load(trained_model.path, device="cpu")
    n = len(xy)
    tta = predictor.predict(patches, tta=True).probs
    plain = predictor.predict(patches).probs
    np.testing.assert_allclose(stored.probs[:n], tta, atol=1e-4)
    assert np.abs(tta - plain).max() > 1e-4  # (the two answers differ: the test can tell)
