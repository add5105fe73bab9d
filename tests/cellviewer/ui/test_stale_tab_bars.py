"""The default layout leaves no stale tab bar on screen: Qt keeps the tab bars of tab groups
it took apart, visible, with their old titles (under X11 one drew itself over the Annotators
panel at 1366 × 768, after the window had been 1920 × 1080);
:func:`cellviewer.ui.common.layout.hide_stale_tab_bars` hides every tab bar of the window
whose titles are not those of a current tab group."""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QTabBar

from cellviewer.ui.common.layout import hide_stale_tab_bars
from cellviewer.ui.main_window import MainWindow


def _live_groups(w) -> list[list[str]]:
    groups = []
    for d in w.findChildren(QDockWidget):
        group = [d, *w.tabifiedDockWidgets(d)]
        if len(group) > 1 and not d.isFloating():
            groups.append(sorted(g.windowTitle() for g in group))
    return groups


def _shown(w) -> list[list[str]]:
    return [sorted(b.tabText(i) for i in range(b.count()))
            for b in w.findChildren(QTabBar) if b.parent() is w and b.isVisible()]


def test_only_live_tab_groups_show_their_tab_bars(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.install_tools()
    w.resize(1366, 768)
    w.show()
    qtbot.waitExposed(w)
    live = _shown(w)
    assert live and all(titles in _live_groups(w) for titles in live)
    assert any("Annotators" in titles for titles in live)
    # what Qt leaves behind: a bar of an old group ("Cell", "Blur preview"), on screen
    stale = QTabBar(w)
    stale.addTab("Cell")
    stale.addTab("Blur preview")
    stale.setGeometry(982, 490, 384, 26)
    stale.show()
    hide_stale_tab_bars(w)
    assert not stale.isVisible()
    assert _shown(w) == live  # the live groups keep theirs
    w.close()
