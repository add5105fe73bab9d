"""Merge annotators' copies back into the project they were copied from, three ways.

For every cell (and region) three states are compared: the *base* (what the copy held when it
was made, kept in the copy), *theirs* (the copy now) and *ours* (the target now, which may
already hold other copies' work). A change made on one side only wins; a cell whose label was
changed on both sides to different labels, or that was deleted on one side and edited on the
other, is a *conflict*: the target keeps its side and the conflict is recorded with both sides
(who set each, and when) for a person to resolve. Cells are matched by uuid; a cell the copy
added is matched to one added independently here (by another copy, or in the target) when it
lies within ``tolerance_um`` µm (``tolerance_px`` pixels where the image's pixel size is
unknown) on the same image; the pair is then one cell (``cell_aliases``), and differing labels
a conflict. Label, review status and position merge field by field. Regions merge the same way
by uuid (when both sides changed the same field, ours stays).

History entries are copied once by uuid, so merging the same file twice changes nothing (the
second merge records no action at all), and the whole merge of all copies is one undoable
action (the store's ``batch``).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from cellviewer.core.store import ProjectError, ProjectStore

#: (image_id, x, y, class name or None, label source, review status, proposed 0/1)
CellState = tuple[int, float, float, str | None, str, str, int]


class MergeError(ProjectError):
    """A file cannot be merged into the target (not a copy of it, not a project)."""


@dataclass
class MergeResult:
    """What merging one copy did (counts of cells unless said otherwise)."""

    source: Path
    added: int = 0
    relabelled: int = 0
    status_changed: int = 0
    moved: int = 0
    accepted: int = 0  # proposals
    deleted: int = 0
    matched_by_position: int = 0
    conflicts: int = 0
    history_copied: int = 0
    regions_added: int = 0
    regions_changed: int = 0
    regions_deleted: int = 0
    region_conflicts: int = 0
    images_added: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return any((self.added, self.relabelled, self.status_changed, self.moved,
                    self.accepted, self.deleted,
                    self.conflicts, self.history_copied, self.regions_added,
                    self.regions_changed, self.regions_deleted, self.images_added))


def merge(target: str | os.PathLike, others: list[str | os.PathLike], user: str, *,
          tolerance_um: float = 2.0, tolerance_px: float = 4.0) -> list[MergeResult]:
    """Merge the copies ``others`` into ``target`` as ``user``, in one undoable action.
    MergeError (nothing changed) when one of them is not a copy of ``target``."""
    with ProjectStore.open(target) as store:
        store.user = user
        results = merge_into(store, others, tolerance_um=tolerance_um,
                             tolerance_px=tolerance_px)
        store.wait_for_checkpoint()
    return results


def merge_into(store: ProjectStore, others: list[str | os.PathLike], *,
               tolerance_um: float = 2.0, tolerance_px: float = 4.0,
               on_copy: Callable[[int, Path], None] | None = None) -> list[MergeResult]:
    """Merge the copies ``others`` into the open ``store`` (as its user), in one undoable
    action of that store's own: the app merges on a worker's connection lent the window's
    session (``connection_for_worker``), so the window's Undo takes the merge back.
    ``on_copy(i, path)`` is called before the ``i``-th copy is merged (progress).
    MergeError (nothing changed) when one of them is not a copy of the store's project."""
    results = []
    names = ", ".join(Path(o).name for o in others)
    with store.batch(f"Merge {names}", action="merge"):
        for i, other in enumerate(others):
            path = Path(other).absolute()
            if on_copy is not None:
                on_copy(i, path)
            results.append(_merge_one(store, path, tolerance_um, tolerance_px))
    return results


def _merge_one(store: ProjectStore, path: Path, tol_um: float, tol_px: float) -> MergeResult:
    result = MergeResult(path)
    if path.resolve() == store.path.resolve():
        raise MergeError(f"{path}: is the target project itself")
    with ProjectStore.open(path, readonly=True) as other:
        origin = other.origin()
        if origin is None or origin["project"] != store.project_id:
            raise MergeError(f"{path}: is not a copy of {store.path.name} (made with "
                             "copy-for from it); nothing was merged")
        image_map = _map_images(store, other, origin["images"], result)
        class_ids = _map_classes(store, other)
        base_cells, base_regions = other.merge_base()
        theirs = _cell_states(other, image_map)
        history = other.history_entries()
        region_history = other.region_history_entries()
        regions_theirs = {r.uuid: _region_state(r.image_id, r.geometry, r.name, r.kind,
                                                r.status) for r in other.regions()}
        source_id, source_name = other.project_id, path.name
    base = {u: (image_map.get(s[0], -1), *s[1:]) for u, s in base_cells.items()}
    _merge_cells(store, base, theirs, class_ids, history, source_id, source_name, tol_um,
                 tol_px, result)
    _merge_regions(store, base_regions, regions_theirs, image_map, result)
    result.history_copied = store.copy_history_entries(history, source_id, image_map)
    store.copy_history_entries(region_history, source_id, image_map, regions=True)
    return result


# ---------------------------------------------------------------------- images and classes

def _map_images(store: ProjectStore, other: ProjectStore, origin_images: list[int],
                result: MergeResult) -> dict[int, int]:
    """The copy's image ids -> the target's: the same id for images the copy started with,
    else an image of the same name and size, else the image is added."""
    ours = {i.id: i for i in store.images()}
    by_name = {(i.name, i.width, i.height): i.id for i in ours.values()}
    out = {}
    for image in other.images():
        if image.id in origin_images and image.id in ours:
            out[image.id] = image.id
        elif (image.name, image.width, image.height) in by_name:
            out[image.id] = by_name[(image.name, image.width, image.height)]
        else:
            out[image.id] = store.add_image(image.path, image.width, image.height, image.mpp,
                                            image.fingerprint)
            result.images_added += 1
    return out


def _map_classes(store: ProjectStore, other: ProjectStore) -> dict[str, int]:
    """Class names -> the target's class ids; the copy's new classes are added (by name)."""
    ids = {c.name: c.id for c in store.classes()}
    for c in other.classes():
        if c.name not in ids:
            ids[c.name] = store.add_class(c.name, c.color)
    return ids


# ---------------------------------------------------------------------- cells

def _cell_states(store: ProjectStore, image_map: dict[int, int] | None = None
                 ) -> dict[str, tuple[CellState, str, str]]:
    """uuid -> (state, updated_by, updated_at) of the project's cells."""
    t = store.cell_table()
    names = {c.id: c.name for c in store.classes()}
    images = t["image_id"].tolist()
    if image_map is not None:
        images = [image_map.get(i, -1) for i in images]
    columns = zip(t["ids"], images, t["x"].tolist(), t["y"].tolist(),
                  [names.get(c) for c in t["class_id"].tolist()], t["label_source"],
                  t["review_status"], t["proposed"].astype(int).tolist(), t["updated_by"],
                  t["updated_at"], strict=True)
    return {uuid: ((image, x, y, name, source, status, proposed), by, at)
            for uuid, image, x, y, name, source, status, proposed, by, at in columns}


def _last_entries(history: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """cell uuid -> (user, at) of its latest history entry."""
    return {h["cell_uuid"]: (h["user"], h["at"]) for h in history}


def _merge_cells(store: ProjectStore, base: dict[str, tuple], theirs: dict[str, tuple],
                 class_ids: dict[str, int], history: list[dict[str, Any]], source_id: str,
                 source_name: str, tol_um: float, tol_px: float, result: MergeResult) -> None:
    ours = _cell_states(store)
    aliases = store.cell_aliases()
    their_last = _last_entries(history)
    matcher = _PositionMatcher(store, ours, base, theirs, aliases, tol_um, tol_px)
    labels: dict[tuple[int | None, str], list[str]] = defaultdict(list)
    statuses: dict[str, list[str]] = defaultdict(list)
    moves: list[tuple[str, float, float]] = []
    accepts: list[str] = []
    deletes: list[str] = []
    adds: list[tuple[str, CellState]] = []
    conflicts: list[dict[str, Any]] = []
    new_aliases: dict[str, str] = {}

    def conflict(kind: str, key: str, o: tuple | None, t: tuple | None, image: int) -> None:
        o_by, o_at = (o[1], o[2]) if o else store.last_change_of(key)
        t_by, t_at = (t[1], t[2]) if t else their_last.get(uid, (None, None))
        conflicts.append({
            "cell_uuid": key, "image_id": image, "kind": kind, "source_project": source_id,
            "source_name": source_name,
            "ours_class": o[0][3] if o else None, "ours_present": int(o is not None),
            "ours_by": o_by, "ours_at": o_at,
            "theirs_class": t[0][3] if t else None, "theirs_present": int(t is not None),
            "theirs_by": t_by, "theirs_at": t_at,
            "theirs_x": t[0][1] if t else None, "theirs_y": t[0][2] if t else None})

    for uid in sorted(set(base) | set(theirs)):
        b, t = base.get(uid), theirs.get(uid)
        if b is not None and t is not None and tuple(b) == t[0]:
            continue  # not changed in the copy
        key = aliases.get(uid, uid)
        o = ours.get(key)
        if b is None:  # added in the copy
            assert t is not None
            if o is None:
                match = matcher.match(t[0])
                if match is None:
                    adds.append((uid, t[0]))
                    continue
                new_aliases[uid] = key = match
                o = ours[key]
                result.matched_by_position += 1
            if o[0][3] != t[0][3]:
                conflict("label", key, o, t, o[0][0])
            continue
        if t is None:  # deleted in the copy
            if o is None:
                continue
            if o[0] == tuple(b):
                deletes.append(key)
            else:
                conflict("delete-edit", key, o, None, o[0][0])
            continue
        if o is None:  # edited in the copy, deleted here
            conflict("edit-delete", key, None, t, t[0][0])
            continue
        ts, os_ = t[0], o[0]
        if ts[3:5] != b[3:5]:
            if os_[3:5] == b[3:5]:
                labels[(class_ids.get(ts[3]) if ts[3] is not None else None, ts[4])].append(key)
            elif os_[3] != ts[3]:
                conflict("label", key, o, t, os_[0])
        if ts[5] != b[5] and os_[5] == b[5]:
            statuses[ts[5]].append(key)
        if ts[1:3] != b[1:3] and os_[1:3] == b[1:3]:
            moves.append((key, ts[1], ts[2]))
        if ts[6] == 0 and b[6] == 1 and os_[6] == 1:  # a proposal accepted in the copy
            accepts.append(key)

    for (class_id, source), ids in labels.items():
        result.relabelled += store.set_labels(ids, class_id, source=source)
    for status, ids in statuses.items():
        result.status_changed += store.set_review_status(ids, status)
    if moves:
        store.move_cells([m[0] for m in moves], [[m[1], m[2]] for m in moves])
        result.moved = len(moves)
    if accepts:
        result.accepted = store.accept_proposals(accepts)
    if deletes:
        result.deleted = store.delete_cells(deletes)
    by_image: dict[tuple[int, int], list[tuple[str, CellState]]] = defaultdict(list)
    for uid, state in adds:
        if state[0] >= 0:
            by_image[(state[0], state[6])].append((uid, state))
    for (image_id, proposed), cells in by_image.items():
        store.add_cells(image_id, [[s[1], s[2]] for _, s in cells],
                        [class_ids.get(s[3]) if s[3] is not None else None for _, s in cells],
                        source=[s[4] for _, s in cells], ids=[u for u, _ in cells],
                        review_status=[s[5] for _, s in cells], proposed=bool(proposed))
        result.added += len(cells)
    store.add_cell_aliases(new_aliases)
    result.conflicts = store.add_conflicts(conflicts)


class _PositionMatcher:
    """Finds, for a cell a copy added, a cell added independently here (not in the copy's
    base, not one of the copy's own cells) within the tolerance on the same image."""

    def __init__(self, store: ProjectStore, ours: dict[str, tuple], base: dict[str, tuple],
                 theirs: dict[str, tuple], aliases: dict[str, str], tol_um: float,
                 tol_px: float) -> None:
        taken = set(base) | set(theirs) | {aliases[u] for u in theirs if u in aliases}
        self._tol = {i.id: (tol_um / i.mpp if i.mpp else tol_px) for i in store.images()}
        self._trees: dict[int, tuple[cKDTree, list[str]]] = {}
        per_image: dict[int, list[str]] = defaultdict(list)
        for uid, (state, _, _) in ours.items():
            if uid not in taken:
                per_image[state[0]].append(uid)
        for image, uids in per_image.items():
            xy = np.array([[ours[u][0][1], ours[u][0][2]] for u in uids])
            self._trees[image] = (cKDTree(xy), uids)
        self._used: set[str] = set()

    def match(self, state: CellState) -> str | None:
        if state[0] not in self._trees:
            return None
        tree, uids = self._trees[state[0]]
        tol = self._tol.get(state[0], 0.0)
        for i in sorted(tree.query_ball_point([state[1], state[2]], tol),
                        key=lambda i: float(np.hypot(*(tree.data[i] - [state[1], state[2]])))):
            if uids[i] not in self._used:
                self._used.add(uids[i])
                return uids[i]
        return None


# ---------------------------------------------------------------------- regions

def _region_state(image_id: int, geometry: Any, name: str, kind: str, status: str) -> tuple:
    geo = json.loads(geometry) if isinstance(geometry, str) else geometry
    return (image_id, json.dumps(geo, sort_keys=True), name, kind, status)


def _merge_regions(store: ProjectStore, base_rows: dict[str, tuple], theirs: dict[str, tuple],
                   image_map: dict[int, int], result: MergeResult) -> None:
    base = {u: _region_state(*r) for u, r in base_rows.items()}
    ours = {r.uuid: _region_state(r.image_id, r.geometry, r.name, r.kind, r.status)
            for r in store.regions()}
    fields = ("geometry", "name", "kind", "status")
    for uid in sorted(set(base) | set(theirs)):
        b, t, o = base.get(uid), theirs.get(uid), ours.get(uid)
        if b == t:
            continue
        if b is None:
            assert t is not None
            if o is None and image_map.get(t[0]) is not None:
                store.add_region(image_map[t[0]], t[1], t[2], t[3], t[4], uuid=uid)
                result.regions_added += 1
            continue
        if t is None:
            if o == b:
                store.delete_region(uid)
                result.regions_deleted += 1
            elif o is not None:
                result.region_conflicts += 1
            continue
        if o is None:
            result.region_conflicts += 1
            continue
        change = {f: t[k] for k, f in enumerate(fields, 1) if t[k] != b[k] and o[k] == b[k]}
        if any(t[k] != b[k] and o[k] != b[k] and o[k] != t[k] for k in range(1, 5)):
            result.region_conflicts += 1
        if change:
            if "geometry" in change:
                change["geometry"] = json.loads(change["geometry"])
            store.update_region(uid, **change)
            result.regions_changed += 1
