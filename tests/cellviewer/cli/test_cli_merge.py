"""``cellviewer copy-for``, ``merge`` and ``annotator-agreement`` as a person runs them: real
project files, the command line's exit codes and messages, and the agreement CSV."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "merge"))
from merge_cohort import class_id, make_project

from cellviewer.cli.main import main
from cellviewer.core.store import ProjectStore


def test_copy_edit_merge_and_measure_agreement(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CELLVIEWER_USER", raising=False)
    target = make_project(tmp_path / "cohort.cvproj")
    a, b = tmp_path / "ana.cvproj", tmp_path / "ben.cvproj"
    assert main(["copy-for", str(target), str(a)]) == 1  # nobody named
    assert "--user" in capsys.readouterr().err and not a.exists()
    assert main(["copy-for", str(target), str(a), "--user", "ana"]) == 0
    assert main(["copy-for", str(target), str(b), "--user", "ben"]) == 0
    assert main(["copy-for", str(target), str(b), "--user", "ben"]) == 1
    assert "ben.cvproj: a file of that name already exists" in capsys.readouterr().err
    with ProjectStore.open(target, readonly=True) as s:
        first = s.cell_table()["ids"][:4]
    for path, labels in ((a, ["1", "2", "3", "4"]), (b, ["1", "2", "5", "6"])):
        with ProjectStore.open(path) as s:
            s.user = path.stem
            for cell, label in zip(first, labels, strict=True):
                s.set_labels([cell], class_id(s, label))
    capsys.readouterr()
    assert main(["merge", str(target), str(a), str(b), "--user", "pat"]) == 0
    out = capsys.readouterr().out
    assert "ana.cvproj: 0 added, 4 relabelled" in out and "2 conflicts" in out
    assert main(["merge", str(target), str(a), "--user", "pat"]) == 0
    assert "ana.cvproj: nothing new (already merged)" in capsys.readouterr().out
    table = tmp_path / "agreement.csv"
    assert main(["annotator-agreement", str(target), "--by", "image", "--csv", str(table)]) == 0
    out = capsys.readouterr().out
    assert "project: 4 cells labelled by two or more of ana, ben; agreement 0.500" in out
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    kappa = [r for r in rows if r["figure"] == "cohen kappa" and r["group"] == "project"]
    # ana 1 2 3 4, ben 1 2 5 6: p_o = 1/2, p_e = 2 * (1/4 * 1/4) = 1/8, kappa = 3/7
    assert len(kappa) == 1 and float(kappa[0]["value"]) == pytest.approx(3 / 7)
    assert kappa[0]["cells"] == "4" and kappa[0]["annotators"] == "ana ben"
    assert {r["group"] for r in rows} == {"project", "image chula-10-crop.png"}


def test_merging_a_file_that_is_not_a_copy_fails_clearly(tmp_path, capsys):
    target = make_project(tmp_path / "cohort.cvproj")
    other = make_project(tmp_path / "other.cvproj")
    assert main(["merge", str(target), str(other), "--user", "pat"]) == 1
    err = capsys.readouterr().err
    assert "other.cvproj: is not a copy of cohort.cvproj" in err and "Traceback" not in err
    assert main(["annotator-agreement", str(tmp_path / "missing.cvproj")]) == 1
    assert "missing.cvproj: no such project file" in capsys.readouterr().err
