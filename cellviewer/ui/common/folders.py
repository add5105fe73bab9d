"""Where file dialogs start: the folder the user last used for the same purpose, else beside
the open project, else the home folder; never CellViewer's own hidden data folder.

Each purpose ("project", "images", "points", "export", "model", "weights") keeps its own last
folder in the settings (``folders/<purpose>``), since a pathologist's slides, exports and
models usually live in different places. A project kept in the app's data folder (the demo,
a scratch project made by opening a lone image) is not a place to start from or to export to:
exports then go to the last export folder, or the home folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from cellviewer.paths import user_data_dir
from cellviewer.ui.common.settings import app_settings

PURPOSES = ("project", "images", "points", "export", "model", "weights")


def _key(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"folder purpose must be one of {PURPOSES}, not {purpose!r}")
    return f"folders/{purpose}"


def in_app_data(path: str | os.PathLike) -> bool:
    """The path lies in CellViewer's own data folder (the demo's copy, scratch projects)."""
    try:
        Path(path).resolve().relative_to(user_data_dir().resolve())
    except ValueError:
        return False
    return True


def home() -> Path:
    documents = Path.home() / "Documents"
    return documents if documents.is_dir() else Path.home()


def start_folder(purpose: str, project: str | os.PathLike | None = None) -> Path:
    """The folder a dialog for ``purpose`` opens in."""
    last = app_settings().value(_key(purpose), "")
    if last and Path(str(last)).is_dir():
        return Path(str(last))
    if project and not in_app_data(project) and Path(project).parent.is_dir():
        return Path(project).parent
    return home()


def remember(purpose: str, chosen: str | os.PathLike | None) -> None:
    """Keep the folder of what the user chose (a file's folder, or the folder itself)."""
    if not chosen:
        return
    p = Path(chosen)
    folder = p if p.is_dir() else p.parent
    app_settings().setValue(_key(purpose), str(folder))


def export_target(project: str | os.PathLike, default: Path) -> Path:
    """The export's default file: ``default`` (beside the project) unless the project is in
    the app's data folder, then the same name in the last export folder or the home one."""
    if not in_app_data(project):
        return default
    return start_folder("export") / default.name
