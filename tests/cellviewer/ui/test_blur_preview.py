"""The live blur preview with a model trained in the test: moving the σ slider changes the
blurred patch and its probabilities, the newest request wins, pre-resize needs a source crop."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from test_predict_support import wait_for

from cellviewer.core.cells.crop import crop_patches
from cellviewer.core.predict.model_info import read_model_info
from cellviewer.core.sources import open_image
from cellviewer.ui.predict.blur_preview import STUDY_SIGMAS, BlurPreview
from cellviewer.ui.predict.install import _blur_for_display
from cellviewer.ui.predict.model_panel import ModelSession

pytest_plugins = ["test_predict_support"]


@pytest.fixture
def preview(qtbot, store, trained_model):
    session = ModelSession()
    session.set_store(store)
    session.choose(trained_model.path, read_model_info(trained_model.path))
    widget = BlurPreview()
    qtbot.addWidget(widget)
    widget.set_classes(session.choice.classes, ["#1f77b4"] * len(session.choice.classes))
    widget.set_predictor(session.preview_predict_fn(), _blur_for_display)
    # A real cell of the project, cropped the way prediction crops it (with its source crop,
    # which at a 60-px field of view is larger than the patch: pre-resize blur is meaningful).
    image = store.images()[0]
    cells = store.cell_arrays(image.id)
    source = open_image(image.path)
    crop = crop_patches(source, cells.xy[:1], 60, keep_source_crops=True)
    source.close()
    widget.set_cell(cells.ids[0], crop.patches[0], crop.source_crops[0], "first cell")
    widget.show()
    yield widget
    widget.runner.close()


def _settle(qtbot, widget, sigma=None):
    wait_for(qtbot, lambda: widget.is_idle() and widget.last_result is not None
             and (sigma is None or abs(widget.last_result.sigma - sigma) < 1e-9), 30000)
    qtbot.wait(20)  # let any queued (stale) result arrive, to prove it is dropped
    return widget.last_result


def test_moving_the_slider_changes_the_blurred_probabilities(qtbot, preview):
    preview.set_sigma(0.0)
    clean = _settle(qtbot, preview, 0.0)
    np.testing.assert_allclose(clean.blurred_probs, clean.clean_probs)
    assert np.array_equal(clean.blurred_patch, preview._patch)
    np.testing.assert_allclose(preview.clean_bars.probs().sum(), 1.0, atol=1e-4)

    # Drag the slider with the keyboard, as a user would: PageUp moves it by 0.1.
    preview.sigma_slider.slider.setFocus()
    for _ in range(16):
        qtbot.keyClick(preview.sigma_slider.slider, Qt.Key.Key_PageUp)
    assert preview.sigma() == pytest.approx(1.6)
    blurred = _settle(qtbot, preview, 1.6)
    shift = np.abs(blurred.blurred_probs - blurred.clean_probs).sum()
    assert shift > 1e-3  # the model sees a different patch and says so
    np.testing.assert_allclose(blurred.clean_probs, clean.clean_probs, atol=1e-6)
    assert not np.array_equal(blurred.blurred_patch, preview._patch)
    # The bars show the blurred probabilities, with the clean ones for comparison.
    np.testing.assert_allclose(preview.blurred_bars.probs(), blurred.blurred_probs)
    assert "σ 1.60" in preview.status.text()

    # The blur is the trainer's: the shown patch is what the model got.
    from trainer.formats.blur import blur_for_mode

    expected = blur_for_mode(preview._patch[None], 1.6, "post")[0]
    assert np.array_equal(blurred.blurred_patch, expected)


def test_the_newest_request_wins(qtbot, preview):
    _settle(qtbot, preview)
    results = []
    preview.updated.connect(results.append)
    for sigma in (*STUDY_SIGMAS, 2.5):  # faster than the model can answer
        preview.set_sigma(sigma)
    final = _settle(qtbot, preview, 2.5)
    assert final.sigma == pytest.approx(2.5)
    assert results[-1].sigma == pytest.approx(2.5)
    assert len(results) < 6  # stale requests were dropped, not queued
    sigmas = [r.sigma for r in results]
    assert sigmas == sorted(sigmas)  # never an older answer after a newer one


def test_pre_resize_blur_uses_the_source_crop(qtbot, preview):
    preview.set_sigma(0.8)
    post = _settle(qtbot, preview, 0.8)
    preview.set_mode("pre")
    wait_for(qtbot, lambda: preview.last_result.mode == "pre" and preview.is_idle(), 30000)
    pre = preview.last_result
    assert pre.mode == "pre" and post.mode == "post"
    assert not np.array_equal(pre.blurred_patch, post.blurred_patch)
    assert not np.allclose(pre.blurred_probs, post.blurred_probs)
    # Without a source crop, pre-resize is not offered (and not faked).
    preview.set_cell("another", preview._patch, None)
    assert not preview.pre_button.isEnabled() and preview.mode() == "post"
