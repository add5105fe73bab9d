"""``cellviewer detect``: the CSV it writes, and its exit codes and messages for bad input (a
missing file, OpenSlide's broken fixtures, an existing --out, a trained model, µm without a
pixel size), following ../shared/design/cli.md."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.cli.main import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BROKEN = FIXTURES / "openslide"


def nuclei_png(path: Path, centres: list[tuple[int, int]]) -> Path:
    """A white PNG with purple discs (r = 8 px) at ``centres``."""
    h = w = 160
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.full((h, w, 3), 255, np.uint8)
    for cx, cy in centres:
        rgb[np.hypot(xx - cx, yy - cy) <= 8] = (70, 50, 140)
    Image.fromarray(rgb).save(path)
    return path


CENTRES = [(40, 40), (120, 40), (40, 120), (120, 120)]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_detects_into_a_csv_of_full_resolution_pixels(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    nuclei_png(images / "a.png", CENTRES)
    nuclei_png(images / "b.png", CENTRES[:2])
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "detections.csv"
    assert main(["detect", str(images), "--out", str(out), "--diameter-px", "16"]) == 0
    rows = read_rows(out)
    assert list(rows[0]) == ["image", "x", "y", "score"]
    assert sorted({r["image"] for r in rows}) == ["images/a.png", "images/b.png"]
    a = sorted((round(float(r["x"])), round(float(r["y"]))) for r in rows
               if r["image"] == "images/a.png")
    assert a == sorted(CENTRES)
    err = capsys.readouterr().err
    assert "diameter 16 px (given)" in err and f"wrote 6 detections of 2 images to {out}" in err


def test_a_missing_file_fails_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "d.csv"
    assert main(["detect", str(tmp_path / "gone.png"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'gone.png'}: no such file" in err and "every input failed" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, cause", [("unopenable.tiff", "Cannot open image"),
                                         ("unreadable.svs", "truncated or damaged slide")])
def test_a_broken_slide_among_good_images_exits_3_with_the_rest_written(tmp_path, capsys,
                                                                        name, cause):
    good = nuclei_png(tmp_path / "good.png", CENTRES)
    out = tmp_path / "d.csv"
    code = main(["detect", str(good), str(BROKEN / name), "--out", str(out),
                 "--diameter-px", "16"])
    assert code == 3
    err = capsys.readouterr().err
    assert "1 of 2 inputs failed" in err and str(BROKEN / name) in err and cause in err
    assert len(read_rows(out)) == len(CENTRES)


def test_an_existing_out_is_refused_unless_overwrite(tmp_path, capsys):
    good = nuclei_png(tmp_path / "good.png", CENTRES)
    out = tmp_path / "d.csv"
    out.write_text("precious\n")
    assert main(["detect", str(good), "--out", str(out)]) == 1
    assert f"{out}: exists already; give --overwrite" in capsys.readouterr().err
    assert out.read_text() == "precious\n"
    assert main(["detect", str(good), "--out", str(out), "--overwrite",
                 "--diameter-px", "16"]) == 0
    assert len(read_rows(out)) == len(CENTRES)


def test_refusals_a_trained_model_um_without_pixel_size_and_usage(tmp_path, capsys):
    good = nuclei_png(tmp_path / "good.png", CENTRES)
    out = tmp_path / "d.csv"
    assert main(["detect", str(good), "--out", str(out), "--method", "det.cvmodel"]) == 1
    assert "det.cvmodel: model file not found" in capsys.readouterr().err
    assert main(["detect", str(good), "--out", str(out), "--diameter-um", "8"]) == 1
    err = capsys.readouterr().err
    assert f"{good}: the image does not give its pixel size" in err and "--diameter-px" in err
    assert main(["detect", str(good), "--out", str(out), "--sensitivity", "2"]) == 2
    assert "--sensitivity 2: must be between 0 and 1" in capsys.readouterr().err
    assert main(["detect", str(good), "--out", str(out), "--method", "magic"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(good), "--out", str(out), "--mode", "membrane"])
    assert exc.value.code == 2
    assert not out.exists()


def test_json_progress_from_a_real_process(tmp_path):
    good = nuclei_png(tmp_path / "good.png", CENTRES)
    out = tmp_path / "d.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "cellviewer", "detect", str(good), str(tmp_path / "gone.png"),
         "--out", str(out), "--diameter-px", "16", "--json"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[3])
    assert proc.returncode == 3, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "started" and names[-1] == "finished"
    assert "progress" in names and "item-done" in names and "item-failed" in names
    assert events[-1]["cells"] == len(CENTRES) and events[-1]["failed"] == [
        str(tmp_path / "gone.png")]
