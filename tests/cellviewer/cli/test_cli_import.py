"""``cellviewer import``: points into a real project file (the schema fixture), recorded with the
user it was given, refused whole without a user or with a bad file; JSON progress lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cellviewer.cli.main import main
from cellviewer.core.store import SCHEMA_VERSION, ProjectStore

# The fixture of the current schema version: older ones open read-only only after upgrading.
FIXTURE = (Path(__file__).resolve().parents[2] / "fixtures"
           / f"project-v{SCHEMA_VERSION}.cvproj")


def _project(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "cohort.cvproj"
    shutil.copy(FIXTURE, path)
    with ProjectStore.open(path, readonly=True) as store:
        image = store.images()[0].path  # stored by name: resolves beside the project
    return path, image


def test_import_points_records_the_user_and_reports_json(tmp_path, capsys):
    path, image = _project(tmp_path)
    with ProjectStore.open(path, readonly=True) as store:
        before = store.cell_count()
    csv = tmp_path / "more.csv"
    csv.write_text(f"image,x,y,class\n{image},10,12,normal\n{image},30,40,\n")
    assert main(["import", str(path), str(csv), "--user", "dr-a", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["started", "finished"]
    assert events[-1]["n_cells"] == 2
    with ProjectStore.open(path, readonly=True) as store:
        assert store.cell_count() == before + 2
        newest = store.history()[-1]
        assert newest.user == "dr-a" and newest.action == "add"
        assert store.can_undo()  # one undoable action


def test_no_user_or_a_bad_file_changes_nothing(tmp_path, capsys, monkeypatch):
    path, image = _project(tmp_path)
    csv = tmp_path / "more.csv"
    csv.write_text(f"image,x,y,class\n{image},10,12,normal\n")
    monkeypatch.delenv("CELLVIEWER_USER")
    assert main(["import", str(path), str(csv)]) == 1
    assert "--user" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("image,x,y,class\nnowhere.jpg,1,1,normal\n")
    assert main(["import", str(path), str(bad), "--user", "dr-a", "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["event"] == "error"
    assert "nowhere.jpg" in err and "Traceback" not in err
    with ProjectStore.open(path, readonly=True) as store:
        assert store.cell_count() == 352


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "import"


def _tiles_project(tmp_path: Path, names=("img1.png", "img2.png"), size=(500, 500)) -> Path:
    import numpy as np
    from PIL import Image

    from cellviewer.core.io.project_import import add_images

    folder = tmp_path / "tiles"
    folder.mkdir()
    for name in names:
        Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(folder / name)
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        add_images(store, [folder / n for n in names])
    return path


def test_every_question_has_a_flag_and_the_default_refuses_naming_it(tmp_path, capsys):
    path = _tiles_project(tmp_path)
    crc = FIXTURES / "crc-points.csv"
    assert main(["import", str(path), str(crc), "--user", "u"]) == 1
    err = capsys.readouterr().err
    assert "--on-missing-image" in err and "--on-unknown-class" in err and "img3.png" in err
    assert "Traceback" not in err
    assert main(["import", str(path), str(crc), "--user", "u", "--on-missing-image", "skip",
                 "--on-unknown-class", "create", "--map-class", "others=epithelial"]) == 0
    with ProjectStore.open(path, readonly=True) as store:
        assert store.cell_count() == 5
        assert [c.name for c in store.classes()] == ["fibroblast", "epithelial",
                                                     "inflammatory"]


def test_class_sets_one_image_files_and_columns(tmp_path, capsys):
    path = _tiles_project(tmp_path, ("1.jpg", "2.jpg"), (640, 480))
    chula = FIXTURES / "chula-points.csv"
    assert main(["import", str(path), str(chula), "--user", "u",
                 "--on-unknown-class", "create"]) == 1
    assert "--class-set" in capsys.readouterr().err
    assert main(["import", str(path), str(chula), "--user", "u", "--class-set",
                 "chula-rbc-12", "--on-unknown-class", "create"]) == 0
    cellvit = FIXTURES / "cellvit-cells.geojson"
    assert main(["import", str(path), str(cellvit), "--user", "u",
                 "--on-unknown-class", "create"]) == 1
    assert "--image" in capsys.readouterr().err
    assert main(["import", str(path), str(cellvit), "--user", "u", "--image", "1.jpg",
                 "--on-unknown-class", "create", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["n_cells"] == 7
    table = tmp_path / "odd.csv"
    table.write_text("slide,cx,cy\n2.jpg,5,6\n")
    assert main(["import", str(path), str(table), "--user", "u"]) == 1
    assert "choose the columns" in capsys.readouterr().err
    assert main(["import", str(path), str(table), "--user", "u",
                 "--columns", "image=slide,x=cx,y=cy"]) == 0
    with ProjectStore.open(path, readonly=True) as store:
        assert store.cell_count() == 5 + 7 + 1
