"""The README's pictures of sweeps: the Compare runs window over a sweep folder (1366x768) and
the sweep report's scaling figure (Figure 2).

Run under a real X server::

    xvfb-run -s "-screen 0 1366x768x24" python packaging/make_compare_screenshot.py SWEEP_DIR

It writes resources/screenshots/compare-runs.png and report-scaling.png.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from cellviewer.ui.train.compare import CompareRunsWindow
    from trainer.sweep.report import write_report

    sweep = Path(sys.argv[1])
    out = REPO / "resources" / "screenshots"
    app = QApplication.instance() or QApplication([])
    w = CompareRunsWindow()
    w.resize(1366, 768)
    w.show()
    w.load([sweep], label=f"sweep {sweep.name}")
    deadline = time.monotonic() + 60
    while w.table.rowCount() == 0 and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    w.grab().save(str(out / "compare-runs.png"))
    with tempfile.TemporaryDirectory() as tmp:
        write_report(sweep, Path(tmp) / "report.html", title=f"Sweep {sweep.name}")
        shutil.copy(Path(tmp) / "report-figure2-scaling.png", out / "report-scaling.png")
    print(f"written: {out / 'compare-runs.png'}, {out / 'report-scaling.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
