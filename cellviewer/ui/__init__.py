"""The PySide6 application. All Qt imports of CellViewer live under this package.

Importing the package first protects the process from a reference-counting bug of PySide6 6.12
on Python 3.11: every Python override of a Qt virtual that returns None (``paintEvent``,
``mousePressEvent``, ``QRunnable.run``, ...) and every ``Signal.emit`` drops one reference to
``None``/``True``/``False`` that it never took (the bindings assume Python 3.12's immortal
singletons, PEP 683). On 3.11 those refcounts start in the thousands, so after a few thousand
paint events the interpreter aborts with "none_dealloc: deallocating None" (or "bool_dealloc").
We give the three singletons an enormous refcount once, which is what 3.12 does by design: they
are never freed anyway, so nothing else changes. tests/cellviewer/ui/test_viewer_pyside_guard.py
proves the crash and the cure.
"""

import sys


def _immortalise_singletons() -> None:
    import ctypes

    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 48


if sys.version_info < (3, 12) and not getattr(sys, "_cellviewer_singletons_pinned", False):
    _immortalise_singletons()
    sys._cellviewer_singletons_pinned = True
