"""The items of a cohort: the slides of a manifest CSV or of a project, sorted, and a shard of
them.

A manifest is a CSV with a ``slide`` column (a path, relative to the manifest's folder or
absolute) and an optional ``regions`` column (a GeoJSON file of the slide's regions, relative
to the manifest too; empty: the whole slide). Other columns are kept as they are (a study's
own ids) but not used. A project as input gives its images (their regions are not used).

Why a sorted list: ``--shard i/N`` (``../shared/design/cli.md``) takes the items whose position
in the sorted list is ≡ i (mod N), so N processes given the same input, on any machines and in
any order, split it into disjoint parts that together are the whole, with no coordinator.
Items sort by the slide's name as written (the manifest's text, or the project's stored path),
never by absolute paths, so every machine agrees whatever its mount point.

Each item's results are named by its ``key`` (the file name without its image suffix): two
slides of one cohort with the same key would overwrite each other's files, so they are refused
with the lines of both.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from cellviewer.core.sources.suffixes import IMAGE_SUFFIXES

SLIDE_COLUMN = "slide"
REGIONS_COLUMN = "regions"
PROJECT_SUFFIX = ".cvproj"


class ManifestError(ValueError):
    """Bad input: the message names the file (and line) and the cause."""


@dataclass(frozen=True)
class CohortItem:
    """One slide of a cohort. ``name``: the slide as the input writes it (the sort key and
    the seed of its cells' ids); ``path``: where it is; ``where``: "manifest.csv, line 3"."""

    name: str
    path: Path
    regions: Path | None = None
    where: str = ""
    image_id: int | None = None  # the project's image, when the input is a project
    project: Path | None = None

    @property
    def key(self) -> str:
        """The stem its result files are named by (``<key>.cells.csv``, ``<key>.geojson``)."""
        return slide_key(self.path)


def slide_key(path: str | os.PathLike) -> str:
    """The file name less its image suffix (``a.ome.tiff`` → ``a``, ``b.svs`` → ``b``)."""
    name = Path(path).name
    stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/N"`` as (i, N) with 0 ≤ i < N; None → (0, 1). ``ValueError`` saying what is wrong."""
    if text is None:
        return 0, 1
    left, sep, right = str(text).partition("/")
    try:
        i, n = int(left), int(right)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: expected i/N with 0 <= i < N (e.g. 0/4)")
    return i, n


def shard(items: list[CohortItem], index: int, count: int) -> list[CohortItem]:
    """The items whose position in ``items`` (sorted) is ≡ ``index`` (mod ``count``)."""
    return [item for k, item in enumerate(items) if k % count == index]


def read_manifest(path: str | os.PathLike) -> list[CohortItem]:
    """The slides of a manifest CSV, sorted; :class:`ManifestError` naming the file and line
    for a missing column, an empty slide cell or a repeated slide. A slide or regions file
    that does not exist is not an error here: that item fails alone when it is run."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc})") from None
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise ManifestError(f"{path}, line 1: not a CSV ({exc})") from None
    if SLIDE_COLUMN not in header:
        shown = ", ".join(header) if any(header) else "nothing"
        raise ManifestError(f"{path}, line 1: no '{SLIDE_COLUMN}' column (the header has: "
                            f"{shown}); a manifest needs slide and, optionally, regions")
    si = header.index(SLIDE_COLUMN)
    ri = header.index(REGIONS_COLUMN) if REGIONS_COLUMN in header else None
    base = path.absolute().parent
    items: list[CohortItem] = []
    try:
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if not row or all(not v.strip() for v in row):
                continue
            if len(row) != len(header):
                raise ManifestError(f"{where}: expected {len(header)} fields, found {len(row)}")
            name = row[si].strip()
            if not name:
                raise ManifestError(f"{where}: the slide is empty")
            regions = row[ri].strip() if ri is not None else ""
            items.append(CohortItem(name, _under(base, name), _under(base, regions) if regions
                                    else None, where))
    except csv.Error as exc:
        raise ManifestError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from None
    if not items:
        raise ManifestError(f"{path}: no slides (only a header)")
    return _checked(items, str(path))


def project_items(path: str | os.PathLike) -> list[CohortItem]:
    """The images of a project as cohort items, sorted by their stored paths."""
    from cellviewer.core.store import ProjectError, ProjectStore

    path = Path(path)
    try:
        with ProjectStore.open(path, readonly=True) as store:
            records = store.images()
    except ProjectError as exc:
        raise ManifestError(str(exc)) from None
    if not records:
        raise ManifestError(f"{path}: the project has no images")
    items = [CohortItem(r.stored_path, r.path, None, f"{path}, image {r.id}", r.id,
                        path.absolute()) for r in records]
    return _checked(items, str(path))


def read_inputs(inputs: list[str | os.PathLike]) -> list[CohortItem]:
    """The items of every input as one sorted list: manifest CSVs, projects, and image or
    slide files (each its own item, named as given)."""
    items: list[CohortItem] = []
    for raw in inputs:
        p = Path(raw)
        if p.suffix.lower() == PROJECT_SUFFIX:
            items.extend(project_items(p))
        elif p.suffix.lower() == ".csv":
            items.extend(read_manifest(p))
        else:
            items.append(CohortItem(str(raw), p, None, str(raw)))
    return _checked(items, ", ".join(map(str, inputs)))


def is_cohort_input(path: str | os.PathLike) -> bool:
    """Whether an input names a cohort (a manifest CSV or a project), not an image."""
    return Path(path).suffix.lower() in (".csv", PROJECT_SUFFIX)


def _under(base: Path, name: str) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else base / p


def _checked(items: list[CohortItem], what: str) -> list[CohortItem]:
    """Sorted by name; a slide named twice, or two slides whose files would share a name,
    refused with both places."""
    by_name: dict[str, CohortItem] = {}
    by_key: dict[str, CohortItem] = {}
    for item in items:
        if item.name in by_name:
            raise ManifestError(f"{item.where}: slide {item.name} is already on "
                                f"{by_name[item.name].where}")
        other = by_key.get(item.key.lower())
        if other is not None:
            raise ManifestError(f"{item.where}: slide {item.name} would write the same result "
                                f"files ({item.key}.*) as {other.name} ({other.where}); "
                                "give the slides distinct file names")
        by_name[item.name] = by_key[item.key.lower()] = item
    return sorted(items, key=lambda i: i.name)
