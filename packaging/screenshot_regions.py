"""Take the README's screenshot of the Regions panel (``resources/screenshots/regions-panel.png``)
at 1366 x 768, on the demo project (real Chula RBC-12 images and labels).

    xvfb-run -s "-screen 0 1366x768x24" .venv/bin/python packaging/screenshot_regions.py [OUT]

Two regions are drawn on the first demo image through the core (as the region tool would), and
a third of that image's labelled cells are turned into a detector's proposals (deleted, then
re-added where they were with a score, standing in for a detector run): accepted in one region,
still waiting (hollow rings) elsewhere; the first region is then marked annotated. The demo
images have no pixel size, so the density reads "—" with the reason.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(out: Path) -> int:
    folder = tempfile.mkdtemp(prefix="cellviewer-shot-")
    os.environ["CELLVIEWER_SETTINGS_DIR"] = os.path.join(folder, "settings")
    os.environ["CELLVIEWER_DATA_DIR"] = os.path.join(folder, "data")
    os.environ.setdefault("CELLVIEWER_USER", "screenshot")
    from PySide6.QtWidgets import QApplication

    from cellviewer.core.regions import editing, proposals
    from cellviewer.ui.application import ensure_app
    from cellviewer.ui.main_window import MainWindow

    app = ensure_app()
    w = MainWindow()
    w.install_tools()
    w.open_demo()
    screen = app.primaryScreen().availableGeometry()
    w.setGeometry(screen)
    w.show()
    w.wait_idle(10_000)
    store, image = w.store, w.session.image_id
    cells = store.cell_arrays(image)
    rng = np.random.default_rng(4)
    pick = rng.choice(len(cells), len(cells) // 3, replace=False)
    xy = cells.xy[pick]
    store.delete_cells(cells.rows[pick])
    proposals.add_detections(store, image, xy, rng.uniform(0.5, 1.0, len(xy)),
                             method="screenshot stand-in")
    left = editing.add_rectangle(store, image, 20, 20, 330, 460, "left field", "tissue").uuid
    editing.add_polygon(store, image, [[360, 40], [620, 60], [600, 300], [420, 420],
                                       [340, 250]], "right field", "annotation area")
    proposals.accept_in_region(store, left)
    editing.set_status(store, left, "annotated")
    w.regions_tool.dock.raise_()
    w.regions_tool.wait_idle(10_000)
    w.regions_tool.panel.choose(left)
    w.view.fit()
    for _ in range(20):
        QApplication.processEvents()
    w.wait_idle(5000)
    out.parent.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(out))
    print(out)
    w.close()
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parents[1] / "resources" / "screenshots" / "regions-panel.png"
    raise SystemExit(main(target))
