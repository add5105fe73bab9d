"""The one import path for cells: files → a plan (what will be made, and why) → one undoable
action.

The files are read by the trainer's torch-free readers (:mod:`trainer.formats.cell_rows`:
tables, GeoJSON, HoVer-Net JSON), so the app, the ``cellviewer import`` command and the
trainer accept the same files. This module does what needs the project:

- **images**: each row's image is matched to the project's images by path (absolute, or
  relative to the image folder, the file's folder or the project's folder), then by file name
  (the longest matching tail of the path, so ``sub/a.png`` finds ``…/sub/a.png``), then by
  content fingerprint of the file found on disk. Files of one image that name none (GeoJSON,
  HoVer-Net, napari) go to the image their file name names, else to the one the caller gives.
  Rows whose image is not in the project are listed: skipped or added with their images, as
  the caller chooses (``on_missing_image``); never a silent partial import.
- **classes**: class ids go through a chosen class set; names the project lacks are listed
  before anything is written and are created (with the next free number keys), mapped to an
  existing class, or skipped (``on_unknown_class`` and ``class_map``).
- **units**: µm coordinates are converted with each image's pixel size.

:func:`plan_import` reads and checks everything and writes nothing; its :class:`ImportPlan`
says what will be made (``summary``) and what still needs an answer (``problems``: each names
the file, the line or feature, and the flag or choice that answers it). :func:`apply_import`
writes a plan without problems as one undoable action in one transaction.

Regions (annotation polygons: QuPath's tissue and area annotations) become the image's regions
in the same action, their ids kept (a region already in the project under that id is left as it
is), a self-crossing outline repaired or skipped with its reason. A cell's own outline (a QuPath
detection's polygon) goes to the cell's ``outline`` column, exported back as its geometry.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellviewer.core.store import ProjectError, ProjectStore
from trainer.formats.cell_rows import CellFileError, CellRow, ParsedFile, RegionRow, brief

MISSING_IMAGE_CHOICES = ("skip", "add", "refuse")
UNKNOWN_CLASS_CHOICES = ("create", "skip", "refuse")
# a cell whose id the project already has: a problem, or (its file's probabilities are a
# model's predictions of that cell: ``cellviewer predict PROJECT``'s results) predictions only
EXISTING_CELL_CHOICES = ("refuse", "predictions")
IMPORTED_ARCH = "imported"
NUMBER_KEYS = "1234567890"

ImageInfoFn = Callable[[Path], tuple[int, int, float | None, str | None]]


@dataclass
class ImportChoices:
    """Every answer an import may need. The defaults refuse: a headless run never guesses.

    ``class_map``: per class name the project lacks, the existing class it means (a name),
    ``""`` to create it, or None to skip its rows; names not in it follow
    ``on_unknown_class``. ``image_id``: the image of files that name none. ``units``: "px" or
    "um" to override what the file says. ``columns``: a column map for a table whose columns
    are not recognised (one for all the files). ``existing_cells``: cells whose ids the project
    already has are a problem ("refuse"), or give only their probabilities, as predictions of
    those cells ("predictions"; the cells themselves are left as they are)."""

    image_folder: Path | None = None
    on_missing_image: str = "refuse"
    on_unknown_class: str = "refuse"
    class_map: dict[str, str | None] = field(default_factory=dict)
    class_set: list[str] | None = None
    units: str | None = None
    polygons_as_cells: bool = False
    image_id: int | None = None
    columns: object | None = None  # trainer.formats.tables.ColumnMap
    source: str = "imported"
    allow_outside: bool = False
    image_info: ImageInfoFn | None = None
    existing_cells: str = "refuse"

    def __post_init__(self) -> None:
        if self.existing_cells not in EXISTING_CELL_CHOICES:
            raise ValueError(f"existing_cells={self.existing_cells!r} is not one of "
                             f"{', '.join(EXISTING_CELL_CHOICES)}")
        if self.on_missing_image not in MISSING_IMAGE_CHOICES:
            raise ValueError(f"on_missing_image={self.on_missing_image!r} is not one of "
                             f"{', '.join(MISSING_IMAGE_CHOICES)}")
        if self.on_unknown_class not in UNKNOWN_CLASS_CHOICES:
            raise ValueError(f"on_unknown_class={self.on_unknown_class!r} is not one of "
                             f"{', '.join(UNKNOWN_CLASS_CHOICES)}")
        if self.units not in (None, "px", "um"):
            raise ValueError(f"units={self.units!r} is not 'px' or 'um'")


@dataclass
class ImageMatch:
    """How one image a file names was found. ``image_id`` None: not in the project (``path``:
    the file that would be added, when one was found)."""

    file: Path
    name: str | None
    first: str  # where it is first named ("line 2")
    rows: int = 0
    image_id: int | None = None
    how: str = ""  # "path", "name", "fingerprint", "file name", "given", "added"
    path: Path | None = None
    info: tuple | None = None  # (w, h, mpp, fingerprint) of a file to add


@dataclass
class PlannedCell:
    row: CellRow
    file: Path
    image: ImageMatch
    class_name: str | None  # after the class set and the class map


@dataclass
class ImportResult:
    path: Path
    n_cells: int = 0
    ids: list[str] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    images_added: list[int] = field(default_factory=list)
    classes_added: list[str] = field(default_factory=list)
    model_id: int | None = None
    skipped: int = 0
    updated: int = 0
    regions: list[RegionRow] = field(default_factory=list)  # the file's annotation polygons
    regions_added: list[str] = field(default_factory=list)  # the uuids of those stored
    regions_skipped: list[str] = field(default_factory=list)  # "where: why", for the others


@dataclass
class ImportPlan:
    files: list[ParsedFile]
    choices: ImportChoices
    cells: list[PlannedCell] = field(default_factory=list)
    regions: list[tuple[RegionRow, ImageMatch]] = field(default_factory=list)
    images: list[ImageMatch] = field(default_factory=list)
    known: list[PlannedCell] = field(default_factory=list)  # in the project: predictions only
    new_classes: dict[str, int] = field(default_factory=dict)  # name -> rows, to create
    mapped_classes: dict[str, str] = field(default_factory=dict)  # unknown -> existing
    unknown_classes: dict[str, int] = field(default_factory=dict)  # unanswered: name -> rows
    skipped: list[tuple[Path, str, str]] = field(default_factory=list)  # (file, where, why)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.problems

    @property
    def missing_images(self) -> list[ImageMatch]:
        return [m for m in self.images if m.image_id is None]

    def skip_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, why in self.skipped:
            out[why] = out.get(why, 0) + 1
        return out

    def summary(self) -> list[str]:
        """What will be made, and why, one line per kind (the preview)."""
        n_images = len({id(c.image) for c in self.cells})
        formats = ", ".join(dict.fromkeys(f"{p.path.name} ({p.format})" for p in self.files))
        lines = [f"read {formats}"]
        lines.append(f"cells ({len(self.cells):,}) in {n_images} image"
                     f"{'s' if n_images != 1 else ''}")
        classes = {c.class_name for c in self.cells if c.class_name}
        lines.append(f"classes ({len(classes)})" + (
            f": new {', '.join(self.new_classes)}" if self.new_classes else ""))
        for name, to in self.mapped_classes.items():
            lines.append(f"class {name!r} → {to!r}")
        adding = [m for m in self.images if m.how == "added"]
        if adding:
            lines.append(f"images to add ({len(adding)}): "
                         f"{', '.join(str(m.name) for m in adding[:5])}"
                         f"{', ...' if len(adding) > 5 else ''}")
        lines.append(f"regions ({len(self.regions)})" + (
            ": annotation polygons, added as the images' regions" if self.regions else ""))
        reasons = self.skip_reasons()
        if reasons:
            lines.append(f"skipped ({len(self.skipped):,}): " + "; ".join(
                f"{n:,} {why}" for why, n in reasons.items()))
        if any(c.row.probs for c in self.cells):
            lines.append("predictions: the file's class probabilities, as a model's")
        if self.known:
            lines.append(f"predictions of {len(self.known):,} cells already in the project "
                         "(the cells are left as they are)")
        return lines


def class_set_names(spec: str) -> list[str]:
    """The class names of a class set: a shipped one by name (``resources/classes/NAME.json``,
    e.g. ``chula-rbc-12``), a class-set JSON file (``{"classes": [{"name": ...}]}`` or a
    list), or ``name1,name2,...``. ``ProjectError`` naming it when it cannot be read."""
    import json

    from cellviewer.paths import class_sets_dir

    shipped = class_sets_dir() / f"{spec}.json"
    path = shipped if shipped.is_file() else Path(spec)
    if path.suffix.lower() == ".json" or shipped.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            items = data.get("classes", []) if isinstance(data, dict) else data
            names = [str(c["name"] if isinstance(c, dict) else c) for c in items]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            known = ", ".join(sorted(p.stem for p in class_sets_dir().glob("*.json")))
            raise ProjectError(f"{spec}: not a class set ({e}); the shipped ones are "
                               f"{known}") from None
    else:
        names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ProjectError(f"{spec}: a class set without classes")
    return names


# ---------------------------------------------------------------------------------------------
# Reading


def read_files(paths: Sequence[str | os.PathLike], choices: ImportChoices) -> list[ParsedFile]:
    """Every file read by the trainer's readers; ``ProjectError`` naming the file and line
    (``ColumnsNeeded`` for a table whose columns are not recognised, so that a caller can ask
    for them)."""
    from trainer.formats.cell_rows import read_cell_file
    from trainer.formats.tables import ColumnsNeeded

    out = []
    for p in paths:
        try:
            out.append(read_cell_file(Path(p), columns=choices.columns,
                                      class_names=choices.class_set,
                                      polygons_as_cells=choices.polygons_as_cells))
        except ColumnsNeeded:
            raise  # the caller asks for the columns (its message says so too)
        except CellFileError as e:
            raise ProjectError(str(e)) from None
    return out


def plan_import(store: ProjectStore, paths: Sequence[str | os.PathLike] | ParsedFile,
                choices: ImportChoices | None = None) -> ImportPlan:
    """Read and check ``paths`` against the project; writes nothing. Bad files raise
    ``ProjectError`` (naming the file, the line or feature, and the cause); questions still
    open are the plan's ``problems``."""
    choices = choices or ImportChoices()
    files = [paths] if isinstance(paths, ParsedFile) else read_files(paths, choices)
    plan = ImportPlan(files, choices)
    resolver = _Images(store, choices, plan)
    for parsed in files:
        plan.notices.extend(parsed.notices)
        plan.skipped.extend((parsed.path, w, why) for w, why in parsed.skipped)
        if parsed.numeric_classes and any(r.label for r in parsed.rows):
            plan.problems.append(
                f"{parsed.path}: its classes are numbers (class ids): choose the class set "
                f"they index (--class-set, e.g. chula-rbc-12)")
            continue
        for row in parsed.rows:
            match = resolver.match(parsed, row.image, row.where)
            if match is None:
                continue
            plan.cells.append(PlannedCell(row, parsed.path, match, row.label))
        for region in parsed.regions:
            match = resolver.match(parsed, region.image, region.where)
            if match is not None:
                plan.regions.append((region, match))
    resolver.settle()
    _plan_classes(store, plan)
    _convert_units(store, plan)
    _check_cells(store, plan)
    return plan


class _Images:
    """Matching the images the files name to the project's images (see the module doc)."""

    def __init__(self, store: ProjectStore, choices: ImportChoices, plan: ImportPlan) -> None:
        self.store, self.choices, self.plan = store, choices, plan
        self.records = store.images()
        self.by_key: dict[tuple[Path, str | None], ImageMatch] = {}
        self._fingerprints: dict[str, int] | None = None

    def match(self, parsed: ParsedFile, name: str | None, where: str) -> ImageMatch | None:
        key = (parsed.path, name)
        m = self.by_key.get(key)
        if m is None:
            m = self.by_key[key] = ImageMatch(parsed.path, name, where)
            self.plan.images.append(m)
            if name is None:
                self._one_image(parsed, m)
            else:
                self._resolve(parsed, m)
        m.rows += 1
        return m

    def _one_image(self, parsed: ParsedFile, m: ImageMatch) -> None:
        if self.choices.image_id is not None:
            m.image_id, m.how = int(self.store.image(self.choices.image_id).id), "given"
            return
        hint = parsed.image_hint
        same = [im for im in self.records if hint and (im.path.stem == hint or im.name == hint)]
        if len(same) == 1:
            m.image_id, m.how = same[0].id, "file name"
            return
        m.how = "unnamed"

    def _candidates(self, parsed: ParsedFile, name: str) -> list[Path]:
        try:
            p = Path(name).expanduser()
        except RuntimeError:  # ~user of a user this system does not know
            raise ProjectError(f"{parsed.path}, {self.by_key[(parsed.path, name)].first}: "
                               f"image {brief(name)}: no home folder for "
                               f"{brief(name.split('/')[0])}") from None
        if p.is_absolute():
            return [p]
        bases = [self.choices.image_folder, parsed.path.parent, self.store.folder]
        return list(dict.fromkeys(Path(b) / p for b in bases if b is not None))

    def _resolve(self, parsed: ParsedFile, m: ImageMatch) -> None:
        name = str(m.name)
        candidates = self._candidates(parsed, name)
        for p in candidates:  # 1. by path
            try:
                found = self.store.image_id_for_path(p)
            except (OSError, ValueError):
                found = None
            if found is not None:
                m.image_id, m.how = found, "path"
                return
        parts = Path(name.replace("\\", "/")).parts
        for k in range(len(parts), 0, -1):  # 2. by file name: the longest tail that matches
            tail = parts[-k:]
            same = [im for im in self.records if im.path.parts[-k:] == tail]
            if len(same) == 1:
                m.image_id, m.how = same[0].id, "name"
                return
            if len(same) > 1 and k == 1:
                self.plan.problems.append(
                    f"{parsed.path}, {m.first}: image {brief(name)} matches "
                    f"{len(same)} images of the project "
                    f"({', '.join(str(im.path) for im in same[:3])}); give its path")
                m.how = "ambiguous"
                return
        on_disk = next((p for p in candidates if _exists(p)), None)
        if on_disk is not None:  # 3. by content
            from cellviewer.core.io.files import file_problem

            if file_problem(on_disk) is None:
                try:
                    from cellviewer.core.sources import fingerprint

                    fp = fingerprint(on_disk)
                except Exception:  # unreadable: it is named when it would be added
                    fp = None
                found = self.fingerprints().get(fp) if fp else None
                if found is not None:
                    m.image_id, m.how = found, "fingerprint"
                    return
        m.path = on_disk if on_disk is not None else candidates[0]

    def fingerprints(self) -> dict[str, int]:
        if self._fingerprints is None:
            self._fingerprints = {im.fingerprint: im.id for im in self.records if im.fingerprint}
        return self._fingerprints

    def settle(self) -> None:
        """The images not in the project: skipped, added or a problem, as chosen."""
        plan, choice = self.plan, self.choices.on_missing_image
        unnamed = [m for m in plan.images if m.how == "unnamed"]
        for m in unnamed:
            plan.problems.append(f"{m.file}: holds one image's cells and names no image of the "
                                 f"project: choose the image (--image)")
        missing = [m for m in plan.images if m.image_id is None and m.how == ""]
        if not missing:
            return
        if choice == "refuse":
            names = ", ".join(brief(m.name) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            rows = sum(m.rows for m in missing)
            plan.problems.append(
                f"{missing[0].file}, {missing[0].first}: {len(missing)} image"
                f"{'s' if len(missing) != 1 else ''} not in the project ({names}{more}; "
                f"{rows:,} rows): skip those rows or add the images (--on-missing-image "
                f"skip|add, and --image-folder where they are)")
        elif choice == "add":
            for m in missing:
                self._add(m)

    def _add(self, m: ImageMatch) -> None:
        from cellviewer.core.io.files import file_problem

        assert m.path is not None
        where = f"{m.file}, {m.first}: image {brief(m.name)}"
        problem = file_problem(m.path)
        if problem == "not found":
            self.plan.problems.append(f"{where} not found (looked for {brief(str(m.path))}; "
                                      f"choose the image folder, --image-folder)")
            return
        if problem is not None:
            self.plan.problems.append(f"{where} {problem}")
            return
        from cellviewer.core.io.project_import import image_info

        info_fn = self.choices.image_info or image_info
        try:
            m.info = info_fn(m.path)
        except Exception as e:  # ImageOpenError and friends: name the line that needs it
            self.plan.problems.append(f"{where} cannot be opened: {e}")
            return
        same = [o for o in self.plan.images if o is not m and o.how == "added"
                and o.path is not None and _same_file(o.path, m.path)]
        m.how = "added"
        if same:
            m.info = same[0].info


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _plan_classes(store: ProjectStore, plan: ImportPlan) -> None:
    choices = plan.choices
    known = {c.name for c in store.classes()}
    counts: dict[str, int] = {}
    for c in plan.cells:
        if c.class_name is not None and c.class_name not in known:
            counts[c.class_name] = counts.get(c.class_name, 0) + 1
    skip: set[str] = set()
    maps: dict[str, str] = {}
    for name, n in counts.items():
        to = choices.class_map.get(name, ...)
        if to is None:
            skip.add(name)
        elif to == "" or to == name:
            plan.new_classes[name] = n
        elif to is not ...:
            maps[name] = str(to)
        elif choices.on_unknown_class == "create":
            plan.new_classes[name] = n
        elif choices.on_unknown_class == "skip":
            skip.add(name)
        else:
            plan.unknown_classes[name] = n
    for name, to in maps.items():  # onto a class of the project or one this import creates
        if to not in known and to not in plan.new_classes:
            raise ProjectError(f"class {name!r} mapped to {to!r}, which the project does not "
                               f"have (and this import does not create)")
        plan.mapped_classes[name] = to
    if plan.unknown_classes:
        shown = ", ".join(f"{brief(k)} ({v:,})" for k, v in list(plan.unknown_classes.items())[:8])
        plan.problems.append(
            f"{len(plan.unknown_classes)} class{'es' if len(plan.unknown_classes) != 1 else ''}"
            f" the project does not have: {shown}: create, map or skip them "
            f"(--on-unknown-class create|skip)")
    kept = []
    for c in plan.cells:
        if c.class_name in skip:
            plan.skipped.append((c.file, c.row.where, f"class {c.class_name!r} skipped"))
            continue
        if c.class_name in plan.mapped_classes:
            c.class_name = plan.mapped_classes[c.class_name]
        kept.append(c)
    plan.cells = kept


def _convert_units(store: ProjectStore, plan: ImportPlan) -> None:
    """µm → pixels with each image's pixel size (the file's units unless overridden)."""
    units = {p.path: plan.choices.units or p.units for p in plan.files}
    if not any(u == "um" for u in units.values()):
        return
    mpp_of = {im.id: im.mpp for im in store.images()}
    refused: set[int] = set()
    for c in plan.cells:
        if units[c.file] != "um":
            continue
        m = c.image
        if m.image_id is None and m.how != "added":
            continue  # skipped, or a problem already
        mpp = mpp_of.get(m.image_id) if m.image_id is not None else (m.info or (0, 0, None))[2]
        if not mpp:
            if id(m) not in refused:
                refused.add(id(m))
                plan.problems.append(
                    f"{c.file}, {c.row.where}: coordinates in µm, but image "
                    f"{brief(m.name)} has no known pixel size (import in pixels, --units px)")
            continue
        c.row.x, c.row.y = c.row.x / mpp, c.row.y / mpp
        if c.row.outline is not None:
            c.row.outline = [[x / mpp, y / mpp] for x, y in c.row.outline]


def _check_cells(store: ProjectStore, plan: ImportPlan) -> None:
    """Cells inside their images; given ids not already in the project."""
    by_id = {im.id: im for im in store.images()}
    kept = []
    for c in plan.cells:
        m = c.image
        if m.image_id is None and m.how != "added":
            plan.skipped.append((c.file, c.row.where, f"image {m.name} not in the project"))
            continue
        if m.image_id is not None:
            im = by_id[m.image_id]
            w, h, name = im.width, im.height, im.name
        else:
            assert m.info is not None
            w, h, name = m.info[0], m.info[1], str(m.name)
        x, y = c.row.x, c.row.y
        if not plan.choices.allow_outside and not (0 <= x <= w and 0 <= y <= h):
            plan.problems.append(f"{c.file}, {c.row.where}: point ({x:g}, {y:g}) lies outside "
                                 f"image {brief(name)} ({w}x{h} pixels)")
            break
        kept.append(c)
    plan.cells = kept
    given = [c.row.cell_id for c in plan.cells if c.row.cell_id]
    if given:
        clash = store.existing_cell_ids(given)
        if clash and plan.choices.existing_cells == "predictions":
            there = set(clash)
            for c in plan.cells:
                if c.row.cell_id in there:
                    if c.row.probs:
                        plan.known.append(c)
                    else:
                        plan.skipped.append((c.file, c.row.where, "already in the project"))
            plan.cells = [c for c in plan.cells if c.row.cell_id not in there]
        elif clash:
            first = next(c for c in plan.cells if c.row.cell_id == clash[0])
            plan.problems.append(f"{first.file}, {first.row.where}: cell id {clash[0]} is "
                                 f"already in the project ({len(clash):,} of the file's ids "
                                 f"are; --on-existing-cell predictions takes only their "
                                 f"predictions)")


# ---------------------------------------------------------------------------------------------
# Writing


def next_free_keys(store: ProjectStore, n: int) -> list[str]:
    """The next ``n`` number keys no class has ("1"…"9", "0"; then "": the store keeps one
    character per key)."""
    used = {c.key for c in store.classes()}
    free = [k for k in NUMBER_KEYS if k not in used]
    return (free + [""] * n)[:n]


def apply_import(store: ProjectStore, plan: ImportPlan, *,
                 progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Write a plan without problems as one undoable action; ``ProjectError`` (writing
    nothing) when it has problems. ``progress(done, total)`` after each image."""
    if plan.problems:
        raise ProjectError(plan.problems[0])
    path = plan.files[0].path if plan.files else Path()
    result = ImportResult(path, regions=[r for r, _ in plan.regions])
    result.skipped = len(plan.skipped)
    names = ", ".join(p.path.name for p in plan.files[:3]) + (
        f" and {len(plan.files) - 3} more" if len(plan.files) > 3 else "")
    by_image: dict[int, list[PlannedCell]] = {}
    for c in plan.cells:
        by_image.setdefault(id(c.image), []).append(c)
    with store.batch(f"Import {names}", action="import"):
        added: dict[Path, int] = {}
        for m in plan.images:
            if m.how == "added" and m.image_id is None and m.path is not None and m.info:
                key = m.path.resolve()
                if key not in added:
                    w, h, mpp, fp = m.info
                    existing = store.image_id_for_path(m.path)
                    added[key] = existing if existing is not None else \
                        store.add_image(m.path, w, h, mpp=mpp, fingerprint=fp)
                    if existing is None:
                        result.images_added.append(added[key])
                m.image_id = added[key]
        class_ids = _classes(store, plan, result)
        total = len(by_image)
        for done, cells in enumerate(by_image.values(), start=1):
            image_id = cells[0].image.image_id
            assert image_id is not None
            cells = _without_repeated_proposals(store, image_id, cells, result)
            if not cells:
                continue
            ids = _add_cells(store, image_id, cells, class_ids, plan.choices.source)
            result.ids.extend(ids)
            result.image_ids.append(image_id)
            result.model_id = _predictions(store, cells, ids) or result.model_id
            if progress is not None:
                progress(done, total)
        if plan.known:
            ids = [str(c.row.cell_id) for c in plan.known]
            result.model_id = _predictions(store, plan.known, ids) or result.model_id
            result.updated = len(ids)
        _add_regions(store, plan, result)
    result.n_cells = len(result.ids)
    return result


def _add_regions(store: ProjectStore, plan: ImportPlan, result: ImportResult) -> None:
    """The plan's annotation polygons as regions of their images (inside the import's batch)."""
    from cellviewer.core.regions.geometry import (
        RegionGeometryError,
        check_polygon,
        from_geojson,
        to_geojson,
    )
    from cellviewer.core.store import REVIEW_STATUSES
    from cellviewer.core.store.ids import normalise_id

    for region, match in plan.regions:
        if match.image_id is None:
            continue
        uuid = normalise_id(region.region_id) if region.region_id else None
        if uuid is not None:
            try:
                store.region(uuid)
                continue  # already there (an earlier import of the same file, a merge)
            except KeyError:
                pass
        try:
            poly = check_polygon(from_geojson(region.geometry))
        except (RegionGeometryError, ValueError, TypeError) as exc:
            result.regions_skipped.append(f"{region.where}: {exc}")
            continue
        status = region.metadata.get("regionStatus")
        result.regions_added.append(store.add_region(
            match.image_id, to_geojson(poly), region.name or "", region.kind or "annotation area",
            status if status in REVIEW_STATUSES else "unreviewed", uuid=uuid))


def _classes(store: ProjectStore, plan: ImportPlan, result: ImportResult) -> dict[str, int]:
    colors: dict[str, tuple[int, int, int]] = {}
    for c in plan.cells:
        if c.class_name and c.row.color and c.class_name not in colors:
            colors[c.class_name] = c.row.color
    keys = iter(next_free_keys(store, len(plan.new_classes)))
    class_ids = {c.name: c.id for c in store.classes()}
    for name in plan.new_classes:
        rgb = colors.get(name)
        color = "#{:02x}{:02x}{:02x}".format(*rgb) if rgb else None
        class_ids[name] = store.add_class(name, color, next(keys) or None)
        result.classes_added.append(name)
    return class_ids


def _without_repeated_proposals(store: ProjectStore, image_id: int,
                                cells: list[PlannedCell], result: ImportResult
                                ) -> list[PlannedCell]:
    """A detections file's proposals (no ids of their own) that fall on a marker the image
    already has are left out and counted as skipped, as a detection run in the app does: a
    file imported twice, or detections over cells already marked, add nothing twice."""
    from cellviewer.core.regions.proposals import DEFAULT_MIN_DISTANCE_PX, near_existing

    loose = [i for i, c in enumerate(cells) if c.row.proposed and c.row.cell_id is None]
    if not loose:
        return cells
    existing = store.cell_arrays(image_id).xy
    near = near_existing(existing, np.array([[cells[i].row.x, cells[i].row.y] for i in loose]),
                         DEFAULT_MIN_DISTANCE_PX)
    drop = {i for i, n in zip(loose, near.tolist(), strict=True) if n}
    result.skipped += len(drop)
    return [c for i, c in enumerate(cells) if i not in drop]


def _add_cells(store: ProjectStore, image_id: int, cells: list[PlannedCell],
               class_ids: dict[str, int], source: str) -> list[str]:
    from cellviewer.core.store.ids import new_ids

    fresh = iter(new_ids(sum(c.row.cell_id is None for c in cells)))
    ids = [c.row.cell_id or next(fresh) for c in cells]
    proposed = [c for c in cells if c.row.proposed]
    if not proposed:
        return _add_some(store, image_id, cells, ids, class_ids, source)
    # A detector's proposals (a detections CSV, or proposals in a cells CSV) stay proposals,
    # with their scores and one detection run per file and image, in the same action.
    run = store.add_detection_run(image_id, "imported", {"file": str(proposed[0].file)},
                                  n_found=len(proposed), n_added=len(proposed))
    by_id = dict(zip((id(c) for c in cells), ids, strict=True))
    out: dict[int, str] = {}
    for group, is_proposal in (([c for c in cells if not c.row.proposed], False),
                               (proposed, True)):
        if group:
            made = _add_some(store, image_id, group, [by_id[id(c)] for c in group], class_ids,
                             source, proposed=is_proposal, run_id=run if is_proposal else None)
            out.update(zip((id(c) for c in group), made, strict=True))
    return [out[id(c)] for c in cells]


def _add_some(store: ProjectStore, image_id: int, cells: list[PlannedCell], ids: list[str],
              class_ids: dict[str, int], source: str, *, proposed: bool = False,
              run_id: str | None = None) -> list[str]:
    metadata = [dict(c.row.metadata) or None for c in cells]
    outlines = [None if c.row.outline is None else json.dumps(
        {"type": "Polygon", "coordinates": [[[round(x, 3), round(y, 3)]
                                             for x, y in c.row.outline]]})
        for c in cells]
    scores = [math.nan if c.row.score is None else c.row.score for c in cells]
    return store.add_cells(
        image_id,
        np.array([[c.row.x, c.row.y] for c in cells], dtype=np.float64),
        [class_ids[c.class_name] if c.class_name else None for c in cells],
        source=[c.row.label_source or source for c in cells],
        ids=ids,
        review_status=[c.row.review_status or "unreviewed" for c in cells],
        metadata=metadata,
        outlines=outlines if any(o is not None for o in outlines) else None,
        proposed=proposed, run_id=run_id,
        scores=scores if any(c.row.score is not None for c in cells) else None,
    )


def _predictions(store: ProjectStore, cells: list[PlannedCell], ids: list[str]) -> int | None:
    """A file's class probabilities as a model's predictions (one model per set of classes,
    shared by the files of one project, as QuPath writes one file per image)."""
    classes = list(dict.fromkeys(k for c in cells if c.row.probs for k in c.row.probs))
    if not classes:
        return None
    probs = np.array([[(c.row.probs or {}).get(k, math.nan) for k in classes] for c in cells],
                     dtype=np.float32)
    complete = np.asarray(np.isfinite(probs).all(axis=1))
    if not complete.any():
        return None
    same = [m for m in store.models() if m.arch == IMPORTED_ARCH and m.classes == classes]
    model_id = same[-1].id if same else store.add_model(
        f"Imported predictions ({cells[0].file.name})", None, IMPORTED_ARCH, classes,
        {"imported_from": str(cells[0].file)})
    store.put_predictions(model_id, [i for i, ok in zip(ids, complete, strict=True) if ok],
                          probs[complete])
    return model_id


def import_cells(store: ProjectStore, paths: Sequence[str | os.PathLike],
                 choices: ImportChoices | None = None, *,
                 progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Plan and apply in one call (scripts and the command line); ``ProjectError`` naming the
    first problem, with nothing written."""
    plan = plan_import(store, paths, choices)
    return apply_import(store, plan, progress=progress)
