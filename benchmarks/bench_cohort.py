"""Benchmark cohort scoring (issue 20): 20 slides detected and classified as 1, 2 and 4 local
shards (separate processes, as a Slurm array runs them), and the merged result checked against
the single run's.

    .venv/bin/python benchmarks/bench_cohort.py [--svs 6] [--tiff 6] [--tiles 8]
        [--shards 1,2,4] [--model M.cvmodel] [--dir /tmp/cellviewer-bench-cohort] [--json out.json]

The cohort: the real SVS and its pyramidal TIFF from ``../shared/data/slides`` repeated
(``--svs``/``--tiff`` symbolic links of distinct names, so each is a slide of its own with ids
of its own) plus ``--tiles`` CRC tiles from ``../shared/data/crc/tiles`` (read in place, never
copied into the repository). For each shard count N: N ``cellviewer detect manifest.csv
--shard i/N`` processes at once into one folder (wall time from the first start to the last
exit), then N ``cellviewer predict --cells`` processes; cells/s = cells / wall time. The model
is a tiny random-weight CNN made here (``--model`` for a real one): the figures are the
pipeline's cost, not a classifier's accuracy. Checks: every N's detection files are the single
run's byte for byte; the shards' predictions imported into one project (``cellviewer import``)
equal the single run's project (same cell ids and positions, probabilities within 1e-5, same
classes). The machine's load moves the figures: compare them with each other.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def cohort(folder: Path, svs: int, tiff: int, tiles: int) -> Path:
    """Symbolic links of distinct names to the real slides and tiles, and their manifest."""
    slides = folder / "slides"
    slides.mkdir(parents=True)
    sources = ([(DATA / "slides" / "CMU-1-Small-Region.svs", f"svs-{k:02d}.svs")
                for k in range(svs)]
               + [(DATA / "slides" / "CMU-1-Small-Region_pyramid.tiff", f"tiff-{k:02d}.tiff")
                  for k in range(tiff)])
    crc = sorted((DATA / "crc" / "tiles").glob("*"))[:tiles]
    sources += [(p, f"tile-{p.name}") for p in crc]
    for target, name in sources:
        (slides / name).symlink_to(target)
    manifest = folder / "manifest.csv"
    manifest.write_text("slide\n" + "".join(f"slides/{name}\n" for _, name in sources))
    return manifest


def tiny_model(path: Path, classes: list[str]) -> Path:
    import torch

    from trainer.engine import modelfile
    from trainer.models import create_model

    torch.manual_seed(0)
    args = {"channels": [8, 8, 16, 16]}
    model = create_model("cnn", len(classes), **args)
    return modelfile.save_model_file(
        path, state_dict=model.state_dict(), mean_image=torch.rand(3, 40, 40) * 255,
        meta={"arch": "cnn", "arch_kwargs": args, "classes": classes, "metrics": {}})


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), out.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out["CELLVIEWER_USER"] = "bench"
    return out


def shards(folder: Path, n: int, *args: str) -> tuple[float, list[dict]]:
    """N processes of ``cellviewer ARGS --shard i/N --json`` at once: wall time and each
    one's ``finished`` event."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "cellviewer", *args, "--shard", f"{i}/{n}",
                               "--json"], cwd=folder, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    finished = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(args)} shard failed ({p.returncode}):\n{err}")
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        finished.append(events[-1])
    return time.perf_counter() - t0, finished


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def project_cells(path: Path) -> dict[str, tuple]:
    from cellviewer.core.store import ProjectStore

    out = {}
    with ProjectStore.open(path, readonly=True) as store:
        (model,) = store.models()
        for image in store.images():
            arrays = store.cell_arrays(image.id)
            ids = [str(i) for i in arrays.ids]
            probs = store.predictions(model.id, ids).probs
            for k, cell_id in enumerate(ids):
                out[cell_id] = (image.name, float(arrays.xy[k][0]), float(arrays.xy[k][1]),
                                int(np.argmax(probs[k])), probs[k].astype(np.float64))
    return out


def imported(folder: Path, name: str, results: list[Path]) -> dict[str, tuple]:
    from cellviewer.core.store import ProjectStore

    project = folder / f"{name}.cvproj"
    ProjectStore.create(project).close()
    subprocess.run([sys.executable, "-m", "cellviewer", "import", str(project),
                    *map(str, results), "--on-missing-image", "add"], cwd=folder, env=env(),
                   check=True, capture_output=True)
    return project_cells(project)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--svs", type=int, default=6)
    ap.add_argument("--tiff", type=int, default=6)
    ap.add_argument("--tiles", type=int, default=8)
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cellviewer-bench-cohort"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    manifest = cohort(args.dir, args.svs, args.tiff, args.tiles)
    model = args.model or tiny_model(args.dir / "model.cvmodel",
                                     ["epithelial", "inflammatory", "fibroblast", "others"])
    counts = [int(n) for n in args.shards.split(",")]
    slides = args.svs + args.tiff + args.tiles
    print(f"{slides} slides ({args.svs} SVS, {args.tiff} TIFF, {args.tiles} CRC tiles), "
          f"{os.cpu_count()} CPUs, model {model}")
    rows = []
    for n in counts:
        det_s, det = shards(args.dir, n, "detect", str(manifest), "--out", f"det-{n}")
        pred_s, pred = shards(args.dir, n, "predict", str(manifest), "--cells", f"det-{n}",
                              "--model", str(model), "--out", f"pred-{n}")
        cells = sum(f["cells"] for f in det)
        assert cells == sum(f["cells"] for f in pred)
        row = {"shards": n, "slides": slides, "cells": cells, "detect_s": round(det_s, 2),
               "detect_cells_per_s": round(cells / det_s, 1), "predict_s": round(pred_s, 2),
               "predict_cells_per_s": round(cells / pred_s, 1)}
        rows.append(row)
        print(f"{n} shard{'s' if n > 1 else ' '}: {cells:,} cells; detect {det_s:6.1f} s "
              f"({cells / det_s:7,.0f} cells/s); predict {pred_s:6.1f} s "
              f"({cells / pred_s:7,.0f} cells/s)", flush=True)
    base = counts[0]
    single = imported(args.dir, f"single-{base}", [args.dir / f"pred-{base}"])
    checks = {}
    for n in counts[1:]:
        same_detect = files(args.dir / f"det-{n}") == files(args.dir / f"det-{base}")
        merged = imported(args.dir, f"merged-{n}", [args.dir / f"pred-{n}"])
        same_cells = merged.keys() == single.keys() and all(
            merged[k][:4] == single[k][:4] for k in single)
        worst = max(float(np.abs(merged[k][4] - single[k][4]).max()) for k in single)
        checks[n] = {"detection_files_identical": same_detect, "same_ids_positions_classes":
                     same_cells, "max_prob_difference": worst}
        print(f"{n} shards merged vs {base}: detection files identical {same_detect}; "
              f"same ids, positions and classes {same_cells} ({len(merged):,} cells); "
              f"largest probability difference {worst:.2g}")
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "checks": checks}, indent=1))
    ok = all(c["detection_files_identical"] and c["same_ids_positions_classes"]
             and c["max_prob_difference"] <= 1e-5 for c in checks.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
