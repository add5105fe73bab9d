from cellviewer.ui.main_window import MainWindow


def test_main_window_knows_the_demo(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.open_demo()
    assert w.image_count() == 41
    assert w.cell_count() > 3000
