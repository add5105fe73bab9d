"""A small cohort for the cohort-scoring tests: generated tiles with nuclei (the classical
detector finds every disc), OpenSlide's tiny SVS and tiled TIFF fixtures, a manifest, a tiny
random-weight model, and readers of what a run wrote and of a project's cells."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
SLIDES = ROOT / "tests" / "fixtures" / "openslide"
CLASSES = ["tumour", "stroma", "immune"]


def nuclei_tile(path: Path, seed: int, n: int = 10, size: int = 192) -> Path:
    """A white tile with ``n`` discs (r = 8 px, the detector's default 16 px) of varied
    darkness, so that a model's probabilities vary between cells."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    rgb = np.full((size, size, 3), 255, np.uint8)
    placed: list[tuple[int, int]] = []
    while len(placed) < n:
        cx, cy = (int(v) for v in rng.integers(14, size - 14, 2))
        if all(np.hypot(cx - a, cy - b) > 26 for a, b in placed):
            placed.append((cx, cy))
            rgb[np.hypot(xx - cx, yy - cy) <= 8] = rng.integers(30, 150, 3)
    Image.fromarray(rgb).save(path)
    return path


def make_cohort(folder: Path, tiles: int = 5, extra_rows: list[str] = ()) -> Path:
    """``folder/manifest.csv`` over ``tiles`` tiles, small.svs and boxes.tiff (+ extra rows)."""
    (folder / "tiles").mkdir(parents=True, exist_ok=True)
    rows = [f"tiles/t{k}.png," for k in range(tiles)]
    for k in range(tiles):
        nuclei_tile(folder / "tiles" / f"t{k}.png", seed=k)
    rows += [f"{SLIDES / 'small.svs'},", f"{SLIDES / 'boxes.tiff'},", *extra_rows]
    manifest = folder / "manifest.csv"
    manifest.write_text("slide,regions\n" + "\n".join(rows) + "\n")
    return manifest


def tiny_model(path: Path, classes: list[str] = CLASSES, seed: int = 0) -> Path:
    """A real tiny CNN file with random weights (scaled up so its outputs differ per cell)."""
    import torch

    from trainer.engine import modelfile
    from trainer.models import create_model

    torch.manual_seed(seed)
    args = {"channels": [4, 4, 8, 8]}
    model = create_model("cnn", len(classes), **args)
    state = {k: (v * 3 if v.is_floating_point() and "running" not in k else v)
             for k, v in model.state_dict().items()}
    return modelfile.save_model_file(
        path, state_dict=state, mean_image=torch.rand(3, 40, 40) * 255,
        meta={"arch": "cnn", "arch_kwargs": args, "classes": list(classes), "metrics": {}})


def env() -> dict[str, str]:
    """The environment of a child ``cellviewer``: this checkout first, torch eager on the CPU
    (the same backend in every process; no ONNX export at each start)."""
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), out.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out["CELLVIEWER_CPU_BACKEND"] = "torch"
    out["CELLVIEWER_USER"] = "tester"
    return out


def cellviewer(*args: str | Path, cwd: Path) -> subprocess.Popen:
    """``cellviewer ARGS`` as a child process (started, not waited for)."""
    return subprocess.Popen([sys.executable, "-m", "cellviewer", *map(str, args)], cwd=cwd,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(*procs: subprocess.Popen) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append((p.returncode, stdout, stderr))
    return out


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every result file of a folder, by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def read_result_rows(folder: Path) -> dict[str, dict[str, str]]:
    """Every cell of a results folder's CSVs, by id."""
    cells: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.cells.csv")):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                assert row["cell_id"] not in cells
                cells[row["cell_id"]] = row
    return cells


def project_cells(path: Path) -> dict[str, tuple[str, float, float, str, tuple[float, ...]]]:
    """Per cell id: image file name, x, y, predicted class, probabilities (model order)."""
    from cellviewer.core.store import ProjectStore

    out = {}
    with ProjectStore.open(path, readonly=True) as store:
        models = store.models()
        assert len(models) == 1
        model = models[0]
        for image in store.images():
            arrays = store.cell_arrays(image.id)
            ids = [str(i) for i in arrays.ids]
            pred = store.predictions(model.id, ids)
            for k, cell_id in enumerate(ids):
                probs = tuple(float(v) for v in pred.probs[k])
                out[cell_id] = (image.name, float(arrays.xy[k][0]), float(arrays.xy[k][1]),
                                model.classes[int(np.argmax(probs))], probs)
    return out


def assert_same_cells(a: dict, b: dict) -> None:
    """The same ids, images, positions and classes; probabilities within 1e-5."""
    assert a.keys() == b.keys() and a
    for cell_id, (name, x, y, cls, probs) in a.items():
        name2, x2, y2, cls2, probs2 = b[cell_id]
        assert (name, x, y, cls) == (name2, x2, y2, cls2)
        assert np.allclose(probs, probs2, atol=1e-5, rtol=0)
