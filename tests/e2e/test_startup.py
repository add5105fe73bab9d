"""The installed entry points start: the window on the demo (offscreen) and the trainer CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _env() -> dict:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def test_selftest_opens_demo_and_exits_zero(tmp_path: Path):
    shot = tmp_path / "window.png"
    out = subprocess.run(
        [sys.executable, "-m", "cellviewer", "--selftest", "--screenshot", str(shot)],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "selftest: ok" in out.stdout
    assert shot.stat().st_size > 1000


def test_trainer_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "trainer", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "COMMAND" in out.stdout


def test_app_dispatches_to_trainer():
    """A frozen app has no `python -m trainer`; `cellviewer --run-trainer` is its way in."""
    out = subprocess.run(
        [sys.executable, "-m", "cellviewer", "--run-trainer", "--help"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "python -m trainer" in out.stdout
