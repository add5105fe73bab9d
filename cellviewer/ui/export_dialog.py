"""File → Export…: the cells as CSV, a per-image-and-class summary CSV, QuPath GeoJSON.

The user picks what to export (the current image, the selected cells or the whole project),
whose predictions fill the prediction columns (the newest model with predictions, a chosen
model, or none) and the files: the cells CSV (``cellviewer.core.export.export_cells_csv``: one
row per cell with label, label source, review status, prediction, confidence, one probability
column per class, model id, who and when), the summary beside it as ``<name>_summary.csv``
(``export_summary_csv``: counts and agreement per image and class) and QuPath GeoJSON
(``cellviewer.core.io_geojson.export_geojson``: one file per image, ``<name>.geojson`` for one
image, else ``<name>_geojson/<image>.geojson``).

The files are written in a background thread through a read-only connection of its own (the
GUI's connection belongs to the GUI thread; WAL lets both read at once), so a large project never
freezes the window, and pandas is imported there, never on the start-up path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from cellviewer.ui.workers import BackgroundRunner

SCOPE_IMAGE, SCOPE_SELECTION, SCOPE_PROJECT = "image", "selection", "project"


@dataclass
class ExportRequest:
    """Everything an export needs; plain data, so it can travel to the worker thread."""

    project_path: Path
    csv_path: Path
    scope: str = SCOPE_PROJECT
    image_ids: list[int] | None = None  # None: every image
    cell_ids: list[str] | None = None  # the selection (scope "selection"): the cells CSV's rows
    model_id: int | str | None = "latest"
    cells_csv: bool = True
    summary_csv: bool = True
    geojson: bool = False
    written: list[Path] = field(default_factory=list)

    @property
    def summary_path(self) -> Path:
        return self.csv_path.with_name(self.csv_path.stem + "_summary.csv")

    def geojson_paths(self, image_names: dict[int, str]) -> dict[int, Path]:
        ids = list(image_names)
        if len(ids) == 1:
            return {ids[0]: self.csv_path.with_suffix(".geojson")}
        folder = self.csv_path.with_name(self.csv_path.stem + "_geojson")
        return {i: folder / f"{Path(image_names[i]).stem}.geojson" for i in ids}


def run_export(request: ExportRequest) -> list[Path]:
    """Write the files the request asks for; returns their paths. Opens its own read-only
    connection, so it may run in any thread."""
    from cellviewer.core import export, io_geojson
    from cellviewer.core.store import ProjectStore

    written: list[Path] = []
    with ProjectStore.open(request.project_path, readonly=True) as store:
        image_ids = request.image_ids
        if request.cells_csv:
            written.append(export.export_cells_csv(
                store, request.csv_path, model_id=request.model_id, image_ids=image_ids,
                cell_ids=request.cell_ids))
        if request.summary_csv:
            written.append(export.export_summary_csv(
                store, request.summary_path, model_id=request.model_id, image_ids=image_ids,
                cell_ids=request.cell_ids))
        if request.geojson:
            ids = image_ids if image_ids is not None else [im.id for im in store.images()]
            names = {i: store.image(i).path.name for i in ids}
            for image_id, path in request.geojson_paths(names).items():
                path.parent.mkdir(parents=True, exist_ok=True)
                written.append(io_geojson.export_geojson(store, path, image_id,
                                                         model_id=request.model_id))
    return written


class ExportDialog(QDialog):
    """The export dialog. ``window`` gives the store, the current image and the selection.

    ``exported(list)`` carries the paths written; ``failed(str)`` the error."""

    exported = Signal(list)
    failed = Signal(str)

    def __init__(self, window: Any, parent: QWidget | None = None, *,
                 default_model_id: int | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.setWindowTitle("Export")
        self.window_ = window
        self.store = window.store
        self.runner = BackgroundRunner(max_threads=1, parent=self)
        self.written: list[Path] = []

        self.image_radio = QRadioButton("Current image")
        self.selection_radio = QRadioButton("Selected cells")
        self.project_radio = QRadioButton("Whole project")
        group = QButtonGroup(self)
        for b in (self.image_radio, self.selection_radio, self.project_radio):
            group.addButton(b)
        current = window.current_image_id()
        selected = list(window.selected_cell_ids())
        self.image_radio.setEnabled(current is not None)
        self.selection_radio.setEnabled(bool(selected))
        self.selection_radio.setText(f"Selected cells ({len(selected):,})")
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

        self.cells_box = QCheckBox("Cells CSV (one row per cell)")
        self.summary_box = QCheckBox("Summary CSV per image and class (counts, agreement)")
        self.geojson_box = QCheckBox("QuPath GeoJSON (one file per image)")
        self.cells_box.setChecked(True)
        self.summary_box.setChecked(True)

        stem = Path(self.store.path).stem
        self.path_edit = QLineEdit(str(Path(self.store.path).with_name(f"{stem}_cells.csv")))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.files_label = QLabel()
        self.files_label.setWordWrap(True)
        self.files_label.setStyleSheet("color: gray")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        scope = QVBoxLayout()
        for b in (self.image_radio, self.selection_radio, self.project_radio):
            scope.addWidget(b)
        what = QVBoxLayout()
        for b in (self.cells_box, self.summary_box, self.geojson_box):
            what.addWidget(b)
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
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        for w in (self.cells_box, self.summary_box, self.geojson_box, self.image_radio,
                  self.selection_radio, self.project_radio):
            w.toggled.connect(self._update_files)
        self.path_edit.textChanged.connect(self._update_files)
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

    def request(self) -> ExportRequest:
        scope = self.scope()
        image_ids: list[int] | None = None
        cell_ids: list[str] | None = None
        if scope == SCOPE_IMAGE:
            image_ids = [int(self.window_.current_image_id())]
        elif scope == SCOPE_SELECTION:
            cell_ids = [str(i) for i in self.window_.selected_cell_ids()]
            image_ids = sorted({int(self.store.cell(i).image_id) for i in cell_ids})
        return ExportRequest(
            project_path=Path(self.store.path), csv_path=Path(self.path_edit.text()),
            scope=scope, image_ids=image_ids, cell_ids=cell_ids,
            model_id=self.model_combo.currentData(), cells_csv=self.cells_box.isChecked(),
            summary_csv=self.summary_box.isChecked(), geojson=self.geojson_box.isChecked(),
        )

    def _update_files(self, *_args: object) -> None:
        r = self.request()
        files = []
        if r.cells_csv:
            files.append(r.csv_path.name)
        if r.summary_csv:
            files.append(r.summary_path.name)
        if r.geojson:
            many = r.image_ids is None or len(r.image_ids) > 1
            files.append(f"{r.csv_path.stem}_geojson/<image>.geojson" if many
                         else r.csv_path.with_suffix(".geojson").name)
        self.files_label.setText("Writes: " + ", ".join(files) if files else
                                 "Nothing to write: tick a file.")
        self.export_button.setEnabled(bool(files) and bool(self.path_edit.text().strip()))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export cells", self.path_edit.text(),
                                              "CSV (*.csv);;Tab-separated (*.tsv)")
        if path:
            self.path_edit.setText(path)

    # --- writing ----------------------------------------------------------------------------
    def start_export(self) -> None:
        request = self.request()
        self.export_button.setEnabled(False)
        self.status.setText("Exporting…")
        self.runner.submit(lambda: run_export(request), self._done, self._failed)

    def _done(self, paths: Sequence[Path]) -> None:
        self.written = list(paths)
        self.status.setText("Written: " + ", ".join(str(p) for p in paths))
        self.export_button.setEnabled(True)
        self.exported.emit(list(paths))
        self.accept()

    def _failed(self, message: str) -> None:
        self.status.setText(f"Export failed: {message}")
        self.export_button.setEnabled(True)
        self.failed.emit(message)

    def wait(self, ms: int = 30000) -> bool:
        return self.runner.wait(ms)
