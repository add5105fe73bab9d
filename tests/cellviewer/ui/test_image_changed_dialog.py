"""When prediction or training hits a replaced image, the app asks: Relink… / Accept new content
/ Cancel; nothing is predicted or written before the answer, and the work runs again after a
relink or an accept (real project, real files replaced on disk, a real untrained model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.io.project_import import add_images
from cellviewer.core.sources import fingerprint
from cellviewer.core.sources.replaced import is_stale, stale_marks
from cellviewer.core.store import ProjectStore
from cellviewer.ui.common.image_changed import ACCEPTED, CANCELLED, RELINKED
from cellviewer.ui.predict.model_panel import SCOPE_PROJECT, ModelPanel, ModelSession

CLASSES = ["a", "b", "c"]
TIMEOUT = 120_000


def _picture(path: Path, w: int, h: int, seed: int) -> None:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)).save(path)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    import torch

    from trainer.engine.modelfile import save_model_file
    from trainer.models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "untrained.cvmodel"
    save_model_file(path, state_dict=create_model("cnn", len(CLASSES)).state_dict(),
                    mean_image=torch.full((3, 40, 40), 0.5),
                    meta={"arch": "cnn", "classes": CLASSES, "fov_px": 40})
    return path


@pytest.fixture
def panel(qtbot, tmp_path, model_file):
    images = tmp_path / "images"
    images.mkdir()
    _picture(images / "one.bmp", 160, 120, 1)
    _picture(images / "two.bmp", 100, 80, 2)
    store = ProjectStore.create(tmp_path / "p.cvproj")
    for name in CLASSES:
        store.add_class(name)
    one, two = add_images(store, [images / "one.bmp", images / "two.bmp"])
    rng = np.random.default_rng(0)
    store.add_cells(one, rng.uniform(20, 100, (20, 2)))
    store.add_cells(two, rng.uniform(20, 60, (8, 2)))
    session = ModelSession()
    session.set_store(store)
    widget = ModelPanel(session)
    qtbot.addWidget(widget)
    widget.load_model(model_file)
    qtbot.waitUntil(lambda: session.choice is not None, timeout=TIMEOUT)
    with qtbot.waitSignal(session.jobFinished, timeout=TIMEOUT):
        widget.predict(SCOPE_PROJECT)
    yield widget, session, store, one, images
    assert widget.wait_idle()
    if session.job is not None:
        assert session.job.wait(10_000)
    store.close()


def _probs(store, session, image_id):
    return store.predictions(session.choice.model_id,
                             list(store.cell_arrays(image_id).ids)).probs.copy()


def _predict_into_the_question(qtbot, widget, session):
    with qtbot.waitSignal(session.jobImageChanged, timeout=TIMEOUT):
        widget.predict(SCOPE_PROJECT)
    dialog = widget.image_changed_dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def test_accept_new_content_predicts_again_and_the_stale_mark_goes(qtbot, panel):
    widget, session, store, one, images = panel
    before = _probs(store, session, one)
    _picture(images / "one.bmp", 160, 120, 9)  # same size in bytes and pixels, other pixels
    dialog = _predict_into_the_question(qtbot, widget, session)
    assert "one.bmp" in dialog.text.text() and "content differs" in dialog.text.text()
    np.testing.assert_array_equal(_probs(store, session, one), before)  # nothing yet
    assert "stopped before it began" in widget.rate_label.text()
    with qtbot.waitSignal(session.jobFinished, timeout=TIMEOUT) as finished:
        dialog.accept_button.click()  # reads the file in the background, then records it
    assert dialog.outcome == ACCEPTED and widget.image_changed_dialog is None
    assert dialog.mark is not None and session.choice.model_id in dialog.mark.model_ids
    assert finished.args[0].done == store.cell_count()  # the same prediction, run again
    assert not np.allclose(_probs(store, session, one), before)  # from the new pixels
    assert not is_stale(store, one, session.choice.model_id) and stale_marks(store) == {}
    assert widget.stale_label.isHidden()


def test_cancel_predicts_nothing_and_the_stale_label_shows_an_accepted_image(qtbot, panel):
    widget, session, store, one, images = panel
    before = _probs(store, session, one)
    _picture(images / "one.bmp", 90, 60, 4)
    dialog = _predict_into_the_question(qtbot, widget, session)
    assert "it is 90x60 pixels but the project recorded 160x120" in dialog.text.text()
    started = []
    session.jobStarted.connect(lambda: started.append(1))
    dialog.cancel_button.click()
    assert dialog.outcome == CANCELLED and not dialog.isVisible()
    qtbot.wait(100)
    assert started == [] and "Prediction cancelled" in widget.rate_label.text()
    np.testing.assert_array_equal(_probs(store, session, one), before)
    # Accepting without predicting leaves the predictions marked stale, and the panel says so.
    from cellviewer.core.sources.replaced import accept_new_content

    accept_new_content(store, one)
    widget.refresh_stale()
    assert widget.stale_label.isVisible() or not widget.isVisible()
    assert "Stale predictions on 1 image (one.bmp)" in widget.stale_label.text()


def test_relink_checks_the_chosen_file_then_predicts_again(qtbot, panel, tmp_path):
    widget, session, store, one, images = panel
    backup = tmp_path / "backup"
    backup.mkdir()
    shutil.copy2(images / "one.bmp", backup / "one.bmp")
    _picture(backup / "other.bmp", 160, 120, 8)
    _picture(images / "one.bmp", 160, 120, 7)
    dialog = _predict_into_the_question(qtbot, widget, session)
    dialog.choose_file = lambda: str(backup / "other.bmp")  # the wrong file first
    dialog.relink_button.click()
    qtbot.waitUntil(lambda: dialog.relink_button.isEnabled(), timeout=TIMEOUT)  # checked
    assert "other.bmp" in dialog.status.text() and "content differs" in dialog.status.text()
    assert dialog.outcome is None and dialog.isVisible()  # still asking
    assert store.image(one).path == images / "one.bmp"
    dialog.choose_file = lambda: str(backup / "one.bmp")  # the original
    with qtbot.waitSignal(session.jobFinished, timeout=TIMEOUT):
        dialog.relink_button.click()
    assert dialog.outcome == RELINKED and store.image(one).path == backup / "one.bmp"



@pytest.mark.slow  # the training dialog asks a trainer process for its devices
def test_training_asks_about_a_replaced_image_and_writes_no_patch_set_until_answered(
        qtbot, tmp_path, monkeypatch):
    from cellviewer.core.training import runs
    from cellviewer.ui.train.dialog import TrainingDialog
    from cellviewer.ui.train.runs import TrainingManager

    _picture(tmp_path / "A.bmp", 200, 160, 1)
    _picture(tmp_path / "B.bmp", 120, 100, 2)
    store = ProjectStore.create(tmp_path / "p.cvproj")
    a, b = store.add_class("a"), store.add_class("b")
    ia, ib = add_images(store, [tmp_path / "A.bmp", tmp_path / "B.bmp"])
    rng = np.random.default_rng(0)
    store.add_cells(ia, rng.uniform(30, 90, (40, 2)), [a] * 20 + [b] * 20)
    store.add_cells(ib, rng.uniform(30, 70, (20, 2)), [b] * 20)
    manager = TrainingManager(store.path)
    launched = []
    # The trainer process itself is tested elsewhere: here only that the run gets that far.
    monkeypatch.setattr(manager, "launch", lambda run, *args, **kw: launched.append(run))
    dialog = TrainingDialog(store, manager)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(dialog.ready, timeout=90_000)
    _picture(tmp_path / "B.bmp", 120, 100, 3)  # replaced: same size, other pixels
    dialog.set_flag_limit(256)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.image_changed_dialog is not None, timeout=TIMEOUT)
    question = dialog.image_changed_dialog
    assert "B.bmp" in question.text.text() and "Could not write" in dialog.status.text()
    assert runs.RunRegistry(store.path).runs() == []  # no half-made run
    question.cancel_button.click()
    assert question.outcome == CANCELLED and dialog.writer is None and launched == []
    dialog.start()  # asked again: the image is still replaced
    qtbot.waitUntil(lambda: dialog.image_changed_dialog is not None, timeout=TIMEOUT)
    dialog.image_changed_dialog.accept_button.click()
    qtbot.waitUntil(lambda: bool(launched), timeout=TIMEOUT)  # written, then launched
    (run,) = launched
    assert run.patchset_path.is_dir()  # the patch set was written from the accepted file
    assert store.image(ib).fingerprint == fingerprint(tmp_path / "B.bmp")
    store.close()
