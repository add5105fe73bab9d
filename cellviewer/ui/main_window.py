"""The main window: a project's images, the slide view in the centre, docked panels around it.

It owns the open :class:`~cellviewer.core.store.ProjectStore` and applies every edit the view,
the gallery and the keyboard ask for (through the store, so each one is undoable and recorded in
the history with the user's name), then updates the markers in memory without reloading.
While a project is open the window holds its lock file (``<project>.lock``, see
:mod:`cellviewer.core.project_lock`), so a second CellViewer asks before opening it too.

Extension surface (for the model, blur-preview, review and training panels)
---------------------------------------------------------------------------
Other parts of the app dock into this window without editing it:

``add_panel(dock: QDockWidget, area=Qt.RightDockWidgetArea) -> QDockWidget``
    Dock a panel (give it an ``objectName`` so its place is saved) and list it in View → Panels.
``menu(title: str) -> QMenu``
    The top-level menu with that title (``"&Model"``, ``"&Training"``...), created if absent.
``store`` / ``current_store() -> ProjectStore | None``
    The open project (None before one is opened). Edits made by a panel through the store are
    picked up by :meth:`refresh_cells` (call it after them; ``cellsChanged`` follows).
``current_image_id() -> int | None``, ``current_image_source() -> ImageSource | None``
    The image on screen and its open source (thread-safe ``read_region``; do not close it).
``selected_cell_ids() -> list[str]``, ``select_cells(ids)``, ``visible_cell_ids() -> list[str]``
``centre_on_cell(cell_id: str, zoom: float | None = None) -> bool``
    Switch to the cell's image if needed and centre the slide on it.
``set_color_mode(mode: str)`` with mode ``"label"``, ``"prediction"`` or ``"agreement"``;
``color_mode() -> str``
``set_predictions_provider(provider: Callable[[int], tuple | None] | None)``
    ``provider(image_id) -> (cell_ids, predicted_class_ids, confidence)`` (sequences aligned;
    class ids are the project's, -1 for none) or None. Called on the GUI thread when an image is
    shown, its cells reload, or :meth:`refresh_predictions` is called, so keep it quick (one store
    query). It feeds the "prediction" and "agreement" colour modes.
``refresh_predictions()``, ``refresh_cells()``
``install_tools()``
    Installs the prediction/review and training tools (cellviewer.ui.prediction_install and
    training_install); the application calls it once after creating the window.
Signals: ``projectChanged(object)`` (the store or None), ``imageChanged(int)`` (-1: none),
``selectionChanged(list)`` (cell ids), ``cellsChanged()`` (after any edit, undo or redo, and after
:meth:`refresh_cells`), ``colorModeChanged(str)``.

The GUI start-up path: nothing here imports torch, timm or pandas; the core's store, sources and
cropper are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSpinBox,
    QStackedWidget,
    QWidget,
)

from cellviewer.ui.cell_details import CellDetails
from cellviewer.ui.class_panel import ClassPanel
from cellviewer.ui.dialogs import USER_KEY, current_user, show_error
from cellviewer.ui.gallery import GalleryPanel, order_rows
from cellviewer.ui.image_list import ImageList
from cellviewer.ui.markers import COLOR_MODES, MARKER_STYLES, ClassStyle
from cellviewer.ui.settings import app_settings
from cellviewer.ui.slide_view import SlideView
from cellviewer.ui.start_page import StartPage
from cellviewer.ui.tiles import SourceHandle, TileCache, TileLoader
from cellviewer.ui.workers import BackgroundRunner

PROJECT_SUFFIX = ".cvproj"
IMAGE_SUFFIXES = {".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".svslide", ".bif",
                  ".vms", ".vmu", ".dcm", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
MAX_RECENT = 10
SYNC_CELLS_BELOW = 50_000  # smaller images load their cells on the GUI thread (a few ms)
TILE_CACHE_BYTES = 384 * 1024 * 1024


class MainWindow(QMainWindow):
    projectChanged = Signal(object)
    imageChanged = Signal(int)
    selectionChanged = Signal(list)
    cellsChanged = Signal()
    colorModeChanged = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("CellViewer")
        self.store = None
        self._lock = None  # the open project's ProjectLock (cellviewer.core.project_lock)
        self._image_id: int | None = None
        self._handle: SourceHandle | None = None
        self._image_rec = None
        self._classes: list = []
        self._user: str | None = None
        self._predictions_provider: Callable | None = None
        self._gallery_generation = 0
        self._selection_from_gallery = False
        self._image_generation = 0
        self.last_error: str = ""
        self._own_depth = 0
        self._pending_selection: list[str] = []
        self._cells_generation = 0
        self._pending_refresh: set[str] = set()
        self._refresh_timer = QTimer(self, singleShot=True, interval=0)
        self._refresh_timer.timeout.connect(self._apply_pending_refresh)
        self.runner = BackgroundRunner(2, self)
        self.loader = TileLoader(TileCache(TILE_CACHE_BYTES), threads=3, parent=self)

        self.view = SlideView(self.loader, self)
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
        self._panels_menu: QMenu | None = None
        self._menus: dict[str, QMenu] = {}
        self._close_guards: list = []
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self.images_dock = self.add_panel(self._dock("Images", "images_dock", self.image_list),
                                          Qt.DockWidgetArea.LeftDockWidgetArea)
        self.classes_dock = self.add_panel(self._dock("Classes", "classes_dock",
                                                      self.class_panel),
                                           Qt.DockWidgetArea.LeftDockWidgetArea)
        self.details_dock = self.add_panel(self._dock("Cell", "details_dock", self.details),
                                           Qt.DockWidgetArea.RightDockWidgetArea)
        self.gallery_dock = self.add_panel(self._dock("Gallery", "gallery_dock",
                                                      self.gallery_panel),
                                           Qt.DockWidgetArea.RightDockWidgetArea)
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
        self.import_action = self._action(file, "&Import points CSV…", self._ask_import_points)
        file.addSeparator()
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
        self.add_mode_action.toggled.connect(
            lambda on: self.view.set_tool("add" if on else "select"))
        bar.addAction(self.add_mode_action)
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
        self.user_label = QLabel("", self)
        for w in (self.cursor_label, self.zoom_label, self.count_label, self.user_label):
            status.addPermanentWidget(w)

    def _connect(self) -> None:
        v = self.view
        v.selectionChanged.connect(self._on_view_selection)
        v.addRequested.connect(lambda x, y: self.add_cell(x, y))
        v.moveRequested.connect(self.move_cell)
        v.cursorMoved.connect(self._on_cursor)
        v.viewChanged.connect(self._update_zoom_label)
        v.toolChanged.connect(lambda t: self.add_mode_action.setChecked(t == "add"))
        self.image_list.imageActivated.connect(self.show_image)
        self.class_panel.hiddenChanged.connect(self._on_hidden_changed)
        self.class_panel.applyRequested.connect(self.label_selection)
        self.class_panel.editRequested.connect(self.edit_classes)
        self.gallery.cellActivated.connect(lambda cid: self.centre_on_cell(cid))
        self.gallery.selectionChanged.connect(self._on_gallery_selection)
        self.gallery.patchesNeeded.connect(self._crop_for_gallery)
        self.gallery_panel.filterChanged.connect(lambda _f: self._refresh_gallery())
        self.gallery_panel.orderChanged.connect(lambda _o: self._refresh_gallery())
        sp = self.start_page
        sp.newRequested.connect(self._ask_new_project)
        sp.openRequested.connect(self._ask_open_project)
        sp.demoRequested.connect(self.open_demo)
        sp.recentRequested.connect(self.open_path)

    # --- extension surface -----------------------------------------------------------------
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

    def add_close_guard(self, guard) -> None:
        """``guard(reason) -> bool`` is asked before the project closes (``"close-project"``,
        also when another project is opened) or the app quits (``"quit"``); False cancels."""
        self._close_guards.append(guard)

    def _may_close(self, reason: str) -> bool:
        return all(guard(reason) for guard in list(self._close_guards))

    def show_status(self, text: str, ms: int = 4000) -> None:
        self.statusBar().showMessage(text, ms)

    def menu(self, title: str) -> QMenu:
        """The top-level menu called ``title`` (created at the end of the menu bar)."""
        found = self._menus.get(title)
        if found is None:
            found = self.menuBar().addMenu(title)
            self._menus[title] = found
        return found

    def install_tools(self) -> None:
        """Add the model, blur-preview, review and export tools and the training panels (they
        dock in through this surface). The app calls it once after creating the window; tests
        that want the tools call their ``install(window)`` themselves. Safe to call twice."""
        if getattr(self, "prediction_tools", None) is None:
            from cellviewer.ui.prediction_install import install as install_prediction

            self.prediction_tools = install_prediction(self)
        if getattr(self, "training", None) is None:
            from cellviewer.ui.training_install import install as install_training

            self.training = install_training(self)

    def current_store(self):
        return self.store

    def current_image_id(self) -> int | None:
        return self._image_id

    def current_image_source(self):
        return self._handle.source if self._handle is not None else None

    def selected_cell_ids(self) -> list[str]:
        return self.view.selected_ids()

    def select_cells(self, ids) -> None:
        self.view.select_ids(list(ids))

    def visible_cell_ids(self) -> list[str]:
        x0, y0, x1, y1 = self.view.visible_image_rect()
        rows = self.view.layer.query(x0, y0, x1, y1)
        return [str(i) for i in self.view.layer.ids[np.sort(rows)]]

    def color_mode(self) -> str:
        return self.view.layer.mode

    def set_color_mode(self, mode: str) -> None:
        if mode not in COLOR_MODES:
            raise ValueError(f"colour mode must be one of {COLOR_MODES}, not {mode!r}")
        if mode == self.view.layer.mode:
            return
        self.view.layer.set_mode(mode)
        self.view.cells_updated()
        self._mode_actions[mode].setChecked(True)
        self.mode_combo.blockSignals(True)
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))
        self.mode_combo.blockSignals(False)
        self.colorModeChanged.emit(mode)

    def set_predictions_provider(self, provider: Callable | None) -> None:
        self._predictions_provider = provider
        self.refresh_predictions()

    def refresh_predictions(self) -> None:
        layer = self.view.layer
        result = None
        if self._predictions_provider is not None and self._image_id is not None:
            try:
                result = self._predictions_provider(self._image_id)
            except Exception as exc:  # a panel's bug must not take the viewer down
                self.statusBar().showMessage(f"Predictions unavailable: {exc}", 8000)
        if result is None:
            layer.clear_predictions()
        else:
            ids, pred, conf = result
            layer.set_predictions(list(ids), pred, conf)
        self.view.cells_updated()
        if self.gallery_panel.current_order() != "slide":  # new confidences, new order
            self._refresh_gallery()

    def centre_on_cell(self, cell_id: str, zoom: float | None = None) -> bool:
        """Centre the slide on a cell (switching image if needed); False if it is unknown."""
        row = self.view.layer.rows_of([cell_id])[0] if len(self.view.layer) else -1
        if row >= 0:
            x, y = self.view.layer.xy[row]
            self.view.centre_on(float(x), float(y), zoom if zoom is not None else
                                max(self.view.zoom(), 1.0))
            return True
        if self.store is None:
            return False
        try:
            cell = self.store.cell(cell_id)
        except Exception:
            return False
        self.show_image(cell.image_id)
        self.image_list.set_current_image(cell.image_id)
        self.view.centre_on(cell.x, cell.y, zoom if zoom is not None else 1.0)
        self._pending_selection = [str(cell_id)]  # applied once the image's cells are in
        return True

    # --- projects ----------------------------------------------------------------------------
    def open_demo(self) -> bool:
        """Open the bundled demo project (built in the user data folder the first time)."""
        from cellviewer.core.project_import import create_demo_project

        try:
            path = create_demo_project()
        except Exception as exc:
            self.report_error("Cannot open the demo project", str(exc))
            return False
        return self.open_project(path)

    def open_path(self, path: str) -> bool:
        """Open a project, or add an image to the open project (a scratch one if none)."""
        p = Path(path)
        if p.suffix.lower() in IMAGE_SUFFIXES:
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
        """Open a project; False (and the open project stays) when it cannot be opened or the
        user declines to open a project another CellViewer has open."""
        from cellviewer.core.store import ProjectStore

        path = Path(path)
        if self.store is not None and not self._may_close("close-project"):
            return False
        lock = self._lock_project(path)
        if lock is None:
            return False
        try:
            store = ProjectStore.open(path)
        except Exception as exc:  # ProjectError names the file; anything else gets named here
            lock.release()  # (a lock shared with the open project only drops its count)
            self.report_error("Cannot open project", self._named(path, exc))
            return False
        self._set_store(store, lock)
        return True

    def new_project(self, path) -> bool:
        from cellviewer.core.store import ProjectStore

        path = Path(path)
        if path.suffix != PROJECT_SUFFIX:
            path = path.with_name(path.name + PROJECT_SUFFIX)
        if self.store is not None and not self._may_close("close-project"):
            return False
        lock = self._lock_project(path)
        if lock is None:
            return False
        try:
            store = ProjectStore.create(path)
        except Exception as exc:
            lock.release()
            self.report_error("Cannot create project", self._named(path, exc))
            return False
        self._set_store(store, lock)
        return True

    def close_project(self) -> bool:
        """Close the open project (after asking the close guards); False if one said no."""
        if self.store is not None and not self._may_close("close-project"):
            return False
        self._set_store(None)
        return True

    @staticmethod
    def _named(path: Path, exc: Exception) -> str:
        text = str(exc)
        return text if str(path) in text or path.name in text else f"{path}: {text}"

    # --- the project lock: one CellViewer at a time edits a project -------------------------
    def _lock_project(self, path: Path):
        """The lock for ``path`` (see cellviewer.core.project_lock), or None when another
        CellViewer has the project open and the user chose not to open it anyway. A folder
        where no lock can be made gives an unheld lock: the project still opens."""
        from cellviewer.core.project_lock import ProjectInUseError, ProjectLock

        user = self._lock_user()
        try:
            try:
                return ProjectLock.acquire(path, user=user)
            except ProjectInUseError as exc:
                if not self._confirm_open_in_use(exc):
                    self.statusBar().showMessage(f"Not opened: {exc}", 10000)
                    return None
                return ProjectLock.acquire(path, user=user, force=True)
        except Exception as exc:  # a bug in the lock must not lose the user's project
            self.report_error("Cannot open project", self._named(path, exc))
            return None

    def _confirm_open_in_use(self, error) -> bool:
        """Ask whether to open a project another CellViewer has open (a ProjectInUseError);
        True for "Open anyway". Cancel is the default, and what Escape or closing the box do."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Project already open", str(error),
                          QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("project_in_use_box")
        if getattr(error, "checkable", True):
            hint = ("If both change it, their edits and undo steps mix and work can be lost. "
                    "Open it anyway only if that CellViewer is no longer working on it.")
        else:
            hint = ("It is open on another computer, so whether it is still in use cannot be "
                    "checked from here. Open it anyway only if that CellViewer was closed or "
                    "crashed; if both change it, work can be lost.")
        box.setInformativeText(hint)
        open_anyway = box.addButton("Open anyway", QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)
        box.exec()
        answer = box.clickedButton() is open_anyway
        box.deleteLater()
        return answer

    def _lock_user(self) -> str:
        """The name the lock shows to others: the editing user once known, else
        CELLVIEWER_USER, the name kept in the settings, or the login name (as
        dialogs.current_user and the store's default); never asks, since opening is not
        editing."""
        from cellviewer.core.store import current_user as default_user

        name = (self._user or os.environ.get("CELLVIEWER_USER")
                or str(app_settings().value(USER_KEY, "") or ""))
        return name or default_user()

    def _set_store(self, store, lock=None) -> None:
        """Show ``store`` (None: no project), holding ``lock`` while it is open; the previous
        project is closed first, then its lock given back."""
        old, old_lock = self.store, self._lock
        self._close_image()
        self.store = store
        self._lock = lock
        if old is not None:
            old.remove_listener(self._on_store_change)
            old.close()
        if old_lock is not None and old_lock is not lock:
            old_lock.release()
        if lock is not None and not lock.held and lock.reason:
            self.statusBar().showMessage(
                f"Not locked ({lock.reason}): another CellViewer could open it too", 15000)
        self.view.select_ids([], emit=False)
        self._update_undo_actions()
        if store is None:
            self.setWindowTitle("CellViewer")
            self.image_list.set_images([])
            self._show_start_page()
            self.projectChanged.emit(None)
            return
        if self._user:
            store.user = self._user
        store.add_listener(self._on_store_change)
        self._remember_recent(str(store.path))
        self.setWindowTitle(f"CellViewer: {Path(store.path).name}")
        self.stack.setCurrentWidget(self.view)
        self._reload_classes()
        images = store.images()
        self.image_list.set_images(images)
        self._update_counts()
        self.projectChanged.emit(store)
        if images:
            self.image_list.set_current_image(images[0].id)
            self.show_image(images[0].id)
        else:
            self.view.message = "This project has no images yet: File → Add images…"
            self.view.update()

    def _show_start_page(self) -> None:
        self.start_page.set_recent(self._recent())
        self.stack.setCurrentWidget(self.start_page)

    def _ensure_user(self) -> bool:
        """Ask for the user's name once, before the first edit (never while only viewing)."""
        if self._user is None:
            self._user = current_user(self)
            self.user_label.setText(f"user: {self._user}")
        if self.store is not None and getattr(self.store, "user", None) != self._user:
            self.store.user = self._user
        return True

    # --- images ------------------------------------------------------------------------------
    def image_count(self) -> int:
        return len(self.store.images()) if self.store is not None else 0

    def cell_count(self) -> int:
        return self.store.cell_count() if self.store is not None else 0

    def show_image(self, image_id: int) -> None:
        """Show an image of the project: its tiles and cells load in the background."""
        if self.store is None or image_id == self._image_id:
            return
        try:
            rec = self.store.image(image_id)
        except Exception as exc:
            self.report_error("Cannot show image", str(exc))
            return
        self._close_image()
        self._pending_selection = []
        self._image_id, self._image_rec = int(image_id), rec
        self._image_generation += 1
        generation = self._image_generation
        self.view.message = f"Opening {rec.path.name}…"
        self.view.set_source(None)
        self.view.update()

        def opened(source) -> None:
            if generation != self._image_generation:  # the user moved on meanwhile
                self.runner.submit(source.close)
                return
            self._handle = SourceHandle(source)
            self.view.set_source(self._handle)
            self._load_cells()

        def failed(message: str) -> None:
            if generation != self._image_generation:
                return
            self.view.message = f"Cannot open {rec.path.name}"
            self.view.update()
            self.report_error("Cannot open image", message)

        from cellviewer.core.sources import open_image

        self.runner.submit(lambda: open_image(rec.path), opened, failed, priority=10)
        self._update_counts()
        self.imageChanged.emit(self._image_id)

    def _close_image(self) -> None:
        handle, had_image = self._handle, self._image_id is not None
        self._handle = None
        self._image_id = None
        self._image_rec = None
        self._image_generation += 1
        self.view.set_source(None)
        self.gallery.set_items([], [])
        self.details.clear()
        if handle is not None:
            handle.mark_closed()  # workers still holding it stop quietly
            self.runner.submit(handle.close)  # close waits for reads in flight: not here
        if had_image:
            self.imageChanged.emit(-1)

    def _load_cells(self, then: Callable[[], None] | None = None) -> None:
        """Put the image's cells on the view. A large image's cells (and their grid index) are
        read by a worker through its own read-only connection, so the window stays live."""
        if self.store is None or self._image_id is None:
            return
        self._cells_generation += 1
        generation, image_id, store = self._cells_generation, self._image_id, self.store
        n = store.cell_count(image_id)
        if n < SYNC_CELLS_BELOW:
            cells = store.cell_arrays(image_id)
            self._apply_cells(cells, None, then)
            return
        from cellviewer.core.store import ProjectStore
        from cellviewer.ui.markers import GridIndex

        path, rec = store.path, self._image_rec

        def job():
            with ProjectStore.open(path, readonly=True) as ro:
                cells = ro.cell_arrays(image_id)
            return cells, GridIndex(cells.xy, rec.width, rec.height)

        def done(result) -> None:
            if image_id != self._image_id or store is not self.store:
                return
            if generation != self._cells_generation:  # edited meanwhile: read again
                self._load_cells(then)
                return
            self.statusBar().clearMessage()
            self._apply_cells(result[0], result[1], then)

        self.statusBar().showMessage(f"Loading {n:,} cells…")
        self.runner.submit(job, done, lambda msg: self.report_error("Cannot load cells", msg))

    def _apply_cells(self, cells, index, then) -> None:
        self.view.set_cells(cells.ids, cells.xy, cells.class_id, index=index)
        if self._pending_selection:
            pending, self._pending_selection = self._pending_selection, []
            self.view.select_ids(pending)
        self._after_cells_loaded()
        self.refresh_predictions()
        if then is not None:
            then()

    def _after_cells_loaded(self) -> None:
        self._update_class_counts()
        self._refresh_gallery()
        self._update_counts()

    def refresh_cells(self) -> None:
        """Reload the current image's cells (and counts) from the store; emits cellsChanged."""
        if self.store is None:
            return
        self._reload_classes()
        if self._handle is not None:
            selected = self.view.selected_ids()
            self._load_cells(then=lambda: self.view.select_ids(selected))
        self.image_list.update_counts(self.store.images())
        self._update_counts()
        self._update_undo_actions()
        self.cellsChanged.emit()

    def add_images(self, paths: list[str]) -> None:
        """Add image files to the project; each is opened in a worker to read its size.
        A file that cannot be opened is reported (named, with the cause) and not added."""
        if self.store is None:
            self.report_error("No project", "Open or create a project before adding images.")
            return
        from cellviewer.core.project_import import image_info

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
                except Exception as exc:
                    self.report_error("Cannot add image", self._named(Path(p), exc))
                    return
                self.image_list.set_images(store.images())
                self._update_counts()
                if self._image_id is None:
                    self.image_list.set_current_image(image_id)
                    self.show_image(image_id)

            self.runner.submit(lambda p=path: probe(p), done,
                               lambda msg: self.report_error("Cannot add image", msg))

    def import_points(self, csv_path: str, image_dir: str | None = None) -> None:
        """Import cells from a points CSV (see cellviewer.core.project_import)."""
        if self.store is None:
            self.report_error("No project", "Open or create a project before importing points.")
            return
        from PySide6.QtWidgets import QApplication

        from cellviewer.core import project_import

        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self._ensure_user()
            result = project_import.import_points_csv(self.store, csv_path, image_dir=image_dir)
        except Exception as exc:
            self.report_error("Cannot import points", self._named(Path(csv_path), exc))
            return
        finally:
            QApplication.restoreOverrideCursor()
        self.statusBar().showMessage(
            f"Imported {result.n_cells:,} cells from {Path(csv_path).name}", 8000)
        self.image_list.set_images(self.store.images())
        self.refresh_cells()

    # --- classes -----------------------------------------------------------------------------
    def _reload_classes(self) -> None:
        if self.store is None:
            self._classes = []
        else:
            self._classes = [ClassStyle(c.id, c.name, c.color, c.key)
                             for c in self.store.classes()]
        self.view.layer.set_classes(self._classes)
        self.class_panel.set_classes(self._classes, self.view.layer.counts_by_class())
        self.gallery_panel.set_classes(self._classes, self.view.layer.counts_by_class())
        self.view.cells_updated()

    def _update_class_counts(self) -> None:
        counts = self.view.layer.counts_by_class()
        self.class_panel.set_counts(counts)
        self.gallery_panel.set_classes(self._classes, counts)

    def class_for_key(self, key: str) -> int | None:
        for c in self._classes:
            if c.key == key:
                return c.id
        return None

    def edit_classes(self) -> None:
        if self.store is None:
            return
        from cellviewer.ui.class_editor import ClassEditorDialog

        self._ensure_user()
        dialog = ClassEditorDialog(self.store, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.classesChanged.connect(self.refresh_cells)
        self.class_editor = dialog
        dialog.open()

    def _on_hidden_changed(self, hidden: set) -> None:
        self.view.layer.set_hidden(hidden)
        self.view.cells_updated()

    # --- editing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _own_change(self):
        """Our own edits update the markers in place; the store's change events for them are
        not a reason to reload."""
        self._own_depth += 1
        try:
            yield
        finally:
            self._own_depth -= 1

    def _on_store_change(self, event) -> None:
        """Another panel changed the project: refresh what we show (once, after it is done)."""
        if self._own_depth:
            return
        kinds = set(event.kinds)
        if "predictions" in kinds:
            self._pending_refresh.add("predictions")
        if kinds & {"cells", "classes", "images"}:
            if "cells" in kinds and event.image_ids and self._image_id not in event.image_ids \
                    and not kinds & {"classes", "images"}:
                self._pending_refresh.add("counts")
            else:
                self._pending_refresh.add("cells")
        if self._pending_refresh:
            self._refresh_timer.start()

    def _apply_pending_refresh(self) -> None:
        what, self._pending_refresh = self._pending_refresh, set()
        if self.store is None:
            return
        if "cells" in what:
            self.image_list.set_images(self.store.images())
            self.refresh_cells()
            self._refresh_gallery()
            self._show_details()
        elif "predictions" in what:
            self.refresh_predictions()
        if "counts" in what:
            self.image_list.update_counts(self.store.images())

    def _can_edit(self) -> bool:
        return self.store is not None and self._image_id is not None and self._ensure_user()

    def label_selection(self, class_id: int | None) -> int:
        """Give the selected cells a class (-1 or None: unlabelled); returns how many."""
        ids = self.view.selected_ids()
        if not ids or not self._can_edit():
            return 0
        cid = None if class_id is None or class_id < 0 else int(class_id)
        try:
            with self._own_change():
                self.store.set_labels(ids, cid)
        except Exception as exc:
            self.report_error("Cannot set the class", str(exc))
            return 0
        layer = self.view.layer
        layer.set_labels(layer.rows_of(ids), cid)
        self.gallery.update_labels(ids, cid)
        self._edited(f"{len(ids)} cell(s) → {self._class_name(cid)}")
        self._show_details()
        return len(ids)

    def delete_selection(self) -> int:
        ids = self.view.selected_ids()
        if not ids or not self._can_edit():
            return 0
        try:
            with self._own_change():
                self.store.delete_cells(ids)
        except Exception as exc:
            self.report_error("Cannot delete cells", str(exc))
            return 0
        layer = self.view.layer
        layer.remove(layer.rows_of(ids))
        self.view.select_ids([])
        self._refresh_gallery()
        self._edited(f"deleted {len(ids)} cell(s)")
        return len(ids)

    def add_cell(self, x: float, y: float, class_id: int | None = None) -> str | None:
        """Add a cell at level-0 (x, y) with ``class_id`` (default: the current class)."""
        if not self._can_edit():
            return None
        if class_id is None:
            class_id = self.class_panel.current_class()
        cid = None if class_id is None or class_id < 0 else int(class_id)
        try:
            with self._own_change():
                new_ids = self.store.add_cells(self._image_id, np.array([[x, y]]), [cid])
        except Exception as exc:
            self.report_error("Cannot add a cell", str(exc))
            return None
        self.view.layer.append(new_ids, [[x, y]], [-1 if cid is None else cid])
        self.view.select_ids(list(new_ids))
        self._edited(f"added a {self._class_name(cid)} cell")
        return str(new_ids[0])

    def move_cell(self, cell_id: str, x: float, y: float) -> None:
        if not self._can_edit():
            return
        try:
            with self._own_change():
                self.store.move_cell(cell_id, x, y)
        except Exception as exc:
            self.report_error("Cannot move the cell", str(exc))
            return
        layer = self.view.layer
        row = int(layer.rows_of([cell_id])[0])
        if row >= 0:
            layer.move(row, x, y)
            i = self.gallery.index_of(cell_id)
            if i >= 0:
                self.gallery.forget_patches([i])
        self._edited("moved a cell")
        self._show_details()

    def undo(self) -> bool:
        return self._undo_redo("undo")

    def redo(self) -> bool:
        return self._undo_redo("redo")

    def _undo_redo(self, which: str) -> bool:
        if self.store is None:
            return False
        self._ensure_user()
        try:
            with self._own_change():
                done = getattr(self.store, which)()
        except Exception as exc:
            self.report_error(f"Cannot {which}", str(exc))
            return False
        if done:
            self.refresh_cells()
            self._refresh_gallery()
            self._show_details()
            self.statusBar().showMessage(f"{which} done", 4000)
        else:
            self.statusBar().showMessage(f"Nothing to {which}", 4000)
        return bool(done)

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
        self.view.select_ids([str(i) for i in self.view.layer.ids])

    def _edited(self, what: str) -> None:
        self._cells_generation += 1  # a load in flight predates this edit
        self.view.cells_updated()
        self._update_class_counts()
        if self.store is not None:
            self.image_list.update_counts(self.store.images())
        self._update_counts()
        self.statusBar().showMessage(what, 4000)
        self._update_undo_actions()
        self.cellsChanged.emit()

    def _class_name(self, class_id: int | None) -> str:
        for c in self._classes:
            if c.id == class_id:
                return c.name
        return "unlabelled"

    # --- selection, details, gallery ---------------------------------------------------------
    def _on_view_selection(self, ids: list) -> None:
        if not self._selection_from_gallery:
            self.gallery.select_ids(ids)
            if self.gallery_panel.current_filter() == "selection":
                self._refresh_gallery()
        self._show_details()
        self._update_counts()
        self.selectionChanged.emit(list(ids))

    def _on_gallery_selection(self, ids: list) -> None:
        self._selection_from_gallery = True
        try:
            self.view.select_ids(ids)
        finally:
            self._selection_from_gallery = False

    def _refresh_gallery(self) -> None:
        """Fill the gallery from the in-memory cells (fast for 100,000)."""
        self._gallery_generation += 1
        layer = self.view.layer
        f = self.gallery_panel.current_filter()
        if f == "selection":
            rows = layer.rows_of(self.view.selected_ids())
            rows = rows[rows >= 0]
        elif f == "all":
            rows = np.arange(len(layer))
        else:
            rows = np.flatnonzero(layer.class_id == int(f))
        order = self.gallery_panel.current_order()
        conf = layer.pred_conf
        scores = None
        if order != "slide" and conf is not None:
            rows = order_rows(rows, conf, order)
            scores = conf[rows]  # the confidence on each crop, before its label
        self._gallery_rows = rows
        self.gallery.set_items(layer.ids[rows], layer.class_id[rows], scores=scores)
        self.gallery.select_ids(self.view.selected_ids())
        self.gallery_panel.show_count(len(rows))
        if order != "slide" and conf is None:
            self.gallery_panel.count.setText(f"{len(rows):,} cells · no predictions to order by")

    def _crop_for_gallery(self, indices: np.ndarray) -> None:
        handle = self._handle
        if handle is None or not len(indices):
            return
        rows = self.view.layer.rows_of(self.gallery.ids_at(indices))
        ok = rows >= 0
        indices, rows = np.asarray(indices)[ok], rows[ok]
        xy = self.view.layer.xy[rows].copy()
        generation = self._gallery_generation

        def crop():
            from cellviewer.core.crop import crop_patches

            return handle.call(crop_patches, xy).patches

        def done(patches) -> None:
            if generation == self._gallery_generation:
                self.gallery.set_patches(indices, patches)

        self.runner.submit(crop, done, lambda msg: None if handle.closed else
                           self.statusBar().showMessage(msg, 8000))

    def _show_details(self) -> None:
        ids = self.view.selected_ids()
        if len(ids) != 1 or self.store is None:
            if ids:
                self.details.show_many(len(ids))
            else:
                self.details.clear()
            return
        cid = ids[0]
        try:
            cell = self.store.cell(cid)
            history = self.store.history(cid)
        except Exception as exc:
            self.details.clear(str(exc))
            return
        mpp = self._image_rec.mpp if self._image_rec is not None else None
        self.details.show_cell(cell, self._class_name(cell.class_id), history, mpp)
        handle = self._handle
        if handle is None:
            return
        xy = np.array([[cell.x, cell.y]])

        def crop():
            from cellviewer.core.crop import crop_patches

            return handle.call(crop_patches, xy).patches[0]

        self.runner.submit(crop, lambda patch: self.details.set_patch(cid, patch))

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

    def _update_counts(self) -> None:
        n = len(self.view.layer)
        sel = len(self.view.selected_ids())
        text = f"{n:,} cells" if self._image_id is not None else ""
        if sel:
            text += f" · {sel:,} selected"
        self.count_label.setText(text)

    # --- errors ------------------------------------------------------------------------------
    def report_error(self, title: str, message: str) -> None:
        """Tell the user what failed and why, without blocking (see dialogs.show_error)."""
        self.last_error = message
        self.statusBar().showMessage(message, 10000)
        show_error(self, title, message)

    # --- keyboard ----------------------------------------------------------------------------
    def keyPressEvent(self, e: QKeyEvent) -> None:  # noqa: N802
        """Keys the view and gallery pass up: digits label, Delete deletes, undo/redo."""
        text = e.text()
        mods = e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if e.matches(QKeySequence.StandardKey.Undo):
            self.undo()
        elif e.matches(QKeySequence.StandardKey.Redo) or (
                e.key() == Qt.Key.Key_Z and mods == (Qt.KeyboardModifier.ControlModifier |
                                                     Qt.KeyboardModifier.ShiftModifier)):
            self.redo()
        elif mods == Qt.KeyboardModifier.NoModifier and len(text) == 1 and text in "123456789":
            cid = self.class_for_key(text)
            if cid is not None:
                self.label_selection(cid)
            else:
                self.statusBar().showMessage(f"No class has the key {text}", 4000)
        elif e.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selection()
        else:
            super().keyPressEvent(e)
            return
        e.accept()

    # --- file dialogs (interactive only; tests call the methods they wrap) ------------------
    def _ask_new_project(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "New project", str(Path.home()),
                                              f"CellViewer project (*{PROJECT_SUFFIX})")
        if path:
            self.new_project(path)

    def _ask_open_project(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", str(Path.home()),
                                              f"CellViewer project (*{PROJECT_SUFFIX});;"
                                              "All files (*)")
        if path:
            self.open_path(path)

    def _ask_add_images(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        paths, _ = QFileDialog.getOpenFileNames(self, "Add images", str(Path.home()),
                                                f"Images ({patterns});;All files (*)")
        if paths:
            self.add_images(paths)

    def _ask_import_points(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import points CSV", str(Path.home()),
                                              "CSV (*.csv);;All files (*)")
        if path:
            self.import_points(path)

    # --- settings ----------------------------------------------------------------------------
    def _recent(self) -> list[str]:
        value = app_settings().value("recent_projects", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    def _remember_recent(self, path: str) -> None:
        recent = [path] + [p for p in self._recent() if p != path]
        app_settings().setValue("recent_projects", recent[:MAX_RECENT])
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self._recent():
            self.recent_menu.addAction(p, lambda p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(self._recent()))

    def _restore_settings(self) -> None:
        s = app_settings()
        geometry = s.value("main_window/geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        state = s.value("main_window/state")
        if isinstance(state, QByteArray | bytes):
            self.restoreState(state)
        style = s.value("view/marker_style", "circle")
        if style in MARKER_STYLES:
            self.style_combo.setCurrentIndex(self.style_combo.findData(style))
        with contextlib.suppress(TypeError, ValueError):
            self.size_spin.setValue(int(s.value("view/marker_size", self.view.marker_size)))
        self._fill_recent_menu()

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self._may_close("quit"):
            event.ignore()
            return
        s = app_settings()
        s.setValue("main_window/geometry", self.saveGeometry())
        s.setValue("main_window/state", self.saveState())
        s.setValue("view/marker_style", self.view.marker_style)
        s.setValue("view/marker_size", self.view.marker_size)
        self._set_store(None)
        self.loader.runner.wait(3000)
        self.runner.wait(3000)
        self.image_list.runner.wait(3000)
        super().closeEvent(event)

    # --- timers for callers that wait (tests, self-test, benchmark) --------------------------
    def wait_idle(self, timeout_ms: int = 5000) -> bool:
        """Process events until no background job of the window is pending."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            if not self.runner.pending() and not self.loader.pending_count():
                return True
        return False
