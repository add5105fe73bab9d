"""The dependency rule and start-up cost, checked rather than trusted.

- `trainer` never imports PySide6 or `cellviewer`; `cellviewer.core` never imports PySide6;
  `trainer.formats` and `cellviewer.core` never import torch (nor timm, torchvision,
  safetensors), and `cellviewer.ui` reaches torch only through its prediction worker
  (import-linter contracts in pyproject.toml); the headless commands (`cellviewer.cli`) never
  import Qt;
- the GUI's start-up path (the window and its tools) imports neither torch, timm, pandas nor
  the charting and scientific libraries (pyqtgraph, scipy, scikit-image, matplotlib, shapely);
- the code is ruff clean.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else (shutil.which(name) or name)


def test_import_contracts_hold():
    out = subprocess.run(
        [_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 6 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(("module", "source", "chain"), [
    ("trainer/_bad.py", "import PySide6.QtCore\n", "trainer._bad -> PySide6"),
    ("trainer/formats/_bad.py", "def f():\n    import torch\n", "trainer.formats._bad -> torch"),
    ("cellviewer/core/_bad.py", "from trainer.engine import device\n",
     "trainer.engine.device -> torch"),
    ("cellviewer/ui/_bad.py", "def f():\n    from trainer.predict import Predictor\n",
     "cellviewer.ui._bad -> trainer.predict"),
    ("cellviewer/cli/_bad.py", "from cellviewer.ui.common import dialogs\n",
     "cellviewer.cli._bad -> cellviewer.ui.common.dialogs"),
])
def test_contracts_fail_when_broken(tmp_path, module, source, chain):
    """Prove the checker bites: a copy of the tree with one forbidden import fails."""
    copy = tmp_path / "repo"
    for package in ("trainer", "cellviewer"):
        shutil.copytree(
            REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    (copy / module).write_text(source)
    out = subprocess.run(
        [_tool("lint-imports"), "--no-cache"], cwd=copy, capture_output=True, text=True,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode != 0
    assert chain in out.stdout


STARTUP_PROBE = """
import sys
import cellviewer.app, cellviewer.ui.application, cellviewer.ui.main_window
import cellviewer.ui.predict.install, cellviewer.ui.train.install, cellviewer.ui.regions.install
heavy = sorted(m for m in ("torch", "timm", "pandas", "torchvision", "pyqtgraph", "scipy",
                           "skimage", "matplotlib", "shapely") if m in sys.modules)
print(",".join(heavy))
"""


def test_gui_startup_path_has_no_heavy_imports():
    out = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE], capture_output=True, text=True, cwd=REPO,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"heavy modules imported on GUI start-up: {out.stdout}"


def test_ruff_clean():
    out = subprocess.run(
        [_tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_test_modules_have_unique_basenames():
    # pytest imports test files by basename (rootdir mode, no packages): two files of one name
    # stop the whole collection on a clean clone ("import file mismatch"), as CI saw once.
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(REPO)} and {path.relative_to(REPO)}")
        seen.setdefault(path.name, path)
    assert not clashes, "test modules sharing a basename: " + "; ".join(clashes)
