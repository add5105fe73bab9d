"""Showing a replaced image: the viewer opens project images through the fingerprint check, so
a file replaced on disk is not shown (nor cropped into the gallery) until the user relinks,
accepts the new content or cancels (real project, a real file replaced on disk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.io.project_import import add_images
from cellviewer.core.store import ProjectStore
from cellviewer.ui.common.image_changed import ImageChangedDialog
from cellviewer.ui.main_window import MainWindow


def _picture(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (120, 160, 3), np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def window(qtbot, tmp_path: Path):
    for name, seed in (("one.bmp", 1), ("two.bmp", 2)):
        _picture(tmp_path / name, seed)
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        store.add_class("a")
        one, two = add_images(store, [tmp_path / "one.bmp", tmp_path / "two.bmp"])
        store.add_cells(one, [[10, 10], [20, 20]])
        store.add_cells(two, [[30, 30]])
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.open_project(path)
    qtbot.waitUntil(lambda: w.view.handle is not None, timeout=20_000)
    return w, one, two, tmp_path


@pytest.mark.parametrize("answer", ["accept", "cancel"])
def test_a_replaced_image_is_asked_about_before_it_is_shown(qtbot, window, answer):
    w, one, two, folder = window
    w.show_image(two)
    qtbot.waitUntil(lambda: w.current_image_id() == two and w.view.handle is not None,
                    timeout=20_000)
    _picture(folder / "one.bmp", 99)  # the same size, other pixels: only the content differs
    w.show_image(one)
    qtbot.waitUntil(lambda: isinstance(w.image_changed_dialog, ImageChangedDialog)
                    and w.image_changed_dialog.isVisible(), timeout=20_000)
    assert w.view.handle is None  # nothing shown (or cropped) from the replaced file
    assert "one.bmp" in w.view.message
    dialog = w.image_changed_dialog
    if answer == "cancel":
        dialog.reject()
        qtbot.wait(200)
        assert w.view.handle is None
        with ProjectStore.open(w.store.path, readonly=True) as again:
            assert again.image(one).fingerprint == w.store.image(one).fingerprint
    else:
        before = w.store.image(one).fingerprint
        dialog.accept_new_content()
        qtbot.waitUntil(lambda: w.view.handle is not None, timeout=20_000)
        assert w.store.image(one).fingerprint != before  # the new content is the record now
