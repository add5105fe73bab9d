"""Prediction speed in the desktop app: the live blur preview and batch prediction.

1. **Slider to screen**: with CustomViT, the time from a σ-slider move in the real
   ``BlurPreview`` widget to its probability bars repainted with the new answer (debounce +
   blur + predict in the background thread + delivery to the GUI thread + repaint), median and
   90th percentile over many moves; beside it the bare ``Predictor.predict`` of one blurred patch.
   Target (issue 8): under 30 ms on the CPU.
2. **Batch prediction**: N cells (100,000 by default) spread uniformly over the CMU slide in a
   fresh project, predicted end to end by ``cellviewer.core.predict.job.run_prediction`` exactly
   as the GUI's job runs it (crop in a producer thread, infer, store the probabilities in the
   project): cells/s, with the time spent cropping (overlapped), in the model and in the store.
3. **End to end / bare** (``--ratio``; issue 17, goal >= 0.9 on the CPU): in one process, in
   interleaved rounds (so the load of a shared machine hits all alike), (a) *bare*: the same
   ``Predictor`` (backend, threads, batch size) on the same cells pre-cropped in memory, one
   ``predict`` call per ``--batch-size`` as the job makes; (b) *end to end without the store*:
   ``run_prediction(..., store_results=False)`` (open, crop, infer, hand over per chunk); (c)
   *end to end*: the same, storing into the project (the store write as it is today). Each
   figure is the median over ``--rounds`` of wall-clock cells/s, with the process CPU seconds
   per 1,000 cells beside it, and the ratios are medians of the per-round ratios to (a): of
   cells/s (wall) and of CPU per cell (bare's over the path's: how much work the pipeline adds;
   on a machine loaded by others the wall ratio flatters the path with more threads, which
   gets more of the cores; on an idle machine whose cores the model fills, wall follows CPU).

The model is an untrained CustomViT written with the trainer's model-file writer (speed does
not depend on the weights). Offscreen Qt; no display needed.

    .venv/bin/python benchmarks/bench_predict.py                  # CPU, 100,000 cells
    .venv/bin/python benchmarks/bench_predict.py --cells 20000 --moves 40
    python benchmarks/bench_predict.py --device cuda --batch-size 8192   # on a GPU machine
    .venv/bin/python benchmarks/bench_predict.py --ratio --cells 20000 --threads 2  # e2e / bare
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SLIDE = REPO / "resources/demo/slides/CMU-1-Small-Region.svs"
CLASSES = [f"class {i}" for i in range(16)]  # the study's colorectal set has 16 classes


def make_model(folder: Path, arch: str) -> Path:
    import torch

    from trainer.engine.modelfile import save_model_file
    from trainer.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, len(CLASSES))
    path = folder / f"{arch}.cvmodel"
    save_model_file(path, state_dict=model.state_dict(), mean_image=torch.full((3, 40, 40), 0.5),
                    meta={"arch": arch, "classes": CLASSES, "fov_px": 40})
    return path


def bench_slider(model_path: Path, device: str, moves: int) -> dict:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    import cellviewer.ui  # noqa: F401 (the PySide6 6.12 refcount guard)
    from cellviewer.core.cells.crop import crop_patches
    from cellviewer.core.predict.model_info import ModelChoice
    from cellviewer.core.sources import open_image
    from cellviewer.ui.predict.blur_preview import BlurPreview
    from cellviewer.ui.predict.install import _blur_for_display
    from cellviewer.ui.predict.model_panel import ModelSession
    from trainer.predict import Predictor

    app = QApplication.instance() or QApplication([])
    session = ModelSession()
    session.device = device
    session.choice = ModelChoice(model_path, model_path.stem, {"classes": CLASSES})
    widget = BlurPreview()
    widget.set_classes(CLASSES, ["#1f77b4"] * len(CLASSES))
    widget.set_predictor(session.preview_predict_fn(), _blur_for_display)
    source = open_image(SLIDE)
    patch = crop_patches(source, np.array([[1100.0, 1500.0]]), 40).patches[0]
    source.close()
    widget.resize(420, 640)
    widget.show()

    done: list[float] = []

    def on_updated(result) -> None:
        widget.blurred_bars.repaint()  # paint now: the bars on screen are part of the path
        widget.blurred_view.repaint()
        done.append(time.perf_counter() - result.requested_at)

    widget.updated.connect(on_updated)
    widget.set_cell("cell", patch)

    def settle(n: int) -> None:
        deadline = time.perf_counter() + 60
        while len(done) < n and time.perf_counter() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.0005)

    settle(1)  # first answer loads the model and computes the clean probabilities
    done.clear()
    rng = np.random.default_rng(0)
    sigmas = rng.uniform(0.05, 3.0, size=moves).round(2)
    for i, sigma in enumerate(sigmas):
        widget.set_sigma(float(sigma))  # what a slider move does
        settle(i + 1)
        time.sleep(0.02)  # a user's next move comes later
    latencies_ms = [1e3 * t for t in done]

    predictor = Predictor.load(model_path, device=device)
    bare = []
    for sigma in sigmas[:20]:
        t0 = time.perf_counter()
        predictor.predict(patch[None], blur_sigma=float(sigma))
        bare.append(1e3 * (time.perf_counter() - t0))
    widget.runner.close()
    del app
    return {
        "moves": len(latencies_ms),
        "median_ms": statistics.median(latencies_ms),
        "p90_ms": float(np.percentile(latencies_ms, 90)),
        "max_ms": max(latencies_ms),
        "debounce_ms": widget._debounce.interval(),
        "bare_predict_median_ms": statistics.median(bare),
    }


def bench_batch(model_path: Path, device: str, n: int, batch_size: int, folder: Path) -> dict:
    from cellviewer.core.predict.job import run_prediction
    from cellviewer.core.sources import open_image
    from cellviewer.core.store import ProjectStore
    from trainer.predict import Predictor

    source = open_image(SLIDE)
    width, height = source.dimensions
    source.close()
    rng = np.random.default_rng(1)
    xy = np.column_stack([rng.uniform(0, width, n), rng.uniform(0, height, n)])
    store = ProjectStore.create(folder / "bench.cvproj")
    for name in CLASSES:
        store.add_class(name)
    image_id = store.add_image(SLIDE, width, height)
    store.add_cells(image_id, xy)
    model_id = store.add_model("custom_vit", str(model_path), "custom_vit", CLASSES)
    predictor = Predictor.load(model_path, device=device)
    predictor.predict(np.zeros((min(batch_size, 256), 40, 40, 3), np.uint8))  # warm-up
    last = []
    summary = run_prediction(store, predictor, [image_id], model_id=model_id,
                             batch_size=batch_size, max_chunk=max(batch_size * 4, 4096),
                             progress=lambda p: last.append(p.done))
    stored = store.model(model_id).n_predictions
    store.close()
    assert stored == n, (stored, n)
    return {
        "cells": n,
        "seconds": summary.elapsed_s,
        "cells_per_s": summary.cells_per_s,
        "crop_s": summary.crop_s,
        "infer_s": summary.infer_s,
        "store_s": summary.store_s,
        "chunks": len(last),
        "device": str(predictor.device),
    }


def bench_ratio(model_path: Path, n: int, batch_size: int, rounds: int, folder: Path) -> dict:
    """Bare vs end-to-end cells/s, interleaved per round (see the module docstring, 3.)."""
    from cellviewer.core.cells.crop import crop_patches
    from cellviewer.core.predict.job import cells_to_predict, run_prediction
    from cellviewer.core.sources import open_image
    from cellviewer.core.store import ProjectStore
    from trainer.predict import Predictor

    source = open_image(SLIDE)
    width, height = source.dimensions
    rng = np.random.default_rng(1)
    xy = np.column_stack([rng.uniform(0, width, n), rng.uniform(0, height, n)])
    store = ProjectStore.create(folder / "ratio.cvproj")
    for name in CLASSES:
        store.add_class(name)
    image_id = store.add_image(SLIDE, width, height)
    store.add_cells(image_id, xy)
    model_id = store.add_model("m", str(model_path), "m", CLASSES)
    predictor = Predictor.load(model_path, device="cpu")
    # The job's cells in the job's order, cropped once: what "bare" is given.
    cells = cells_to_predict(store, [image_id])[0]
    patches = crop_patches(source, cells.xy, 40).patches
    source.close()
    predictor.predict(patches[:batch_size], batch_size=batch_size)  # warm-up

    def bare() -> None:
        for start in range(0, n, batch_size):
            predictor.predict(patches[start:start + batch_size], batch_size=batch_size)

    stages: dict[str, list[tuple[float, float, float]]] = {"e2e_nostore": [], "e2e": []}

    def e2e(store_results: bool) -> Callable[[], None]:
        def run() -> None:
            s = run_prediction(store, predictor, [image_id], model_id=model_id,
                               batch_size=batch_size, store_results=store_results)
            assert s.done == n, (s.done, n)
            stages["e2e" if store_results else "e2e_nostore"].append(
                (s.crop_s, s.infer_s, s.store_s))
        return run

    paths = {"bare": bare, "e2e_nostore": e2e(False), "e2e": e2e(True)}
    rates: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            rates[name].append(n / dt)
            cpu[name].append(1e6 * dc / n)
    store.close()
    out: dict = {"cells": n, "rounds": rounds, "backend": predictor.backend_note}
    for name in paths:
        out[name] = statistics.median(rates[name])
        out[name + "_cpu_ms_per_1k"] = statistics.median(cpu[name])
        out[name + "_ratio"] = statistics.median(
            r / b for r, b in zip(rates[name], rates["bare"], strict=True))
        # CPU efficiency: bare's CPU per cell over this path's, per round. On a loaded machine
        # a path with more runnable threads gets a larger share of the cores, so its wall
        # ratio flatters it; on an idle machine whose cores the model fills, wall follows CPU.
        out[name + "_cpu_ratio"] = statistics.median(
            b / c for c, b in zip(cpu[name], cpu["bare"], strict=True))
        if name in stages:
            columns = zip(*stages[name], strict=True)
            out[name + "_stages"] = tuple(statistics.median(v) for v in columns)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps, auto")
    p.add_argument("--cells", type=int, default=100_000, help="cells for batch prediction")
    p.add_argument("--moves", type=int, default=60, help="slider moves to time")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    p.add_argument("--arch", default="custom_vit")
    p.add_argument("--skip-slider", action="store_true")
    p.add_argument("--skip-batch", action="store_true")
    p.add_argument("--ratio", action="store_true",
                   help="only the end-to-end / bare ratio on the CPU (interleaved rounds)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the --ratio measurement")
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device "
          f"{args.device}, model {args.arch}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = make_model(folder, args.arch)
        if args.ratio:
            r = bench_ratio(model, args.cells, args.batch_size, args.rounds, folder)
            print(f"{r['cells']:,} cells, {r['rounds']} interleaved rounds, {r['backend']}, "
                  f"batch {args.batch_size} (medians; CPU ms per 1,000 cells)")
            print(f"  {'':22s} {'cells/s':>8s}  {'cpu/1k':>7s}  {'wall ratio':>10s}  "
                  f"{'cpu ratio':>9s}  crop / model / store s (summary)")
            for name, label in (("bare", "bare (pre-cropped)"),
                                ("e2e_nostore", "end to end, no store"),
                                ("e2e", "end to end, stored")):
                st = r.get(name + "_stages")
                stages = f"{st[0]:.2f} / {st[1]:.2f} / {st[2]:.2f}" if st else ""
                print(f"  {label:22s} {r[name]:8,.0f}  {r[name + '_cpu_ms_per_1k']:5.0f} ms  "
                      f"{r[name + '_ratio']:10.3f}  {r[name + '_cpu_ratio']:9.3f}  {stages}")
            return 0
        if not args.skip_slider:
            r = bench_slider(model, args.device, args.moves)
            print(f"slider -> bars repainted: median {r['median_ms']:.1f} ms, p90 "
                  f"{r['p90_ms']:.1f} ms, max {r['max_ms']:.1f} ms over {r['moves']} moves "
                  f"(debounce {r['debounce_ms']} ms; bare blur+predict of one patch "
                  f"{r['bare_predict_median_ms']:.1f} ms)  target < 30 ms")
        if not args.skip_batch:
            r = bench_batch(model, args.device, args.cells, args.batch_size, folder)
            print(f"batch: {r['cells']:,} cells in {r['seconds']:.1f} s = "
                  f"{r['cells_per_s']:,.0f} cells/s on {r['device']} (crop {r['crop_s']:.1f} s "
                  f"overlapped, model {r['infer_s']:.1f} s, store {r['store_s']:.1f} s, "
                  f"{r['chunks']} chunks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
