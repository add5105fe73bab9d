"""The exporters: one record per file format, in the order they were registered.

An :class:`Exporter` says what a format is called, the suffix of its files, what it writes, the
options it reads and how its file is named beside the path the user chose; its ``write``
function writes one file. Adding a format means registering one exporter: the export dialog
and :func:`cellviewer.core.export.run_export` list the registry and need no edit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cellviewer.core.store import ProjectStore

SCOPE_IMAGE, SCOPE_SELECTION, SCOPE_PROJECT = "image", "selection", "project"
SCOPES = (SCOPE_IMAGE, SCOPE_SELECTION, SCOPE_PROJECT)

# progress(fraction done in [0, 1], what is being done)
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Selection:
    """Which cells an export covers: those of ``image_ids`` (None: every image), and of
    those only ``cell_ids`` when given (a selection in the viewer)."""

    scope: str = SCOPE_PROJECT
    image_ids: tuple[int, ...] | None = None
    cell_ids: tuple[str, ...] | None = None

    def for_image(self, image_id: int) -> Selection:
        """The part of this selection on one image (what a per-image file holds)."""
        return Selection(self.scope, (int(image_id),), self.cell_ids)


@dataclass(frozen=True)
class ExportOption:
    """An option an exporter reads from the options given to an export, with its default."""

    name: str
    default: Any
    description: str


class WriteFunction(Protocol):
    """Writes one export file at ``path`` (atomically) and returns the path written."""

    def __call__(self, store: ProjectStore, path: Path, *, selection: Selection,
                 options: Mapping[str, Any], progress: Progress | None) -> Path: ...


@dataclass(frozen=True)
class Exporter:
    """One export format.

    Its file is named from the path the user chose (``base``): ``<stem><name_tail><suffix>``
    beside it, where the suffix is the base's own when it is one of ``suffixes`` (a ``.tsv``
    chosen for the cells table), else ``suffixes[0]``. A ``per_image`` format writes one file
    per image: named so for a single image, else ``<stem><name_tail>_<name>/<image><suffix>``.
    """

    name: str  # short and stable: how a script or the dialog asks for it
    title: str  # what the dialog's check box says
    suffixes: tuple[str, ...]  # the first is the default; lower case, with the dot
    description: str
    write: WriteFunction
    options: tuple[ExportOption, ...] = ()
    name_tail: str = ""
    per_image: bool = False
    default_on: bool = False  # ticked when the dialog opens

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    def option_values(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options this exporter reads: the given value, else the default (options meant
        for other exporters are left out)."""
        given = given or {}
        return {o.name: given.get(o.name, o.default) for o in self.options}

    def file_suffix(self, base: Path) -> str:
        return base.suffix.lower() if base.suffix.lower() in self.suffixes else self.suffix

    def single_path(self, base: Path) -> Path:
        """The file this exporter writes for ``base`` (per-image: when there is one image)."""
        return base.with_name(f"{base.stem}{self.name_tail}{self.file_suffix(base)}")

    def folder(self, base: Path) -> Path:
        """Where a per-image exporter puts its files when there are several images."""
        return base.with_name(f"{base.stem}{self.name_tail}_{self.name}")


_EXPORTERS: dict[str, Exporter] = {}


def register(exporter: Exporter, *, replace: bool = False) -> Exporter:
    """Add a format (last in the lists); a second one of the same name is an error unless
    ``replace``. Returns the exporter, so a module can keep it."""
    if exporter.name in _EXPORTERS and not replace:
        raise ValueError(f"an exporter named {exporter.name!r} is already registered")
    if not exporter.suffixes or any(not s.startswith(".") or s != s.lower()
                                    for s in exporter.suffixes):
        raise ValueError(f"exporter {exporter.name!r}: suffixes must be lower case, with the "
                         f"dot, at least one (got {exporter.suffixes!r})")
    _EXPORTERS[exporter.name] = exporter
    return exporter


def unregister(name: str) -> None:
    """Remove a format (a plug-in going away, a test cleaning up); unknown names are ignored."""
    _EXPORTERS.pop(name, None)


def exporters() -> list[Exporter]:
    """Every registered format, in registration order."""
    return list(_EXPORTERS.values())


def get_exporter(name: str) -> Exporter:
    """The format called ``name``; KeyError naming it and the known ones."""
    try:
        return _EXPORTERS[name]
    except KeyError:
        known = ", ".join(_EXPORTERS) or "none"
        raise KeyError(f"no export format {name!r} (known: {known})") from None
