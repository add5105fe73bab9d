"""Benchmark copying a project for annotators, merging their copies back and measuring their
agreement (issue 19).

    .venv/bin/python benchmarks/bench_merge.py [--cells 100000] [--copies 3]
        [--dir /tmp/cellviewer-bench-merge] [--json out.json]

Builds a project of ``--cells`` labelled cells on one 20,000 x 20,000 pixel image (4 classes),
makes ``--copies`` copies (``copy_for``); each annotator relabels 10% of the cells (half of
them the same cells for everyone, so there are conflicts), deletes 0.5% and adds 1% new ones;
then times the merge of all copies (one undoable action), a second merge of the same files
(a no-op), the undo of the merge and the agreement over the merged project. Wall times in
seconds; the figures depend on the machine's load, so compare them with each other.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cellviewer.core.merge import copy_for, merge
from cellviewer.core.merge.agreement import project_agreement
from cellviewer.core.store import ProjectStore


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cellviewer-bench-merge"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    figures: dict[str, float] = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        figures[name] = round(time.perf_counter() - t0, 3)
        print(f"{name}: {figures[name]:.3f} s", flush=True)
        return out

    target = args.dir / "cohort.cvproj"
    with ProjectStore.create(target) as store:
        store.user = "lab"
        classes = [store.add_class(n) for n in ("a", "b", "c", "d")]
        image = store.add_image("slide.tif", 20_000, 20_000, mpp=0.25)
        xy = rng.uniform(0, 20_000, size=(args.cells, 2))
        timed("build", lambda: store.add_cells(image, xy, rng.choice(classes, args.cells).tolist(),
                                               source="imported"))
        ids = store.cell_table()["ids"]
        store.wait_for_checkpoint()
    copies = []
    shared = rng.choice(len(ids), args.cells // 20, replace=False)
    for k in range(args.copies):
        path = args.dir / f"annotator{k}.cvproj"
        timed(f"copy_for {k}", lambda p=path, k=k: copy_for(target, p, f"annotator{k}"))
        with ProjectStore.open(path) as s:
            s.user = f"annotator{k}"
            own = rng.choice(len(ids), args.cells // 20, replace=False)
            pick = np.unique(np.concatenate([shared, own]))
            for c in classes:
                chosen = pick[rng.choice(len(classes), len(pick)) == classes.index(c)]
                s.set_labels([ids[i] for i in chosen], c)
            rest = np.setdiff1d(np.arange(len(ids)), pick)
            s.delete_cells([ids[i] for i in rng.choice(rest, args.cells // 200, replace=False)])
            s.add_cells(image, rng.uniform(0, 20_000, size=(args.cells // 100, 2)), classes[0])
            s.wait_for_checkpoint()
        copies.append(path)
    results = timed("merge", lambda: merge(target, copies, "pat"))
    print("conflicts", sum(r.conflicts for r in results), "added", sum(r.added for r in results))
    timed("merge again (no-op)", lambda: merge(target, copies, "pat"))
    with ProjectStore.open(target) as store:
        store.user = "pat"
        agreement = timed("agreement", lambda: project_agreement(store))
        print("agreement over", agreement[0].n_cells, "cells:", round(agreement[0].percent, 3))
        timed("undo merge", store.undo)
    if args.json:
        args.json.write_text(json.dumps({"cells": args.cells, "copies": args.copies,
                                         "seconds": figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
