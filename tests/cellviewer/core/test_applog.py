"""The app's log file: in the platform's log folder (overridable, and inside the data folder
for tests), rotated so it stays small, and holding uncaught exceptions with their traceback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from cellviewer.core import applog

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def clean(monkeypatch):
    for name in ("CELLVIEWER_LOG_DIR", "CELLVIEWER_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    applog.remove_log_file()


def test_the_folder_is_the_platforms_unless_overridden(clean, tmp_path):
    assert applog.log_dir() == Path(platformdirs.user_log_dir("cellviewer", appauthor=False))
    if sys.platform.startswith("linux"):
        clean.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        assert applog.log_dir() == tmp_path / "state" / "cellviewer" / "log"
    clean.setenv("CELLVIEWER_DATA_DIR", str(tmp_path / "data"))
    assert applog.log_dir() == tmp_path / "data" / "logs"
    clean.setenv("CELLVIEWER_LOG_DIR", str(tmp_path / "logs"))
    assert applog.log_path() == tmp_path / "logs" / "cellviewer.log"


def test_messages_go_to_the_file_which_rotates(clean, tmp_path):
    clean.setenv("CELLVIEWER_LOG_DIR", str(tmp_path / "logs"))
    path = applog.install_log_file(max_bytes=2000, backups=2)
    assert path == tmp_path / "logs" / "cellviewer.log"
    assert applog.install_log_file() == path  # once per process
    assert sum(isinstance(h, logging.handlers.RotatingFileHandler)
               for h in logging.getLogger().handlers) == 1
    log = logging.getLogger("cellviewer.core.export")
    log.info("exported %s", "cells.csv")
    logging.getLogger("some.library").info("chatter")  # others: warnings and up only
    logging.getLogger("some.library").warning("a library warning")
    text = path.read_text()
    assert "exported cells.csv" in text and "a library warning" in text
    assert "chatter" not in text
    for k in range(200):
        log.warning("line %d %s", k, "x" * 40)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["cellviewer.log", "cellviewer.log.1", "cellviewer.log.2"]
    assert all(p.stat().st_size <= 2100 for p in path.parent.iterdir())


def test_a_folder_that_cannot_be_made_costs_the_log_not_the_app(clean, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    clean.setenv("CELLVIEWER_LOG_DIR", str(blocker / "logs"))
    assert applog.install_log_file() is None
    assert "no log file" in capsys.readouterr().err


def test_an_uncaught_exception_is_logged_with_its_traceback(tmp_path):
    env = {**os.environ, "CELLVIEWER_LOG_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", "from cellviewer.core.applog import install_log_file\n"
                               "install_log_file()\nraise ValueError('boom 42')"],
        env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "boom 42" in done.stderr  # the usual hook still runs
    text = (tmp_path / "cellviewer.log").read_text()
    assert "CRITICAL cellviewer" in text and "Traceback" in text and "boom 42" in text
