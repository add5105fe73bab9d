"""The study's protocol as queues (issue 19): an expert annotates, a second one double-checks,
a pathologist makes the final review, and where annotators disagree someone decides.

- Roles: each person's role (annotator, checker, pathologist) is kept with their name in the
  project's settings (``roles``: not an edit of the cells, so neither undoable nor history).
- The *conflicts* queue: the cells with open conflicts (found by merges). A conflict is
  resolved by a class (a number key) or by picking one annotator's label (a
  :class:`Choice`, which may also be "deleted"); one undoable action that sets the cell,
  marks its conflicts resolved and writes a ``resolve`` entry into its history.
- The *for pathologist review* queue: the double-checked cells (review status ``checked``)
  and the cells with open conflicts; the pathologist's decision is the same action, which
  also sets the review status to ``reviewed``.

Qt-free, so a script follows the protocol the way the app does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cellviewer.core.merge.agreement import cell_annotator_labels
from cellviewer.core.store import ProjectError, ProjectStore

ROLES = ("annotator", "checker", "pathologist")
ROLES_SETTING = "roles"
CONFLICTS, PATHOLOGIST = "conflicts", "pathologist"
QUEUES = {CONFLICTS: "conflicts (annotators disagree)",
          PATHOLOGIST: "for pathologist review"}


def roles(store: ProjectStore) -> dict[str, str]:
    """Name -> role of the people recorded in the project."""
    try:
        found = json.loads(store.setting(ROLES_SETTING) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items() if v in ROLES}


def set_role(store: ProjectStore, user: str, role: str | None) -> None:
    """Record ``user``'s role (None: forget it). ValueError for a role outside :data:`ROLES`."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role {role!r}: give one of {', '.join(ROLES)}")
    if not user.strip():
        raise ValueError("a role belongs to someone: give a name")
    known = roles(store)
    if role is None:
        known.pop(user, None)
    else:
        known[user] = role
    store.set_setting(ROLES_SETTING, json.dumps(known, sort_keys=True))


@dataclass(frozen=True)
class Choice:
    """One side of a disagreement: who said what (``present`` False: they deleted the cell)."""

    who: str
    class_name: str | None
    present: bool = True

    @property
    def text(self) -> str:
        return f"{self.who}: {self.class_name or '(unlabelled)'}" if self.present \
            else f"{self.who}: deleted"


def conflict_queue(store: ProjectStore, image_id: int | None = None) -> list[str]:
    """The cells with open conflicts, in the order the conflicts were found."""
    out: dict[str, None] = {}
    for c in store.conflicts():
        if image_id is None or c["image_id"] == image_id:
            out.setdefault(c["cell_uuid"], None)
    return list(out)


def pathologist_queue(store: ProjectStore, image_id: int | None = None) -> list[str]:
    """The cells with open conflicts, then the double-checked ones (``checked``)."""
    ids = conflict_queue(store, image_id)
    taken = set(ids)
    checked = store.query_cells(image_id=image_id, review_status="checked")
    return ids + [str(c) for c in checked if str(c) not in taken]


def choices(store: ProjectStore, cell_uuid: str) -> list[Choice]:
    """What the annotators said of a cell with open conflicts: each annotator's label (from
    their own label actions), then the sides of its conflicts whose label or deletion none
    of those says (a deletion, or a copy's label; the target's side may name the person who
    merged, as the merge applied it)."""
    out = [Choice(who, name) for who, name in sorted(cell_annotator_labels(store,
                                                                            cell_uuid).items())]
    for c in store.conflicts(cell_uuid=cell_uuid):
        for side in ("ours", "theirs"):
            choice = Choice(c[f"{side}_by"] or side, c[f"{side}_class"],
                            bool(c[f"{side}_present"]))
            said = any(o.present == choice.present and o.class_name == choice.class_name
                       for o in out)
            if not said:  # (a label somebody already stands behind is not offered twice)
                out.append(choice)
    return out


def decide(store: ProjectStore, cell_uuid: str, class_name: str | None, *,
           present: bool = True, status: str | None = None, how: str = "key") -> str:
    """Resolve a cell's open conflicts (if any) as one undoable action: the cell gets
    ``class_name`` (``present`` False: it is deleted; a cell deleted here is brought back
    where the copy has it), ``status`` (e.g. ``reviewed``, the pathologist's decision) if
    given, and a ``resolve`` history entry records what was chosen and ``how`` ("key",
    "choice ana", ...). Returns a message. ProjectError when there is nothing to decide."""
    conflicts = store.conflicts(cell_uuid=cell_uuid)
    exists = bool(store.existing_cell_ids([cell_uuid]))
    if not conflicts and (status is None or not exists):
        raise ProjectError(f"cell {cell_uuid} has no open conflict")
    class_id = None
    if class_name is not None:
        class_id = store.class_id(class_name)
        if class_id is None:
            raise ProjectError(f"no class {class_name!r} in {store.path}")
    before = store.cell(cell_uuid) if exists else None
    old_class = _class_name(store, before.class_id) if before else None
    old_status = before.review_status if before else None
    what = (class_name or "(unlabelled)") if present else "deleted"
    verb = "Resolve conflict" if conflicts else "Review"
    with store.batch(f"{verb}: {what}", action="resolve" if conflicts else "review"):
        image_id = before.image_id if before else (conflicts[0]["image_id"] if conflicts
                                                    else None)
        if not present:
            if exists:
                store.delete_cells([cell_uuid])
        elif exists:
            store.set_labels([cell_uuid], class_id, source="corrected")
            if status is not None:
                store.set_review_status([cell_uuid], status)
        else:
            where = next((c for c in conflicts if c["theirs_x"] is not None), None)
            if where is None or image_id is None:
                raise ProjectError(f"cell {cell_uuid}: nobody kept its position")
            store.add_cells(int(image_id), [[where["theirs_x"], where["theirs_y"]]],
                            [class_id], source="corrected", ids=[cell_uuid],
                            review_status=status or "unreviewed")
        new_status = status if present else None
        if conflicts:
            store.record_resolution(cell_uuid, {"class": class_name, "present": present,
                                                "how": how}, old_class,
                                    class_name if present else None, old_status,
                                    new_status or (old_status if present else None),
                                    "corrected" if present else None, image_id)
    return (f"{verb}: {what}" + (f" ({status})" if status and present else "")
            + (f", {len(conflicts)} conflict{'s' if len(conflicts) != 1 else ''} closed"
               if conflicts else ""))


def _class_name(store: ProjectStore, class_id: int | None) -> str | None:
    if class_id is None or int(class_id) < 0:
        return None
    return store.class_record(int(class_id)).name
