"""The data area's CLI commands, run through the trainer's real entry point."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.cli import main

REPO = Path(__file__).resolve().parents[3]


def _dataset(tmp_path, n_per_class=(30, 12, 2)):
    rng = np.random.default_rng(0)
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(img_dir / "i.png")
    lines = ["image,x,y,class_id"]
    for k, n in enumerate(n_per_class):
        lines += [f"i.png,{rng.uniform(0, 160):.2f},{rng.uniform(0, 120):.2f},{k}"
                  for _ in range(n)]
    (tmp_path / "points.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "points.csv", img_dir


def test_build_patchset_then_sample_with_csv(tmp_path, capsys):
    points, img_dir = _dataset(tmp_path)
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"classes": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}))
    out = tmp_path / "set.patches"
    assert main(["build-patchset", str(points), str(img_dir), str(out),
                 "--class-names", str(classes)]) == 0
    text = capsys.readouterr().out
    assert "44 cells from 1 images" in text and "padded" in text
    report_csv = tmp_path / "report.csv"
    assert main(["sample", str(out), "--limits", "20,256", "--csv", str(report_csv)]) == 0
    table = capsys.readouterr().out
    # FlagMin is 1 at 20 and 13 at 256: 'c' (2 cells) is kept at 20, excluded at 256
    row_c = next(line for line in table.splitlines() if line.startswith("c "))
    assert row_c.split() == ["c", "2", "2", "excl"]
    rows = list(csv.DictReader(report_csv.read_text().splitlines()))
    used = {(r["limit"], r["class"]): r["used"] for r in rows}
    assert used[("20", "a")] == "20" and used[("256", "b")] == "0"


def test_sample_reads_a_points_csv_directly(tmp_path, capsys):
    points, _ = _dataset(tmp_path)
    assert main(["sample", str(points), "--class-names", "x,y,z", "--limits", "256"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["class", "available", "256"]
    assert any(line.split() == ["y", "12", "excl"] for line in lines)


def test_bad_input_is_an_error_message_and_exit_code_2(tmp_path):
    points, img_dir = _dataset(tmp_path)
    points.write_text(points.read_text() + "nope.png,1,1,0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "build-patchset", str(points), str(img_dir),
         str(tmp_path / "o.patches")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "points.csv, line 46: image 'nope.png' not found" in proc.stderr
    assert not (tmp_path / "o.patches").exists()
