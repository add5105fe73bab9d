"""GUI-thread stalls of the annotators' tools (issue 19) in the real main window: the event
loop's longest block while File → Merge project… merges three copies, the conflicts queue is
built, the agreement window computes, the merge is undone, and a cell's per-annotator labels
reach the cell details.

Builds a throw-away project in a temporary folder: one generated 4000 x 4000 PNG image
(``bench_gui_stalls.make_image``), N cells (20,000 by default) at random positions with random
classes of the demo's 13-class set; three copies made with ``copy_for``, in each of which an
annotator relabels 10% of the cells (half of those the same cells for all three, so there are
conflicts) and deletes 0.5%. It opens the real ``MainWindow`` offscreen (1400 x 900) with its
tools, and times each action with ``bench_gui_stalls.measure``: a GUI-thread ``QTimer`` with a
1 ms interval records its ticks; **longest block** = the longest gap between consecutive ticks
from the action's start until the window is idle again (its runners, the annotators' runners
and timers, no held edits) and stays idle 0.35 s; **total** = from the start until idle. The
merge itself runs in a worker thread (a second SQLite connection), the queue, the agreement and
the details each in a pool thread on a read-only connection of their own. Median over
``--repeat`` runs of the whole sequence (the merge is undone at the end of each run).

Pass: longest block under 50 ms.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_merge_gui.py
    .venv/bin/python benchmarks/bench_merge_gui.py --cells 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CELLVIEWER_USER", "bench")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_gui_stalls as stalls  # noqa: E402
import numpy as np  # noqa: E402


def build(folder: Path, n_cells: int) -> tuple[Path, list[Path]]:
    from cellviewer.core.io.project_import import add_classes, add_images
    from cellviewer.core.merge import copy_for
    from cellviewer.core.project.demo import load_class_set
    from cellviewer.core.store import ProjectStore

    class_set = load_class_set()["classes"]
    image = stalls.make_image(folder / "big.png", seed=0)
    path = folder / "cohort.cvproj"
    rng = np.random.default_rng(0)
    with ProjectStore.create(path, overwrite=True) as store:
        store.user = "lab"
        class_ids = add_classes(store, class_set)
        (image_id,) = add_images(store, [image])
        xy = rng.uniform(20, stalls.IMAGE_SIZE - 20, (n_cells, 2))
        store.add_cells(image_id, xy, rng.choice(class_ids, n_cells).tolist(),
                        source="imported")
        ids = store.cell_table()["ids"]
        store.wait_for_checkpoint()
    shared = rng.choice(n_cells, n_cells // 20, replace=False)
    copies = []
    for user in ("ana", "ben", "cy"):
        out = copy_for(path, folder / f"{user}.cvproj", user)
        with ProjectStore.open(out) as s:
            s.user = user
            own = rng.choice(n_cells, n_cells // 20, replace=False)
            pick = np.unique(np.concatenate([shared, own]))
            labels = rng.choice(class_ids, len(pick))
            for c in class_ids:
                chosen = pick[labels == c]
                if len(chosen):
                    s.set_labels([ids[i] for i in chosen], int(c))
            rest = np.setdiff1d(np.arange(n_cells), pick)
            s.delete_cells([ids[i] for i in rng.choice(rest, n_cells // 200, replace=False)])
            s.wait_for_checkpoint()
        copies.append(out)
    return path, copies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from PySide6.QtWidgets import QMessageBox

    from cellviewer.ui.application import ensure_app
    from cellviewer.ui.main_window import MainWindow

    base_idle = stalls.window_idle

    def idle(w) -> bool:
        return base_idle(w) and w.annotator_tools.is_idle() and not w.edits_held()

    stalls.window_idle = idle  # measure() waits for the annotators' work too
    with tempfile.TemporaryDirectory(prefix="cellviewer-bench-merge-gui-") as tmp:
        target, copies = build(Path(tmp), args.cells)
        app = ensure_app()
        w = MainWindow()
        w.resize(1400, 900)
        w.show()
        assert w.open_project(target)
        w.install_tools()
        stalls.settle(w)
        tools = w.annotator_tools
        panel = tools.panel
        names = ("merge 3 copies", "conflicts queue", "agreement window",
                 "select a cell (details)", "undo the merge")
        runs: dict[str, list[stalls.Measurement]] = {n: [] for n in names}
        def timed(name: str, action) -> None:
            m = stalls.measure(w, action)
            runs[name].append(m)
            print(f"  {name}: longest {m.longest_ms:.1f} ms, total {m.total_ms:.0f} ms",
                  flush=True)

        for _ in range(args.repeat):
            timed(names[0], lambda: tools.merge_flow.merge(copies))
            for box in w.findChildren(QMessageBox):
                box.close()
            timed(names[1], panel.build)
            timed(names[2], tools.show_agreement)
            tools.agreement_window.close()
            cell = panel.rows[0].cell if panel.rows else str(w.session.cells.ids[0])
            timed(names[3], lambda c=cell: w.select_cells([c]))
            timed(names[4], w.undo)
        print(f"{args.cells:,} cells, 3 copies; conflicts after the merge: "
              f"{len(panel.rows):,} cells in the last queue built")
        print(f"{'action':28s} {'longest block ms':>17s} {'total ms':>10s} {'stalls>50ms':>12s}")
        for name, ms in runs.items():
            print(f"{name:28s} {statistics.median(m.longest_ms for m in ms):17.1f} "
                  f"{statistics.median(m.total_ms for m in ms):10.0f} "
                  f"{statistics.median(m.stalls for m in ms):12.0f}")
        w.close()
        app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
