"""Benchmark the project store on a million-cell project.

    .venv/bin/python benchmarks/bench_store_query.py [--cells 1000000] [--images 1]
        [--dir /tmp/cellviewer-bench] [--queries 500] [--compare-rtree] [--json out.json]

Builds a project in ``--dir`` with ``--cells`` cells spread uniformly over ``--images`` whole
slides of 100,000 x 80,000 level-0 pixels (one slide by default: the densest case for the
per-image index), 4 classes, then times:

- inserting the cells (one ``add_cells`` call: ids, executemany, history rows, one commit);
- viewport queries (``cells_in_rect``) of a 1920 x 1080 screen at 1:1, at 1:8 (also with
  ``max_cells=5000``) and at full-slide zoom (the whole slide; with and without
  ``max_cells=20000``): median and 95th percentile over many random viewports, wall and CPU;
- a bulk relabel of 10,000 cells drawn at random from the whole slide (the worst case: each
  touches its own database page), its undo and its redo, in wall and CPU time;
- storing predictions of one model for every cell, and filter queries (per class, disagreement
  with the model, least confident first).

``--compare-rtree`` also builds bare SQLite tables with the same points, indexed by the grid-band
index the store uses and by an R*Tree, and compares their insert and 1:1 query times (the choice
recorded in cellviewer/core/store/schema.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cellviewer.core.store import ProjectStore
from cellviewer.core.store.schema import GRID

SLIDE = (100_000, 80_000)
SCREEN = (1920, 1080)


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def _timed_cpu(fn, *args, **kwargs):
    """Wall and CPU seconds: on a shared machine the CPU time shows the work itself."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, time.process_time() - c, out


def _viewports(store, image, scale, n, rng, **kwargs):
    w, h = SCREEN[0] * scale, SCREEN[1] * scale
    times, cpus, counts = [], [], []
    for _ in range(n):
        x0 = rng.uniform(0, max(SLIDE[0] - w, 1))
        y0 = rng.uniform(0, max(SLIDE[1] - h, 1))
        wall, cpu, cells = _timed_cpu(store.cells_in_rect, image, x0, y0, x0 + w, y0 + h,
                                      **kwargs)
        times.append(wall)
        cpus.append(cpu)
        counts.append(len(cells))
    return {
        "median_ms": 1e3 * statistics.median(times),
        "p95_ms": 1e3 * float(np.percentile(times, 95)),
        "median_cpu_ms": 1e3 * statistics.median(cpus),
        "median_cells": float(statistics.median(counts)),
        "queries": n,
    }


def _once(fn, *args, **kwargs) -> dict:
    wall, cpu, out = _timed_cpu(fn, *args, **kwargs)
    result = {"ms": 1e3 * wall, "cpu_ms": 1e3 * cpu}
    if out is not None and hasattr(out, "__len__"):
        result["cells"] = len(out)
    return result


def bench_store(folder: Path, n_cells: int, n_images: int, n_queries: int) -> dict:
    rng = np.random.default_rng(0)
    path = folder / "bench.cvproj"
    results: dict = {"cells": n_cells, "images": n_images, "slide": SLIDE}
    with ProjectStore.create(path, overwrite=True) as store:
        images = [store.add_image(folder / f"slide{i}.svs", *SLIDE, mpp=0.25)
                  for i in range(n_images)]
        classes = [store.add_class(n) for n in ("tumour", "stroma", "immune", "other")]
        per_image = np.array_split(np.arange(n_cells), n_images)
        ids: list[str] = []
        t_insert = c_insert = 0.0
        for image, part in zip(images, per_image, strict=True):
            xy = rng.uniform(0, 1, (len(part), 2)) * SLIDE
            labels = rng.choice(classes + [-1], len(part))
            wall, cpu, new = _timed_cpu(store.add_cells, image, xy, labels, source="imported")
            t_insert += wall
            c_insert += cpu
            ids.extend(new)
        results["insert"] = {"s": t_insert, "cpu_s": c_insert, "cells_per_s": n_cells / t_insert}
        store.wait_for_checkpoint(None)
        image = images[0]
        store.cells_in_rect(image, 0, 0, 10, 10)  # warm the statement cache
        results["viewport_1to1"] = _viewports(store, image, 1, n_queries, rng)
        results["viewport_1to8"] = _viewports(store, image, 8, max(n_queries // 10, 10), rng)
        results["viewport_1to8_max5000"] = _viewports(store, image, 8, max(n_queries // 10, 10),
                                                      rng, max_cells=5000)
        results["full_slide_max20k"] = _once(store.cells_in_rect, image, 0, 0, *SLIDE,
                                             max_cells=20_000)
        results["full_slide_all"] = _once(store.cells_in_rect, image, 0, 0, *SLIDE)
        results["cell_arrays"] = _once(store.cell_arrays, image)

        chosen = [ids[i] for i in rng.choice(len(ids), 10_000, replace=False)]
        relabel = {}
        for step, call in (("label", lambda: store.set_labels(chosen, classes[0],
                                                              source="corrected")),
                           ("undo", store.undo), ("redo", store.redo)):
            store.wait_for_checkpoint()  # as after a pause: the log already folded in
            wall, cpu, _ = _timed_cpu(call)
            relabel[f"{step}_ms"] = 1e3 * wall
            relabel[f"{step}_cpu_ms"] = 1e3 * cpu
        results["relabel_10k_random"] = relabel

        model = store.add_model("bench", None, "cnn", ["tumour", "stroma", "immune", "other"])
        probs = rng.dirichlet([1, 1, 1, 1], len(ids)).astype(np.float32)
        results["put_predictions"] = _once(store.put_predictions, model, ids, probs)
        store.wait_for_checkpoint(None)
        results["query_class"] = _once(store.query_cells, image_id=image, class_id=classes[1],
                                       order=None)
        results["query_disagree_1000"] = _once(store.query_cells, image_id=image,
                                               disagree_model_id=model, order="unsure-first",
                                               limit=1000)
        results["query_least_confident_1000"] = _once(store.query_cells, model_id=model,
                                                      order="unsure-first", limit=1000)
        results["query_confidence_below_0.3"] = _once(store.query_cells, model_id=model,
                                                      max_confidence=0.3, order=None)
    results["file_mb"] = sum(p.stat().st_size for p in folder.glob("bench.cvproj*")) / 1e6
    return results


def compare_rtree(folder: Path, n_cells: int, n_queries: int) -> dict:
    """Bare tables: the store's grid-band index against an R*Tree, same points, same queries."""
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1, (n_cells, 2)) * SLIDE
    rows = [(i + 1, 1, float(x), float(y)) for i, (x, y) in enumerate(xy)]
    out = {}
    for kind in ("grid", "rtree"):
        path = folder / f"compare-{kind}.db"
        path.unlink(missing_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute(f"CREATE TABLE cells (id INTEGER PRIMARY KEY, image_id INT, x REAL, y REAL,"
                     f" gy INT GENERATED ALWAYS AS (CAST(y / {GRID} AS INTEGER)) VIRTUAL)")
        if kind == "grid":
            conn.execute("CREATE INDEX g ON cells(image_id, gy, x, y)")
        else:
            conn.execute("CREATE VIRTUAL TABLE rt USING rtree(id, x0, x1, y0, y1)")
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO cells (id, image_id, x, y) VALUES (?, ?, ?, ?)", rows)
        if kind == "rtree":
            conn.executemany("INSERT INTO rt VALUES (?, ?, ?, ?, ?)",
                             ((r[0], r[2], r[2], r[3], r[3]) for r in rows))
        conn.execute("COMMIT")
        insert_s = time.perf_counter() - t
        times = []
        q = np.random.default_rng(2)
        for _ in range(n_queries):
            x0 = q.uniform(0, SLIDE[0] - SCREEN[0])
            y0 = q.uniform(0, SLIDE[1] - SCREEN[1])
            x1, y1 = x0 + SCREEN[0], y0 + SCREEN[1]
            t = time.perf_counter()
            if kind == "grid":
                bands = ",".join(str(b) for b in range(int(y0 / GRID), int(y1 / GRID) + 1))
                conn.execute(f"SELECT id, x, y FROM cells WHERE image_id = 1 AND gy IN ({bands})"
                             " AND x BETWEEN ? AND ? AND y BETWEEN ? AND ?",
                             (x0, x1, y0, y1)).fetchall()
            else:  # R*Tree boxes are float32: filter exactly on the table's doubles
                conn.execute("SELECT c.id, c.x, c.y FROM rt JOIN cells c ON c.id = rt.id"
                             " WHERE rt.x0 >= ? AND rt.x1 <= ? AND rt.y0 >= ? AND rt.y1 <= ?"
                             " AND c.x BETWEEN ? AND ? AND c.y BETWEEN ? AND ?",
                             (x0, x1, y0, y1, x0, x1, y0, y1)).fetchall()
            times.append(time.perf_counter() - t)
        conn.close()
        out[kind] = {"insert_s": insert_s, "median_ms": 1e3 * statistics.median(times),
                     "p95_ms": 1e3 * float(np.percentile(times, 95)),
                     "file_mb": path.stat().st_size / 1e6}
        path.unlink(missing_ok=True)
    return out


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--images", type=int, default=1)
    p.add_argument("--dir", type=Path, default=Path("/tmp/cellviewer-bench"))
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--compare-rtree", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the project file afterwards")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    results = bench_store(args.dir, args.cells, args.images, args.queries)
    if args.compare_rtree:
        results["index_comparison"] = compare_rtree(args.dir, args.cells, args.queries)
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    for key, value in results.items():
        print(f"{key:32s} {json.dumps(_rounded(value))}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
