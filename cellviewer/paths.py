"""Where CellViewer finds its bundled resources and keeps its data (Qt-free)."""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    """The ``resources/`` folder: inside the package when installed from a wheel, else the
    repository's top-level ``resources/`` (editable installs and source checkouts)."""
    here = Path(__file__).resolve().parent
    installed = here / "resources"
    if installed.is_dir():
        return installed
    return here.parent / "resources"


def demo_dir() -> Path:
    """The bundled demo project's source data (images, slide, points CSV, licences)."""
    return resources_dir() / "demo"


def class_sets_dir() -> Path:
    return resources_dir() / "classes"


def icon_path(name: str = "cellviewer") -> Path:
    """The PNG icon (rendered without QtSvg); the SVG beside it is for desktop integration."""
    return resources_dir() / "icons" / f"{name}.png"


def user_data_dir() -> Path:
    """Where CellViewer keeps its own data (the demo project's working copy, weights, runs).

    ``CELLVIEWER_DATA_DIR`` overrides it (tests point it at a temporary folder); otherwise
    ``$XDG_DATA_HOME/cellviewer`` or ``~/.local/share/cellviewer``.
    """
    override = os.environ.get("CELLVIEWER_DATA_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cellviewer"
