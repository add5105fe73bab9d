"""The main window: a project's images, the slide view in the centre, docked panels around it.

The window is a view of one :class:`~cellviewer.core.project.session.ProjectSession` (the open
project,
its lock, who is editing, the active model, the current image and its cells): it opens and closes
projects through it, shows the image it names, and turns the user's gestures into the core's
editing functions (:mod:`cellviewer.core.cells.editing`). It never copies an edit into a panel by
hand: every edit, from any panel, reaches the session's cells through the store's change events,
and the markers, gallery, counts and details follow them (:mod:`cellviewer.ui.viewer.cell_panels`).

Tools (the model, blur-preview, review and training panels) dock in through the surface described
by :class:`cellviewer.ui.host.Host` and reach the project through :attr:`MainWindow.session`.
Signals: ``projectChanged(object)`` (the store or None), ``imageChanged(int)`` (-1: none),
``selectionChanged(list)`` (cell ids), ``cellsChanged()`` (after any committed change),
``colorModeChanged(str)``.

The GUI start-up path: nothing here imports torch, timm or pandas.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QWidget,
)

from cellviewer.core.cells import editing
from cellviewer.core.cells.editing import EditError, EditResult
from cellviewer.core.cells.image_cells import index_ids, load_image_cells
from cellviewer.core.cells.spatial import GridIndex
from cellviewer.core.project.session import ProjectSession
from cellviewer.core.sources.identity import ImageChangedError, open_recorded_image
from cellviewer.core.sources.suffixes import is_image_file
from cellviewer.core.store import SUFFIX
from cellviewer.core.store.project import COUNT_NEUTRAL
from cellviewer.core.store.records import ProjectDamagedError, ProjectError
from cellviewer.ui.common import project_files as files
from cellviewer.ui.common.dialogs import ask_user_name, saved_user, show_error
from cellviewer.ui.common.heap import freeze_long_lived
from cellviewer.ui.common.image_changed import CANCELLED, ask_about_changed_image
from cellviewer.ui.common.settings import app_settings
from cellviewer.ui.common.workers import BackgroundRunner
from cellviewer.ui.host import CLOSE_PROJECT, QUIT, CloseGuard
from cellviewer.ui.viewer.cell_details import CellDetails
from cellviewer.ui.viewer.cell_panels import CellPanels
from cellviewer.ui.viewer.class_keys import effective_keys, key_of_event
from cellviewer.ui.viewer.class_panel import ClassPanel
from cellviewer.ui.viewer.gallery import GalleryPanel
from cellviewer.ui.viewer.image_list import ImageList
from cellviewer.ui.viewer.markers import COLOR_MODES, MARKER_STYLES, ClassStyle
from cellviewer.ui.viewer.slide_view import SlideView
from cellviewer.ui.viewer.start_page import StartPage
from cellviewer.ui.viewer.tiles import SourceHandle, TileCache, TileLoader

PROJECT_SUFFIX = SUFFIX  # ".cvproj": the store owns it
SYNC_CELLS_BELOW = 5_000  # smaller images load their cells on the GUI thread (< 25 ms)
TILE_CACHE_BYTES = 384 * 1024 * 1024


def _open_checked(record):
    """Open a project image for the viewer (a worker's job) after its fingerprint check: the
    source, or the ImageChangedError to ask the user about (the runner's failure path carries
    only words)."""
    try:
        return open_recorded_image(record)
    except ImageChangedError as exc:
        return exc


class MainWindow(QMainWindow):
    projectChanged = Signal(object)
    imageChanged = Signal(int)
    selectionChanged = Signal(object)  # cell ids (a list: object, so PySide does not copy it)
    cellsChanged = Signal()
    colorModeChanged = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("CellViewer")
        self.session = ProjectSession(ask_user=lambda hint: ask_user_name(self, hint),
                                      suggested_user=saved_user)
        self._handle: SourceHandle | None = None
        self._shown_image: int | None = None  # the image on the view (its tiles)
        self.image_changed_dialog = None  # the question about a replaced image, while open
        self._image_generation = 0
        self._pending_selection: list[str] = []
        self._writing: str | None = None  # a background write (an import) in progress
        self._import_process = None  # its child process
        self.import_dialog = None  # the preview of an import, while open
        self.setAcceptDrops(True)  # cell files dropped on the window are imported
        self._close_guards: list[CloseGuard] = []
        self._menus: dict[str, QMenu] = {}
        self._panels_menu: QMenu | None = None
        self.last_error: str = ""
        self.runner = BackgroundRunner(2, self)
        self.file_care = files.ProjectFileCare(self.show_status, self.report_error, self)
        self.loader = TileLoader(TileCache(TILE_CACHE_BYTES), threads=3, parent=self)

        self.view = SlideView(self.loader, self, cells=self.session.cells)
        self.view.message = "Choose an image in the list on the left."
        self.start_page = StartPage(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.view)
        self.setCentralWidget(self.stack)

        self.image_list = ImageList(self)
        self.class_panel = ClassPanel(self)
        self.details = CellDetails(self)
        self.gallery_panel = GalleryPanel(self)
        self.gallery = self.gallery_panel.gallery
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self.panels = CellPanels(self.session, self.view, self.gallery_panel, self.class_panel,
                                 self.details, self.image_list, lambda: self._handle,
                                 self.runner, self.count_label.setText, self)
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.images_dock = self.add_panel(self._dock("Images", "images_dock", self.image_list),
                                          left)
        self.classes_dock = self.add_panel(self._dock("Classes", "classes_dock",
                                                      self.class_panel), left)
        self.details_dock = self.add_panel(self._dock("Cell", "details_dock", self.details),
                                           right)
        self.gallery_dock = self.add_panel(self._dock("Gallery", "gallery_dock",
                                                      self.gallery_panel), right)
        self._connect()
        self._restore_settings()
        self._show_start_page()

    # --- construction ----------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        return dock

    def _action(self, menu: QMenu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        file = self.menu("&File")
        self._action(file, "&New project…", self._ask_new_project, QKeySequence.StandardKey.New)
        self._action(file, "&Open project…", self._ask_open_project,
                     QKeySequence.StandardKey.Open)
        self.recent_menu = file.addMenu("Open &recent")
        self._action(file, "Open the &demo project", self.open_demo)
        file.addSeparator()
        self.add_images_action = self._action(file, "&Add images…", self._ask_add_images)
        self.import_action = self._action(file, "&Import cells…", self._ask_import_cells)
        file.addSeparator()
        self.check_action = self._action(file, "Check project &file…", self.check_project_file,
                                         tip="SQLite's full integrity check, in the background")
        self.close_action = self._action(file, "&Close project", self.close_project)
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit = self.menu("&Edit")
        self.undo_action = self._action(edit, "&Undo", self.undo, QKeySequence.StandardKey.Undo)
        self.redo_action = self._action(edit, "&Redo", self.redo, QKeySequence("Ctrl+Shift+Z"))
        edit.addSeparator()
        self._action(edit, "&Delete selected cells", self.delete_selection,
                     tip="Delete (or Backspace) in the view")
        self._action(edit, "Select &all cells of the image", self.select_all)
        self._action(edit, "Clear selectio&n", lambda: self.select_cells([]))
        edit.addSeparator()
        self._action(edit, "&Classes…", self.edit_classes)
        self._action(edit, "Switch &user…", self.switch_user)

        view = self.menu("&View")
        self._action(view, "&Fit to window", self.view.fit, QKeySequence("Ctrl+0"))
        self._action(view, "&Actual pixels (1:1)", self.view.one_to_one, QKeySequence("Ctrl+1"))
        self._action(view, "Zoom &in", lambda: self.view.set_zoom(self.view.zoom() * 1.25),
                     QKeySequence.StandardKey.ZoomIn)
        self._action(view, "Zoom &out", lambda: self.view.set_zoom(self.view.zoom() / 1.25),
                     QKeySequence.StandardKey.ZoomOut)
        view.addSeparator()
        self.markers_action = QAction("Show &markers", self, checkable=True, checked=True)
        self.markers_action.setShortcut(QKeySequence("Ctrl+M"))
        self.markers_action.toggled.connect(self.view.set_markers_visible)
        view.addAction(self.markers_action)
        colour = view.addMenu("&Colour markers by")
        self._mode_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for mode, text in zip(COLOR_MODES, ("&Label", "&Prediction",
                                            "&Agreement of label and prediction"), strict=True):
            action = QAction(text, self, checkable=True)
            action.setChecked(mode == "label")
            action.triggered.connect(lambda _c=False, m=mode: self.set_color_mode(m))
            group.addAction(action)
            colour.addAction(action)
            self._mode_actions[mode] = action
        view.addSeparator()
        self._panels_menu = view.addMenu("&Panels")

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("View")
        bar.setObjectName("view_toolbar")
        self.add_mode_action = QAction("Add cells", self, checkable=True)
        self.add_mode_action.setToolTip("Click to add a cell with the current class (A). "
                                        "Ctrl-click adds in any mode.")
        self.add_mode_action.toggled.connect(lambda on: self._tool_toggled("add", on))
        bar.addAction(self.add_mode_action)
        self.measure_action = QAction("Measure", self, checkable=True)
        self.measure_action.setToolTip("Drag on the image to measure a distance, in µm where "
                                       "the pixel size is known (M; Esc clears)")
        self.measure_action.toggled.connect(lambda on: self._tool_toggled("measure", on))
        bar.addAction(self.measure_action)
        self.region_mode_action = QAction("Draw region", self, checkable=True)
        self.region_mode_action.setToolTip(
            "Draw a region (R): drag a rectangle, or click a polygon's corners and "
            "double-click or press Enter to close it; Esc cancels")
        self.region_mode_action.toggled.connect(lambda on: self._tool_toggled("region", on))
        bar.addAction(self.region_mode_action)
        fit = QAction("Fit", self)
        fit.setToolTip("Fit the image to the window (F, Ctrl+0)")
        fit.triggered.connect(self.view.fit)
        bar.addAction(fit)
        one = QAction("1:1", self)
        one.setToolTip("One image pixel per screen pixel (Ctrl+1)")
        one.triggered.connect(self.view.one_to_one)
        bar.addAction(one)
        bar.addSeparator()
        bar.addWidget(QLabel(" Colour: "))
        self.mode_combo = QComboBox(self)
        for mode in COLOR_MODES:
            self.mode_combo.addItem(mode, mode)
        self.mode_combo.currentIndexChanged.connect(
            lambda _i: self.set_color_mode(self.mode_combo.currentData()))
        bar.addWidget(self.mode_combo)
        bar.addWidget(QLabel(" Marker: "))
        self.style_combo = QComboBox(self)
        for style in MARKER_STYLES:
            self.style_combo.addItem(style, style)
        self.style_combo.currentIndexChanged.connect(
            lambda _i: self.view.set_marker_style(style=self.style_combo.currentData()))
        bar.addWidget(self.style_combo)
        self.size_spin = QSpinBox(self)
        self.size_spin.setRange(4, 40)
        self.size_spin.setValue(self.view.marker_size)
        self.size_spin.setSuffix(" px")
        self.size_spin.valueChanged.connect(lambda v: self.view.set_marker_style(size=v))
        bar.addWidget(self.size_spin)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.cursor_label = QLabel("", self)
        self.zoom_label = QLabel("", self)
        self.count_label = QLabel("", self)
        self.user_button = QToolButton(self)
        self.user_button.setObjectName("user_button")
        self.user_button.setAutoRaise(True)
        self.user_button.setToolTip("Who is recorded with every change; click to switch")
        self.user_button.clicked.connect(self.switch_user)
        for w in (self.cursor_label, self.zoom_label, self.count_label, self.user_button):
            status.addPermanentWidget(w)
        self._show_user(self.session.user)

    def _connect(self) -> None:
        v = self.view
        v.selectionChanged.connect(self.selectionChanged)
        v.addRequested.connect(lambda x, y: self.add_cell(x, y))
        v.moveRequested.connect(self.move_cell)
        v.cursorMoved.connect(self._on_cursor)
        v.viewChanged.connect(self._update_zoom_label)
        v.toolChanged.connect(self._on_tool_changed)
        v.measured.connect(self._on_measured)
        self.image_list.imageActivated.connect(self.show_image)
        self.class_panel.hiddenChanged.connect(self.view.layer.set_hidden)
        self.class_panel.applyRequested.connect(self.label_selection)
        self.class_panel.editRequested.connect(self.edit_classes)
        self.gallery.cellActivated.connect(lambda cid: self.centre_on_cell(cid))
        sp = self.start_page
        sp.newRequested.connect(self._ask_new_project)
        sp.openRequested.connect(self._ask_open_project)
        sp.demoRequested.connect(self.open_demo)
        sp.recentRequested.connect(self.open_path)
        ev = self.session.events
        ev.project.connect(self._on_project)
        ev.reload_needed.connect(self._load_cells)
        ev.store_changed.connect(self._on_store_changed)
        ev.user.connect(self._show_user)
        self.session.cells.events.reset.connect(self._apply_pending_selection)

    def _on_tool_changed(self, tool: str) -> None:
        self.add_mode_action.setChecked(tool == "add")
        self.measure_action.setChecked(tool == "measure")
        self.region_mode_action.setChecked(tool == "region")

    def _tool_toggled(self, tool: str, on: bool) -> None:
        """A tool's toolbar button: on chooses it; off goes back to selecting, unless another
        tool has been chosen meanwhile (its button is turned off by that choice)."""
        if on:
            self.view.set_tool(tool)
        elif self.view.tool == tool:
            self.view.set_tool("select")

    # --- the host surface (cellviewer.ui.host.Host) ----------------------------------------
    def add_panel(self, dock: QDockWidget,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Dock a panel and list it in View → Panels; its saved place is restored if known."""
        if not dock.objectName():
            dock.setObjectName(dock.windowTitle().lower().replace(" ", "_") + "_dock")
        self.addDockWidget(area, dock)
        self.restoreDockWidget(dock)
        if self._panels_menu is not None:
            self._panels_menu.addAction(dock.toggleViewAction())
        return dock

    def tabify_with(self, name: str, dock: QDockWidget) -> None:
        """Put ``dock`` in the tab group of the window's dock ``name`` ("details", "model"…:
        the object name without ``_dock``), keeping that one in front."""
        anchor = self.findChild(QDockWidget, f"{name}_dock")
        if anchor is None or anchor is dock:
            return
        self.tabifyDockWidget(anchor, dock)
        anchor.raise_()

    def menu(self, title: str) -> QMenu:
        """The top-level menu called ``title`` (created at the end of the menu bar)."""
        found = self._menus.get(title)
        if found is None:
            found = self.menuBar().addMenu(title)
            self._menus[title] = found
        return found

    def add_close_guard(self, guard: CloseGuard) -> None:
        """``guard(reason) -> bool`` is asked before the project closes (``"close-project"``,
        also when another project is opened) or the app quits (``"quit"``); False cancels."""
        self._close_guards.append(guard)

    def _may_close(self, reason: str) -> bool:
        return all(guard(reason) for guard in list(self._close_guards))

    def install_tools(self) -> None:
        """Add the model, blur-preview, review and export tools, the training panels and the
        annotators' tools (they dock in through this surface). The app calls it once after
        creating the window."""
        from cellviewer.ui.predict.install import install as install_prediction
        from cellviewer.ui.train.install import install as install_training

        if not hasattr(self, "prediction_tools"):
            self.prediction_tools = install_prediction(self)
        if not hasattr(self, "training"):
            self.training = install_training(self)
        if not hasattr(self, "regions_tool"):
            from cellviewer.ui.regions.install import install as install_regions

            self.regions_tool = install_regions(self)
        if not hasattr(self, "annotator_tools"):
            from cellviewer.ui.annotators.install import install as install_annotators

            self.annotator_tools = install_annotators(self)  # (after the Review dock)
        self._install_daily_use()
        freeze_long_lived()

    def _install_daily_use(self) -> None:
        """The layout, help, display and finding tools (cellviewer.ui.common.layout, …)."""
        if hasattr(self, "reset_layout_action"):
            return
        from cellviewer.ui.common import help, layout, wheel
        from cellviewer.ui.viewer import class_picker, display, goto, legend

        self.display_dock = display.install(self)  # (before the layout: it has a place)
        self.reset_layout_action = layout.install(self, self._state_restored)
        self.menu("&View").addAction(self.reset_layout_action)
        self.legend_action = legend.install(self, lambda: self._classes)
        self.label_as_action = class_picker.install(self, lambda: self._classes,
                                                    self.label_selection)
        self.find_actions = goto.install(self, lambda: self._classes)
        self.help_actions = help.install(self, lambda: self._classes, self.runner.submit)
        wheel.install()  # the wheel scrolls a panel, not the slider under the pointer
        wheel.strong_focus(self)

    @property
    def store(self):
        """The open project's store (None before one is opened)."""
        return self.session.store

    def current_store(self):
        return self.session.store

    def current_image_id(self) -> int | None:
        return self.session.image_id

    def current_image_source(self):
        return self._handle.source if self._handle is not None else None

    def selected_cell_ids(self) -> list[str]:
        return self.view.selected_ids()

    def select_cells(self, ids) -> None:
        self.view.select_ids(list(ids))

    def visible_cell_ids(self) -> list[str]:
        x0, y0, x1, y1 = self.view.visible_image_rect()
        rows = self.view.layer.query(x0, y0, x1, y1)
        return [str(i) for i in self.view.layer.ids[sorted(rows.tolist())]]

    def color_mode(self) -> str:
        return self.view.layer.mode

    def set_color_mode(self, mode: str) -> None:
        if mode not in COLOR_MODES:
            raise ValueError(f"colour mode must be one of {COLOR_MODES}, not {mode!r}")
        if mode == self.view.layer.mode:
            return
        self.view.layer.set_mode(mode)
        self._mode_actions[mode].setChecked(True)
        self.mode_combo.blockSignals(True)
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))
        self.mode_combo.blockSignals(False)
        self.colorModeChanged.emit(mode)

    def set_prediction_overlay(self, ids, classes) -> None:
        """Colour these cells by ``classes`` (project class ids) instead of the active model's
        stored call, e.g. their prediction under the blur preview's σ; None ids: stop."""
        self.view.layer.set_prediction_override(ids, classes)

    def centre_on_cell(self, cell_id: str, zoom: float | None = None) -> bool:
        """Centre the slide on a cell (switching image if needed); False if it is unknown."""
        cells = self.session.cells
        row = int(cells.indices_of([cell_id])[0]) if len(cells) else -1
        if row >= 0:
            x, y = cells.xy[row]
            self.view.centre_on(float(x), float(y), zoom if zoom is not None else
                                max(self.view.zoom(), 1.0))
            return True
        if self.store is None:
            return False
        try:
            cell = self.store.cell(cell_id)
        except Exception:  # not a cell of this project
            return False
        self.show_image(cell.image_id)
        self.image_list.set_current_image(cell.image_id)
        self.view.centre_on(cell.x, cell.y, zoom if zoom is not None else 1.0)
        self._pending_selection = [str(cell_id)]  # applied once the image's cells are in
        self._apply_pending_selection()  # (a small image's are in already)
        return True

    # --- the viewer's tools (select, add, measure) -------------------------------------------
    def _on_measured(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(f"Measured: {text}")
        else:
            self.statusBar().clearMessage()

    def show_status(self, text: str, ms: int = 4000) -> None:
        self.statusBar().showMessage(text, ms)

    def report_error(self, title: str, message: str) -> None:
        """Tell the user what failed and why, without blocking (see dialogs.show_error)."""
        self.last_error = message
        self.statusBar().showMessage(message, 10000)
        show_error(self, title, message)

    # --- the user ----------------------------------------------------------------------------
    def _show_user(self, name: str | None) -> None:
        self.user_button.setText(f"user: {name}" if name else "user: (asked at the first edit)")

    def switch_user(self) -> None:
        name = ask_user_name(self, self.session.user or saved_user())
        if name:
            self.session.set_user(name)

    # --- projects ----------------------------------------------------------------------------
    def open_demo(self) -> bool:
        """Open the bundled demo project (built in the user data folder the first time)."""
        from cellviewer.core.io.project_import import create_demo_project

        try:
            path = create_demo_project()
        except Exception as exc:  # shown to the user
            self.report_error("Cannot open the demo project", str(exc))
            return False
        return self.open_project(path)

    def open_path(self, path: str) -> bool:
        """Open a project, or add an image to the open project (a scratch one if none)."""
        p = Path(path)
        if is_image_file(p):
            if self.store is None:
                from cellviewer.paths import user_data_dir

                scratch = user_data_dir() / "scratch" / f"{p.stem}{PROJECT_SUFFIX}"
                scratch.parent.mkdir(parents=True, exist_ok=True)
                if not (self.open_project(scratch) if scratch.exists()
                        else self.new_project(scratch)):
                    return False
            self.add_images([str(p)])
            return True
        return self.open_project(p)

    def open_project(self, path) -> bool:
        """Open a project; False (and the open project stays) when it cannot be opened, a
        close guard said no, or the user declined to open a project another CellViewer has."""
        return self._open(Path(path), create=False)

    def new_project(self, path) -> bool:
        path = Path(path)
        if path.suffix != PROJECT_SUFFIX:
            path = path.with_name(path.name + PROJECT_SUFFIX)
        return self._open(path, create=True)

    def _open(self, path: Path, create: bool) -> bool:
        if self.store is not None and not self._may_close(CLOSE_PROJECT):
            return False
        try:
            if create:
                store = self.session.create(path, lock_user=self._lock_user())
            else:
                store = self.session.open(
                    path, lock_user=self._lock_user(),
                    confirm_in_use=lambda error: files.confirm_open_in_use(self, error))
        except ProjectDamagedError as exc:
            return False if create else self._offer_way_out(path, exc)
        except Exception as exc:  # ProjectError names the file; else we do
            self.report_error("Cannot create project" if create else "Cannot open project",
                              self._named(path, exc))
            return False
        if store is None:
            self.statusBar().showMessage(f"Not opened: {path} is open in another CellViewer",
                                         10000)
            return False
        return True

    def _offer_way_out(self, path: Path, error: Exception) -> bool:
        """A damaged project was refused: open it read-only, or restore its newest backup
        (the damaged file is kept aside), as the user chooses."""
        from cellviewer.core.store.backup import list_backups, restore_backup

        self.last_error = str(error)
        backups = list_backups(path)
        choice = files.ask_damaged_way_out(self, error, backups)
        try:
            if choice == files.READ_ONLY:
                return self.session.open(path, read_only=True) is not None
            if choice == files.RESTORE:
                aside = restore_backup(path, backups[0].path, user=self._lock_user())
                opened = self._open(path, create=False)
                if opened and aside is not None:
                    made = backups[0].made_at.astimezone().strftime("%Y-%m-%d %H:%M")
                    self.statusBar().showMessage(
                        f"Restored the backup of {made}; the damaged file is kept as "
                        f"{aside.name}", 15000)
                return opened
        except Exception as exc:  # ProjectError names the file
            self.report_error("Cannot open project", self._named(path, exc))
        return False

    def check_project_file(self) -> None:
        """File → Check project file…: the full integrity check, in the background."""
        if self.store is None:
            self.report_error("No project", "Open a project to check its file.")
            return
        self.file_care.check(self.store.path)

    def close_project(self) -> bool:
        """Close the open project (after asking the close guards); False if one said no."""
        if self.store is not None and not self._may_close(CLOSE_PROJECT):
            return False
        self._close_image()
        self.session.close()
        return True

    @staticmethod
    def _named(path: Path, exc: Exception) -> str:
        text = str(exc)
        return text if str(path) in text or path.name in text else f"{path}: {text}"

    def _lock_user(self) -> str:
        """The name the lock shows to others: the editing user once known, else the name
        kept in the settings or the login name; never asks, since opening is not editing."""
        from cellviewer.core.project.users import default_user

        return self.session.user or saved_user() or default_user()

    def _on_project(self, store) -> None:
        """The session opened ``store`` (or closed the project: None): every per-project
        view starts afresh."""
        self._close_image()
        self.view.select_ids([], emit=False)
        self.set_color_mode("label")
        self.view.layer.set_prediction_override(None, None)
        with contextlib.suppress(ProjectError):  # (a damaged one opened read-only: see below)
            self._update_undo_actions()
        if store is None:
            self.file_care.project_opened(None)
            self.setWindowTitle("CellViewer")
            self.image_list.set_images([])
            self.panels.clear()
            self._show_start_page()
            self.projectChanged.emit(None)
            return
        lock = self.session.lock
        if lock is not None and not lock.held and lock.reason:
            self.statusBar().showMessage(
                f"Not locked ({lock.reason}): another CellViewer could open it too", 15000)
        if store.read_only:
            self.statusBar().showMessage(
                f"Read-only: {store.read_only_reason}; changes are refused"
                + ("" if lock is None or lock.held else ", and it is open without a lock"),
                0)
        files.remember_recent(str(store.path))
        files.fill_recent_menu(self.recent_menu, self.open_path)
        self.setWindowTitle(f"CellViewer: {Path(store.path).name}"
                            + (" (read-only)" if store.read_only else ""))
        self.file_care.project_opened(store)
        self.stack.setCurrentWidget(self.view)
        try:
            self._reload_classes()
            images = store.images()
        except ProjectError as exc:  # a damaged project opened read-only: what can be read
            self.report_error("Part of the project cannot be read", str(exc))
            images = []
        self.image_list.set_images(images)
        self.projectChanged.emit(store)
        freeze_long_lived()
        if images:
            self.image_list.set_current_image(images[0].id)
            self.show_image(images[0].id)
        else:
            self.view.message = "This project has no images yet: File → Add images…"
            self.view.update()

    def _show_start_page(self) -> None:
        self.start_page.set_recent(files.recent_projects())
        self.stack.setCurrentWidget(self.start_page)

    def _on_store_changed(self, event) -> None:
        """A committed change of the project (from any panel): the cells have followed it
        already; here the menus, classes and image list do."""
        kinds = event.kinds
        if "classes" in kinds:
            self._reload_classes()
        if event.action == "external":  # another connection wrote: recount off this thread
            self._refresh_image_list_in_background()
        elif "images" in kinds and self.store is not None:
            self.image_list.set_images(self.store.images())
        elif "cells" in kinds:
            self.panels.update_image_counts()
            others = set(event.image_ids) - {self.session.image_id}
            if others and event.action not in COUNT_NEUTRAL and self.store is not None:
                self.image_list.update_counts(self.store.images())  # other images' counts
        self._update_undo_actions()
        self.file_care.edited()  # a backup when one is due (hourly while edits happen)
        self.cellsChanged.emit()

    def _refresh_image_list_in_background(self) -> None:
        store = self.store
        if store is None:
            return
        path = store.path

        def read():
            from cellviewer.core.store import ProjectStore

            with ProjectStore.open(path, readonly=True) as ro:
                return ro.images()

        def done(images) -> None:
            if store is self.store:
                self.image_list.set_images(images)

        self.runner.submit(read, done, lambda msg: self.show_status(msg, 8000))

    # --- images ------------------------------------------------------------------------------
    def image_count(self) -> int:
        return len(self.store.images()) if self.store is not None else 0

    def cell_count(self) -> int:
        return self.store.cell_count() if self.store is not None else 0

    def show_image(self, image_id: int) -> None:
        """Show an image of the project: its tiles and cells load in the background."""
        if self.store is None or image_id == self.session.image_id:
            return
        try:
            rec = self.store.image(image_id)
        except Exception as exc:  # shown to the user
            self.report_error("Cannot show image", str(exc))
            return
        self._close_image()
        self._pending_selection = []
        self._image_generation += 1
        generation = self._image_generation
        self.view.message = f"Opening {rec.path.name}…"
        self.session.set_image(int(image_id))  # its cells start loading now

        def opened(source) -> None:
            if isinstance(source, ImageChangedError):
                changed(source)
                return
            if generation != self._image_generation:  # the user moved on meanwhile
                self.runner.submit(source.close)
                return
            self._handle = SourceHandle(source)
            self.view.set_source(self._handle)

        def failed(message: str) -> None:
            if generation != self._image_generation:
                return
            self.view.message = f"Cannot open {rec.path.name}"
            self.view.update()
            self.report_error("Cannot open image", message)

        def changed(error: ImageChangedError) -> None:
            """The file is not the recorded image any more: ask (relink, accept, cancel)
            before anything is shown or cropped from it."""
            if generation != self._image_generation:
                return
            self.view.message = f"{rec.path.name} has changed since it was added"
            self.view.update()

            def resolved(outcome: str) -> None:
                if outcome == CANCELLED or generation != self._image_generation:
                    return
                again = self.store.image(image_id)  # a relink changed its path
                self.view.message = f"Opening {again.path.name}…"
                self.runner.submit(lambda: _open_checked(again), opened, failed, priority=10)

            self.image_changed_dialog = ask_about_changed_image(
                self, self.store, error, resolved, work="showing it")

        self._shown_image = int(image_id)
        self.runner.submit(lambda: _open_checked(rec), opened, failed, priority=10)
        self.panels.update_count()
        self.imageChanged.emit(int(image_id))

    def _close_image(self) -> None:
        handle, had_image = self._handle, self._shown_image is not None
        self._handle, self._shown_image = None, None
        self._image_generation += 1
        self.view.set_source(None)
        self.session.set_image(None)
        if handle is not None:
            handle.mark_closed()  # workers still holding it stop quietly
            self.runner.submit(handle.close)  # close waits for reads in flight: not here
        if had_image:
            self.imageChanged.emit(-1)

    def _load_cells(self) -> None:
        """Read the current image's cells (the session asked): a large image's in a worker,
        through its own read-only connection, with its spatial index, so the window stays
        live; the session applies edits made meanwhile on arrival."""
        request = self.session.load_request()
        store = self.store
        if request is None or store is None:
            return
        n = store.image_cell_count(request.image_id)
        if n < SYNC_CELLS_BELOW:
            self.session.loaded(request, store.image_columns(request.image_id,
                                                             request.model_id))
            return
        rec = store.image(request.image_id)

        def job():
            cols = load_image_cells(request)
            return cols, index_ids(cols), GridIndex(cols.xy, rec.width, rec.height)

        def done(result) -> None:
            cols, ids, index = result
            self.view.layer.expect_index(index)
            loaded = self.session.loaded(request, cols, ids)
            self.view.layer.expect_index(None)
            if loaded:
                self.view.layer.set_index(index)
                self.statusBar().clearMessage()

        self.statusBar().showMessage(f"Loading {n:,} cells…")
        self.runner.submit(job, done, lambda msg: self.report_error("Cannot load cells", msg))

    def _apply_pending_selection(self) -> None:
        if self._pending_selection and not self.session.cells.loading:
            pending, self._pending_selection = self._pending_selection, []
            self.view.select_ids(pending)

    def add_images(self, paths: list[str]) -> None:
        """Add image files to the project; each is opened in a worker to read its size.
        A file that cannot be opened is reported (named, with the cause) and not added."""
        if self.store is None:
            self.report_error("No project", "Open or create a project before adding images.")
            return
        from cellviewer.core.io.project_import import image_info

        def probe(path: str):
            return (path, *image_info(path))

        store = self.store
        for path in paths:
            def done(info, store=store) -> None:
                if store is not self.store:
                    return
                p, w, h, mpp, fp = info
                try:
                    image_id = store.add_image(p, w, h, mpp=mpp, fingerprint=fp)
                except Exception as exc:  # shown to the user
                    self.report_error("Cannot add image", self._named(Path(p), exc))
                    return
                if self.session.image_id is None:
                    self.image_list.set_current_image(image_id)
                    self.show_image(image_id)

            self.runner.submit(lambda p=path: probe(p), done,
                               lambda msg: self.report_error("Cannot add image", msg))

    def _user_for_import(self, title: str, doing: str) -> str | None:
        """Who imports, when an import may start now: a project is open, no worker is
        writing to it, and a user was named (asked here); None (said why) otherwise."""
        if self.store is None:
            self.report_error("No project", f"Open or create a project before {doing}.")
            return None
        if self._writing:
            self.report_error("Busy", f"Wait until {self._writing} has finished.")
            return None
        try:
            return self.session.require_user()
        except Exception as exc:  # no name given: nothing imported
            self.report_error(title, str(exc))
            return None

    def import_points(self, csv_path: str, image_dir: str | None = None) -> bool:
        """Import cells from a points CSV (``cellviewer import``, cellviewer.core.io) in a
        child process: the window stays live whatever the file's size (a thread would share
        the GIL with it), and edits wait until it is done. Returns False when it could not
        start."""
        user = self._user_for_import("Cannot import points", "importing points")
        if user is None:
            return False
        from cellviewer.cli.main import command_invocation
        from cellviewer.ui.common.trainer_process import TrainerProcess

        store, name = self.store, Path(csv_path).name
        args = ["import", str(store.path), str(csv_path), "--user", user, "--json",
                "--on-missing-image", "add", "--on-unknown-class", "create"]
        if image_dir is not None:
            args += ["--image-dir", str(image_dir)]
        program, argv = command_invocation(args)
        proc = TrainerProcess(argv, store.folder, self, program=program)
        outcome: dict = {}
        proc.protocol_event.connect(outcome.update)  # the last event: finished or error

        def finished(code: int, _crashed: bool) -> None:
            self._writing = None
            self._import_process = None
            if store is not self.store:
                return
            store.external_change()  # everything is read again, in the background
            if code == 0 and outcome.get("event") == "finished":
                self.statusBar().showMessage(
                    f"Imported {int(outcome.get('n_cells', 0)):,} cells from {name}", 8000)
            else:
                message = outcome.get("message") or proc.stderr_tail() or f"exit code {code}"
                self.report_error("Cannot import points",
                                  self._named(Path(csv_path), Exception(message)))

        proc.finished.connect(finished)
        if not proc.start():
            self.report_error("Cannot import points", proc.error or "could not start")
            return False
        self._import_process = proc
        self._writing = f"the import of {name}"
        self.statusBar().showMessage(f"Importing {name}…")
        return True

    # --- classes -----------------------------------------------------------------------------
    def _reload_classes(self) -> None:
        rows = [] if self.store is None else self.store.classes()
        keys = effective_keys([c.key for c in rows])  # 1-9, then Shift+1-9 for the rest
        classes = [ClassStyle(c.id, c.name, c.color, k) for c, k in zip(rows, keys, strict=True)]
        self.view.layer.set_classes(classes)
        self.panels.set_classes(classes)

    @property
    def _classes(self) -> list[ClassStyle]:
        return self.panels.classes

    def class_for_key(self, key: str) -> int | None:
        for c in self._classes:
            if c.key == key:
                return c.id
        return None

    def edit_classes(self) -> None:
        if self.store is None:
            return
        from cellviewer.ui.viewer.class_editor import ClassEditorDialog

        dialog = ClassEditorDialog(self.store, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.class_editor = dialog
        dialog.open()

    # --- editing: gestures become the core's edits -------------------------------------------
    def _edit(self, title: str, fn, *args) -> EditResult | None:
        """Run one edit of the core (recorded with the user, asked first if need be)."""
        if self.store is None:
            return None
        if self._writing:
            self.report_error(title, f"Wait until {self._writing} has finished.")
            return None
        try:
            result = fn(self.session, *args)
        except EditError as exc:
            self.report_error(title, str(exc))
            return None
        self.statusBar().showMessage(result.message, 4000)
        return result

    def label_selection(self, class_id: int | None) -> int:
        """Give the selected cells a class (-1 or None: unlabelled); returns how many."""
        ids = self.view.selected_ids()
        if not ids:
            return 0
        result = self._edit("Cannot set the class", editing.label, ids, class_id)
        return result.count if result else 0

    def delete_selection(self) -> int:
        ids = self.view.selected_ids()
        if not ids:
            return 0
        result = self._edit("Cannot delete cells", editing.delete, ids)
        return result.count if result else 0

    def add_cell(self, x: float, y: float, class_id: int | None = None) -> str | None:
        """Add a cell at level-0 (x, y) with ``class_id`` (default: the current class)."""
        if self.session.image_id is None:
            return None
        if class_id is None:
            class_id = self.class_panel.current_class()
        result = self._edit("Cannot add a cell", editing.add, [[x, y]], class_id)
        if not result or not result.ids:
            return None
        self.view.select_ids(list(result.ids))
        return result.ids[0]

    def move_cell(self, cell_id: str, x: float, y: float) -> None:
        self._edit("Cannot move the cell", editing.move, cell_id, x, y)

    def undo(self) -> bool:
        return self._flip("undo")

    def redo(self) -> bool:
        return self._flip("redo")

    def _flip(self, which: str) -> bool:
        """Undo or redo: on the GUI thread when small, on a worker's connection when it would
        block the window (an import of 200,000 cells), with the edits held meanwhile."""
        title = f"Cannot {which}"
        store = self.store
        if store is not None and not self._writing and not store.readonly and \
                editing.flip_in_background(self.session, which):
            return self._flip_in_background(store, which)
        result = self._edit(title, editing.undo if which == "undo" else editing.redo)
        return bool(result and result.count)

    # --- writes on a worker's connection -----------------------------------------------------
    def hold_edits(self, why: str) -> None:
        """A worker writes to the project (a big undo, an import, a detection's proposals):
        every edit is refused meanwhile with "Wait until ``why`` has finished"."""
        self._writing = why

    def edits_held(self) -> bool:
        return self._writing is not None

    def release_edits(self, changed: bool = True) -> None:
        """The worker is done; ``changed``: what it wrote is read again (cells, counts,
        queues, the Undo menu)."""
        self._writing = None
        if changed and self.store is not None:
            self.store.external_change()
            self._update_undo_actions()

    def _flip_in_background(self, store, which: str) -> bool:
        title = f"Cannot {which}"
        try:
            self.session.require_user()  # asked here, on the GUI thread, like any edit
        except Exception as exc:  # declined: nothing is changed
            self.report_error(title, str(exc))
            return False
        description = (store.undo_description() if which == "undo"
                       else store.redo_description())

        def work():
            worker = store.connection_for_worker()
            try:
                return editing.flip_store(worker, which)
            finally:
                worker.close()

        def finish(message: str | None, error: str | None = None) -> None:
            if store is not self.store:
                self._writing = None
                return
            self.release_edits(changed=True)
            if error is not None:
                self.report_error(title, error)
            elif message:
                self.statusBar().showMessage(message, 4000)

        self.hold_edits(f"the {which} of {description!r}")
        self.statusBar().showMessage(f"{which.capitalize()}: {description}…")
        self.runner.submit(work, lambda result: finish(result.message),
                           lambda error: finish(None, error))
        return True

    def _update_undo_actions(self) -> None:
        """ "Undo Label 3 cells as normal" / "Redo …": what the store would revert or repeat."""
        store = self.store
        undo = store.undo_description() if store is not None else None
        redo = store.redo_description() if store is not None else None
        self.undo_action.setEnabled(undo is not None)
        self.redo_action.setEnabled(redo is not None)
        self.undo_action.setText(f"&Undo {undo}" if undo else "&Undo")
        self.redo_action.setText(f"&Redo {redo}" if redo else "&Redo")

    def select_all(self) -> None:
        self.view.select_ids([str(i) for i in self.session.cells.ids])

    # --- status bar --------------------------------------------------------------------------
    def _on_cursor(self, x: float, y: float) -> None:
        if math.isnan(x):
            self.cursor_label.setText("")
            return
        text = f"x {x:,.0f}  y {y:,.0f} px"
        mpp = self._handle.mpp if self._handle is not None else None
        if mpp:
            text += f"  ({x * mpp:,.1f}, {y * mpp:,.1f} µm)"
        self.cursor_label.setText(text)

    def _update_zoom_label(self) -> None:
        self.zoom_label.setText(f"zoom {self.view.zoom() * 100:.0f}%" if self._handle else "")

    # --- keyboard ----------------------------------------------------------------------------
    def keyPressEvent(self, e: QKeyEvent) -> None:
        """Keys the view and gallery pass up: 1-9 and Shift+1-9 label, Delete deletes,
        undo/redo."""
        mods = e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if e.matches(QKeySequence.StandardKey.Undo):
            self.undo()
        elif e.matches(QKeySequence.StandardKey.Redo) or (
                e.key() == Qt.Key.Key_Z and mods == (Qt.KeyboardModifier.ControlModifier |
                                                     Qt.KeyboardModifier.ShiftModifier)):
            self.redo()
        elif (class_key := key_of_event(e)) is not None:
            cid = self.class_for_key(class_key)
            if cid is not None:
                self.label_selection(cid)
            else:
                self.statusBar().showMessage(f"No class has the key {class_key}", 4000)
        elif e.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selection()
        else:
            super().keyPressEvent(e)
            return
        e.accept()

    # --- file dialogs (interactive only; tests call the methods they lead to) --------------
    def _ask_new_project(self) -> None:
        path = files.ask_new_project(self, self._project_path())
        if path:
            self.new_project(path)

    def _ask_open_project(self) -> None:
        path = files.ask_open_project(self, self._project_path())
        if path:
            self.open_path(path)

    def _ask_add_images(self) -> None:
        paths = files.ask_images(self, self._project_path())
        if paths:
            self.add_images(paths)

    def _ask_import_cells(self) -> None:
        paths = files.ask_cell_files(self, self._project_path())
        if paths:
            self.open_import_dialog(paths)

    def open_import_dialog(self, paths: list[str]):
        """The preview of an import of ``paths`` (File → Import cells…, or files dropped on the
        window); it imports in the background when the user agrees. Returns the dialog (None
        when there is no project or no user)."""
        user = self._user_for_import("Cannot import cells", "importing cells")
        if user is None:
            return None
        from cellviewer.ui.common.import_dialog import ImportDialog

        dialog = ImportDialog(self.store, paths, user, self)
        self.import_dialog = dialog

        def finished(_code: int) -> None:
            if dialog.result is not None:
                self.statusBar().showMessage(
                    f"Imported {dialog.result.n_cells:,} cells", 8000)
        dialog.finished.connect(finished)
        dialog.open()
        return dialog

    def dragEnterEvent(self, event) -> None:
        from cellviewer.ui.common.import_dialog import is_import_file

        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if urls and all(u.isLocalFile() and is_import_file(u.toLocalFile()) for u in urls):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        from cellviewer.ui.common.import_dialog import is_import_file

        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths and all(is_import_file(p) for p in paths):
            event.acceptProposedAction()
            self.open_import_dialog(paths)
        else:
            super().dropEvent(event)

    def _project_path(self) -> str | None:
        return str(self.store.path) if self.store is not None else None

    # --- settings ----------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = app_settings()
        geometry = s.value("main_window/geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(geometry)
        else:
            self._fit_to_screen(1400, 900)
        state = s.value("main_window/state")
        self._state_restored = isinstance(state, QByteArray | bytes)
        if self._state_restored:
            self.restoreState(state)
        style = s.value("view/marker_style", "circle")
        if style in MARKER_STYLES:
            self.style_combo.setCurrentIndex(self.style_combo.findData(style))
        with contextlib.suppress(TypeError, ValueError):
            self.size_spin.setValue(int(s.value("view/marker_size", self.view.marker_size)))
        files.fill_recent_menu(self.recent_menu, self.open_path)

    def _fit_to_screen(self, width: int, height: int) -> None:
        """The first size: ``width`` × ``height``, or less on a smaller screen (a laptop's
        1366 × 768), so the whole window, its docks and its status bar are on it."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is not None:
            free = screen.availableGeometry()
            width = min(width, free.width())
            height = min(height, free.height() - 30)  # (the title bar)
        self.resize(width, height)

    def closeEvent(self, event) -> None:
        if self.store is not None and not self._may_close(QUIT):
            event.ignore()
            return
        s = app_settings()
        s.setValue("main_window/geometry", self.saveGeometry())
        s.setValue("main_window/state", self.saveState())
        s.setValue("view/marker_style", self.view.marker_style)
        s.setValue("view/marker_size", self.view.marker_size)
        self._close_image()
        self.session.close()
        self.file_care.close(3000)
        self.loader.runner.wait(3000)
        self.runner.wait(3000)
        self.image_list.runner.wait(3000)
        super().closeEvent(event)

    # --- for callers that wait (tests, self-test, benchmark) ---------------------------------
    def wait_idle(self, timeout_ms: int = 5000) -> bool:
        """Process events until no background job of the window is pending."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            if not self.runner.pending() and not self.loader.pending_count() \
                    and self.file_care.runner.is_idle() \
                    and not self.session.cells.loading:
                self.panels.flush()
                return True
        return False
