"""The predictions store and the loading of a large image (issue 17).

    .venv/bin/python benchmarks/bench_store_predictions.py [--cells 500000] [--classes 16]
        [--repeat 3] [--json out.json]

1. **Layouts** on bare SQLite files, each written in one transaction, the same N predictions
   of K classes: an unindexed table by ``executemany`` (the reference the issue names),
   schema v4's layout (a row per (model, cell) WITHOUT ROWID, an index by cell and one by
   confidence: three B-trees), the same with its key only, and schema v5's blocks
   (``cellviewer.core.store.prediction_blocks``: a row per 2,048 cells).
2. **The store**: ``ProjectStore.put_predictions`` of N predictions for a fresh model and again
   replacing them, predictions/s and the ratio to the bare ``executemany``.
3. **Loading**: ``image_columns`` of an N-cell image with that model's predictions, read from
   the cells table and from the column cache (schema v5), the figure the issue asks ≤ 0.3 s.

Every figure is the median of ``--repeat`` runs, interleaved, in wall and CPU seconds (the
machine may be shared: CPU time shows the work; see ../shared/design/measuring.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cellviewer.core.store import ProjectStore, prediction_blocks

V4 = ("CREATE TABLE predictions (model_id INTEGER NOT NULL, cell_id INTEGER NOT NULL,"
      " probs BLOB NOT NULL, predicted INTEGER NOT NULL, confidence REAL NOT NULL,"
      " PRIMARY KEY (model_id, cell_id)) WITHOUT ROWID")


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _db(folder: str, schema: list[str]) -> sqlite3.Connection:
    path = tempfile.mktemp(dir=folder, suffix=".db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # as the store runs
    for statement in schema:
        conn.execute(statement)
    return conn


def layouts(folder: str, keys: np.ndarray, probs: np.ndarray) -> dict[str, tuple]:
    n = len(keys)
    predicted = probs.argmax(axis=1)
    confidence = probs[np.arange(n), predicted].astype(np.float64)

    def rows():
        return zip([1] * n, keys.tolist(), [r.tobytes() for r in probs], predicted.tolist(),
                   confidence.tolist(), strict=True)

    def in_one(conn, fn):
        def run():
            conn.execute("BEGIN")
            fn(conn)
            conn.execute("COMMIT")
        return run

    blocks_schema = ["CREATE TABLE models (id INTEGER PRIMARY KEY)",
                     "INSERT INTO models VALUES (1)", prediction_blocks.SCHEMA]
    cases = {
        "bare executemany, unindexed": (
            ["CREATE TABLE t (model_id, cell_id, probs, predicted, confidence)"],
            lambda c: c.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows())),
        "v4: 3 B-trees": (
            [V4, "CREATE INDEX pc ON predictions(cell_id)",
             "CREATE INDEX pf ON predictions(model_id, confidence)"],
            lambda c: c.executemany("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?)",
                                    rows())),
        "v4 key only": (
            [V4], lambda c: c.executemany(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?)", rows())),
        "v5: blocks of 2,048 cells": (
            blocks_schema, lambda c: prediction_blocks.write(c, 1, keys, probs)),
    }
    out = {}
    for name, (schema, fn) in cases.items():
        out[name] = _timed(in_one(_db(folder, schema), fn))
    return out


def store_figures(folder: str, n: int, k: int, rng) -> dict[str, tuple]:
    path = Path(tempfile.mkdtemp(dir=folder)) / "bench.cvproj"
    store = ProjectStore.create(path)
    store.user = "bench"
    image = store.add_image(path.parent / "slide.svs", 100_000, 80_000)
    store.add_cells(image, rng.uniform(0, 80_000, (n, 2)))
    model = store.add_model("m", None, None, [f"class {i}" for i in range(k)])
    rows = store.image_columns(image).rows
    probs = rng.dirichlet(np.ones(k), n).astype(np.float32)
    out = {
        "put_predictions, fresh": _timed(lambda: store.put_predictions(model, rows, probs)),
        "put_predictions, replacing": _timed(lambda: store.put_predictions(model, rows, probs)),
    }
    store._conn.execute("DELETE FROM column_cache_valid")
    store.wait_for_checkpoint(60)
    out["image_columns + prediction, from the cells table"] = _timed(
        lambda: store.image_columns(image, model))  # (and fills the cache)
    store.wait_for_checkpoint(60)
    out["image_columns + prediction, from the column cache"] = _timed(
        lambda: store.image_columns(image, model))
    out["image_columns, from the column cache"] = _timed(lambda: store.image_columns(image))
    store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=500_000)
    ap.add_argument("--classes", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n, k = args.cells, args.classes
    keys = np.arange(1, n + 1, dtype=np.int64)
    probs = rng.dirichlet(np.ones(k), n).astype(np.float32)
    runs: dict[str, list[tuple]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeat):
            for name, t in {**layouts(folder, keys, probs),
                            **store_figures(folder, n, k, rng)}.items():
                runs.setdefault(name, []).append(t)
    med = {name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
           for name, ts in runs.items()}
    bare = med["bare executemany, unindexed"]
    print(f"{n:,} predictions of {k} classes, median of {args.repeat} (load "
          f"{os.getloadavg()[0]:.1f})")
    print(f"{'':52s} {'wall s':>8s} {'cpu s':>8s} {'per s (cpu)':>14s} {'x bare (cpu)':>13s}")
    for name, (wall, cpu) in med.items():
        rate = f"{n / cpu:14,.0f}" if "image_columns" not in name else f"{'':14s}"
        ratio = f"{bare[1] / cpu:13.2f}" if "image_columns" not in name else ""
        print(f"{name:52s} {wall:8.3f} {cpu:8.3f} {rate} {ratio}")
    if args.json:
        args.json.write_text(json.dumps({"cells": n, "classes": k, "median": med}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
