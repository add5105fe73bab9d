"""Plugging the model panel, the blur preview, the review queue and export into the main window.

``install(window)`` uses only the window's :class:`~cellviewer.ui.host.Host` surface and returns
a :class:`PredictionTools` that the window keeps as ``window.prediction_tools``. It adds:

- docks "Model", "Blur preview" and "Review" (listed in View → Panels);
- Model → Predict…, Open model file…, Blur preview, Review queue; File → Export… (Ctrl+E);
- predictions on the markers: the chosen model is the project's active model (kept in the
  project, see cellviewer.core.project.session), whose stored predictions the session's cells carry;
  a batch job's chunks update those cells directly as they are predicted; with the blur
  preview's "apply to every visible cell", the visible cells are predicted under the preview's
  σ in the background and coloured by that blurred prediction instead (an overlay);
- the blur preview follows the selected cell (its patch is cropped in the background).

Nothing here imports torch: the model is loaded in worker threads the first time it is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFrame, QScrollArea

from cellviewer.ui.common.heap import freeze_long_lived
from cellviewer.ui.predict.blur_preview import BlurPreview
from cellviewer.ui.predict.model_panel import ModelPanel, ModelSession
from cellviewer.ui.predict.worker import LatestRunner, PredictionJob
from cellviewer.ui.review.panel import ReviewPanel
from cellviewer.ui.viewer.padding import inside_rect

MAX_VISIBLE_BLUR = 20_000  # "apply blur to visible cells" predicts at most this many cells
NO_MODEL_COLOUR = "#9e9e9e"


def _blur_for_display(patch: np.ndarray, sigma: float, mode: str,
                      source_crop: np.ndarray | None) -> np.ndarray:
    """The blurred patch exactly as the model sees it (the trainer's definition of blur)."""
    from trainer.formats.blur import blur_for_mode

    crops = None if source_crop is None else source_crop[None]
    return blur_for_mode(patch[None], float(sigma), mode, crops)[0]


class PredictionTools(QObject):
    """The panels, actions and glue that ``install`` adds to a main window."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.session = ModelSession(window.session, self)
        self.model_panel = ModelPanel(self.session, window)
        self.blur_preview = BlurPreview()
        self.review_panel = ReviewPanel(self.session, window)
        self.model_dock = self._dock("Model", "model_dock", self.model_panel)
        self.blur_dock = self._dock("Blur preview", "blur_preview_dock", self.blur_preview)
        self.review_dock = self._dock("Review", "review_dock", self.review_panel)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        for dock in (self.model_dock, self.blur_dock, self.review_dock):
            window.add_panel(dock, right)
        window.tabify_with("model", self.review_dock)
        # The blur preview is about the selected cell: it shares a tab group with the cell
        # details, so the right column stays readable on a laptop screen.
        window.tabify_with("details", self.blur_dock)

        self._blurred: dict[str, int] = {}  # cell id -> project class id under the blur
        self._blur_job: PredictionJob | None = None
        self._crop_runner = LatestRunner(self)
        self._crop_runner.resultReady.connect(self._on_cell_cropped)
        # e.g. the image's file was replaced: the preview says why it shows nothing new
        self._crop_runner.errorRaised.connect(
            lambda _ticket, message: self.window.show_status(f"Blur preview: {message}", 8000))
        self._visible_timer = QTimer(self, singleShot=True, interval=250)
        self._visible_timer.timeout.connect(self._predict_visible_blurred)

        self._build_actions()
        project = window.session.events
        project.project.connect(self._on_project)
        project.store_changed.connect(self._on_store_event)
        window.imageChanged.connect(self._on_image)
        window.selectionChanged.connect(self._on_selection)
        window.view.viewChanged.connect(self._on_view_moved)
        self.session.changed.connect(self._on_model_changed)
        self.session.chunkPredicted.connect(self._on_chunk)
        self.session.jobStarted.connect(self._on_job_started)
        # a model was loaded (torch and its modules imported): keep GC passes short
        self.session.deviceInUse.connect(lambda _device: freeze_long_lived())
        self.review_panel.currentCellChanged.connect(self._on_review_cell)
        self.blur_preview.blurChanged.connect(self._on_blur_changed)
        self.blur_preview.applyToVisibleChanged.connect(self._on_apply_visible)
        # Background jobs must end before the window (and their QThreads) go away.
        window.installEventFilter(self)
        if window.store is not None:
            self._on_project(window.store)

    def _dock(self, title: str, name: str, widget: Any) -> QDockWidget:
        # In a scroll area, so a panel taller than its share of the window scrolls instead of
        # forcing the window to grow.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(widget)
        dock = QDockWidget(title, self.window)
        dock.setObjectName(name)
        dock.setWidget(scroll)
        return dock

    # --- menus ------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        w = self.window
        model_menu = w.menu("&Model")
        self.predict_action = QAction("&Predict…", w)
        self.predict_action.setStatusTip("Predict the cells of the current image, selected "
                                         "images or the whole project with the chosen model")
        self.predict_action.triggered.connect(self.show_predict)
        model_menu.addAction(self.predict_action)
        self.open_model_action = QAction("&Open model file…", w)
        self.open_model_action.triggered.connect(self.model_panel.open_model_file)
        model_menu.addAction(self.open_model_action)
        model_menu.addSeparator()
        self.blur_action = QAction("&Blur preview", w)
        self.blur_action.triggered.connect(lambda: self._show(self.blur_dock))
        model_menu.addAction(self.blur_action)
        self.review_action = QAction("&Review queue", w)
        self.review_action.setShortcut(QKeySequence("Ctrl+R"))
        self.review_action.triggered.connect(self.show_review)
        model_menu.addAction(self.review_action)

        file_menu = w.menu("&File")
        self.export_action = QAction("&Export…", w)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.setStatusTip("Export cells as CSV (with predictions), a summary per "
                                        "image and class, or QuPath GeoJSON")
        self.export_action.triggered.connect(self.export)
        before = w.close_action
        file_menu.insertAction(before, self.export_action)
        file_menu.insertSeparator(before)
        self._update_enabled()

    def _show(self, dock: QDockWidget) -> None:
        dock.show()
        dock.raise_()

    def show_predict(self) -> None:
        self._show(self.model_dock)
        self.model_panel.predict_button.setFocus()

    def show_review(self) -> None:
        self._show(self.review_dock)
        self.review_panel.table.setFocus()

    def export(self) -> Any:
        """Open the export dialog (modal); returns it after it closed."""
        from cellviewer.ui.export.dialog import ExportDialog

        if self.window.store is None:
            return None
        choice = self.session.choice
        dialog = ExportDialog(self.window, default_model_id=choice.model_id if choice else None)
        dialog.exported.connect(lambda paths: self.window.show_status(
            f"Exported {len(paths)} file(s): " + ", ".join(p.name for p in paths), 8000))
        dialog.exec()
        return dialog

    def _update_enabled(self) -> None:
        has_project = self.window.store is not None
        for action in (self.predict_action, self.open_model_action, self.export_action,
                       self.review_action):
            action.setEnabled(has_project)

    # --- project, image, selection ----------------------------------------------------------
    def _on_project(self, _store: Any) -> None:
        """Another project (or none): nothing of the last one stays on the blur preview (the
        model panel and the review queue reset themselves)."""
        self._blurred.clear()
        if self._blur_job is not None:
            self._blur_job.cancel()
        self.blur_preview.set_predictor(None)
        self.blur_preview.set_classes([], [])
        self.blur_preview.set_cell(None, None)
        self._update_enabled()

    def _on_store_event(self, event: Any) -> None:
        """A model was added elsewhere (e.g. a training run finished): list it; classes
        changed: the review filters and the colours follow."""
        kinds = event.kinds
        if "models" in kinds:
            self.model_panel.refresh_models()
        if "classes" in kinds:
            self.review_panel.refresh_classes()

    def _on_image(self, _image_id: int) -> None:
        self._blurred.clear()
        if self.blur_preview.apply_visible.isChecked():
            self._visible_timer.start()

    def _on_view_moved(self) -> None:
        if self.blur_preview.apply_visible.isChecked():
            self._visible_timer.start()

    def _on_review_cell(self, cell_id: str) -> None:
        # centre_on_cell (called by the review panel) switches image when needed; selecting the
        # cell then shows it in the blur preview and the cell panel.
        self.window.select_cells([cell_id])
        if self.window.selected_cell_ids() != [cell_id]:
            self._preview_cell(cell_id)

    def _on_selection(self, ids: list) -> None:
        if len(ids) == 1:
            self._preview_cell(str(ids[0]))
        elif not ids:  # like the cell panel: nothing selected, nothing previewed
            self.blur_preview.set_cell(None, None)

    def _fov(self) -> float:
        choice = self.session.choice
        return float((choice.meta.get("fov_px") if choice else None) or 40)

    def _preview_cell(self, cell_id: str) -> None:
        """Crop the cell's patch (and source crop) in the background for the blur preview."""
        store = self.window.store
        source = self.window.current_image_source()
        if store is None or source is None:
            return
        try:
            cell = store.cell(cell_id)
        except Exception:  # a cell deleted meanwhile
            return
        if cell.image_id != self.window.current_image_id():
            return
        xy = np.array([[cell.x, cell.y]])
        fov = self._fov()
        record = store.image(cell.image_id)  # the crop checks the file is still this image
        title = f"({store.class_record(cell.class_id).name})" \
            if cell.class_id is not None else ""

        def crop() -> tuple:
            from cellviewer.core.cells.crop import crop_patches

            result = crop_patches(source, xy, fov, keep_source_crops=True, image=record)
            crops = result.source_crops
            width, height = (int(v) for v in source.dimensions)
            inside = inside_rect(result.origins[0], result.window_px, width, height)
            return (cell_id, result.patches[0], None if crops is None else crops[0], title,
                    inside)

        self._crop_runner.submit(crop)

    def _on_cell_cropped(self, _ticket: int, result: tuple) -> None:
        cell_id, patch, source_crop, title, inside = result
        self.blur_preview.set_cell(cell_id, patch, source_crop, title, inside)

    # --- the model --------------------------------------------------------------------------
    def _on_model_changed(self) -> None:
        choice = self.session.choice
        self._blurred.clear()
        if choice is None:
            self.blur_preview.set_predictor(None)
        else:
            colours = self._class_colours(choice)
            self.blur_preview.set_classes(choice.classes, colours)
            self.blur_preview.set_predictor(self.session.preview_predict_fn(), _blur_for_display)
        self.window.set_prediction_overlay(None, None)

    def _class_colours(self, choice: Any) -> list[str]:
        store = self.window.store
        by_id = {c.id: c.color for c in store.classes()} if store is not None else {}
        return [by_id.get(cid, NO_MODEL_COLOUR) if cid is not None else NO_MODEL_COLOUR
                for cid in choice.class_ids]

    def _on_job_started(self) -> None:
        if self.window.color_mode() == "label":
            self.window.set_color_mode("prediction")

    def _on_chunk(self, chunk: Any) -> None:
        """A chunk of a batch prediction: its cells of the current image take their new call
        at once, from the chunk itself (no store round trip; the job stored it already)."""
        choice = self.session.choice
        current = self.window.current_image_id()
        if choice is None or current is None:
            return
        here = np.flatnonzero(np.asarray(chunk.image_ids) == current)
        if not len(here):
            return
        probs = np.asarray(chunk.probs)[here]
        ids = [chunk.cell_ids[i] for i in here.tolist()]
        self.window.session.cells.set_predictions(
            ids, choice.predicted_class_ids(probs), probs.max(axis=1), choice.model_id)

    # --- blur on every visible cell ---------------------------------------------------------
    def _on_blur_changed(self, sigma: float, mode: str) -> None:
        self.review_panel.blur_sigma, self.review_panel.blur_mode = sigma, mode
        if self.blur_preview.apply_visible.isChecked():
            self._visible_timer.start()

    def _on_apply_visible(self, on: bool) -> None:
        if on:
            if self.window.color_mode() == "label":
                self.window.set_color_mode("prediction")
            self._predict_visible_blurred()
        else:
            if self._blur_job is not None:
                self._blur_job.cancel()
            self._blurred.clear()
            self.window.set_prediction_overlay(None, None)

    def _predict_visible_blurred(self) -> None:
        """Predict the visible cells under the preview's blur in the background (newest wins:
        a job still running is cancelled), then recolour their markers."""
        choice, store = self.session.choice, self.window.store
        image_id = self.window.current_image_id()
        if choice is None or store is None or image_id is None:
            return
        if self._blur_job is not None and self._blur_job.is_running():
            self._blur_job.cancel()
            self._visible_timer.start()  # try again once it has stopped
            return
        ids = self.window.visible_cell_ids()[:MAX_VISIBLE_BLUR]
        sigma, mode = self.blur_preview.sigma(), self.blur_preview.mode()
        if not ids:
            return
        lut = choice.class_lut()
        results: dict[str, int] = {}
        job = PredictionJob(store.path, choice.path, None, [image_id], cell_ids=ids,
                            device=self.session.device, store_results=False,
                            predict_kwargs={"blur_sigma": sigma, "blur_mode": mode},
                            keep_source_crops=mode == "pre", fov_px=self._fov(), parent=self)

        def collect(progress: Any) -> None:
            pred = lut[np.argmax(progress.chunk.probs, axis=1)]
            results.update(zip(progress.chunk.cell_ids, pred.tolist(), strict=True))

        def finish(summary: Any) -> None:
            if summary.cancelled:
                return
            self._blurred = results
            self.window.set_prediction_overlay(list(results), list(results.values()))
            flips = self._count_flips(results)
            self.window.show_status(
                f"Blur σ {sigma:.2f} ({mode}-resize) on {len(results):,} visible cells: "
                f"{flips:,} prediction{'' if flips == 1 else 's'} change"
                f"{'s' if flips == 1 else ''}", 8000)

        job.progress.connect(collect)
        job.finished.connect(finish)
        self._blur_job = job
        job.start()

    def _count_flips(self, blurred: dict[str, int]) -> int:
        choice, store = self.session.choice, self.window.store
        if choice is None or store is None or not blurred:
            return 0
        ids = list(blurred)
        clean = store.predictions(choice.model_id, ids).predicted_class_id
        return int(np.count_nonzero(clean != np.array([blurred[i] for i in ids])))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self) -> None:
        """Stop background work (the window calls this, or it happens when it closes)."""
        self.session.cancel()
        if self._blur_job is not None:
            self._blur_job.cancel()
        for job in (self.session.job, self._blur_job):
            if job is not None:
                job.wait(10000)
        self._crop_runner.close()
        self.blur_preview.runner.close()


def install(window: Any) -> PredictionTools:
    """Add the model panel, blur preview, review queue, their menu actions and File → Export…
    to ``window`` (a :class:`~cellviewer.ui.host.Host`); returns the tools (the window keeps
    them as ``window.prediction_tools``). Call it once, after the window is built."""
    tools = PredictionTools(window)
    window.prediction_tools = tools
    return tools
