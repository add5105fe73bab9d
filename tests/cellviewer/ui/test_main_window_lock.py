"""The main window and the project lock: a project another CellViewer process has open brings up
the real question box; Cancel keeps it out (and the open project open), "Open anyway" opens it;
the window gives its lock back when the project is closed or replaced and when it closes; a lock
left by a crash is taken over without a question."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from cellviewer.core.project.lock import lock_path_for
from cellviewer.core.store import ProjectStore
from cellviewer.ui.main_window import MainWindow

REPO = Path(__file__).resolve().parents[3]

OTHER_APP = textwrap.dedent("""
    # Another CellViewer: the real main window in its own process, driven by lines on stdin.
    import sys
    from PySide6.QtWidgets import QApplication
    from cellviewer.ui.main_window import MainWindow
    app = QApplication([])
    window = MainWindow()
    print("open" if window.open_project(sys.argv[1]) else "failed", flush=True)
    for line in sys.stdin:
        if line.strip() == "close":
            window.close()
            print("closed", flush=True)
""")


def _project(path: Path) -> Path:
    with ProjectStore.create(path):
        pass
    return path


@pytest.fixture
def projects(tmp_path: Path) -> tuple[Path, Path]:
    return _project(tmp_path / "shared.cvproj"), _project(tmp_path / "mine.cvproj")


@pytest.fixture
def other_app(projects):
    """A first CellViewer, in its own process, with the shared project open as "alice"."""
    env = {**os.environ, "CELLVIEWER_USER": "alice", "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.Popen([sys.executable, "-c", OTHER_APP, str(projects[0])], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert child.stdout.readline().strip() == "open"
        yield child
    finally:
        child.stdin.close()
        child.wait(timeout=20)


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


class _Answer:
    """Answers the next question box by clicking ``button`` (its text) once it is up, as a user
    would, and keeps what the box showed in ``seen``; gives up after ``patience_s``."""

    def __init__(self, window: MainWindow, button: str, patience_s: float = 10.0) -> None:
        self.window, self.button = window, button
        self.seen: list[dict] = []
        self.tries = int(patience_s * 100)
        QTimer.singleShot(0, self._look)

    def _look(self) -> None:
        self.tries -= 1
        boxes = [b for b in self.window.findChildren(QMessageBox)
                 if b.isVisible() and b.objectName() == "project_in_use_box"]
        if not boxes:
            if self.tries > 0:
                QTimer.singleShot(10, self._look)
            return
        box = boxes[0]
        self.seen.append({"text": box.text(), "info": box.informativeText(), "icon": box.icon(),
                          "buttons": sorted(b.text() for b in box.buttons()),
                          "default": box.defaultButton().text()})
        self.tries = 0
        next(b for b in box.buttons() if b.text() == self.button).click()

    def stop(self) -> None:
        self.tries = 0


def _lock_record(project: Path) -> dict:
    return json.loads(lock_path_for(project).read_text())


def test_a_second_app_opening_the_project_is_asked_and_cancel_keeps_it_out(
        window, projects, other_app):
    shared, mine = projects
    assert window.open_project(mine)
    store = window.store
    answer = _Answer(window, "Cancel")
    assert window.open_project(shared) is False
    assert len(answer.seen) == 1
    box = answer.seen[0]
    assert re.fullmatch(
        re.escape(f"{shared} is open in CellViewer by alice on {socket.gethostname()} "
                  f"(process {other_app.pid}) since ") + r"\d{4}-\d\d-\d\d \d\d:\d\d",
        box["text"]), box["text"]
    assert box["icon"] == QMessageBox.Icon.Warning
    assert box["buttons"] == ["Cancel", "Open anyway"] and box["default"] == "Cancel"
    assert "undo" in box["info"]
    # The open project stays open, and the other app keeps its lock.
    assert window.store is store and window.store.path == mine
    assert _lock_record(shared)["pid"] == other_app.pid
    assert _lock_record(mine)["pid"] == os.getpid()


def test_open_anyway_opens_it_and_takes_the_lock(window, projects, other_app):
    shared, _ = projects
    answer = _Answer(window, "Open anyway")
    assert window.open_project(shared) is True
    assert len(answer.seen) == 1 and f"process {other_app.pid}" in answer.seen[0]["text"]
    assert window.store is not None and window.store.path == shared
    record = _lock_record(shared)
    assert record["pid"] == os.getpid() and record["user"] == "test-user"


def test_closing_the_first_app_frees_the_project(window, projects, other_app):
    shared, _ = projects
    other_app.stdin.write("close\n")
    other_app.stdin.flush()
    assert other_app.stdout.readline().strip() == "closed"
    assert not lock_path_for(shared).exists()
    answer = _Answer(window, "Cancel")  # would answer a question, were one asked
    assert window.open_project(shared) is True
    answer.stop()
    assert answer.seen == []


def test_the_lock_goes_with_the_project_and_the_window(qtbot, projects):
    shared, mine = projects
    first = MainWindow()
    qtbot.addWidget(first)
    assert first.open_project(shared)
    record = _lock_record(shared)
    assert (record["pid"], record["user"], record["app"]) == (os.getpid(), "test-user",
                                                              "CellViewer")
    assert first.open_project(shared)  # re-opening it in the same app: no question, still locked
    assert lock_path_for(shared).exists()
    second = MainWindow()  # a second window of the same app shares the lock
    qtbot.addWidget(second)
    assert second.open_project(shared)
    assert first.open_project(mine)  # replaced in the first window; the second still has it
    assert lock_path_for(shared).exists() and lock_path_for(mine).exists()
    second.close()
    assert not lock_path_for(shared).exists()
    first.close_project()
    assert not lock_path_for(mine).exists()
    assert first.open_project(mine)
    first.close()
    assert not lock_path_for(mine).exists()


def test_a_project_that_fails_to_open_leaves_no_lock(window, tmp_path):
    junk = tmp_path / "notes.cvproj"
    junk.write_text("not a project\n")
    assert window.open_project(junk) is False
    assert not lock_path_for(junk).exists()
    for box in window.findChildren(QMessageBox):
        box.close()


def test_after_a_crash_the_project_opens_without_a_question(window, projects):
    shared, _ = projects
    crashed = subprocess.Popen([sys.executable, "-c", "pass"])
    crashed.wait()
    lock_path_for(shared).write_text(json.dumps(
        {"pid": crashed.pid, "host": socket.gethostname(), "user": "alice", "app": "CellViewer",
         "started_at": "2025-03-04T12:30:00.000Z"}))
    answer = _Answer(window, "Cancel")  # would answer a question, were one asked
    assert window.open_project(shared) is True
    answer.stop()
    assert answer.seen == []
    assert _lock_record(shared)["pid"] == os.getpid()
    window.close()
    assert not lock_path_for(shared).exists()
