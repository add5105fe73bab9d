"""The keys of a correction queue (the Review panel's and the Annotators' queues): one rule
for both, so a key does the same in each and the same as in the viewer.

- Enter confirms (accepts the prediction, or the label the cell has), N / ↓ and P / ↑ walk,
  the undo shortcut undoes;
- 1–9 and Shift+1–9 choose the class that shows that key in the class panel
  (:func:`cellviewer.ui.viewer.class_keys.effective_keys`: a class's own key, else the next
  free one in list order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent, QKeySequence

from cellviewer.ui.viewer.class_keys import effective_keys, key_of_event

UNDO, CONFIRM, NEXT, PREVIOUS, CLASS = "undo", "confirm", "next", "previous", "class"
_WALK = {Qt.Key.Key_N: NEXT, Qt.Key.Key_Down: NEXT, Qt.Key.Key_P: PREVIOUS,
         Qt.Key.Key_Up: PREVIOUS}


@dataclass(frozen=True)
class QueueKey:
    """What a key press asks of a queue: ``action`` (one of the constants above) and, for
    ``CLASS``, the class key pressed ("1"…"9", "Shift+1"…"Shift+9")."""

    action: str
    class_key: str | None = None


def queue_key(event: QKeyEvent) -> QueueKey | None:
    """The queue's reading of ``event``; None for a key the queue leaves alone."""
    if event.matches(QKeySequence.StandardKey.Undo):
        return QueueKey(UNDO)
    key = event.key()
    if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
        return QueueKey(CONFIRM)
    mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    if key in _WALK and mods == Qt.KeyboardModifier.NoModifier:
        return QueueKey(_WALK[Qt.Key(key)])
    class_key = key_of_event(event)
    return QueueKey(CLASS, class_key) if class_key is not None else None


def handle_queue_key(event: QKeyEvent, actions: Mapping[str, Callable[[], object]],
                     choose_class: Callable[[str], object]) -> bool:
    """Do what ``event`` asks: ``actions[UNDO|CONFIRM|NEXT|PREVIOUS]()`` or
    ``choose_class(class_key)``; False (nothing done) for a key the queue leaves alone."""
    pressed = queue_key(event)
    if pressed is None:
        return False
    if pressed.class_key is not None:
        choose_class(pressed.class_key)
    else:
        actions[pressed.action]()
    return True


class _Keyed(Protocol):
    @property
    def key(self) -> str | None: ...


K = TypeVar("K", bound=_Keyed)


def class_with_key(classes: Sequence[K], key: str) -> K | None:
    """The class of ``classes`` (the project's, in their order) that shows ``key``."""
    for c, k in zip(classes, effective_keys([c.key for c in classes]), strict=True):
        if k == key:
            return c
    return None
