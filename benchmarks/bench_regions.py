"""Benchmark which cells lie inside a region (cellviewer.core.regions.geometry.inside).

    .venv/bin/python benchmarks/bench_regions.py [--cells 500000] [--vertices 400]
        [--repeat 7] [--store] [--dir /tmp/cellviewer-bench-regions]

Times, over ``--cells`` points spread uniformly over a 100,000 x 80,000 slide:

- a hand-drawn-like polygon of ``--vertices`` corners (a wobbly ring round the slide's middle,
  covering about a third of it): the bounding-box prefilter in numpy, then
  ``shapely.intersects_xy`` on the prepared polygon;
- a rectangle of the same bounding box (the box test alone);
- the same polygon tested point by point in Python with ``Polygon.intersects(Point)`` on 2,000
  points, scaled up to ``--cells``: what a loop would cost (the ratio is the figure to quote on
  a loaded machine);
- with ``--store``: a region's whole summary (containment, counts, density) on a project
  holding those cells, and apart from it the store's read of the image's cells (the app has
  them in memory, in the session's ImageCells, so its Regions panel does not read them).

Prints the median of ``--repeat`` runs (wall seconds) and the cells found.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import shapely

from cellviewer.core.regions import geometry

WIDTH, HEIGHT = 100_000, 80_000


def wobbly_polygon(vertices: int, seed: int = 0) -> shapely.Polygon:
    rng = np.random.default_rng(seed)
    angle = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    radius = 30_000 * (1 + 0.15 * np.sin(5 * angle) + 0.05 * rng.standard_normal(vertices))
    pts = np.c_[WIDTH / 2 + radius * np.cos(angle), HEIGHT / 2 + 0.8 * radius * np.sin(angle)]
    return geometry.polygon_from_points(pts)


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=500_000)
    ap.add_argument("--vertices", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--store", action="store_true", help="also time a region's summary")
    ap.add_argument("--dir", default="/tmp/cellviewer-bench-regions")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    xy = np.c_[rng.uniform(0, WIDTH, args.cells), rng.uniform(0, HEIGHT, args.cells)]
    poly = wobbly_polygon(args.vertices)
    t_poly, mask = median_time(lambda: geometry.inside(poly, xy), args.repeat)
    box = geometry.rectangle(*poly.bounds)
    t_box, box_mask = median_time(lambda: geometry.inside(box, xy), args.repeat)
    sample = xy[:2000]
    t0 = time.perf_counter()
    loop = [poly.intersects(shapely.Point(x, y)) for x, y in sample]
    t_loop = (time.perf_counter() - t0) * args.cells / len(sample)
    assert np.array_equal(np.array(loop), mask[:2000])
    print(f"{args.cells:,} cells, polygon of {args.vertices} corners: {t_poly * 1e3:.1f} ms "
          f"({int(mask.sum()):,} inside)")
    print(f"  rectangle of its bounding box: {t_box * 1e3:.1f} ms ({int(box_mask.sum()):,} "
          "inside)")
    print(f"  a Python loop of Polygon.intersects(Point), extrapolated: {t_loop:.1f} s "
          f"({t_loop / t_poly:,.0f}x slower)")
    if args.store:
        from cellviewer.core.regions import summary
        from cellviewer.core.store import ProjectStore

        folder = Path(args.dir)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with ProjectStore.create(folder / "bench.cvproj") as store:
            store.user = "bench"
            classes = [store.add_class(n) for n in ("tumour", "stroma", "immune", "other")]
            image = store.add_image("slide.svs", WIDTH, HEIGHT, mpp=0.25)
            store.add_cells(image, xy, rng.choice(classes, args.cells))
            region = store.add_region(image, geometry.to_geojson(poly), "bench", "tumour")
            t_read, cells = median_time(lambda: store.cell_arrays(image), 3)
            t_sum, s = median_time(lambda: summary.summarise(store, region, cells), 3)
            print(f"  a region's summary (containment, counts, density) of cells in memory: "
                  f"{t_sum * 1e3:.0f} ms ({s.n_cells:,} cells, {s.density_per_mm2:,.0f} per "
                  f"mm²); reading the {args.cells:,} cells from the project first: "
                  f"{t_read * 1e3:.0f} ms (the app has them in memory already)")
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
