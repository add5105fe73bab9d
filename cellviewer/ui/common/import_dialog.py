"""File → Import cells…: a preview of what an import will make, the questions it needs
answered, then the import itself, all off the UI thread (:mod:`cellviewer.ui.common.tasks`).

The dialog is a view over :mod:`cellviewer.core.io.cell_import`: every change of a choice
plans the import again in the background (newest wins), on its own read-only connection to
the project; the preview shows the plan's summary and its problems, and Import is enabled once
there are none. The import runs on its own connection too, as one undoable action; the
window then reads the project again (``store.external_change``).

Questions: unknown classes (create, skip, or map to an existing class), images not in the
project (skip their rows or add the images, and an image folder to look in), the class set of
numeric class ids, the image of files that name none, the units, one cell per polygon, and a
column-mapping step for tables whose columns are not recognised.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.io.cell_import import ImportChoices, ImportPlan, apply_import, plan_import
from cellviewer.core.store import ProjectStore
from cellviewer.ui.common.tasks import NEWEST, POOL, TaskRunner
from trainer.formats.cell_rows import IMPORT_SUFFIXES
from trainer.formats.tables import ColumnMap, ColumnsNeeded

CREATE, SKIP = "Create it", "Skip its rows"
NONE = "(none)"


def import_file_filter() -> str:
    patterns = " ".join(f"*{s}" for s in IMPORT_SUFFIXES)
    return (f"Cells ({patterns});;Tables (*.csv *.tsv *.txt);;"
            f"GeoJSON (*.geojson *.json *.geojson.gz *.zip);;All files (*)")


def is_import_file(path: str) -> bool:
    return path.lower().endswith(IMPORT_SUFFIXES)


def plan_work(project: Path, paths: list[Path], choices: ImportChoices, state) -> Any:
    """The plan (or the columns a table needs), read on its own connection."""
    with ProjectStore.open(project, readonly=True) as store:
        try:
            return plan_import(store, paths, choices)
        except ColumnsNeeded as e:
            return e


def apply_work(project: Path, user: str, plan: ImportPlan, state) -> Any:
    with ProjectStore.open(project) as store:
        store.user = user
        return apply_import(store, plan, progress=lambda d, t: state.set_progress(100 * d / t))


class ImportDialog(QDialog):
    """The preview and questions of one import (see the module doc)."""

    def __init__(self, store: ProjectStore, paths: list[str], user: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("import_dialog")
        self.setWindowTitle("Import cells")
        self.store, self.user = store, user
        self.paths = [Path(p) for p in paths]
        self.plan: ImportPlan | None = None
        self.result: Any = None
        self.header: list[str] = []
        self.planner = TaskRunner(NEWEST, parent=self)
        self.writer = TaskRunner(POOL, 1, self)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Files: " + ", ".join(p.name for p in self.paths)))
        self.summary = QLabel("Reading…")
        self.summary.setObjectName("import_summary")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.problems = QLabel("")
        self.problems.setObjectName("import_problems")
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #b00020")
        layout.addWidget(self.problems)
        layout.addWidget(self._choices_box())
        layout.addWidget(self._classes_box())
        layout.addWidget(self._columns_box())
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = self.buttons.addButton("Import",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setObjectName("import_button")
        self.import_button.setEnabled(False)
        self.import_button.clicked.connect(self.start_import)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.replan()

    # --- the controls ------------------------------------------------------------------------
    def _choices_box(self) -> QGroupBox:
        box = QGroupBox("Choices")
        form = QFormLayout(box)
        folder_row = QHBoxLayout()
        self.folder = QLineEdit()
        self.folder.setObjectName("import_image_folder")
        self.folder.setPlaceholderText("where the images are (optional)")
        self.folder.editingFinished.connect(self.replan)
        choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose_folder)
        folder_row.addWidget(self.folder)
        folder_row.addWidget(choose)
        form.addRow("Image folder", folder_row)
        self.missing = QComboBox()
        self.missing.setObjectName("import_missing_images")
        for text, value in (("Ask", "refuse"), ("Skip their rows", "skip"),
                            ("Add the images", "add")):
            self.missing.addItem(text, value)
        self.missing.currentIndexChanged.connect(self.replan)
        form.addRow("Images not in the project", self.missing)
        self.class_set = QComboBox()
        self.class_set.setObjectName("import_class_set")
        self.class_set.addItem(NONE, None)
        from cellviewer.paths import class_sets_dir

        for p in sorted(class_sets_dir().glob("*.json")):
            self.class_set.addItem(p.stem, p.stem)
        self.class_set.currentIndexChanged.connect(self.replan)
        form.addRow("Class set of class ids", self.class_set)
        self.image = QComboBox()
        self.image.setObjectName("import_image")
        self.image.addItem("(by the file's name)", None)
        for image_id, name in self.store.image_names().items():
            self.image.addItem(name, image_id)
        self.image.currentIndexChanged.connect(self.replan)
        form.addRow("Image of files naming none", self.image)
        self.units = QComboBox()
        for text, value in (("as the file says", None), ("pixels", "px"), ("µm", "um")):
            self.units.addItem(text, value)
        self.units.currentIndexChanged.connect(self.replan)
        form.addRow("Coordinates", self.units)
        self.polygons = QCheckBox("One cell per polygon (annotations too)")
        self.polygons.toggled.connect(self.replan)
        form.addRow("", self.polygons)
        return box

    def _classes_box(self) -> QGroupBox:
        self.classes_group = QGroupBox("Classes the project does not have")
        layout = QVBoxLayout(self.classes_group)
        self.classes = QTableWidget(0, 3)
        self.classes.setObjectName("import_classes")
        self.classes.setHorizontalHeaderLabels(["class", "rows", "what to do"])
        layout.addWidget(self.classes)
        self.classes_group.setVisible(False)
        return self.classes_group

    def _columns_box(self) -> QGroupBox:
        self.columns_group = QGroupBox("Columns")
        layout = QVBoxLayout(self.columns_group)
        form = QFormLayout()
        self.column_boxes: dict[str, QComboBox] = {}
        for role in ("image", "x", "y", "label"):
            combo = QComboBox()
            combo.setObjectName(f"import_column_{role}")
            combo.currentIndexChanged.connect(self.replan)
            self.column_boxes[role] = combo
            form.addRow({"label": "class"}.get(role, role), combo)
        layout.addLayout(form)
        self.sample = QTableWidget(0, 0)
        layout.addWidget(self.sample)
        self.columns_group.setVisible(False)
        return self.columns_group

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Image folder", self.folder.text())
        if folder:
            self.folder.setText(folder)
            self.replan()

    # --- planning ----------------------------------------------------------------------------
    def choices(self) -> ImportChoices:
        class_map: dict[str, str | None] = {}
        for row in range(self.classes.rowCount()):
            name = self.classes.item(row, 0).text()
            combo = self.classes.cellWidget(row, 2)
            assert isinstance(combo, QComboBox)
            text = combo.currentText()
            class_map[name] = "" if text == CREATE else None if text == SKIP else text
        class_set = self.class_set.currentData()
        names = None
        if class_set:
            from cellviewer.core.io.cell_import import class_set_names

            names = class_set_names(class_set)
        folder = self.folder.text().strip()
        return ImportChoices(
            image_folder=Path(folder) if folder else None,
            on_missing_image=self.missing.currentData(), class_map=class_map,
            class_set=names, units=self.units.currentData(),
            polygons_as_cells=self.polygons.isChecked(), image_id=self.image.currentData(),
            columns=self._column_map())

    def _column_map(self) -> ColumnMap | None:
        if not self.columns_group.isVisible():
            return None
        picked = {role: box.currentText() for role, box in self.column_boxes.items()}
        if NONE in (picked["x"], picked["y"]) or not picked["x"]:
            return None
        return ColumnMap(picked["x"], picked["y"],
                         None if picked["image"] in (NONE, "") else picked["image"],
                         None if picked["label"] in (NONE, "") else picked["label"])

    def replan(self, *_: Any) -> None:
        self.import_button.setEnabled(False)
        self.planner.start(plan_work, self.store.path, self.paths, self.choices(),
                           done=self._planned, failed=self._failed)

    def _failed(self, message: str) -> None:
        self.plan = None
        self.summary.setText("")
        self.problems.setText(message)
        self.import_button.setEnabled(False)

    def _planned(self, plan: Any) -> None:
        if isinstance(plan, ColumnsNeeded):
            self._ask_columns(plan)
            self._failed(str(plan))
            return
        self.plan = plan
        lines = plan.summary() + plan.notices
        self.summary.setText("\n".join(lines))
        self.problems.setText("\n".join(plan.problems))
        self._show_unknown_classes(plan)
        self.import_button.setEnabled(plan.ready)

    def _show_unknown_classes(self, plan: ImportPlan) -> None:
        shown = {self.classes.item(r, 0).text() for r in range(self.classes.rowCount())}
        existing = [c.name for c in self.store.classes()]
        added = False
        for name, n in plan.unknown_classes.items():
            if name in shown:
                continue
            added = True
            row = self.classes.rowCount()
            self.classes.insertRow(row)
            self.classes.setItem(row, 0, QTableWidgetItem(name))
            self.classes.setItem(row, 1, QTableWidgetItem(f"{n:,}"))
            combo = QComboBox()
            combo.addItems([CREATE, SKIP, *existing])
            combo.currentIndexChanged.connect(self.replan)
            self.classes.setCellWidget(row, 2, combo)
        if self.classes.rowCount():
            self.classes_group.setVisible(True)
        if added:  # each listed with its choice (create, by default): plan with the answers
            self.replan()

    def _ask_columns(self, need: ColumnsNeeded) -> None:
        if self.header == need.header:
            return
        self.header = need.header
        for role, box in self.column_boxes.items():
            box.blockSignals(True)
            box.clear()
            box.addItems([NONE, *need.header])
            if role in need.guess:
                box.setCurrentText(need.guess[role])
            box.blockSignals(False)
        self.sample.setColumnCount(len(need.header))
        self.sample.setHorizontalHeaderLabels(need.header)
        self.sample.setRowCount(len(need.sample))
        for r, values in enumerate(need.sample):
            for c, v in enumerate(values[:len(need.header)]):
                self.sample.setItem(r, c, QTableWidgetItem(v))
        self.columns_group.setVisible(True)

    # --- importing ---------------------------------------------------------------------------
    def start_import(self) -> None:
        if self.plan is None or not self.plan.ready:
            return
        self.import_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setValue(0)
        plan = replace(self.plan)
        self.writer.start(apply_work, self.store.path, self.user, plan,
                          done=self._imported, failed=self._failed,
                          progress=lambda v: self.progress.setValue(int(v)))

    def _imported(self, result: Any) -> None:
        self.result = result
        self.store.external_change()
        self.accept()

    def done(self, code: int) -> None:
        self.planner.close(2000)
        self.writer.close(30000)
        super().done(code)
