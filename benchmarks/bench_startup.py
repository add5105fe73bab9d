"""Start-up: time to the window, to a usable training dialog, and to the cells of a big image.

1. **Time to window**: a fresh process (``python -c``, as ``cellviewer --demo`` runs it) from
   spawn to the main window's first paint with the demo open, median of ``--repeat`` runs;
   beside it the bare interpreter (``python -c pass``) and the import of the window's modules,
   so a loaded machine reads as ratios. Warm: the demo project exists, the files are cached
   and the modules byte-compiled (one untimed run first; PYTHONDONTWRITEBYTECODE is not passed
   on unless ``--no-bytecode``).
2. **Training dialog**: in that process, Training → New run until the dialog can start a run
   (label counts, models and start-from choices in; the GPU probe, a subprocess that imports
   torch, may still be on its way: "devices" is timed apart).
3. **Loading 500,000 cells**: a project with 500,000 cells on one image; the store's columnar
   read of the image (``store.image_columns``, what the app's loader does in a worker) and the
   loader's whole job (id map and spatial index included).
4. **What start-up imports**: the heaviest modules under ``-X importtime`` of the window.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_startup.py
    .venv/bin/python benchmarks/bench_startup.py --repeat 5 --cells 500000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The child: the app's own start-up path (application.run_app), timed from the spawn (the
# parent's wall clock, passed in) to the first paint of the main window.
CHILD = r"""
import sys, time, json
t_spawn = float(sys.argv[1])
from cellviewer.ui.application import ensure_app
app = ensure_app()
from PySide6.QtCore import QEvent, QObject, QTimer
from cellviewer.ui.main_window import MainWindow
out = {"imports_s": time.time() - t_spawn}

class FirstPaint(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and "window_s" not in out:
            out["window_s"] = time.time() - t_spawn
            QTimer.singleShot(0, dialog)
        return False

def dialog():
    t0 = time.time()
    d = w.training.new_run()
    def check():
        f = d.form
        if "dialog_s" not in out and f.data_ready() and f.models_ready() and f.starts_ready():
            out["dialog_s"] = time.time() - t0
        if f.devices_ready():
            out["devices_s"] = time.time() - t0
        if "dialog_s" in out and "devices_s" in out:
            print(json.dumps(out), flush=True)
            app.quit()
        else:
            QTimer.singleShot(5, check)
    check()

w = MainWindow()
w.install_tools()
w.open_demo()
w.resize(1366, 768)
flt = FirstPaint()
w.installEventFilter(flt)
w.show()
app.exec()
"""


#: With False (``--no-bytecode``), the children inherit PYTHONDONTWRITEBYTECODE when it is
#: set: every start then compiles the app's ~150 modules from source again (0.5-1 s on a
#: loaded 2-core machine), which is not "warm": an installed app has its byte code.
KEEP_BYTECODE = True


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen",
               CELLVIEWER_DATA_DIR=str(home / "data"),
               CELLVIEWER_SETTINGS_DIR=str(home / "settings"), CELLVIEWER_USER="bench")
    if KEEP_BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_window(home: Path) -> dict[str, float]:
    t = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, repr(t)], capture_output=True, text=True,
                         env=child_env(home), timeout=600, cwd=REPO)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"the app did not start: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def time_bare(home: Path, code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env(home), cwd=REPO,
                   capture_output=True)
    return time.perf_counter() - t


def heaviest_imports(home: Path, n: int = 12) -> list[tuple[float, str]]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c",
         "from cellviewer.ui.application import ensure_app; ensure_app(); "
         "import cellviewer.ui.main_window"],
        capture_output=True, text=True, env=child_env(home), cwd=REPO)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        try:
            cumulative = int(parts[1])
        except ValueError:
            continue
        rows.append((cumulative / 1e6, parts[2]))
    top = [r for r in rows if not r[1].startswith(" ")]  # top-level packages only
    return sorted(top, reverse=True)[:n]


def time_cells(n_cells: int, repeat: int) -> dict[str, float]:
    from PIL import Image

    from cellviewer.core.cells.image_cells import LoadRequest, load_image_cells
    from cellviewer.core.io.project_import import add_images
    from cellviewer.core.store import ProjectStore

    with tempfile.TemporaryDirectory() as d:
        image = Path(d) / "big.png"
        Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(image)
        path = Path(d) / "cells.cvproj"
        rng = np.random.default_rng(0)
        with ProjectStore.create(path) as store:
            (image_id,) = add_images(store, [image])
            cls = store.add_class("a", "#ff0000")
            store.add_cells(image_id, rng.uniform(0, 63, (n_cells, 2)), [cls] * n_cells,
                            source="imported")
        store = ProjectStore.open(path, readonly=True)
        columns, loads = [], []
        try:
            for _ in range(repeat):
                t = time.perf_counter()
                cols = store.image_columns(image_id)
                columns.append(time.perf_counter() - t)
                assert len(cols.ids) == n_cells
        finally:
            store.close()
        for _ in range(repeat):
            t = time.perf_counter()
            load_image_cells(LoadRequest(path, image_id, None))
            loads.append(time.perf_counter() - t)
    return {"columns_s": statistics.median(columns), "load_s": statistics.median(loads)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cells", type=int, default=500_000)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-bytecode", action="store_true",
                    help="let PYTHONDONTWRITEBYTECODE through (modules compiled at every start)")
    ap.add_argument("--skip-cells", action="store_true", help="skip the 500,000-cell load")
    args = ap.parse_args()
    global KEEP_BYTECODE
    KEEP_BYTECODE = not args.no_bytecode
    with tempfile.TemporaryDirectory(prefix="cellviewer-startup-") as tmp:
        home = Path(tmp)
        time_window(home)  # untimed: builds the demo project, warms the file cache
        runs = [time_window(home) for _ in range(args.repeat)]
        bare = statistics.median(time_bare(home, "pass") for _ in range(args.repeat))
        qt = statistics.median(time_bare(home, "from PySide6 import QtWidgets")
                               for _ in range(args.repeat))
        top = heaviest_imports(home)
    result = {key: statistics.median(r[key] for r in runs)
              for key in ("imports_s", "window_s", "dialog_s", "devices_s")}
    result.update(bare_python_s=bare, import_qt_s=qt)
    result.update({"columns_s": float("nan"), "load_s": float("nan")} if args.skip_cells
                  else time_cells(args.cells, args.repeat))
    print(f"\nstart-up (median of {args.repeat}; this machine's load inflates every figure)")
    print(f"  bare python -c pass            {bare:6.2f} s")
    print(f"  python -c 'import QtWidgets'    {qt:6.2f} s")
    print(f"  window's modules imported       {result['imports_s']:6.2f} s")
    print(f"  main window's first paint       {result['window_s']:6.2f} s  "
          f"({result['window_s'] / bare:.1f}x bare python)")
    print(f"  training dialog usable          {result['dialog_s']:6.2f} s after New run")
    print(f"  ... and its devices known       {result['devices_s']:6.2f} s (a torch subprocess)")
    print(f"  {args.cells:,} cells: store.image_columns {result['columns_s']:.2f} s, "
          f"the loader's whole job {result['load_s']:.2f} s")
    print("  heaviest top-level imports of the window (cumulative):")
    for seconds, name in top:
        print(f"    {seconds * 1e3:7.0f} ms  {name}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
