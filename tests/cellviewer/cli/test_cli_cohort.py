"""Cohort scoring on the command line (issue 20): ``cellviewer detect``/``predict`` over a
manifest with ``--shard``, run as separate processes, then ``cellviewer import``; the README's
Slurm array script run by a local loop; bad input (a missing slide, a model of other classes)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cohort_testdata import (
    CLASSES,
    ROOT,
    SLIDES,
    assert_same_cells,
    cellviewer,
    env,
    finish,
    folder_files,
    make_cohort,
    project_cells,
    read_result_rows,
    tiny_model,
)

from cellviewer.cli.main import main
from cellviewer.core.store import ProjectStore


@pytest.fixture
def torch_backend(monkeypatch):
    """In-process runs on the same CPU backend as the child processes (cohort_testdata.env)."""
    monkeypatch.setenv("CELLVIEWER_CPU_BACKEND", "torch")
    monkeypatch.setenv("CELLVIEWER_USER", "tester")


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def new_project(path: Path, classes: list[str] = ()) -> Path:
    with ProjectStore.create(path) as store:
        for name in classes:
            store.add_class(name)
    return path


def test_two_shard_processes_merge_to_the_unsharded_run(tmp_path, torch_backend):
    manifest = make_cohort(tmp_path)
    model = tiny_model(tmp_path / "m.cvmodel")

    # detection: two shards, two processes, one shared results folder
    (c0, o0, e0), (c1, o1, e1) = finish(
        *(cellviewer("detect", manifest, "--out", "sharded", "--shard", f"{i}/2", "--json",
                     cwd=tmp_path) for i in range(2)))
    assert (c0, c1) == (0, 0), e0 + e1
    shard_events = [json_lines(o0), json_lines(o1)]
    assert [ev[0]["event"] for ev in shard_events] == ["started", "started"]
    assert [ev[0]["slides"] for ev in shard_events] == [4, 3]  # 7 slides, positions mod 2
    assert main(["detect", str(manifest), "--out", str(tmp_path / "single")]) == 0
    assert folder_files(tmp_path / "sharded") == folder_files(tmp_path / "single")
    assert len(folder_files(tmp_path / "single")) == 14  # a CSV and a GeoJSON per slide
    detected = read_result_rows(tmp_path / "single")
    assert len(detected) > 30
    assert sum(ev[-1]["cells"] for ev in shard_events) == len(detected)

    # classification: two shards into two folders; unsharded into one
    (c0, o0, e0), (c1, o1, e1) = finish(
        *(cellviewer("predict", manifest, "--cells", "sharded", "--model", model, "--out",
                     f"scored{i}", "--shard", f"{i}/2", "--json", cwd=tmp_path)
          for i in range(2)))
    assert (c0, c1) == (0, 0), e0 + e1
    finished = [json_lines(o)[-1] for o in (o0, o1)]
    assert all(f["event"] == "finished" and f["failed"] == [] for f in finished)
    assert main(["predict", str(manifest), "--cells", str(tmp_path / "single"), "--model",
                 str(model), "--out", str(tmp_path / "scored")]) == 0
    rows = read_result_rows(tmp_path / "scored")
    assert rows.keys() == detected.keys()
    counts: dict[str, int] = {}
    for f in finished:
        for name, n in f["classes"].items():
            counts[name] = counts.get(name, 0) + n
    assert counts == {c: sum(r["predicted_class"] == c for r in rows.values()) for c in CLASSES
                      if any(r["predicted_class"] == c for r in rows.values())}
    distinct = {tuple(r[f"p_{c}"] for c in CLASSES) for r in rows.values()}
    assert len(distinct) > len(rows) // 2, "probabilities that differ from cell to cell"

    # import: the two shards' folders, and the unsharded folder, into two new projects
    merged, single = new_project(tmp_path / "merged.cvproj"), new_project(tmp_path / "one.cvproj")
    assert main(["import", str(merged), str(tmp_path / "scored0"), str(tmp_path / "scored1"),
                 "--on-missing-image", "add"]) == 0
    assert main(["import", str(single), str(tmp_path / "scored"),
                 "--on-missing-image", "add"]) == 0
    a, b = project_cells(merged), project_cells(single)
    assert_same_cells(a, b)
    assert len(a) == len(rows)
    for cell_id, (_, x, y, cls, probs) in a.items():  # and the files' own numbers
        row = rows[cell_id]
        assert (x, y, cls) == (float(row["x"]), float(row["y"]), row["predicted_class"])
        assert np.allclose(probs, [float(row[f"p_{c}"]) for c in CLASSES], atol=1e-6)


def test_a_shard_run_twice_writes_the_same_files_and_can_skip_what_is_done(tmp_path, capsys):
    manifest = make_cohort(tmp_path, tiles=3)
    out = tmp_path / "res"
    args = ["detect", str(manifest), "--out", str(out), "--shard", "1/2"]
    assert main(args) == 0
    first = folder_files(out)
    # sorted by name: /…/boxes.tiff, /…/small.svs, tiles/t0.png, tiles/t1.png, tiles/t2.png
    assert sorted(first) == ["small.cells.csv", "small.geojson", "t1.cells.csv", "t1.geojson"]
    assert main(args) == 0
    assert folder_files(out) == first
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main([*args, "--skip-done", "--json"]) == 0
    events = json_lines(capsys.readouterr().out)
    done = [e for e in events if e["event"] == "item-done"]
    assert [e["skipped"] for e in done] == [True, True]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_a_missing_or_unreadable_slide_is_reported_and_the_others_are_done(tmp_path, capsys):
    manifest = make_cohort(tmp_path, tiles=2, extra_rows=[
        "tiles/gone.png,", f"{SLIDES / 'unreadable.svs'},"])
    out = tmp_path / "res"
    assert main(["detect", str(manifest), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "2 of 6 slides failed" in err
    assert f"{manifest}, line 6: " in err and "gone.png: no such file" in err
    assert re.search(r"unreadable\.svs.*(truncated or damaged|cannot read)", err), err
    assert "6 slides: 4 done, 2 failed" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{k}{s}" for k in ("t0", "t1", "small", "boxes")
                           for s in (".cells.csv", ".geojson"))


def test_every_slide_failing_is_an_error(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("slide\nnone.png\n")
    assert main(["detect", str(manifest), "--out", str(tmp_path / "res")]) == 1
    assert "every slide failed" in capsys.readouterr().err


def test_a_model_of_other_classes_is_refused_before_any_work(tmp_path, capsys):
    project = new_project(tmp_path / "p.cvproj", ["tumour", "necrosis"])
    with ProjectStore.open(project) as store:
        image = store.add_image(SLIDES / "boxes.png", 300, 250)
        store.add_cells(image, np.array([[50.0, 50.0]]), [None])
    model = tiny_model(tmp_path / "m.cvmodel")
    out = tmp_path / "scored"
    assert main(["predict", str(project), "--model", str(model), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(model) in err and str(project) in err
    assert "tumour, stroma, immune" in err and "tumour, necrosis" in err
    assert not out.exists()
    assert main(["predict", str(project), "--model", str(model), "--out", str(out),
                 "--json"]) == 1
    events = json_lines(capsys.readouterr().out)
    assert [e["event"] for e in events] == ["error"] and "tumour, necrosis" in \
        events[0]["message"]


def test_the_terminal_line_shows_slides_rate_and_eta(tmp_path, capsys):
    from cellviewer.cli.cohort_run import CohortReporter
    from cellviewer.core.cohort import CohortItem, CohortSummary, SlideOutcome

    summary = CohortSummary(4)
    summary.add(SlideOutcome("a.svs", "a", True, 1000))
    summary.add(SlideOutcome("b.svs", "b", False, message="b.svs: no such file"))
    rep = CohortReporter("detect", False, summary)
    rep.tty = True
    rep.progress(CohortItem("c.svs", tmp_path / "c.svs"), 2, 0.5, 200)
    line = capsys.readouterr().err
    assert "[2/4 slides, 1 failed] c  50% 200 cells" in line
    assert re.search(r"[\d,]+ cells/s, ETA \d+:\d\d:\d\d", line), line


def test_predict_over_a_project_and_its_predictions_back_into_it(tmp_path, torch_backend,
                                                                capsys):
    manifest = make_cohort(tmp_path, tiles=2)
    assert main(["detect", str(manifest), "--out", str(tmp_path / "res")]) == 0
    project = new_project(tmp_path / "p.cvproj", CLASSES)
    assert main(["import", str(project), str(tmp_path / "res"), "--on-missing-image", "add"]) == 0
    model = tiny_model(tmp_path / "m.cvmodel")
    assert main(["predict", str(project), "--model", str(model), "--out",
                 str(tmp_path / "scored"), "--tta"]) == 0
    rows = read_result_rows(tmp_path / "scored")
    assert rows.keys() == read_result_rows(tmp_path / "res").keys()
    # back into the project the cells came from: their ids are there, so only predictions
    assert main(["import", str(project), str(tmp_path / "scored")]) == 1
    assert "already in the project" in capsys.readouterr().err
    assert main(["import", str(project), str(tmp_path / "scored"),
                 "--on-existing-cell", "predictions"]) == 0
    assert f"(and predictions of {len(rows)} cells it had)" in capsys.readouterr().err
    cells = project_cells(project)
    assert cells.keys() == rows.keys()
    for cell_id, (_, x, y, cls, probs) in cells.items():
        row = rows[cell_id]
        assert (x, y, cls) == (float(row["x"]), float(row["y"]), row["predicted_class"])
        assert np.allclose(probs, [float(row[f"p_{c}"]) for c in CLASSES], atol=1e-6)


def test_bad_shard_and_bad_manifest(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("image\na.png\n")
    assert main(["detect", str(manifest), "--out", str(tmp_path / "r"), "--shard", "2/2"]) == 2
    assert "--shard '2/2': expected i/N with 0 <= i < N" in capsys.readouterr().err
    assert main(["detect", str(manifest), "--out", str(tmp_path / "r")]) == 1
    assert f"{manifest}, line 1: no 'slide' column" in capsys.readouterr().err


def readme_slurm_script() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if "#SBATCH --array=0-3" in b]
    assert len(found) == 1, "the README's Slurm array script"
    return found[0]


@pytest.mark.slow  # eight child processes (4 tasks x detect and predict), four import torch
def test_the_readme_slurm_array_script_run_by_a_local_loop(tmp_path, torch_backend):
    script = readme_slurm_script()
    assert "--shard \"$shard\"" in script and 'shard="$SLURM_ARRAY_TASK_ID/4"' in script
    make_cohort(tmp_path, tiles=3)
    tiny_model(tmp_path / "model.cvmodel")
    (tmp_path / "cohort.sh").write_text(script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    import sys

    wrapper = bin_dir / "cellviewer"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cellviewer "$@"\n')
    wrapper.chmod(0o755)
    child = env()
    child["PATH"] = f"{bin_dir}:{child['PATH']}"
    loop = ("for i in 0 1 2 3; do SLURM_ARRAY_TASK_ID=$i bash cohort.sh > log$i 2>&1 & done; "
            "wait; cat log0 log1 log2 log3")
    done = subprocess.run(["bash", "-c", loop], cwd=tmp_path, env=child, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    keys = ["t0", "t1", "t2", "small", "boxes"]
    for folder in ("results", "scored"):
        assert sorted(folder_files(tmp_path / folder)) == sorted(
            f"{k}{s}" for k in keys for s in (".cells.csv", ".geojson")), done.stdout
    assert read_result_rows(tmp_path / "scored").keys() == \
        read_result_rows(tmp_path / "results").keys()
    assert main(["detect", str(tmp_path / "manifest.csv"), "--out",
                 str(tmp_path / "unsharded")]) == 0
    assert folder_files(tmp_path / "unsharded") == folder_files(tmp_path / "results")
