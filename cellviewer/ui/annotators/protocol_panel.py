"""The study's protocol as queues (issue 19), in the Review column: "conflicts" (cells where
annotators disagree) and "for pathologist review" (double-checked cells and conflicts).

The queues and the decisions are the core's (:mod:`cellviewer.core.merge.protocol`): the panel
builds a queue in the background (a read-only connection of the worker's own), centres the
slide on each cell, and lists for the current cell what each annotator said, who and when, as
buttons. Then, with the keyboard or the mouse:

- a class key (1–9, Shift+1–9: the class panel's keys) resolves the cell to that class;
- a button (or Alt+1…) picks that annotator's label (or their deletion);
- Enter, in the pathologist's queue, confirms the cell's current label;
- Down / Up (or N / P): next / previous cell; Ctrl+Z: undo (through the window).

Each decision is one undoable action (:func:`~cellviewer.core.merge.protocol.decide`); in the
pathologist's queue it also sets the review status to ``reviewed``. The queue follows every
change of the project: a resolved cell leaves it, an undone resolution brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.merge import protocol
from cellviewer.core.merge.protocol import CONFLICTS, PATHOLOGIST, QUEUES, Choice
from cellviewer.core.project.users import NoUserError
from cellviewer.core.store import ProjectError
from cellviewer.ui.common.queue_keys import (
    CONFIRM,
    NEXT,
    PREVIOUS,
    UNDO,
    class_with_key,
    handle_queue_key,
)
from cellviewer.ui.common.tasks import NEWEST, POOL, TaskRunner

REFRESH_MS = 100  # changes arriving together rebuild the queue once


@dataclass(frozen=True)
class QueueRow:
    cell: str
    image_id: int | None
    image: str
    label: str  # the cell's class now ("(deleted)" where it is gone here)
    status: str
    sides: str  # what the annotators said ("ana: 6 · ben: 8 · cy: deleted")


@dataclass(frozen=True)
class Said:
    """One annotator's word on the current cell, with when they said it."""

    choice: Choice
    when: str


def build_rows(path: Path, queue: str, image_id: int | None) -> list[QueueRow]:
    """The queue's rows (a worker's job: one read-only connection, a few queries). What the
    annotators said of each cell: their own labels (the core's ``annotator_labels``), and the
    deletions the conflicts record; for a cell gone here, the conflicts' sides."""
    from cellviewer.core.merge.agreement import annotator_labels
    from cellviewer.core.store import ProjectStore

    with ProjectStore.open(path, readonly=True) as ro:
        ids = (protocol.conflict_queue(ro, image_id) if queue == CONFLICTS
               else protocol.pathologist_queue(ro, image_id))
        labels = annotator_labels(ro)
        sides: dict[str, list[str]] = {}
        image_of: dict[str, int] = {}
        for c in ro.conflicts():
            image_of[c["cell_uuid"]] = c["image_id"]
            for side in ("ours", "theirs"):
                said = (f"{c[f'{side}_by'] or side}: "
                        + ((c[f"{side}_class"] or "(unlabelled)") if c[f"{side}_present"]
                           else "deleted"))
                if said not in sides.setdefault(c["cell_uuid"], []):
                    sides[c["cell_uuid"]].append(said)
        table = ro.cell_table(cell_ids=ro.existing_cell_ids(ids))
        names = {c.id: c.name for c in ro.classes()}
        images = ro.image_names()
        found = {u: (int(table["image_id"][i]), int(table["class_id"][i]),
                     str(table["review_status"][i])) for i, u in enumerate(table["ids"])}
    rows = []
    for u in ids:
        if u in found:
            img, cls, status = found[u]
            label = names.get(cls, "(unlabelled)") if cls >= 0 else "(unlabelled)"
        else:
            img, label, status = image_of.get(u, -1), "(deleted)", ""
        said = [f"{who}: {name}" for who, name in sorted(labels.get(u, {}).items())]
        deleted = [s for s in sides.get(u, []) if s.endswith(": deleted")]
        text = " · ".join(said + deleted) if said else " ≠ ".join(sides.get(u, []))
        rows.append(QueueRow(u, img, images.get(int(img), str(img)) if img is not None else "",
                             label, status, text))
    return rows


def cell_choices(path: Path, cell: str) -> list[Said]:
    """What each annotator said of ``cell`` and when (a worker's job)."""
    from cellviewer.core.store import ProjectStore

    with ProjectStore.open(path, readonly=True) as ro:
        found = protocol.choices(ro, cell)
        conflicts = ro.conflicts(cell_uuid=cell)
        aliases = [a for a, c in ro.cell_aliases().items() if c == cell]
        entries = ro.history_entries([cell, *aliases])
    out = []
    for choice in found:
        when = ""
        for c in conflicts:
            for side in ("ours", "theirs"):
                if (c[f"{side}_by"] == choice.who and bool(c[f"{side}_present"])
                        == choice.present and c[f"{side}_class"] == choice.class_name):
                    when = c[f"{side}_at"] or when
        if not when:
            mine = [e["at"] for e in entries if e["user"] == choice.who]
            when = mine[-1] if mine else ""
        out.append(Said(choice, str(when).replace("T", " ")[:16]))
    return out


class QueueModel(QAbstractTableModel):
    """The queue as a table, drawn from its rows on demand (a queue of 10,000 conflicts costs
    the view what one of 20 does)."""

    HEADERS = ("#", "label now", "annotators said", "status", "image", "")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[QueueRow] = []
        self.done: dict[str, str] = {}  # cell -> the decision shown in the last column

    def set_rows(self, rows: list[QueueRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def mark(self, row: int, text: str) -> None:
        if 0 <= row < len(self.rows):
            self.done[self.rows[row].cell] = text
            last = len(self.HEADERS) - 1
            self.dataChanged.emit(self.index(row, last), self.index(row, last))

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # Qt naming
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # Qt naming
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        r = self.rows[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{r.sides}\ncell {r.cell} on {r.image}"
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return (str(index.row() + 1), r.label, r.sides, r.status, r.image,
                self.done.get(r.cell, ""))[index.column()]


class ProtocolPanel(QWidget):
    """The conflicts and pathologist queues. ``host``: the main window (a
    :class:`~cellviewer.ui.host.Host`: its session, ``centre_on_cell``, ``current_image_id``,
    ``undo``, ``show_status``).

    Signals: ``built(list)`` the queue's cell ids once a build is shown; ``choicesShown(list)``
    the current cell's :class:`Said` once its buttons are up; ``decided(str)`` after a
    decision (its message); ``rolesRequested()`` the Roles… button."""

    built = Signal(object)
    choicesShown = Signal(object)
    decided = Signal(str)
    rolesRequested = Signal()

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.runner = TaskRunner(POOL, 1, self)  # queue builds
        self.choice_runner = TaskRunner(NEWEST, 1, self)  # the current cell's choices
        self.rows: list[QueueRow] = []
        self.said: list[Said] = []
        self.said_for: str | None = None  # the cell whose choices are shown
        self._ticket = 0
        self._keep: str | None = None  # the cell to stay on when the queue is rebuilt
        self._keep_row = 0
        self._active = False  # a queue was built for this project
        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._timer.timeout.connect(self.build)

        self.queue_combo = QComboBox()
        for key, text in QUEUES.items():
            self.queue_combo.addItem(text, key)
        self.scope_combo = QComboBox()
        self.scope_combo.addItem("whole project", "project")
        self.scope_combo.addItem("current image", "image")
        self.build_button = QPushButton("Build queue")
        self.roles_button = QPushButton("Roles…")
        self.model = QueueModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        # interactive widths, fitted to the first rows after each build (_fit_columns)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.installEventFilter(self)
        self.choice_box = QGroupBox("Pick one annotator's label")
        self.choice_layout = QVBoxLayout(self.choice_box)
        self.choice_buttons: list[QPushButton] = []
        self.status = QLabel("Build a queue to start.")
        self.status.setWordWrap(True)
        self.who = QLabel("")
        self.who.setStyleSheet("color: gray")
        self.who.setWordWrap(True)
        keys = QLabel("1–9, Shift+1–9: resolve to that class · a button (Alt+1…): that "
                      "annotator's label · Enter: confirm (pathologist) · ↓/↑ or N/P: "
                      "next/previous · Ctrl+Z: undo")
        keys.setWordWrap(True)
        keys.setStyleSheet("color: gray")

        top = QHBoxLayout()
        top.addWidget(self.queue_combo, 1)
        top.addWidget(self.scope_combo)
        row = QHBoxLayout()
        row.addWidget(self.build_button, 1)
        row.addWidget(self.roles_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(row)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.choice_box)
        lay.addWidget(self.status)
        lay.addWidget(self.who)
        lay.addWidget(keys)

        self.build_button.clicked.connect(self.build)
        self.roles_button.clicked.connect(self.rolesRequested)
        self.queue_combo.currentIndexChanged.connect(lambda _i: self.build())
        self.scope_combo.currentIndexChanged.connect(lambda _i: self.build())
        self.table.selectionModel().currentRowChanged.connect(
            lambda current, _previous: self._on_row(current.row()))
        ev = host.session.events
        ev.store_changed.connect(self._on_store_changed)
        ev.project.connect(lambda _s: self._on_project())
        ev.user.connect(lambda _u: self.show_role())
        host.imageChanged.connect(lambda _i: self._on_image())
        self._show_choices([])

    # --- context -----------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.host.session.store

    def queue(self) -> str:
        return str(self.queue_combo.currentData())

    def set_queue(self, queue: str) -> None:
        self.queue_combo.setCurrentIndex(self.queue_combo.findData(queue))

    def _on_project(self) -> None:
        self._active = False
        self.rows = []
        self.model.done.clear()
        self.model.set_rows([])
        self._show_choices([])
        self.status.setText("Build a queue to start.")
        self.show_role()

    def _on_store_changed(self, event: Any) -> None:
        # a queue once built follows the project; a merge that found conflicts builds it
        if (self._active or "conflicts" in event.kinds) \
                and event.kinds & {"cells", "conflicts", "classes"}:
            self._timer.start()
        if "settings" in event.kinds:
            self.show_role()

    def refresh_pending(self) -> bool:
        """A rebuild of the queue is scheduled (changes arriving together)."""
        return self._timer.isActive()

    def _on_image(self) -> None:
        """Another image: a queue of the current image's cells is built again."""
        if self._active and self.scope_combo.currentData() == "image":
            self._timer.start()

    def show_role(self) -> None:
        store, user = self.store, self.host.session.user
        if store is None:
            self.who.setText("")
            return
        known = protocol.roles(store)
        role = known.get(user or "")
        if not user:
            self.who.setText("Your name is asked at the first decision.")
        elif role:
            self.who.setText(f"You: {user} ({role}).")
        else:
            self.who.setText(f"You: {user} (no role recorded: Roles… records it).")

    # --- building ----------------------------------------------------------------------
    def build(self) -> None:
        """Build the chosen queue in the background; ``built(ids)`` follows."""
        self._timer.stop()
        store = self.store
        self._active = store is not None
        self._ticket += 1
        ticket = self._ticket
        if store is None:
            self._show_rows([])
            return
        current = self.current_id()
        if current is not None:
            self._keep, self._keep_row = current, self.current_row()
        image_id = (self.host.current_image_id() if self.scope_combo.currentData() == "image"
                    else None)
        if self.scope_combo.currentData() == "image" and image_id is None:
            self._show_rows([])
            self.status.setText("Open an image first (or choose the whole project).")
            return
        path, queue = Path(store.path), self.queue()

        def done(rows: list[QueueRow]) -> None:
            if ticket == self._ticket and store is self.store:
                self._show_rows(rows)

        def failed(message: str) -> None:
            if ticket == self._ticket:
                self._show_rows([])
                self.status.setText(f"Cannot build the queue: {message}")

        self.status.setText("Building the queue…")
        self.runner.start(lambda _s: build_rows(path, queue, image_id), done=done,
                          failed=failed)

    def _show_rows(self, rows: list[QueueRow]) -> None:
        keep, keep_row = self._keep, self._keep_row
        self._keep = None
        self.rows = rows
        self.model.set_rows(rows)
        self._fit_columns()
        n = len(rows)
        self.status.setText(f"{n:,} cell{'' if n == 1 else 's'} in the queue "
                            f"({QUEUES[self.queue()]})." if n else
                            f"Nothing in the queue ({QUEUES[self.queue()]}).")
        ids = [r.cell for r in rows]
        if rows:
            row = ids.index(keep) if keep in ids else min(keep_row, n - 1)
            self.go_to(row, force=True)
        else:
            self._show_choices([])
        self.built.emit(ids)

    # --- walking -----------------------------------------------------------------------
    def _fit_columns(self, rows: int = 40) -> None:
        """Column widths from the first rows' texts (fitting to every row would read them
        all on the UI thread)."""
        metrics = self.table.fontMetrics()
        model = self.model
        for col, header in enumerate(model.HEADERS[:-1]):
            texts = [header] + [str(model.index(r, col).data() or "")
                                for r in range(min(rows, model.rowCount()))]
            self.table.setColumnWidth(col, max(metrics.horizontalAdvance(t) for t in texts)
                                      + 16)

    def current_row(self) -> int:
        return self.table.currentIndex().row()

    def current_id(self) -> str | None:
        row = self.current_row()
        return self.rows[row].cell if 0 <= row < len(self.rows) else None

    def go_to(self, row: int, force: bool = False) -> None:
        if not self.rows:
            return
        row = max(0, min(row, len(self.rows) - 1))
        if row == self.current_row() and force:
            self._on_row(row)
        else:
            self.table.setCurrentIndex(self.model.index(row, 0))
        self.table.scrollTo(self.model.index(row, 0))

    def next(self) -> None:
        self.go_to(self.current_row() + 1)

    def previous(self) -> None:
        self.go_to(self.current_row() - 1)

    def _on_row(self, row: int) -> None:
        if not 0 <= row < len(self.rows):
            return
        r = self.rows[row]
        if r.label != "(deleted)":
            shown = r.image_id == self.host.current_image_id()
            self.host.centre_on_cell(r.cell)  # (on another image: selected once it is in)
            if shown:
                self.host.select_cells([r.cell])
        store = self.store
        if store is None:
            return
        path, cell = Path(store.path), r.cell

        def done(said: list[Said]) -> None:
            if self.current_id() == cell:
                self._show_choices(said, cell)

        self.choice_runner.start(lambda _s: cell_choices(path, cell), done=done,
                                 failed=lambda m: self.status.setText(
                                     f"Cannot read what the annotators said: {m}"))

    def _show_choices(self, said: list[Said], cell: str | None = None) -> None:
        self.said, self.said_for = said, cell
        for b in self.choice_buttons:
            self.choice_layout.removeWidget(b)
            b.deleteLater()
        self.choice_buttons = []
        for i, s in enumerate(said):
            text = s.choice.text + (f"  ({s.when})" if s.when else "")
            button = QPushButton(f"&{i + 1}  {text}" if i < 9 else text)
            button.setObjectName(f"choice_{i}")
            button.setToolTip(f"Resolve to {s.choice.who}'s "
                              + ("label" if s.choice.present else "deletion"))
            button.clicked.connect(lambda _c=False, k=i: self.choose(k))
            self.choice_layout.addWidget(button)
            self.choice_buttons.append(button)
        self.choice_box.setVisible(bool(said))
        self.choicesShown.emit(said)

    # --- deciding ----------------------------------------------------------------------
    def resolve_by_class(self, class_name: str) -> bool:
        """The current cell gets ``class_name`` (a number key)."""
        return self._decide(class_name, True, "key", f"✎ {class_name}")

    def choose(self, index: int) -> bool:
        """The current cell gets what annotator ``index`` of the buttons said."""
        if not 0 <= index < len(self.said):
            return False
        c = self.said[index].choice
        return self._decide(c.class_name, c.present, f"choice {c.who}", f"✓ {c.text}")

    def confirm(self) -> bool:
        """The pathologist confirms the current label (reviewed)."""
        row = self.current_row()
        if self.queue() != PATHOLOGIST or not 0 <= row < len(self.rows):
            return False
        label = self.rows[row].label
        if label == "(deleted)":
            self.status.setText("The cell is deleted here: pick an annotator's label.")
            return False
        name = None if label == "(unlabelled)" else label
        return self._decide(name, True, "confirm", f"✓ {label}")

    def _decide(self, class_name: str | None, present: bool, how: str, mark: str) -> bool:
        cell, store = self.current_id(), self.store
        if cell is None or store is None:
            return False
        if self.host.edits_held():
            self.status.setText("Wait until the work on the project has finished.")
            return False
        status = "reviewed" if self.queue() == PATHOLOGIST else None
        try:
            message = protocol.decide(store, cell, class_name, present=present, status=status,
                                      how=how)
        except (ProjectError, ValueError, NoUserError) as exc:  # nothing was changed
            self.status.setText(str(exc))
            return False
        self.model.mark(self.current_row(), mark)
        self.host.show_status(message)
        self.decided.emit(message)
        self.next()
        return True

    def class_for_key(self, key: str) -> str | None:
        """The class name whose key (as the class panel shows it) is ``key``."""
        store = self.store
        found = class_with_key(list(store.classes()), key) if store is not None else None
        return str(found.name) if found is not None else None

    # --- keys --------------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.table and event.type() == QEvent.Type.KeyPress:
            return self.handle_key(event)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event) -> None:
        if not self.handle_key(event):
            super().keyPressEvent(event)

    def handle_key(self, event) -> bool:
        return handle_queue_key(event, {UNDO: self.host.undo, CONFIRM: self.confirm,
                                        NEXT: self.next, PREVIOUS: self.previous},
                                self._choose_class)

    def _choose_class(self, key: str) -> None:
        name = self.class_for_key(key)
        if name is None:
            self.status.setText(f"No class has the key {key}")
        else:
            self.resolve_by_class(name)
