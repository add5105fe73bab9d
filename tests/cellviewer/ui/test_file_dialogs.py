"""File dialogs start where the user was; the export's default lies beside the project, never in
the app's hidden data folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from cellviewer.paths import user_data_dir
from cellviewer.ui.common import folders
from cellviewer.ui.main_window import MainWindow


def test_start_folder_per_purpose(tmp_path):
    project = tmp_path / "study" / "p.cvproj"
    project.parent.mkdir()
    assert folders.start_folder("images", project) == project.parent  # beside the project
    slides = tmp_path / "slides"
    slides.mkdir()
    folders.remember("images", slides / "a.svs")
    assert folders.start_folder("images", project) == slides  # where the user was
    assert folders.start_folder("points", project) == project.parent  # each purpose its own
    demo = user_data_dir() / "demo" / "demo.cvproj"
    assert folders.in_app_data(demo)
    assert not folders.in_app_data(project)
    assert folders.start_folder("export", demo) == folders.home()  # never the hidden folder


def test_the_windows_dialogs_open_where_the_user_was(qtbot, tmp_path, monkeypatch):
    asked: list[str] = []

    def fake_open(_parent, _title, start, _filter=""):
        asked.append(start)
        return str(tmp_path / "slides" / "x.png"), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda p, t, d, f="": (fake_open(p, t, d, f)[:1], "")))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake_open))
    (tmp_path / "slides").mkdir()
    w = MainWindow()
    qtbot.addWidget(w)
    project = tmp_path / "study" / "p.cvproj"
    project.parent.mkdir()
    assert w.new_project(project)
    monkeypatch.setattr(w, "add_images", lambda paths: None)
    w._ask_add_images()
    assert asked[-1] == str(project.parent)  # first time: beside the project
    w._ask_add_images()
    assert asked[-1] == str(tmp_path / "slides")  # then: where the last image came from
    monkeypatch.setattr(w, "open_import_dialog", lambda paths: None)
    w._ask_import_cells()
    assert asked[-1] == str(project.parent)


def test_the_demos_export_goes_beside_the_user_not_into_app_data(qtbot):
    from cellviewer.ui.export.dialog import ExportDialog

    w = MainWindow()
    qtbot.addWidget(w)
    assert w.open_demo()
    dialog = ExportDialog(w)
    qtbot.addWidget(dialog)
    target = Path(dialog.path_edit.text())
    assert not folders.in_app_data(target)
    assert target.parent == folders.home()
    assert target.name.endswith("_cells.csv")


def test_a_users_project_exports_beside_itself(qtbot, tmp_path):
    from cellviewer.ui.export.dialog import ExportDialog

    w = MainWindow()
    qtbot.addWidget(w)
    project = tmp_path / "study.cvproj"
    assert w.new_project(project)
    dialog = ExportDialog(w)
    qtbot.addWidget(dialog)
    assert Path(dialog.path_edit.text()) == tmp_path / "study_cells.csv"
