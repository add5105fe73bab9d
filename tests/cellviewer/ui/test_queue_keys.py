"""The correction queues' key rule (cellviewer/ui/common/queue_keys.py): the class a key
chooses is the one the class panel shows with that key, and the walk keys need no modifier."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent

from cellviewer.ui.common.queue_keys import (
    CONFIRM,
    NEXT,
    PREVIOUS,
    UNDO,
    QueueKey,
    class_with_key,
    queue_key,
)


@dataclass
class Cls:
    name: str
    key: str | None


def _press(key: Qt.Key, mods=Qt.KeyboardModifier.NoModifier, text: str = "") -> QKeyEvent:
    return QKeyEvent(QEvent.Type.KeyPress, key, mods, text)


def test_a_key_chooses_the_class_that_shows_it_not_the_class_at_that_place():
    # B has its own key 1, so A (no key) shows 2: "2" is A, although B is second in the list.
    # (The Review panel used to read "2" as the second class.)
    a, b, c = Cls("A", None), Cls("B", "1"), Cls("C", "Shift+1")
    assert class_with_key([a, b, c], "1") is b
    assert class_with_key([a, b, c], "2") is a
    assert class_with_key([a, b, c], "Shift+1") is c
    assert class_with_key([a, b, c], "3") is None
    many = [Cls(str(i), None) for i in range(12)]
    assert class_with_key(many, "Shift+2") is many[10]


def test_the_queue_reads_walk_confirm_undo_and_class_keys(qapp):
    assert queue_key(_press(Qt.Key.Key_Return)) == QueueKey(CONFIRM)
    assert queue_key(_press(Qt.Key.Key_Enter, Qt.KeyboardModifier.KeypadModifier)) == \
        QueueKey(CONFIRM)
    assert queue_key(_press(Qt.Key.Key_N, text="n")) == QueueKey(NEXT)
    assert queue_key(_press(Qt.Key.Key_Down)) == QueueKey(NEXT)
    assert queue_key(_press(Qt.Key.Key_P, text="p")) == QueueKey(PREVIOUS)
    assert queue_key(_press(Qt.Key.Key_Up)) == QueueKey(PREVIOUS)
    assert queue_key(_press(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)) == \
        QueueKey(UNDO)
    assert queue_key(_press(Qt.Key.Key_3, text="3")) == QueueKey("class", "3")
    assert queue_key(_press(Qt.Key.Key_1, Qt.KeyboardModifier.ShiftModifier, "!")) == \
        QueueKey("class", "Shift+1")
    # Ctrl+N is not "next" (it is the window's New project), and letters do nothing
    assert queue_key(_press(Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)) is None
    assert queue_key(_press(Qt.Key.Key_X, text="x")) is None
