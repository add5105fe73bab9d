"""Take the README's screenshots of the main window on the demo project.

Run under a real X server (``xvfb-run -s "-screen 0 1920x1080x24" python
packaging/make_screenshots.py``) or offscreen (``QT_QPA_PLATFORM=offscreen``); each picture is
the window's own rendering (``QWidget.grab``) at the size its name says, written to
``resources/screenshots/`` (``--out`` elsewhere). The demo project is opened from a copy, so
the corrections the pictures show never reach the user's demo. Look at every picture after a
change of the windows: a window nobody looked at is not done.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wait_for(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        QApplication.processEvents()
        time.sleep(0.01)


def settle(w, extra: float = 0.5) -> None:
    from PySide6.QtWidgets import QApplication

    assert w.wait_idle(120_000)
    end = time.monotonic() + extra
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def save(w, out: Path, name: str) -> None:
    w.grab().save(str(out / name))
    print("wrote", out / name)


def save_with_dialog(w, dialog, out: Path, name: str) -> None:
    """The window with a dialog over it, as one picture (each grabbed on its own and drawn
    together: the same under offscreen rendering as on a screen)."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QPainter

    dialog.adjustSize()
    at = QPoint(w.width() - dialog.width() - 330, 70)
    image = w.grab().toImage()
    painter = QPainter(image)
    painter.drawImage(at, dialog.grab().toImage())
    painter.end()
    image.save(str(out / name))
    print("wrote", out / name)


def train_demo_detector(w, home: Path) -> Path:
    """A tiny detector trained on the CPU in seconds on the fully annotated demo region (the
    study's loop: detect, review, mark, train), for the dialog's picture."""
    import threading

    from cellviewer.core.detect.training_data import write_detector_training_regions
    from trainer.detect.train import run_detector_training
    from trainer.engine.events import EventSink
    from trainer.formats.detector_config import DetectorRunConfig

    data = write_detector_training_regions(w.store, home / "detector-data")
    config = DetectorRunConfig(
        out_dir=str(home / "detector-run"), regions=str(data.path), diameter_px=16.0,
        width=8, depth=2, epochs=4, steps_per_epoch=12, batch_size=4, crop_px=64, lr=4e-3,
        val_fraction=0.0, device="cpu", num_threads=2, seed=3)
    result = run_detector_training(config, sink=EventSink(), stop=threading.Event(),
                                   log=lambda m: None)
    assert result.status == "finished", result.error
    model = home / "nuclei-detector.cvmodel"
    shutil.copy(result.best_path, model)
    return model


def choose_model(w, name: str = "Demo CNN") -> None:
    panel = w.prediction_tools.model_panel
    combo = panel.model_combo
    wait_for(lambda: any(combo.itemText(i).startswith(name) for i in range(combo.count())))
    index = next(i for i in range(combo.count()) if combo.itemText(i).startswith(name))
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    wait_for(lambda: f"<b>{name}</b>" in panel.info.text())
    settle(w)


def predict_project(w) -> None:
    panel = w.prediction_tools.model_panel
    panel.scope_combo.setCurrentIndex(panel.scope_combo.findData("project"))
    job = panel.predict("project")
    assert job is not None, "the prediction did not start"
    wait_for(lambda: not job.is_running())
    settle(w, 1.0)


def show_image(w, name_end: str) -> None:
    image = next(r.id for r in w.store.images() if str(r.path).endswith(name_end))
    w.show_image(image)
    w.image_list.set_current_image(image)
    wait_for(lambda: w.current_image_id() == image)
    settle(w, 1.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "resources" / "screenshots")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="only the pictures whose file name contains NAME")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="cellviewer-shots-"))
    os.environ["HOME"] = str(home)  # settings and the demo copy of a user of its own
    os.environ["XDG_CONFIG_HOME"] = str(home / ".config")
    os.environ["XDG_DATA_HOME"] = str(home / ".local" / "share")
    os.environ["CELLVIEWER_USER"] = "A. Pathologist"

    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

    from cellviewer.ui.application import ensure_app
    from cellviewer.ui.main_window import MainWindow

    app = ensure_app()

    def wanted(name: str) -> bool:
        return not args.only or any(o in name for o in args.only)

    w = MainWindow()
    w.install_tools()
    assert w.open_demo()
    w.session.set_user("A. Pathologist")
    w.resize(1920, 1080)
    w.show()
    wait_for(lambda: w.current_image_source() is not None)
    settle(w, 1.0)
    try:
        if wanted("viewer-full.png"):
            save(w, args.out, "viewer-full.png")

        # A correction and the model's calls, on a laptop screen.
        w.resize(1366, 768)
        settle(w)
        choose_model(w)
        predict_project(w)
        w.set_color_mode("agreement")
        settle(w)
        ids = w.visible_cell_ids()
        w.select_cells(ids[3:4])
        settle(w)
        w.label_selection(w.class_for_key("9"))
        settle(w, 1.0)
        if wanted("window-1366x768.png"):
            save(w, args.out, "window-1366x768.png")

        # Zoomed in on the selected cell: its field of view, its patch, its history.
        w.resize(1920, 1080)
        w.centre_on_cell(ids[3], zoom=4.0)
        settle(w, 1.0)
        if wanted("viewer-zoomed-selection.png"):
            save(w, args.out, "viewer-zoomed-selection.png")

        # The gallery of the image's cells, the doubtful calls first.
        panels = w.panels
        gp = panels.gallery_panel
        w.view.fit()
        w.select_cells([])
        for combo, text in ((gp.filter, "image"), (gp.order, "confiden")):
            for i in range(combo.count()):
                if text in combo.itemText(i).lower():
                    combo.setCurrentIndex(i)
                    break
        settle(w, 1.5)
        if wanted("viewer-gallery.png"):
            save(w, args.out, "viewer-gallery.png")

        # The model panel over a crowded smear, then the review queue.
        tools = w.prediction_tools
        show_image(w, "222.jpg")
        w.set_color_mode("prediction")
        tools.show_predict()
        settle(w, 1.5)
        if wanted("predict_model_panel.png"):
            save(w, args.out, "predict_model_panel.png")
        tools.show_review()
        rp = tools.review_panel
        rp.disagree_box.setChecked(True)
        rp.build_from_controls()
        settle(w, 1.5)
        if rp.table.model().rowCount():
            rp.table.selectRow(0)
        settle(w, 1.0)
        if wanted("review_queue.png"):
            save(w, args.out, "review_queue.png")

        # The blur preview on the queue's first cell.
        tools._show(tools.blur_dock)
        tools.blur_preview.set_sigma(1.2)
        settle(w, 2.0)
        if wanted("blur_preview.png"):
            save(w, args.out, "blur_preview.png")

        # The ruler on the slide (it knows its pixel size), at 1366x768.
        w.resize(1366, 768)
        show_image(w, ".svs")
        w.set_color_mode("label")
        w.select_cells([])
        v = w.view
        v.centre_on(1300, 1250, 1.0)
        settle(w, 1.5)
        w.measure_action.trigger()
        a, b = v.image_to_view(1230, 1180), v.image_to_view(1330, 1265)
        QTest.mousePress(v, Qt.MouseButton.LeftButton, pos=a.toPoint())
        QTest.mouseMove(v, ((a + b) / 2).toPoint())
        QTest.mouseMove(v, QPointF(b).toPoint())
        QTest.mouseRelease(v, Qt.MouseButton.LeftButton, pos=b.toPoint())
        settle(w, 0.5)
        if wanted("ruler-1366x768.png"):
            save(w, args.out, "ruler-1366x768.png")

        # Detection on the slide: a region, its proposals (hollow), then reviewed.
        v.clear_ruler()
        w.measure_action.trigger()  # off
        x0, y0, x1, y1 = 900.0, 1250.0, 1400.0, 1650.0
        tool = w.regions_tool
        uuid = tool.add_drawn("rectangle", np.array([[x0, y0], [x1, y1]]))
        assert tool.wait_idle(60_000)
        tool.panel.choose(uuid)
        tool.dock.show()
        tool.dock.raise_()
        v.centre_on((x0 + x1) / 2, (y0 + y1) / 2, 1.2)
        dialog = tool.open_detection()
        dialog.where.setCurrentIndex(dialog.where.findData("region"))
        assert dialog.start()
        wait_for(lambda: not dialog.running())
        settle(w, 1.5)
        if wanted("proposals-before-review.png"):
            save(w, args.out, "proposals-before-review.png")
        dialog.close()
        cells = w.session.cells
        proposed = [str(i) for i, p in zip(cells.ids, cells.proposed, strict=True) if p]
        w.select_cells(proposed[:3])
        w.delete_selection()  # three wrong ones
        tool.accept_in_region(uuid)
        tool.set_status("annotated", uuid)
        assert tool.wait_idle(60_000)
        settle(w, 1.5)
        if wanted("proposals-after-review.png"):
            save(w, args.out, "proposals-after-review.png")

        # The region's corner handles, one of them being dragged (then put back: undo).
        v.centre_on((x0 + x1) / 2 + 40, (y0 + y1) / 2 + 20, 0.75)
        settle(w, 1.0)
        a = v.image_to_view(x1, y1).toPoint()
        b = v.image_to_view(x1 + 70, y1 + 45).toPoint()
        QTest.mousePress(v, Qt.MouseButton.LeftButton, pos=a)
        QTest.mouseMove(v, a + (b - a) / 2)
        QTest.mouseMove(v, b)
        settle(w, 0.5)
        if wanted("region-corner-handles.png"):
            save(w, args.out, "region-corner-handles.png")
        QTest.mouseRelease(v, Qt.MouseButton.LeftButton, pos=b)
        settle(w, 0.5)
        w.undo()
        settle(w, 0.5)

        # The detection dialog's method choice, with a detector trained on that region.
        if wanted("detect-dialog-methods.png"):
            model = train_demo_detector(w, home)
            v.centre_on((x0 + x1) / 2 + 300, (y0 + y1) / 2, 1.0)
            dialog = tool.open_detection()
            dialog.method.choose_file(model)
            wait_for(lambda: dialog.method.model() is not None)
            wait_for(lambda: dialog.method.device.count() > 1)
            dialog.where.setCurrentIndex(dialog.where.findData("visible"))
            dialog.classify.setChecked(dialog.classify.isEnabled())
            assert dialog.start()
            wait_for(lambda: not dialog.running())
            settle(w, 1.0)
            save_with_dialog(w, dialog, args.out, "detect-dialog-methods.png")
            dialog.close()
    finally:
        w.close()
        app.processEvents()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
