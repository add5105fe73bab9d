"""Agreement between annotators: κ against a table computed by hand and against
scikit-learn, and the figures of the three annotators' merged Chula project."""

from __future__ import annotations

import math

import numpy as np
import pytest
from merge_cohort import class_id, make_project
from sklearn.metrics import cohen_kappa_score

from cellviewer.core.merge import merge
from cellviewer.core.merge.agreement import (
    agreement,
    annotator_labels,
    cohen_kappa,
    fleiss_kappa,
    project_agreement,
)
from cellviewer.core.store import ProjectStore


def test_cohen_kappa_of_a_table_computed_by_hand():
    # 50 cells: both "yes" 20, A yes B no 5, A no B yes 10, both "no" 15.
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7-0.5)/(1-0.5) = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa_score(a, b) == pytest.approx(0.4)
    labels = {f"c{i}": {"ana": x, "ben": y} for i, (x, y) in enumerate(zip(a, b, strict=True))}
    r = agreement(labels)
    (pair,) = r.pairs
    assert (pair.n_cells, pair.percent, r.n_cells) == (50, pytest.approx(0.7), 50)
    assert pair.classes == ["no", "yes"] and pair.confusion.tolist() == [[15, 10], [5, 20]]
    # specific agreement: yes 2*20/(25+30) = 0.727..., no 2*15/(25+20) = 0.666...
    # (over the cells where either said it: 20 + 5 + 10 = 35 and 5 + 10 + 15 = 30)
    assert r.per_class["yes"] == (pytest.approx(40 / 55), 35)
    assert r.per_class["no"] == (pytest.approx(30 / 45), 30)
    assert r.fleiss is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cohen_kappa_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    a = rng.choice(list("abcde"), 200).tolist()
    b = [x if rng.random() < 0.6 else str(rng.choice(list("abcde"))) for x in a]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_fleiss_kappa_of_a_table_computed_by_hand():
    # 4 cells, 3 raters: P_i = 1, 1/3, 1, 1/3 (mean 2/3); p_a = p_b = 1/2, P_e = 1/2
    # kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3
    ratings = [["a", "a", "a"], ["a", "a", "b"], ["b", "b", "b"], ["a", "b", "b"]]
    assert fleiss_kappa(ratings) == pytest.approx(1 / 3)
    assert math.isnan(fleiss_kappa([["a", "a", "a"]]))  # no chance to disagree


def test_the_merged_projects_agreement(cohort):
    target, copies, start, c = cohort
    merge(target, list(copies.values()), "pat")
    with ProjectStore.open(target, readonly=True) as store:
        labels = annotator_labels(store)
        # the imported labels (by "lab") and the merge's own edits (by "pat") are nobody's
        assert {u for by in labels.values() for u in by} == {"ana", "ben", "cy"}
        assert labels[c[1]] == {"ana": "6", "ben": "8"}
        assert labels[c[2]] == {"ana": start[c[2]][2]}  # ana's confirm
        assert labels[c[0]] == {"ana": "5"}
        (near,) = [u for u, by in labels.items() if len(by) == 3]
        assert labels[near] == {"ana": "7", "ben": "7", "cy": "3"}
        overall, image = project_agreement(store, "image")
        region = project_agreement(store, "region")[1]
    # two cells shared: c1 (0 of 1 pair agrees) and the added cell (1 of 3 pairs)
    assert overall.n_cells == 2 and overall.percent == pytest.approx((0 + 1 / 3) / 2)
    pairs = {(p.a, p.b): p for p in overall.pairs}
    assert pairs[("ana", "ben")].n_cells == 2 and pairs[("ana", "ben")].percent == 0.5
    assert pairs[("ana", "ben")].kappa == pytest.approx(cohen_kappa_score(["6", "7"],
                                                                          ["8", "7"]))
    assert pairs[("ana", "cy")].n_cells == 1
    # Fleiss over the one cell all three labelled: P = 1/3, P_e = 4/9 + 1/9 -> -1/2
    assert overall.fleiss_cells == 1 and overall.fleiss == pytest.approx(-0.5)
    assert image.group == "image chula-10-crop.png" and image.n_cells == 2
    # the region (0..160, 0..120) holds the shared cells that lie inside it: the added one
    # at (100, 100), and c1 where it lies inside
    c1_inside = start[c[1]][0] < 160 and start[c[1]][1] < 120
    assert region.group == "region top left" and region.n_cells == 1 + c1_inside


def test_an_undone_label_is_nobodys_and_a_confirm_counts(tmp_path):
    path = make_project(tmp_path / "p.cvproj")
    with ProjectStore.open(path) as store:
        ids = store.cell_table()["ids"][:3]
        store.user = "ana"
        store.set_labels([ids[0]], class_id(store, "1"))
        store.set_labels([ids[1]], class_id(store, "2"))
        assert store.undo()  # ana takes back her label of ids[1]
        store.set_review_status([ids[2]], "checked")  # ana confirms ids[2]'s label
        store.user = "ben"
        store.set_labels([ids[0], ids[1]], class_id(store, "3"))
        labels = annotator_labels(store)
        imported = store.cell(ids[2]).class_id
        assert labels[ids[0]] == {"ana": "1", "ben": "3"}
        assert labels[ids[1]] == {"ben": "3"}
        assert labels[ids[2]] == {"ana": store.class_record(imported).name}
