"""The code type-checks: mypy at its default strictness (settings in pyproject.toml) on the
packages below, which grow as each is made clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: The packages (or folders) mypy checks; each must stay clean.
TYPED_PACKAGES = ["trainer", "cellviewer/core"]


def test_mypy_clean():
    out = subprocess.run(
        [sys.executable, "-m", "mypy", *TYPED_PACKAGES], cwd=REPO, capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
