"""PySide6 6.12 on Python 3.11 drops a reference to None on every Python override of a Qt
virtual that returns None; importing ``cellviewer.ui`` pins the singletons (see its docstring).
Here a widget is repainted 20,000 times in a fresh interpreter, without and with the guard."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys
if sys.argv[1] == "guarded":
    import cellviewer.ui  # noqa: F401
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
class W(QWidget):
    def paintEvent(self, event):
        pass
w = W()
w.resize(8, 8)
w.show()
app.processEvents()
for _ in range(20000):
    w.repaint()
print("survived")
"""


def _run(mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          env=env, timeout=120)


def test_guard_keeps_a_long_running_view_alive():
    guarded = _run("guarded")
    assert guarded.returncode == 0, guarded.stderr[-2000:]
    assert "survived" in guarded.stdout


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_without_the_guard_this_pyside_aborts():
    bare = _run("bare")
    if bare.returncode == 0:
        pytest.skip("this PySide6 build keeps None's refcount right: the guard is not needed")
    assert "deallocating" in bare.stderr
