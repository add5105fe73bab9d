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


#: the annotators' pictures (issue 19): made on their own, after the copies are merged
ANNOTATOR_SHOTS = ("annotators-conflicts-1366x768.png", "agreement-1366x768.png")


def annotate_copy(path: Path, user: str, image: str, change: float, seed: int,
                  only: int | None = None) -> None:
    """One annotator's pass over an image's cells in their copy: most labels confirmed (marked
    checked), some relabelled, as often to a look-alike class as not: a share ``change`` of
    the cells, and half of the hard ones (a fifth of the image, the same for everybody)."""
    from cellviewer.core.store import ProjectStore

    rng = np.random.default_rng(seed)
    with ProjectStore.open(path) as s:
        s.user = user
        image_id = next(r.id for r in s.images() if r.name == image)
        classes = s.classes()
        t = s.cell_table(image_ids=[image_id])
        ids = [str(i) for i in t["ids"]][:only]
        hard = set(np.flatnonzero(np.random.default_rng(0).random(len(t["ids"])) < 0.2))
        confirm = []
        for i, (cid, cls) in enumerate(zip(ids, t["class_id"].tolist(), strict=False)):
            if rng.random() < (0.5 if i in hard else change):
                others = [c.id for c in classes if c.id != cls]
                s.set_labels([cid], int(rng.choice(others[:4] if rng.random() < 0.5
                                                   else others)))
            else:
                confirm.append(cid)
        s.set_review_status(confirm, "checked")
        s.wait_for_checkpoint()


def annotator_pictures(w, out: Path, wanted: Callable[[str], bool]) -> None:
    """Three annotators' copies of the demo (made and edited with the core API), merged
    through File → Merge project…; the conflicts queue, then the agreement window."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    from cellviewer.core.merge import copy_for, protocol

    image = "222.jpg"
    w.resize(1366, 768)
    settle(w)
    w.reset_layout_action.trigger()  # the default layout of a laptop's screen
    show_image(w, image)
    w.set_color_mode("label")
    project = Path(w.store.path)
    copies = []
    for user, change, seed, only in (("ana", 0.04, 1, None), ("ben", 0.08, 2, None),
                                     ("cy", 0.10, 3, 70)):
        out_path = project.with_name(f"demo-{user}.cvproj")
        out_path.unlink(missing_ok=True)
        copies.append(copy_for(project, out_path, user))
        annotate_copy(out_path, user, image, change, seed, only)
    tools = w.annotator_tools
    assert tools.merge_flow.merge(copies)
    assert tools.merge_flow.wait_idle(120_000)
    for box in w.findChildren(QMessageBox):
        box.close()
    for user, role in (("ana", "annotator"), ("ben", "checker"), ("cy", "annotator"),
                       ("A. Pathologist", "pathologist")):
        protocol.set_role(w.store, user, role)
    settle(w, 1.0)
    tools.dock.show()
    tools.dock.raise_()
    panel = tools.panel
    panel.set_queue(protocol.CONFLICTS)
    panel.build()
    wait_for(lambda: bool(panel.rows), 60)
    panel.go_to(0)
    wait_for(lambda: bool(panel.choice_buttons) and panel.said_for == panel.current_id())
    panel.show_role()
    settle(w, 1.5)
    if wanted(ANNOTATOR_SHOTS[0]):
        save(w, out, ANNOTATOR_SHOTS[0])
    view = tools.show_agreement()
    assert view.wait_idle(120_000)
    view.set_pair("ana", "ben")
    view.resize(1060, 640)
    view.move(w.geometry().center() - view.rect().center())
    settle(w, 1.0)
    if wanted(ANNOTATOR_SHOTS[1]):
        # the screen, so the window shows beside the main window it belongs to (offscreen:
        # the agreement window alone)
        screen = QApplication.primaryScreen()
        shot = screen.grabWindow(0) if QApplication.platformName() == "xcb" else view.grab()
        shot.save(str(out / ANNOTATOR_SHOTS[1]))
        print("wrote", out / ANNOTATOR_SHOTS[1])
    view.close()


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
        if args.only and all(any(o in n for n in ANNOTATOR_SHOTS) for o in args.only):
            annotator_pictures(w, args.out, wanted)  # these alone: no prediction first
            return 0
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

        # Three annotators' copies merged: the conflicts queue, the agreement window.
        annotator_pictures(w, args.out, wanted)
    finally:
        w.close()
        app.processEvents()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
