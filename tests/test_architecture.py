"""The dependency rule and start-up cost, checked rather than trusted.

- `trainer` never imports PySide6 or `cellviewer`; `cellviewer.core` never imports PySide6
  (import-linter contracts in pyproject.toml);
- the GUI's start-up path imports neither torch, timm nor pandas at module level;
- the code is ruff clean.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else (shutil.which(name) or name)


def test_import_contracts_hold():
    out = subprocess.run(
        [_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 2 kept, 0 broken" in out.stdout


def test_contracts_fail_when_trainer_imports_qt(tmp_path):
    """Prove the checker bites: a copy of the tree where trainer imports PySide6 fails."""
    copy = tmp_path / "repo"
    for package in ("trainer", "cellviewer"):
        shutil.copytree(
            REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    (copy / "trainer" / "_bad.py").write_text("import PySide6.QtCore\n")
    out = subprocess.run(
        [_tool("lint-imports"), "--no-cache"], cwd=copy, capture_output=True, text=True,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode != 0
    assert "trainer._bad -> PySide6" in out.stdout


STARTUP_PROBE = """
import sys
import cellviewer.app, cellviewer.ui.application, cellviewer.ui.main_window
heavy = sorted(m for m in ("torch", "timm", "pandas", "torchvision") if m in sys.modules)
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
