"""The export registry and the export the app runs, without Qt: formats listed and named, which
cells a scope covers, the files written for a real SQLite project, progress, and the checks that
keep a bad request from writing anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellviewer.core.export import (
    SCOPE_IMAGE,
    SCOPE_PROJECT,
    SCOPE_SELECTION,
    Exporter,
    ExportOption,
    ExportRequest,
    default_base_path,
    describe_files,
    exporters,
    get_exporter,
    plan_files,
    register,
    run_export,
    run_request,
    select_cells,
    unregister,
)
from cellviewer.core.store import ProjectError, ProjectStore


@pytest.fixture
def project(tmp_path):
    """Three images (two share the file name "a.png", in different folders), two classes,
    20 cells each, and two models, the second with predictions for every cell."""
    rng = np.random.default_rng(5)
    path = tmp_path / "study.cvproj"
    with ProjectStore.create(path) as s:
        images = [s.add_image(tmp_path / f, 200, 100)
                  for f in ("one/a.png", "two/a.png", "two/b.png")]
        classes = [s.add_class(n) for n in ("tumour", "stroma")]
        for image in images:
            s.add_cells(image, rng.uniform(0, 1, (20, 2)) * (200, 100),
                        rng.choice(classes + [-1], 20))
        s.add_model("old", None, "cnn", ["tumour", "stroma"])
        model = s.add_model("new", None, "cnn", ["tumour", "stroma"])
        ids = [c for im in images for c in s.cell_arrays(im).ids.tolist()]
        s.put_predictions(model, ids, rng.dirichlet([1, 1], len(ids)).astype(np.float32))
    with ProjectStore.open(path) as store:
        yield store


@pytest.fixture
def counting_format():
    """A format registered by a test, as a plug-in would: one line per cell."""
    calls = []

    def write(store, path, *, selection, options, progress):
        calls.append((selection, dict(options)))
        table = store.cell_table(selection.image_ids, selection.cell_ids)
        progress(0.5, "half way")
        path.write_text("".join(f"{options['prefix']}{i}\n" for i in table["ids"]))
        return path

    exporter = register(Exporter(
        name="ids", title="Cell ids", suffixes=(".txt",), description="one cell id a line",
        write=write, options=(ExportOption("prefix", "#", "before each id"),),
        name_tail="_ids"))
    yield exporter, calls
    unregister("ids")


def _ids(store, image_ids=None):
    return store.cell_table(image_ids)["ids"]


def test_the_builtin_formats_are_registered_in_order():
    names = [e.name for e in exporters()]
    assert names[:3] == ["cells", "summary", "geojson"]
    cells, summary, geojson = (get_exporter(n) for n in names[:3])
    assert (cells.suffix, summary.suffix, geojson.suffix) == (".csv", ".csv", ".geojson")
    assert cells.default_on and summary.default_on and not geojson.default_on
    assert geojson.per_image and not cells.per_image
    assert {o.name for o in cells.options} >= {"model_id", "sep", "include_metadata"}
    assert [o.name for o in geojson.options] == ["model_id", "classification", "qupath_04",
                                               "objects", "image_base"]
    # An exporter takes only its own options, the defaults filling the gaps.
    assert geojson.option_values({"model_id": 3, "sep": ";"}) == {
        "model_id": 3, "classification": "label-else-prediction", "qupath_04": False,
        "objects": "detection", "image_base": None}
    assert cells.option_values({})["model_id"] == "latest"


def test_registering_checks_names_and_suffixes(counting_format):
    exporter, _ = counting_format
    assert exporters()[-1] is exporter and get_exporter("ids") is exporter
    with pytest.raises(ValueError, match="already registered"):
        register(exporter)
    register(exporter, replace=True)  # a plug-in reloaded
    assert [e.name for e in exporters()].count("ids") == 1
    with pytest.raises(ValueError, match="suffixes"):
        register(Exporter("bad", "Bad", ("CSV",), "", exporter.write))
    with pytest.raises(KeyError, match="no export format 'nope'.*cells"):
        get_exporter("nope")


def test_file_names_follow_the_chosen_path(tmp_path):
    base = tmp_path / "out" / "cells.csv"
    one = {7: "a.png"}
    planned = plan_files(base, ["cells", "summary", "geojson"], one)
    assert [(p.format, p.path.relative_to(tmp_path).as_posix(), p.image_id) for p in planned] == [
        ("cells", "out/cells.csv", None), ("summary", "out/cells_summary.csv", None),
        ("geojson", "out/cells.geojson", 7)]
    # Several images: one GeoJSON each in a folder; two images named alike do not collide.
    many = plan_files(base, ["geojson"], {1: "a.png", 2: "A.PNG", 3: "b.tif"})
    assert [p.path.relative_to(tmp_path).as_posix() for p in many] == [
        "out/cells_geojson/a.geojson", "out/cells_geojson/A_2.geojson",
        "out/cells_geojson/b.geojson"]
    # A tab-separated cells table keeps its suffix; the summary stays a .csv.
    tsv = plan_files(tmp_path / "t.tsv", ["cells", "summary"], one)
    assert [p.path.name for p in tsv] == ["t.tsv", "t_summary.csv"]
    assert describe_files(base, ["cells", "geojson"], 3) == [
        "cells.csv", "cells_geojson/<image>.geojson"]
    assert describe_files(base, ["geojson"], 1) == ["cells.geojson"]
    assert default_base_path(tmp_path / "study.cvproj") == tmp_path / "study_cells.csv"


def test_scopes_pick_the_cells(project):
    images = [im.id for im in project.images()]
    assert select_cells(project, SCOPE_PROJECT).image_ids is None
    image = select_cells(project, SCOPE_IMAGE, image_id=images[1])
    assert (image.image_ids, image.cell_ids) == ((images[1],), None)
    chosen = [_ids(project, [images[2]])[0], _ids(project, [images[0]])[3]]
    sel = select_cells(project, SCOPE_SELECTION, cell_ids=chosen + chosen[:1])
    assert sel.image_ids == (images[0], images[2])  # sorted, each image once
    assert sel.cell_ids == tuple(chosen)  # duplicates dropped, order kept
    assert select_cells(project, SCOPE_SELECTION, cell_ids=[]).image_ids == ()
    with pytest.raises(KeyError, match="no-such-cell"):
        select_cells(project, SCOPE_SELECTION, cell_ids=["no-such-cell"])
    with pytest.raises(KeyError):
        select_cells(project, SCOPE_IMAGE, image_id=999)
    with pytest.raises(ValueError, match="scope"):
        select_cells(project, "everything")


def test_project_export_writes_every_file_with_the_newest_model(project, tmp_path):
    seen = []
    written = run_export(project, tmp_path / "all.csv", ["cells", "summary", "geojson"],
                         progress=lambda f, m: seen.append((f, m)))
    names = [p.relative_to(tmp_path).as_posix() for p in written]
    assert names == ["all.csv", "all_summary.csv", "all_geojson/a.geojson",
                     "all_geojson/a_2.geojson", "all_geojson/b.geojson"]
    cells = pd.read_csv(tmp_path / "all.csv", dtype={"cell_id": str})
    assert cells["cell_id"].tolist() == _ids(project)
    newest = project.models()[-1].id
    assert set(cells["model_id"]) == {newest}  # "latest": the model with predictions
    summary = pd.read_csv(tmp_path / "all_summary.csv")
    assert summary.loc[summary["image"] == "(all images)", "cells"].sum() == 60
    for path, image in zip(written[2:], project.images(), strict=True):
        features = json.loads(path.read_text())["features"]
        assert [f["id"] for f in features] == _ids(project, [image.id])
    # Progress rises from 0 to 1, one "Writing" step per file.
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert [m for _, m in seen if m.startswith("Writing")] == [
        f"Writing {p.name}" for p in written]


def test_a_selection_limits_every_format_to_its_cells(project, tmp_path):
    images = [im.id for im in project.images()]
    chosen = _ids(project, [images[0]])[:4] + _ids(project, [images[2]])[-2:]
    sel = select_cells(project, SCOPE_SELECTION, cell_ids=chosen)
    written = run_export(project, tmp_path / "sel.csv", ["cells", "geojson"], sel,
                         {"model_id": None})
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "sel.csv", "sel_geojson/a.geojson", "sel_geojson/b.geojson"]
    cells = pd.read_csv(written[0], dtype={"cell_id": str})
    assert cells["cell_id"].tolist() == chosen
    assert cells["predicted_class"].isna().all()  # model None: labels only
    first = json.loads(written[1].read_text())["features"]
    assert [f["id"] for f in first] == chosen[:4]
    assert all("measurements" not in f["properties"] for f in first)


def test_one_image_writes_one_geojson_beside_the_csv(project, tmp_path):
    image = project.images()[1]
    sel = select_cells(project, SCOPE_IMAGE, image_id=image.id)
    written = run_export(project, tmp_path / "img.csv", ["geojson"], sel)
    assert written == [tmp_path / "img.geojson"]
    features = json.loads(written[0].read_text())["features"]
    assert [f["id"] for f in features] == _ids(project, [image.id])


def test_a_bad_request_writes_nothing(project, tmp_path):
    target = tmp_path / "cells.csv"
    target.write_text("previous export\n")
    with pytest.raises(KeyError):
        run_export(project, target, ["cells", "summary"], options={"model_id": 999})
    with pytest.raises(KeyError, match="no export format"):
        run_export(project, target, ["cells", "pdf"])
    with pytest.raises(ValueError, match="nothing to export"):
        run_export(project, target, [])
    with pytest.raises(ProjectError, match="does not exist"):
        run_export(project, tmp_path / "missing" / "cells.csv", ["cells"])
    others = [p.name for p in tmp_path.iterdir() if not p.name.startswith("study.cvproj")]
    assert others == ["cells.csv"]
    assert target.read_text() == "previous export\n"


def test_a_registered_format_is_written_like_the_builtin_ones(project, tmp_path,
                                                              counting_format):
    _, calls = counting_format
    image = project.images()[0]
    sel = select_cells(project, SCOPE_IMAGE, image_id=image.id)
    seen = []
    written = run_export(project, tmp_path / "x.csv", ["cells", "ids"], sel,
                         {"model_id": "latest", "sep": ";"},
                         progress=lambda f, m: seen.append((f, m)))
    assert [p.name for p in written] == ["x.csv", "x_ids.txt"]
    assert written[1].read_text().split() == [f"#{i}" for i in _ids(project, [image.id])]
    selection, options = calls[0]
    assert selection == sel and options == {"prefix": "#"}  # only its own options
    assert (0.75, "half way") in seen  # the second of two files, half done
    assert ";" in Path(written[0]).read_text().splitlines()[0]


def test_a_request_runs_on_a_connection_of_its_own(project, tmp_path):
    request = ExportRequest(Path(project.path), tmp_path / "r.csv", ("summary",))
    assert run_request(request) == [tmp_path / "r_summary.csv"]
    assert (tmp_path / "r_summary.csv").read_text().startswith("image,class,cells")
