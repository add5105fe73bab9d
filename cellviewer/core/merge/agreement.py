"""How much annotators agree, over the cells two or more of them labelled.

"Labelled by A" means a label or confirm action by A in the history (a label change, an
accepted proposal, a cell A added with a label by hand, or A marking the cell checked or
reviewed, which confirms the label it had), not a label A's copy merely imported, and not the
edits a merge made on A's behalf (those are the merging person's, recorded under the merge's
action; A's own entries come along from A's copy), nor a conflict's resolution (an
adjudication between the annotators, not a third opinion). A's latest such action counts; an
undo of it by A takes A's label back (and a redo sets it again). Cells a merge matched by
position count as one cell (``cell_aliases``).

The figures: percent agreement (pairwise, averaged over the pairs of annotators of each cell),
Cohen's κ for each pair, Fleiss' κ over the cells that every one of three or more annotators
labelled, per-class specific agreement (2·both / (A's + B's), summed over pairs), and each
pair's confusion matrix; each with the number of cells behind it. Cohen's κ is the textbook
formula (Cohen 1960), checked against scikit-learn's ``cohen_kappa_score`` in the tests;
Fleiss' κ that of Fleiss (1971).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellviewer.core.store import ProjectStore

#: history actions that set a label by the person who made them
LABEL_ACTIONS = ("label", "accept")
CONFIRM_STATUSES = ("checked", "reviewed")
#: the actions whose undo or redo changes who labelled a cell
LABELLING = (*LABEL_ACTIONS, "add", "review")


#: operations whose own entries (made in this file) are nobody's labelling: a merge applies
#: others' work, a resolution adjudicates between annotators
NOT_LABELLING_OPS = ("merge", "resolve")


def annotator_labels(store: ProjectStore) -> dict[str, dict[str, str]]:
    """cell uuid -> {annotator: class name} for the project's cells that annotators labelled
    (see the module docstring)."""
    existing = set(store.cell_table()["ids"])
    return _fold(store.history_entries(), store.cell_aliases(), existing)


def cell_annotator_labels(store: ProjectStore, cell_uuid: str) -> dict[str, str]:
    """{annotator: class name} of one cell (its own history and that of the copies' cells
    matched to it): indexed reads, cheap enough for the cell details."""
    aliases = {a: c for a, c in store.cell_aliases().items() if c == cell_uuid}
    entries = store.history_entries([cell_uuid, *aliases])
    return _fold(entries, aliases, {cell_uuid}).get(cell_uuid, {})


def _fold(entries: list[dict[str, Any]], aliases: dict[str, str],
          existing: set[str]) -> dict[str, dict[str, str]]:
    labels: dict[str, dict[str, str | None]] = defaultdict(dict)
    for e in entries:
        if e["copied_from"] is None and e["op_action"] in NOT_LABELLING_OPS:
            continue  # what a merge applied is not its user's own labelling
        cell = aliases.get(e["cell_uuid"], e["cell_uuid"])
        user, action = e["user"], e["action"]
        if _labels(e):
            labels[cell][user] = e["new_class"]
        elif action in ("undo", "redo") and user in labels.get(cell, {}):
            detail = json.loads(e["detail"] or "{}")
            if detail.get("reverts") in LABELLING or detail.get("repeats") in LABELLING:
                # an undo takes the user's label back; a redo sets it again
                labels[cell][user] = None if action == "undo" else e["new_class"]
    out: dict[str, dict[str, str]] = {}
    for cell, by in labels.items():
        if cell in existing:
            kept = {u: c for u, c in by.items() if c is not None}
            if kept:
                out[cell] = kept
    return out


def _labels(e: dict[str, Any]) -> bool:
    """Whether a history entry is a label or confirm action of its user."""
    action = e["action"]
    return (action in LABEL_ACTIONS
            or (action == "add" and e["source"] == "manual" and e["new_class"] is not None)
            or (action == "review" and e["new_status"] in CONFIRM_STATUSES))


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's κ of two raters' labels of the same items (NaN when chance agreement is 1)."""
    cats = sorted(set(a) | set(b))
    m = confusion(a, b, cats) / len(a)
    po = float(np.trace(m))
    pe = float(m.sum(axis=1) @ m.sum(axis=0))
    return float("nan") if pe == 1 else (po - pe) / (1 - pe)


def fleiss_kappa(ratings: list[list[str]]) -> float:
    """Fleiss' κ of items each rated by the same number of raters (NaN when undefined)."""
    cats = sorted({c for r in ratings for c in r})
    n = len(ratings[0])
    counts = np.array([[r.count(c) for c in cats] for r in ratings], dtype=float)
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = ((counts ** 2).sum(axis=1) - n) / (n * (n - 1))
    pe = float((p_j ** 2).sum())
    return float("nan") if pe == 1 else (float(p_i.mean()) - pe) / (1 - pe)


def confusion(a: list[str], b: list[str], cats: list[str]) -> np.ndarray:
    """Counts: rows A's class, columns B's, in the order ``cats``."""
    index = {c: i for i, c in enumerate(cats)}
    m = np.zeros((len(cats), len(cats)), dtype=np.int64)
    for x, y in zip(a, b, strict=True):
        m[index[x], index[y]] += 1
    return m


@dataclass
class PairAgreement:
    a: str
    b: str
    n_cells: int
    percent: float
    kappa: float
    classes: list[str]
    confusion: np.ndarray  # rows a's class, columns b's


@dataclass
class Agreement:
    """The figures for one group of cells (the project, an image, a region)."""

    group: str
    annotators: list[str]
    n_cells: int  # labelled by two or more
    percent: float  # mean pairwise agreement per cell, averaged over cells
    pairs: list[PairAgreement] = field(default_factory=list)
    fleiss: float | None = None  # three or more annotators
    fleiss_cells: int = 0
    per_class: dict[str, tuple[float, int]] = field(default_factory=dict)  # (agreement, cells)


def agreement(labels: dict[str, dict[str, str]], group: str = "project") -> Agreement:
    """The figures over the cells of ``labels`` (from :func:`annotator_labels`) that two or
    more annotators labelled."""
    shared = {c: by for c, by in labels.items() if len(by) >= 2}
    annotators = sorted({u for by in shared.values() for u in by})
    per_cell = []
    for by in shared.values():
        pairs = list(itertools.combinations(sorted(by), 2))
        per_cell.append(sum(by[x] == by[y] for x, y in pairs) / len(pairs))
    result = Agreement(group, annotators, len(shared),
                       float(np.mean(per_cell)) if per_cell else float("nan"))
    both: dict[str, int] = defaultdict(int)
    either: dict[str, int] = defaultdict(int)
    cells_of: dict[str, set[str]] = defaultdict(set)
    for x, y in itertools.combinations(annotators, 2):
        cells = [c for c, by in shared.items() if x in by and y in by]
        if not cells:
            continue
        a, b = [shared[c][x] for c in cells], [shared[c][y] for c in cells]
        cats = sorted(set(a) | set(b))
        result.pairs.append(PairAgreement(
            x, y, len(cells), float(np.mean([p == q for p, q in zip(a, b, strict=True)])),
            cohen_kappa(a, b), cats, confusion(a, b, cats)))
        for c, p, q in zip(cells, a, b, strict=True):
            both[p] += 2 * (p == q)
            either[p] += 1
            either[q] += 1
            cells_of[p].add(c)
            cells_of[q].add(c)
    result.per_class = {k: (both[k] / either[k], len(cells_of[k])) for k in sorted(either)}
    if len(annotators) >= 3:
        full = [[by[u] for u in annotators] for by in shared.values()
                if all(u in by for u in annotators)]
        result.fleiss_cells = len(full)
        result.fleiss = fleiss_kappa(full) if full else None
    return result


def project_agreement(store: ProjectStore, by: str | None = None) -> list[Agreement]:
    """The project's figures, and with ``by`` "image" or "region" one set per image or region
    (a region's cells: those inside its polygon)."""
    labels = annotator_labels(store)
    out = [agreement(labels)]
    if by is None:
        return out
    t = store.cell_table(cell_ids=list(labels))
    where = {u: (int(t["image_id"][i]), float(t["x"][i]), float(t["y"][i]))
             for i, u in enumerate(t["ids"])}
    if by == "image":
        for image in store.images():
            out.append(agreement({c: v for c, v in labels.items() if where[c][0] == image.id},
                                 f"image {image.name}"))
    elif by == "region":
        from shapely import contains_xy
        from shapely.geometry import shape

        for region in store.regions():
            poly = shape(region.geometry)
            inside = {c: v for c, v in labels.items() if where[c][0] == region.image_id
                      and bool(contains_xy(poly, where[c][1], where[c][2]))}
            out.append(agreement(inside, f"region {region.name or region.uuid}"))
    else:
        raise ValueError(f"agreement by {by!r}: give 'image' or 'region'")
    return out


def agreement_rows(results: list[Agreement]) -> list[dict[str, Any]]:
    """The figures as flat rows (for CSV): one per group and figure."""
    rows: list[dict[str, Any]] = []
    for r in results:
        rows.append({"group": r.group, "figure": "percent agreement", "annotators":
                     " ".join(r.annotators), "class": "", "value": r.percent,
                     "cells": r.n_cells})
        if r.fleiss is not None:
            rows.append({"group": r.group, "figure": "fleiss kappa",
                         "annotators": " ".join(r.annotators), "class": "", "value": r.fleiss,
                         "cells": r.fleiss_cells})
        for p in r.pairs:
            who = f"{p.a} {p.b}"
            rows.append({"group": r.group, "figure": "pair percent agreement",
                         "annotators": who, "class": "", "value": p.percent,
                         "cells": p.n_cells})
            rows.append({"group": r.group, "figure": "cohen kappa", "annotators": who,
                         "class": "", "value": p.kappa, "cells": p.n_cells})
            for i, ca in enumerate(p.classes):
                for j, cb in enumerate(p.classes):
                    rows.append({"group": r.group, "figure": "confusion", "annotators": who,
                                 "class": f"{ca} -> {cb}", "value": int(p.confusion[i, j]),
                                 "cells": p.n_cells})
        for k, (value, n) in r.per_class.items():
            rows.append({"group": r.group, "figure": "class agreement",
                         "annotators": " ".join(r.annotators), "class": k, "value": value,
                         "cells": n})
    return rows
