"""Test-suite set-up: every Qt test runs offscreen and every test gets fresh settings and a fresh
data folder in a temporary directory, so no test sees another's state or the user's own."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

# Must be set before any QApplication exists (pytest-qt creates it lazily).
os.environ["QT_QPA_PLATFORM"] = "offscreen"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _fresh_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("cellviewer-home")
    monkeypatch.setenv("CELLVIEWER_SETTINGS_DIR", str(home / "settings"))
    monkeypatch.setenv("CELLVIEWER_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("CELLVIEWER_USER", "test-user")
    yield
    # The window freezes its long-lived objects out of the garbage collector's passes
    # (cellviewer/ui/common/heap.py); a test's window is not long-lived: let it be collected.
    gc.unfreeze()


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA
