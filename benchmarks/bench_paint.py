"""Slide-view speed: paint time with 500,000 markers, and click-to-first-tiles time.

Builds a throw-away project (a demo JPEG first, then the slide with N random cells in the 13
Chula RBC-12 classes), opens it in the real main window offscreen (1280 x 800 slide view), then:

1. clicks the slide in the image list and times the first tile on screen, every tile of the
   view on screen (``SlideView.tilesShown``), and the N markers loaded (a worker reads them);
2. repaints the view many times at the full-slide zoom and at 1:1, panning 3 px per frame (what
   a drag does), and reports the median and 95th-percentile ``paintEvent`` time; the markers'
   overlay is re-rendered only when the zoom changes or the pan leaves its margin (half a screen),
   so that cost is reported separately: a 5 % zoom step at the full-slide zoom, and a jump of
   one screen width at 1:1.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_paint.py
    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_paint.py --mosaic 4

``--mosaic K`` uses the CMU slide tiled K x K (bench_crop.py's pyramid TIFF, 8880 x 11868 at
K = 4), where 500,000 cells have a realistic density; the default bundled 2220 x 2967 slide puts
one cell on every 13 pixels, a harsher case for the 1:1 view. Goal (issue 7): < 16 ms a frame.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CELLVIEWER_USER", "bench")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout too

import numpy as np  # noqa: E402


def build_project(folder: Path, slide: Path, n: int, seed: int = 0) -> Path:
    from cellviewer.core.io.project_import import add_classes, add_images
    from cellviewer.core.project.demo import load_class_set
    from cellviewer.core.sources import open_image
    from cellviewer.core.store import ProjectStore
    from cellviewer.paths import demo_dir

    path = folder / "bench.cvproj"
    with ProjectStore.create(path, overwrite=True) as store:
        ids = add_classes(store, load_class_set()["classes"])
        add_images(store, [demo_dir() / "images" / "12.jpg"])
        (slide_id,) = add_images(store, [slide])
        with open_image(slide) as src:
            w, h = src.dimensions
        rng = np.random.default_rng(seed)
        xy = rng.random((n, 2)) * (w, h)
        store.add_cells(slide_id, xy, rng.choice(ids, n), source="imported")
    return path


def pump(app, until, timeout: float = 60.0) -> float:
    """Process events until ``until()``; returns the seconds it took."""
    t0 = time.perf_counter()
    while not until():
        app.processEvents()
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("gave up waiting")
        time.sleep(0.0005)
    return time.perf_counter() - t0


def frames(app, view, n: int, pan: float) -> list[float]:
    out = []
    for i in range(n):
        view.pan_by(pan if (i // 20) % 2 == 0 else -pan, 0)  # drag right, then back
        view.repaint()
        out.append(view.stats["paint_ms"])
        app.processEvents()
    return out


def report(label: str, ms: list[float], view) -> None:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    print(f"{label:<26} median {statistics.median(ms):6.2f} ms   p95 {p95:6.2f} ms   "
          f"({len(ms)} frames; {view.stats['markers_drawn']:,} markers in the overlay, "
          f"{view.stats['tiles_drawn']} tiles)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markers", type=int, default=500_000)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--slide", type=Path, default=None)
    ap.add_argument("--mosaic", type=int, default=0, metavar="K")
    args = ap.parse_args()
    if args.mosaic:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_crop import mosaic_slide

        slide = mosaic_slide(args.mosaic)
    else:
        from cellviewer.paths import demo_dir

        slide = args.slide or demo_dir() / "slides" / "CMU-1-Small-Region.svs"

    tmp = Path(tempfile.mkdtemp(prefix="cellviewer-bench-"))
    os.environ.setdefault("CELLVIEWER_SETTINGS_DIR", str(tmp / "settings"))
    os.environ.setdefault("CELLVIEWER_DATA_DIR", str(tmp / "data"))
    t0 = time.perf_counter()
    project = build_project(tmp, slide, args.markers)
    print(f"project with {args.markers:,} cells on {slide.name} built in "
          f"{time.perf_counter() - t0:.1f} s")

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from cellviewer.ui.application import ensure_app
    from cellviewer.ui.main_window import MainWindow

    app = ensure_app()
    w = MainWindow()
    w.resize(1280 + 560, 800 + 90)  # docks around a ~1280 x 800 slide view
    w.show()
    w.open_project(project)
    pump(app, lambda: w.view.handle is not None and w.view._tiles_reported)
    view = w.view
    print(f"slide view {view.width()} x {view.height()} px, platform "
          f"{app.platformName()}, {os.cpu_count()} CPUs")

    # 1. click in the image list -> tiles on screen
    item = w.image_list.item(1)
    rect = w.image_list.visualItemRect(item)
    shown = []
    view.tilesShown.connect(lambda _dt: shown.append(time.perf_counter())
                            if view.handle is not None and view.handle.path.name == slide.name
                            else None)
    t_click = time.perf_counter()
    QTest.mouseClick(w.image_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    t_first = t_click + pump(app, lambda: view.handle is not None and
                             view.handle.path.name == slide.name and
                             view.stats["tiles_drawn"] > 0)
    pump(app, lambda: bool(shown))
    t_markers = t_click + pump(app, lambda: len(view.layer) == args.markers)
    print(f"click in the image list -> first tile on screen   {1e3 * (t_first - t_click):7.1f} ms")
    print(f"click in the image list -> every tile on screen   {1e3 * (shown[0] - t_click):7.1f} ms")
    print(f"click in the image list -> {args.markers:,} markers   "
          f"{1e3 * (t_markers - t_click):7.1f} ms")

    # 2. paint times
    view.fit()
    view.repaint()
    pump(app, lambda: (view.repaint() or True) and view.stats["tiles_missing"] == 0 and
         not w.loader.pending_count())
    view.repaint()
    report("full slide (fit), panning", frames(app, view, args.frames, 3), view)
    zoom_steps = []
    for i in range(10):
        view.set_zoom(view.zoom() * (1.05 if i % 2 == 0 else 1 / 1.05))
        view.repaint()
        zoom_steps.append(view.stats["overlay_ms"])
    print(f"{'full slide, zoom step':<26} overlay re-render median "
          f"{statistics.median(zoom_steps):6.2f} ms (tiles still cached)")

    view.one_to_one()
    pump(app, lambda: (view.repaint() or True) and view.stats["tiles_missing"] == 0 and
         not w.loader.pending_count())
    view.repaint()
    report("1:1, panning", frames(app, view, args.frames, 3), view)
    jumps = []
    for i in range(10):  # a screen's width each time: the overlay's margin is half of one
        view.pan_by(view.width() if i % 2 else -view.width(), 0)
        view.repaint()
        jumps.append(view.stats["overlay_ms"])
    print(f"{'1:1, pan past the margin':<26} overlay re-render median "
          f"{statistics.median(jumps):6.2f} ms ({view.stats['markers_drawn']:,} markers)")
    w.close()


if __name__ == "__main__":
    main()
