"""GUI-thread stalls in the real main window: the event loop's longest block for each action.

Builds a throw-away project in a temporary folder: two generated 4000 x 4000 PNG images (plain
images, decoded whole at open, so tile reads are cheap), N cells (100,000 by default, random
positions, labelled with random classes of the 13-class demo set) on the first and 50 on the
second; a tiny CNN (the study's ``cnn`` architecture at widths 8-8-16-16) with random weights,
written with the trainer's model-file writer; and a points CSV of M points (200,000 by default,
``image,x,y,class``) on the *second* image, so the first keeps its N cells for every action.

It opens the real ``MainWindow`` offscreen (1400 x 900), installs its tools
(``window.install_tools()``), loads the model in the model panel, and then times each action
below. While an action runs, a GUI-thread ``QTimer`` with a 1 ms interval (PreciseTimer) records
its ticks. **Longest block** = the longest gap between consecutive ticks from the action's start
until the window is idle again; **total** = from the start until it became idle; **stalls** =
how many of those gaps exceed 50 ms (a prediction's chunks each may stall: the longest block is
then the longest run of them the event loop could not break, e.g. refreshes queued back to
back while chunks arrive faster than the GUI thread handles them). "Idle" (see
:func:`window_idle`) means: no job pending in the window's, the tile loader's, the image list's
and the model panel's thread pools, no prediction or blur-sensitivity job running, no pending
refresh or recolour timer, the blur preview's and the cell crop's runners idle; and it must
stay idle for 0.35 s (longer than the 0.3 s recolour timer), a stall in that time still counts.
Everything runs on the one machine's CPU (torch's default threads in the prediction job's
thread); the GUI thread is the main thread. Setup between actions (selecting the cells to label,
switching the colour mode back) is not timed.

The actions, in this order (each is a small function below; median over ``--repeat`` runs):

- predict the N-cell image with the model panel (``predict("image")``): every chunk it stores
  recolours the markers; from the call until the job ended and the last recolour was done;
- colour mode label -> prediction, prediction -> agreement;
- switch to the second image and back to the N-cell image (click-free: ``show_image``);
- label a selection of 1,000 cells, undo it; label 1 cell, undo it;
- build the review queue of the N-cell image sorted by confidence, and by blur sensitivity
  (the latter predicts the queue's cells under blur in the background, then sorts);
- import the M-point CSV (``import_points``; undone after each run, untimed).

Pass: longest block under 50 ms (issue 13, which quotes for 100,000 cells: 2.2-2.8 s to refresh
predictions, 9 s for a 200,000-point import, 3.6 s for a blur-sensitivity queue). A default run
took 2-6 minutes on 2 shared CPU cores before the redesign, most of it in the actions that stall.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui_stalls.py
    .venv/bin/python benchmarks/bench_gui_stalls.py --quick          # 10,000 cells, smoke run
    .venv/bin/python benchmarks/bench_gui_stalls.py --repeat 5 --json stalls.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CELLVIEWER_USER", "bench")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout too

import numpy as np  # noqa: E402

IMAGE_SIZE = 4000
SMALL_IMAGE_CELLS = 50
STALL_LIMIT_MS = 50.0
SETTLE_S = 0.35  # idle this long before an action counts as done (the recolour timer is 0.3 s)
TIMEOUT_S = 600.0


# --- the data ------------------------------------------------------------------------------
def make_image(path: Path, seed: int) -> Path:
    """A plain RGB image: smooth colour waves with a little noise (compresses fast as PNG)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    channels = [128 + 100 * np.sin(x / (40 + 9 * c + seed) + y / (55 + 7 * c)) for c in range(3)]
    rgb = np.stack(channels, axis=2) + rng.integers(0, 8, (IMAGE_SIZE, IMAGE_SIZE, 1))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, compress_level=1)
    return path


def make_model(folder: Path, classes: list[str]) -> Path:
    """A tiny CNN of the study's architecture with random weights (speed is not the point)."""
    import torch

    from trainer.engine.modelfile import save_model_file
    from trainer.models import create_model

    torch.manual_seed(0)
    kwargs = {"channels": [8, 8, 16, 16]}
    model = create_model("cnn", len(classes), **kwargs)
    path = folder / "tiny-cnn.cvmodel"
    save_model_file(path, state_dict=model.state_dict(), mean_image=torch.full((3, 40, 40), 0.5),
                    meta={"arch": "cnn", "arch_kwargs": kwargs, "classes": classes,
                          "fov_px": 40})
    return path


def write_points_csv(path: Path, image: Path, n: int, classes: list[str]) -> Path:
    """``image,x,y,class`` rows: n random points on ``image`` (the import's format)."""
    rng = np.random.default_rng(2)
    xy = rng.uniform(20, IMAGE_SIZE - 20, (n, 2))
    names = np.asarray(classes)[rng.integers(0, len(classes), n)]
    with open(path, "w", newline="") as fh:
        fh.write("image,x,y,class\n")
        fh.writelines(f"{image.name},{x:.1f},{y:.1f},{c}\n"
                      for (x, y), c in zip(xy, names, strict=True))
    return path


@dataclass
class BenchData:
    project: Path
    model: Path
    points_csv: Path
    classes: list[str]


def build_data(folder: Path, n_cells: int, n_points: int) -> BenchData:
    """The project (two images, n_cells labelled cells on the first), the model, the CSV."""
    from cellviewer.core.io.project_import import add_classes, add_images
    from cellviewer.core.project.demo import load_class_set
    from cellviewer.core.store import ProjectStore

    class_set = load_class_set()["classes"]
    classes = [c["name"] for c in class_set]
    big = make_image(folder / "big.png", seed=0)
    small = make_image(folder / "small.png", seed=1)
    path = folder / "bench.cvproj"
    rng = np.random.default_rng(0)
    with ProjectStore.create(path, overwrite=True) as store:
        ids = add_classes(store, class_set)
        big_id, small_id = add_images(store, [big, small])
        for image_id, n in ((big_id, n_cells), (small_id, SMALL_IMAGE_CELLS)):
            xy = rng.uniform(20, IMAGE_SIZE - 20, (n, 2))
            store.add_cells(image_id, xy, rng.choice(ids, n).tolist(), source="imported")
    return BenchData(path, make_model(folder, classes),
                     write_points_csv(folder / "points.csv", small, n_points, classes), classes)


# --- measuring -----------------------------------------------------------------------------
def window_idle(w) -> bool:
    """No background work of the window or its tools pending (private parts: adapt with the
    redesign)."""
    tools = w.prediction_tools
    jobs = (tools.session.job, tools.review_panel._sens_job, tools._blur_job)
    return (not w.runner.pending() and not w.loader.pending_count()
            and not w.image_list.runner.pending() and not w.session.cells.loading
            and w._writing is None
            and not w.panels._pred_timer.isActive() and not w.panels._timer.isActive()
            and not tools.model_panel.runner.pending() and not tools.review_panel.runner.pending()
            and tools._crop_runner.is_idle() and tools.blur_preview.is_idle()
            and all(job is None or not job.is_running() for job in jobs))


@dataclass
class Measurement:
    longest_ms: float
    total_ms: float
    stalls: int  # gaps over STALL_LIMIT_MS
    ticks: int


def _stack_of(frame, depth: int) -> list[str]:
    """``file:line function`` of ``frame`` and its callers, innermost first."""
    stack = []
    while frame is not None and len(stack) < depth:
        code = frame.f_code
        stack.append(f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return stack


class StallProbe:
    """Where the GUI thread is while it blocks (``--probe``): a thread that, every 2 ms, looks
    at the 1 ms ticker's last tick and, when it is over 20 ms old, samples the main thread's
    Python stack (``sys._current_frames``). The counts say which code a stall spends its
    time in; sampling is off unless asked, so it never perturbs the figures."""

    def __init__(self, ticks: list[float]) -> None:
        import threading

        self.ticks = ticks
        self.samples: Counter[tuple[str, ...]] = Counter()
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.collections: list[tuple[int, float, str, int]] = []  # gen, ms, thread, freed
        self.timeline: list[tuple[float, list[str], dict[str, list[str]]]] = []
        self._gc_start = 0.0

    def _on_gc(self, phase: str, info: dict) -> None:
        import threading

        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            ms = 1e3 * (time.perf_counter() - self._gc_start)
            self.collections.append((info["generation"], ms, threading.current_thread().name,
                                     info["collected"]))

    def __enter__(self) -> StallProbe:
        import gc

        gc.callbacks.append(self._on_gc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        self._stop.set()
        self._thread.join()
        gc.callbacks.remove(self._on_gc)

    def _run(self) -> None:
        import threading

        names = {}
        while not self._stop.wait(0.002):
            now = time.perf_counter()
            if self.ticks and now - self.ticks[-1] > 0.020:
                frames = sys._current_frames()
                stack = _stack_of(frames.get(self._main), 40)
                self.samples[tuple(stack)] += 1
                if len(names) != len(frames):
                    names = {t.ident: t.name for t in threading.enumerate()}
                others = {names.get(ident, str(ident)): _stack_of(f, 4)
                          for ident, f in frames.items()
                          if ident not in (self._main, threading.get_ident())}
                self.timeline.append((now, stack[:6], others))

    def report_gap(self, start: float, end: float) -> None:
        """The samples taken inside the gap (start, end): every thread's innermost frames."""
        print(f"   longest gap {1e3 * (end - start):.0f} ms:")
        for t, main, others in self.timeline:
            if start <= t <= end + 0.003:
                print(f"   +{1e3 * (t - start):5.1f} ms main: {' < '.join(main[:4])}")
                for who, st in others.items():
                    if st and not any(w in st[0] for w in ("wait", "select", "_wait_for")):
                        print(f"            {who}: {' < '.join(st[:3])}")

    def report(self, name: str, top: int = 6) -> None:
        slow = [c for c in self.collections if c[1] > 5.0]
        print(f"\n-- {name}: {len(self.collections)} collections, "
              f"{sum(c[1] for c in self.collections):.0f} ms in all; over 5 ms: "
              + ", ".join(f"gen {g} {ms:.0f} ms on {t} ({n:,} collected)"
                          for g, ms, t, n in slow[:8]))
        if not self.samples:
            return
        total = sum(self.samples.values())
        print(f"\n-- {name}: {total} samples (2 ms each) while the GUI thread was blocked")
        for stack, n in self.samples.most_common(top):
            print(f"   {n:4d}  " + "\n         ".join(stack[:14]))


PROBE = {"on": False}


def measure(w, action: Callable[[], object], name: str = "") -> Measurement:
    """Run ``action()`` on the GUI thread, then the event loop until the window is idle (and
    stays so for SETTLE_S); the longest gap between the 1 ms timer's ticks meanwhile."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    ticks: list[float] = [time.perf_counter()]
    probe = StallProbe(ticks) if PROBE["on"] and name else None
    ticker = QTimer(interval=1, timerType=Qt.TimerType.PreciseTimer)
    ticker.timeout.connect(lambda: ticks.append(time.perf_counter()))
    loop = QEventLoop()
    state: dict[str, float | None] = {"idle_since": None, "timed_out": None}

    def check() -> None:
        now = time.perf_counter()
        if not window_idle(w):
            state["idle_since"] = None
        elif state["idle_since"] is None:
            state["idle_since"] = now
        elif now - state["idle_since"] >= SETTLE_S:
            loop.quit()
        if now - t0 > TIMEOUT_S:
            state["timed_out"] = now
            loop.quit()

    checker = QTimer(interval=2)
    checker.timeout.connect(check)
    ticker.start()
    t0 = time.perf_counter()
    ticks.append(t0)
    if probe is not None:
        probe.__enter__()
    action()
    checker.start()
    loop.exec()
    t_end = time.perf_counter()
    if probe is not None:
        probe.__exit__()
        probe.report(name)
        times = np.array([t0] + [t for t in ticks if t > t0] + [t_end])
        k = int(np.argmax(np.diff(times)))
        probe.report_gap(times[k], times[k + 1])
    ticker.stop()
    checker.stop()
    if state["timed_out"]:
        raise TimeoutError(f"the window was not idle {TIMEOUT_S:.0f} s after the action")
    idle_since = state["idle_since"] or t_end
    gaps_ms = 1e3 * np.diff(np.array([t0] + [t for t in ticks if t > t0] + [t_end]))
    return Measurement(float(gaps_ms.max()), 1e3 * (idle_since - t0),
                       int(np.count_nonzero(gaps_ms > STALL_LIMIT_MS)), len(ticks))


def settle(w) -> None:
    """Untimed: process events until the window is idle (between actions)."""
    measure(w, lambda: None)


# --- the actions (each: what the user does, through the window's API) ---------------------
def predict_image(w) -> None:
    """The model panel's Predict on the current image (every chunk recolours the markers)."""
    w.prediction_tools.model_panel.predict("image")


def colour_prediction(w) -> None:
    """Colour the markers by the model's prediction."""
    w.set_color_mode("prediction")


def colour_agreement(w) -> None:
    """Colour the markers by agreement of label and prediction."""
    w.set_color_mode("agreement")


def switch_image(w, image_id: int) -> None:
    """Show another image of the project (what a click in the image list does)."""
    w.show_image(image_id)


def label_selection(w) -> None:
    """Give the selected cells a class (what a class key does)."""
    w.label_selection(w.store.classes()[1].id)


def undo(w) -> None:
    """Edit → Undo."""
    w.undo()


def review_by_confidence(w) -> None:
    """Build the review queue of the current image, least confident first."""
    from cellviewer.ui.review.panel import ReviewFilter

    w.prediction_tools.review_panel.build(ReviewFilter(image_id=w.current_image_id()))


def review_by_blur(w) -> None:
    """Build the review queue of the current image, most blur-sensitive first."""
    from cellviewer.ui.review.panel import ReviewFilter

    w.prediction_tools.review_panel.build(ReviewFilter(image_id=w.current_image_id(),
                                                       order="blur-sensitive-first"))


def import_points(w, csv_path: Path) -> None:
    """File → Import points CSV…"""
    w.import_points(str(csv_path))


# --- the run -------------------------------------------------------------------------------
@dataclass
class Row:
    action: str
    runs: list[Measurement] = field(default_factory=list)

    @property
    def longest_ms(self) -> float:
        return statistics.median(m.longest_ms for m in self.runs)

    @property
    def total_ms(self) -> float:
        return statistics.median(m.total_ms for m in self.runs)

    @property
    def stalls(self) -> float:
        return statistics.median(m.stalls for m in self.runs)


def open_window(data: BenchData):
    from cellviewer.ui.application import ensure_app
    from cellviewer.ui.main_window import MainWindow

    app = ensure_app()
    w = MainWindow()
    w.resize(1400, 900)
    w.show()
    assert w.open_project(data.project)
    w.install_tools()
    w.prediction_tools.model_panel.load_model(data.model)
    settle(w)
    assert w.prediction_tools.session.choice is not None, "the model did not load"
    return app, w


def run_actions(w, data: BenchData, n_cells: int, repeat: int,
                only: tuple[str, ...] = ()) -> list[Row]:
    rows: dict[str, Row] = {}

    def timed(name: str, action: Callable[[], object]) -> None:
        if only and not any(o in name for o in only):
            return
        rows.setdefault(name, Row(name)).runs.append(measure(w, action, name))

    big, small = (r.id for r in w.store.images())
    assert w.current_image_id() == big and len(w.view.layer) == n_cells
    for _ in range(repeat):
        w.set_color_mode("label")
        settle(w)
        timed(f"predict {n_cells:,} cells (all chunks)", lambda: predict_image(w))
    for _ in range(repeat):
        w.set_color_mode("label")
        settle(w)
        timed("colour label -> prediction", lambda: colour_prediction(w))
        timed("colour prediction -> agreement", lambda: colour_agreement(w))
    for _ in range(repeat):
        timed(f"switch to the {SMALL_IMAGE_CELLS}-cell image", lambda: switch_image(w, small))
        timed(f"switch to the {n_cells:,}-cell image", lambda: switch_image(w, big))
    ids = [str(i) for i in w.view.layer.ids]
    for n in (1000, 1):
        for _ in range(repeat):
            w.select_cells(ids[:n])
            settle(w)
            timed(f"label {n:,} selected cell{'s' if n > 1 else ''}", lambda: label_selection(w))
            timed(f"undo that label of {n:,}", lambda: undo(w))
    # A rubber band: the cells of a square holding about 1,000 of them. Their positions are
    # random, so their rows are scattered through the file (the worst case for the store's
    # pages), unlike the first 1,000 rows above.
    side = IMAGE_SIZE * (1000 / n_cells) ** 0.5
    xy = w.session.cells.xy
    inside = (xy[:, 0] < side) & (xy[:, 1] < side)
    band = [str(i) for i in np.asarray(w.view.layer.ids)[inside]]
    for _ in range(repeat):
        w.select_cells(band)
        settle(w)
        timed(f"label a rubber band of {len(band):,} cells", lambda: label_selection(w))
        timed(f"undo that label of {len(band):,}", lambda: undo(w))
    for _ in range(repeat):
        timed(f"review queue by confidence ({n_cells:,})", lambda: review_by_confidence(w))
        timed(f"review queue by blur sensitivity ({n_cells:,})", lambda: review_by_blur(w))
    with open(data.points_csv) as fh:
        n_points = sum(1 for _ in fh) - 1
    name = f"import {n_points:,} points"
    for _ in range(repeat):
        if only and not any(o in name for o in only):
            break
        timed(name, lambda: import_points(w, data.points_csv))
        # (the next run imports into the same project)
        timed(f"undo the import of {n_points:,} points", lambda: undo(w))
    return list(rows.values())


def print_table(rows: list[Row]) -> None:
    width = max(len(r.action) for r in rows)
    print(f"\n{'action':<{width}}  {'longest block':>13}  {'total':>10}  {'stalls':>6}  result")
    for r in rows:
        verdict = "pass" if r.longest_ms < STALL_LIMIT_MS else "FAIL"
        print(f"{r.action:<{width}}  {r.longest_ms:10.1f} ms  {r.total_ms:7.0f} ms  "
              f"{r.stalls:6g}  {verdict}"
              + (f"  (median of {len(r.runs)})" if len(r.runs) > 1 else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000, help="cells on the open image")
    ap.add_argument("--import-points", type=int, default=200_000, help="points in the CSV")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each action (median)")
    ap.add_argument("--quick", action="store_true", help="10,000 cells, 20,000 points")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="time only the actions whose name contains TEXT (repeatable)")
    ap.add_argument("--probe", action="store_true",
                    help="sample the GUI thread while it blocks over 20 ms (StallProbe)")
    args = ap.parse_args()
    PROBE["on"] = args.probe
    if args.quick:
        args.cells, args.import_points = 10_000, 20_000

    tmp = Path(tempfile.mkdtemp(prefix="cellviewer-stalls-"))
    os.environ.setdefault("CELLVIEWER_SETTINGS_DIR", str(tmp / "settings"))
    os.environ.setdefault("CELLVIEWER_DATA_DIR", str(tmp / "data"))
    load = os.getloadavg()
    t0 = time.perf_counter()
    data = build_data(tmp, args.cells, args.import_points)
    print(f"project with {args.cells:,} + {SMALL_IMAGE_CELLS} cells on two {IMAGE_SIZE} x "
          f"{IMAGE_SIZE} PNGs, {args.import_points:,}-point CSV, tiny CNN: built in "
          f"{time.perf_counter() - t0:.1f} s")
    import torch

    app, w = open_window(data)
    print(f"main window offscreen ({app.platformName()}), {os.cpu_count()} CPUs, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows = run_actions(w, data, args.cells, args.repeat, tuple(args.only))
    w.close()
    shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows)
    end_load = os.getloadavg()
    print(f"load average at the end {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "cells": args.cells, "import_points": args.import_points, "repeat": args.repeat,
            "cpus": os.cpu_count(), "load_before": load, "load_after": end_load,
            "limit_ms": STALL_LIMIT_MS,
            "actions": [{"action": r.action, "longest_ms": r.longest_ms, "total_ms": r.total_ms,
                         "stalls": r.stalls, "runs": [vars(m) for m in r.runs]} for r in rows],
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
