from cellviewer.ui.main_window import MainWindow


def test_main_window_knows_the_demo(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.open_demo()
    assert w.image_count() == 41
    assert w.cell_count() > 3000
    assert w.store is not None and w.current_store() is w.store
    assert w.current_image_id() == w.store.images()[0].id  # the first image is on show


def test_tools_dock_in_once(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.install_tools()
    w.install_tools()
    titles = [a.text() for a in w._panels_menu.actions()]
    assert len(titles) == len(set(titles))
    assert {"Images", "Classes", "Cell", "Gallery"} <= set(titles)
    assert len(titles) > 4  # the model/review/training panels came in too
