"""Keys that label the selection: 1–9 for the first nine classes and Shift+1–9 for the next
nine, and the key a class shows in the class panel.

A class keeps the key it was given in the class editor ("1"…"9", or "Shift+1"…"Shift+9");
classes without one get the free keys in list order, 1–9 first, then Shift+1–9, so the demo's
13 classes all have a key. Shift+digit is recognised by the key Qt reports (Key_1 with Shift),
by the symbol a US keyboard types (Shift+1 is "!") and, on X11, by the digit row's scan code
(any layout), so it works whatever the keyboard.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeyEvent

DIGITS = [str(i) for i in range(1, 10)]
SHIFTED = [f"Shift+{d}" for d in DIGITS]
ALL_KEYS = DIGITS + SHIFTED
#: the symbols Shift+1…9 type on a US keyboard
_US_SHIFTED = {Qt.Key.Key_Exclam: 1, Qt.Key.Key_At: 2, Qt.Key.Key_NumberSign: 3,
               Qt.Key.Key_Dollar: 4, Qt.Key.Key_Percent: 5, Qt.Key.Key_AsciiCircum: 6,
               Qt.Key.Key_Ampersand: 7, Qt.Key.Key_Asterisk: 8, Qt.Key.Key_ParenLeft: 9}
_X11_DIGIT_ROW = {10 + i: i + 1 for i in range(9)}  # scan codes of the keys 1…9


def effective_keys(keys: Sequence[str | None]) -> list[str]:
    """The key of each class (in list order): its own when it has one, else the next free
    one of 1–9, Shift+1–9; "" when all 18 are taken."""
    taken = {k for k in keys if k}
    free = [k for k in ALL_KEYS if k not in taken]
    out: list[str] = []
    for k in keys:
        if k:
            out.append(k)
        else:
            out.append(free.pop(0) if free else "")
    return out


def key_of_event(e: QKeyEvent) -> str | None:
    """ "1"…"9" or "Shift+1"…"Shift+9" for a class key press (other modifiers: None)."""
    mods = e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    key = e.key()
    if mods == Qt.KeyboardModifier.NoModifier and len(e.text()) == 1 and e.text() in "123456789":
        return e.text()
    if mods != Qt.KeyboardModifier.ShiftModifier:
        return None
    if Qt.Key.Key_1 <= key <= Qt.Key.Key_9:
        return f"Shift+{int(key) - int(Qt.Key.Key_0)}"
    if key in _US_SHIFTED:
        return f"Shift+{_US_SHIFTED[Qt.Key(key)]}"
    if QGuiApplication.platformName() == "xcb" and e.nativeScanCode() in _X11_DIGIT_ROW:
        return f"Shift+{_X11_DIGIT_ROW[e.nativeScanCode()]}"
    return None
