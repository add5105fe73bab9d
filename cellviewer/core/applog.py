"""The app's log file: what went wrong, for a bug report, where the platform keeps logs.

``cellviewer.log`` in :func:`log_dir`, rotated at ``MAX_BYTES`` with ``BACKUPS`` older files
(``cellviewer.log.1`` …), so it never grows without bound:

- Linux: ``$XDG_STATE_HOME/cellviewer/log`` (``~/.local/state/cellviewer/log``);
- macOS: ``~/Library/Logs/cellviewer``;
- Windows: ``%LOCALAPPDATA%\\cellviewer\\Logs``;

(platformdirs' ``user_log_dir``, the folders QStandardPaths and each platform's guidelines
name, decided here without Qt so that a headless run could log the same way).
``CELLVIEWER_LOG_DIR`` overrides it; with ``CELLVIEWER_DATA_DIR`` set (tests, the self-test)
the log goes to its ``logs`` folder, so a test never writes into the user's log.

:func:`install_log_file` adds the file to the root logger once (warnings and errors of every
module, and info of CellViewer's own), and logs uncaught exceptions with their traceback before
the previous ``sys.excepthook`` runs. A log folder that cannot be written costs the log, never
the app.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

LOG_NAME = "cellviewer.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d %(threadName)s]: %(message)s"

_HANDLER: logging.Handler | None = None
_PREVIOUS_HOOK = sys.excepthook
_LEVELS: dict[str, int] = {}  # our loggers' levels before install_log_file


def log_dir() -> Path:
    """The folder of the app's log (see the module docstring)."""
    override = os.environ.get("CELLVIEWER_LOG_DIR")
    if override:
        return Path(override)
    data = os.environ.get("CELLVIEWER_DATA_DIR")
    if data:
        return Path(data) / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir("cellviewer", appauthor=False))


def log_path() -> Path:
    return log_dir() / LOG_NAME


def install_log_file(*, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> Path | None:
    """Log to the rotating file (once per process); its path, or None when the folder cannot
    be made or written (said on stderr)."""
    global _HANDLER, _PREVIOUS_HOOK
    path = log_path()
    if _HANDLER is not None:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes,
                                                       backupCount=backups, encoding="utf-8")
    except OSError as e:
        print(f"cellviewer: no log file ({path}: {e.strerror or e})", file=sys.stderr)
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    for name in ("cellviewer", "trainer"):  # our own info; the root's WARNING for the rest
        logger = logging.getLogger(name)
        _LEVELS[name] = logger.level
        logger.setLevel(logging.INFO)
    root.addHandler(handler)
    _HANDLER = handler
    previous = _PREVIOUS_HOOK = sys.excepthook

    def log_uncaught(kind, value, tb) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            logging.getLogger("cellviewer").critical("uncaught exception",
                                                     exc_info=(kind, value, tb))
        previous(kind, value, tb)

    sys.excepthook = log_uncaught
    logging.getLogger("cellviewer").info("CellViewer started (log: %s)", path)
    return path


def remove_log_file() -> None:
    """Stop logging to the file (tests; the end of a process needs nothing)."""
    global _HANDLER
    if _HANDLER is not None:
        logging.getLogger().removeHandler(_HANDLER)
        _HANDLER.close()
        _HANDLER = None
        sys.excepthook = _PREVIOUS_HOOK
        for name, level in _LEVELS.items():
            logging.getLogger(name).setLevel(level)
        for name, level in _LEVELS.items():
            logging.getLogger(name).setLevel(level)
