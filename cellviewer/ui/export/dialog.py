"""File → Export…: choose the cells, the model and the formats; the core writes the files.

The dialog lists the formats of :mod:`cellviewer.core.export` (one check box per registered
exporter, so a new format appears without an edit here), offers QuPath GeoJSON's own choices
under its box (classified by the label, the prediction, or the label else the prediction;
detections or annotations; QuPath 0.4 compatibility), collects the choices into an
:class:`~cellviewer.core.export.ExportRequest` and shows progress. Everything else (which cells
a scope covers, the file names, atomic writes) is :func:`cellviewer.core.export.run_export`.

The files are written in a background thread through a read-only connection of its own (the
GUI's connection belongs to the GUI thread; WAL lets both read at once), so a large project never
freezes the window, and pandas is imported there, never on the start-up path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.export import (
    SCOPE_IMAGE,
    SCOPE_PROJECT,
    SCOPE_SELECTION,
    ExportRequest,
    Selection,
    default_base_path,
    describe_files,
    exporters,
    run_request,
    select_cells,
)
from cellviewer.ui.common import folders
from cellviewer.ui.common.dialogs import show_error
from cellviewer.ui.common.workers import BackgroundRunner

__all__ = ["SCOPE_IMAGE", "SCOPE_PROJECT", "SCOPE_SELECTION", "ExportDialog"]

PROGRESS_STEPS = 1000


class ExportDialog(QDialog):
    """The export dialog. ``window`` gives the store, the current image and the selection.

    ``exported(list)`` carries the paths written; ``failed(str)`` the error, which is also shown
    in a message box (``error_box``) over the dialog; the dialog stays open with every choice as
    it was, so the user can change the one that failed (a target the export refuses: the project
    file, its backups, a folder) and export again."""

    exported = Signal(list)
    failed = Signal(str)
    _progressed = Signal(float, str)  # emitted by the worker; Qt queues it to the GUI thread

    def __init__(self, window: Any, parent: QWidget | None = None, *,
                 default_model_id: int | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.setWindowTitle("Export")
        self.window_ = window
        self.store = window.store
        self.runner = BackgroundRunner(max_threads=1, parent=self)
        self.written: list[Path] = []
        self.error_box: QMessageBox | None = None

        # The scopes' cells, worked out once: the dialog is modal, the selection cannot change.
        current = window.current_image_id()
        selected = [str(i) for i in window.selected_cell_ids()]
        self.selections: dict[str, Selection] = {
            SCOPE_PROJECT: select_cells(self.store, SCOPE_PROJECT)}
        if current is not None:
            self.selections[SCOPE_IMAGE] = select_cells(self.store, SCOPE_IMAGE,
                                                         image_id=int(current))
        if selected:
            self.selections[SCOPE_SELECTION] = select_cells(self.store, SCOPE_SELECTION,
                                                            cell_ids=selected)
        self._n_project_images = len(self.store.images())

        self.image_radio = QRadioButton("Current image")
        self.selection_radio = QRadioButton(f"Selected cells ({len(selected):,})")
        self.project_radio = QRadioButton("Whole project")
        group = QButtonGroup(self)
        for b in (self.image_radio, self.selection_radio, self.project_radio):
            group.addButton(b)
        self.image_radio.setEnabled(current is not None)
        self.selection_radio.setEnabled(bool(selected))
        (self.image_radio if current is not None else self.project_radio).setChecked(True)

        self.model_combo = QComboBox()
        self.model_combo.addItem("the newest model with predictions", "latest")
        for m in self.store.models():
            self.model_combo.addItem(f"{m.name} (id {m.id}, {m.n_predictions:,} predictions)",
                                     int(m.id))
        self.model_combo.addItem("none (labels only)", None)
        if default_model_id is not None:
            index = self.model_combo.findData(int(default_model_id))
            if index >= 0:
                self.model_combo.setCurrentIndex(index)

        # One check box per registered format, in registration order.
        self.format_boxes: dict[str, QCheckBox] = {}
        for exporter in exporters():
            box = QCheckBox(exporter.title)
            box.setToolTip(exporter.description)
            box.setChecked(exporter.default_on)
            self.format_boxes[exporter.name] = box

        # QuPath GeoJSON's choices (the core's GeoJsonOptions), enabled while it is ticked
        self.classification_combo = QComboBox()
        for text, value in (("the label, else the prediction", "label-else-prediction"),
                            ("the label", "label"), ("the prediction", "prediction")):
            self.classification_combo.addItem(text, value)
        self.classification_combo.setToolTip(
            "What QuPath shows as each cell's class. The prediction and its confidence are "
            "measurements either way.")
        self.objects_combo = QComboBox()
        self.objects_combo.addItem("detections", "detection")
        self.objects_combo.addItem("annotations", "annotation")
        self.objects_combo.setToolTip("The QuPath object type of the cells: detections (light, "
                                      "many) or annotations (editable one by one)")
        self.qupath_04_box = QCheckBox("Compatible with QuPath 0.4")
        self.qupath_04_box.setToolTip(
            "Write only what QuPath 0.4 reads: no metadata and no NaN or text measurements. "
            "Opens in QuPath 0.4, 0.5 and 0.6 without warnings; a re-import into CellViewer "
            "then loses label sources and review statuses.")
        qupath = QFormLayout()
        qupath.addRow("Classified by", self.classification_combo)
        qupath.addRow("Cells as", self.objects_combo)
        qupath.addRow("", self.qupath_04_box)
        self.qupath_group = QWidget()
        self.qupath_group.setLayout(qupath)
        qupath.setContentsMargins(20, 0, 0, 0)

        # beside the project; for the demo (kept in the app's data folder): the last export
        # folder or the home folder, never a hidden one
        self.path_edit = QLineEdit(str(folders.export_target(
            self.store.path, default_base_path(self.store.path))))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.files_label = QLabel()
        self.files_label.setWordWrap(True)
        self.files_label.setStyleSheet("color: gray")
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        scope = QVBoxLayout()
        for b in (self.image_radio, self.selection_radio, self.project_radio):
            scope.addWidget(b)
        what = QVBoxLayout()
        for name, box in self.format_boxes.items():
            what.addWidget(box)
            if name == "geojson":
                what.addWidget(self.qupath_group)
        if "geojson" not in self.format_boxes:
            self.qupath_group.hide()
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Cells of", scope)
        form.addRow("Predictions of", self.model_combo)
        form.addRow("Files", what)
        form.addRow("Save as", path_row)
        form.addRow("", self.files_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.rejected.connect(self.reject)
        self.export_button.clicked.connect(self.start_export)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        for w in (*self.format_boxes.values(), self.image_radio, self.selection_radio,
                  self.project_radio):
            w.toggled.connect(self._update_files)
        self.path_edit.textChanged.connect(self._update_files)
        self._progressed.connect(self._on_progress)
        self._update_files()

    # --- what will be written ---------------------------------------------------------------
    def scope(self) -> str:
        if self.selection_radio.isChecked():
            return SCOPE_SELECTION
        if self.image_radio.isChecked():
            return SCOPE_IMAGE
        return SCOPE_PROJECT

    def set_scope(self, scope: str) -> None:
        {SCOPE_IMAGE: self.image_radio, SCOPE_SELECTION: self.selection_radio,
         SCOPE_PROJECT: self.project_radio}[scope].setChecked(True)

    def chosen_formats(self) -> tuple[str, ...]:
        return tuple(name for name, box in self.format_boxes.items() if box.isChecked())

    def request(self) -> ExportRequest:
        return ExportRequest(
            project_path=Path(self.store.path), base_path=Path(self.path_edit.text()),
            formats=self.chosen_formats(), selection=self.selections[self.scope()],
            options={"model_id": self.model_combo.currentData(),
                     **self.geojson_options()},
        )

    def geojson_options(self) -> dict[str, Any]:
        """The GeoJSON exporter's options as chosen (see ``core/export/formats.py``)."""
        return {"classification": self.classification_combo.currentData(),
                "objects": self.objects_combo.currentData(),
                "qupath_04": self.qupath_04_box.isChecked()}

    def _update_files(self, *_args: object) -> None:
        r = self.request()
        ids = r.selection.image_ids
        n_images = self._n_project_images if ids is None else len(ids)
        files = describe_files(r.base_path, r.formats, n_images)
        self.files_label.setText("Writes: " + ", ".join(files) if files else
                                 "Nothing to write: tick a file.")
        self.export_button.setEnabled(bool(files) and bool(self.path_edit.text().strip()))
        self.qupath_group.setEnabled("geojson" in r.formats)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export cells", self.path_edit.text(),
                                              "CSV (*.csv);;Tab-separated (*.tsv)")
        if path:
            self.path_edit.setText(path)
            folders.remember("export", path)

    # --- writing ----------------------------------------------------------------------------
    def start_export(self) -> None:
        request = self.request()
        self.export_button.setEnabled(False)
        self.status.setText("Exporting…")
        self.progress.setValue(0)
        self.progress.show()
        emit = self._progressed.emit
        self.runner.submit(lambda: run_request(request, emit), self._done, self._failed)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(round(fraction * PROGRESS_STEPS))
        self.status.setText(message)

    def _done(self, paths: Sequence[Path]) -> None:
        self.written = list(paths)
        if paths:
            folders.remember("export", paths[0])  # the next export starts there
        self.progress.setValue(PROGRESS_STEPS)
        self.status.setText("Written: " + ", ".join(str(p) for p in paths))
        self.export_button.setEnabled(True)
        self.exported.emit(list(paths))
        self.accept()

    def _failed(self, message: str) -> None:
        self.progress.hide()
        self.status.setText(f"Export failed: {message}")
        self.export_button.setEnabled(True)
        # Window-modal over the dialog and non-blocking (open()): the dialog and its choices stay.
        self.error_box = show_error(self, "Export failed", message,
                                    "Change the file name or folder and export again.")
        self.failed.emit(message)

    def wait(self, ms: int = 30000) -> bool:
        return self.runner.wait(ms)
