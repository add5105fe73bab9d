"""Loading a trained cell detector off the UI thread, once per (model file, device).

The detection dialog's background work calls :func:`loaded_detector`; it imports
``trainer.detect.infer`` (and so torch) inside that call only, in the worker thread: importing
this module costs nothing on the GUI's start-up path (tests/test_architecture.py checks it,
and the import-linter contract in pyproject.toml names this module as one of the two ways
``cellviewer.ui`` reaches torch, beside ``worker.py``).

A loaded detector is kept (keyed by the file's resolved path, its modification time and the
device), so running it again on another region does not load it again; a file written anew
(a new training run over the old one) is loaded anew.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class DetectorCache:
    """Loaded detectors by (file, mtime, device); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, int, str], Any] = {}

    def get(self, path: str | Path, device: str = "auto") -> Any:
        """The ``trainer.detect.infer.Detector`` of the file on the device (loaded on first
        use: call from a worker thread). A classifier file is refused by name
        (``BadModelError``)."""
        p = Path(path).resolve()
        key = (str(p), p.stat().st_mtime_ns, str(device))
        with self._lock:
            found = self._items.get(key)
        if found is not None:
            return found
        from trainer.detect.infer import load_detector  # lazily: torch off the start-up path

        detector = load_detector(p, device=device)
        with self._lock:
            return self._items.setdefault(key, detector)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


#: The application's loaded detectors.
DETECTORS = DetectorCache()


def loaded_detector(path: str | Path, device: str = "auto") -> Any:
    return DETECTORS.get(path, device)
