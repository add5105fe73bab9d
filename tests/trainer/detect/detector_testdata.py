"""Synthetic blob images for the detector's tests: dark round cells on a light background,
their centres in a points CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

DIAMETER = 12.0


def blob_image(size: tuple[int, int], centres: np.ndarray, seed: int = 0,
               diameter: float = DIAMETER) -> np.ndarray:
    """(h, w, 3) uint8: a Gaussian-profiled dark cell at each centre, with noise."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w, 3), 225.0)
    for x, y in centres:
        m = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (diameter / 3.5) ** 2))
        img -= m[..., None] * np.array([120.0, 150.0, 60.0])
    img += np.random.default_rng(seed).normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def spread_centres(size: tuple[int, int], n: int, seed: int, diameter: float = DIAMETER,
                   spacing: float = 1.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    pts: list[np.ndarray] = []
    for _ in range(10_000):
        if len(pts) == n:
            break
        p = rng.uniform(diameter, [w - diameter, h - diameter])
        if all(np.hypot(*(p - q)) > spacing * diameter for q in pts):
            pts.append(p)
    return np.array(pts)


def make_blobs(folder: Path, n_images: int = 2, size: tuple[int, int] = (96, 96),
               n_cells: int = 12, seed: int = 0) -> Path:
    """Images ``img<k>.png`` and ``points.csv`` (image,x,y) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n_images):
        centres = spread_centres(size, n_cells, seed + k)
        Image.fromarray(blob_image(size, centres, seed + k)).save(folder / f"img{k}.png")
        rows += [(f"img{k}.png", f"{x:.3f}", f"{y:.3f}") for x, y in centres]
    with open(folder / "points.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "x", "y"])
        w.writerows(rows)
    return folder / "points.csv"


def read_points(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            out.setdefault(r["image"], []).append((float(r["x"]), float(r["y"])))
    return {k: np.array(v) for k, v in out.items()}


def tiny_detector_config(points: Path, out: Path, **changes):
    from trainer.formats.detector_config import DetectorRunConfig

    base = dict(out_dir=str(out), points=str(points), diameter_px=DIAMETER, width=8, depth=2,
                epochs=2, steps_per_epoch=12, batch_size=4, crop_px=64, lr=4e-3,
                val_fraction=0.0, device="cpu", num_threads=1, seed=3)
    base.update(changes)
    return DetectorRunConfig(**base)
