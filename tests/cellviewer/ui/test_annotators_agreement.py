"""Analyze → Annotator agreement… on a project merged from three annotators' copies: the table
shows each pair's cells, agreement and Cohen's κ as computed from what the annotators said
(by the core's formula and by scikit-learn's), Fleiss' κ over the cells all three labelled,
the confusion matrix between two chosen annotators (either way round), the per-image scope,
and the CSV export."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from annotator_copies import make_cohort
from sklearn.metrics import cohen_kappa_score
from test_annotators_merge import open_window

from cellviewer.core.merge import merge
from cellviewer.core.merge.agreement import cohen_kappa, fleiss_kappa


@pytest.fixture
def merged(tmp_path):
    cohort = make_cohort(tmp_path)
    merge(cohort.target, [cohort.copies[u] for u in ("ana", "ben", "cy")], "lead")
    return cohort


def _table(t) -> list[list[str]]:
    return [[t.item(r, c).text() if t.item(r, c) else "" for c in range(t.columnCount())]
            for r in range(t.rowCount())]


def test_agreement_view_shows_the_kappas(qtbot, merged, tmp_path):
    w = open_window(qtbot, merged.target)
    tools = w.annotator_tools
    assert tools.agreement_action in w.menu("&Analyze").actions()
    with qtbot.waitSignal(tools.agreement_computed, timeout=30000):
        tools.agreement_action.trigger()
    view = tools.agreement_window
    assert view.isVisible()

    said = merged.said
    ana = [said["ana"][i] for i in range(10)]
    ben = [said["ben"][i] for i in range(10)]
    kappa = cohen_kappa(ana, ben)
    assert kappa == pytest.approx(cohen_kappa_score(ana, ben))
    rows = {(r[0], r[1]): r[2:] for r in _table(view.pairs)}
    assert rows[("ana", "ben")] == ["10", f"{np.mean(np.array(ana) == np.array(ben)):.3f}",
                                    f"{kappa:.3f}"]
    cy = [said["cy"][i] for i in range(5)]
    assert rows[("ana", "cy")] == ["5", f"{np.mean(np.array(ana[:5]) == np.array(cy)):.3f}",
                                   f"{cohen_kappa(ana[:5], cy):.3f}"]
    fleiss = fleiss_kappa([[ana[i], ben[i], cy[i]] for i in range(5)])
    assert f"Fleiss' κ {fleiss:.3f} over the 5 cells labelled by all" in view.summary.text()
    assert "project: 10 cells labelled by two or more of ana, ben, cy" in view.summary.text()

    # per-class agreement, summed over the pairs: class 7 is what all three said of cell 3
    # (each pair: 2 agreeing) and what ana said of cell 7 (ben: 9): 2·3 / (2·3 + 1), 2 cells
    classes = {r[0]: r[1:] for r in _table(view.classes)}
    assert classes["7"] == [f"{6 / 7:.3f}", "2"]

    # the confusion matrix between ana (rows) and ben (columns), then the other way round
    view.set_pair("ana", "ben")
    names, m = view.confusion()
    expect = np.zeros((len(names), len(names)), dtype=int)
    for a, b in zip(ana, ben, strict=True):
        expect[names.index(a), names.index(b)] += 1
    assert (m == expect).all() and m.sum() == 10
    shown = [[view.matrix.item(i, j).text() for j in range(len(names))]
             for i in range(len(names))]
    assert shown == [[str(n) if n else "" for n in row] for row in expect]
    diag = view.matrix.item(0, 0).background().color()
    off = view.matrix.item(names.index("6"), names.index("8")).background().color()
    assert diag.blue() > diag.red() and off.red() > off.blue()  # blue agrees, red differs
    view.set_pair("ben", "ana")
    assert (view.confusion()[1] == expect.T).all()

    # per image: one image, the same figures
    with qtbot.waitSignal(view.computed, timeout=30000):
        view.set_scope("image")
    assert [r.group for r in view.results] == ["project", "image chula-10-crop.png"]
    assert view.current().group == "image chula-10-crop.png"
    assert {(r[0], r[1]): r[2:] for r in _table(view.pairs)}[("ana", "ben")][2] == \
        f"{kappa:.3f}"

    # per region: the cells inside it that two or more labelled
    with qtbot.waitSignal(view.computed, timeout=30000):
        view.set_scope("region")
    assert [r.group for r in view.results] == ["project", "region top left"]
    store = w.store
    inside = [i for i in range(10) if store.cell(merged.order[i]).x < 160
              and store.cell(merged.order[i]).y < 120]
    assert 0 < len(inside) < 10
    assert view.current().n_cells == len(inside)
    assert view.summary.text().startswith(f"region top left: {len(inside)} cells labelled")

    # Export CSV: every figure of the scope, the command line's rows
    out = tmp_path / "agreement.csv"
    assert view.export_csv(out)
    with open(out, newline="") as f:
        found = list(csv.DictReader(f))
    assert {r["group"] for r in found} == {"project", "region top left"}
    k = [r for r in found if r["figure"] == "cohen kappa" and r["annotators"] == "ana ben"
         and r["group"] == "project"]
    assert len(k) == 1 and float(k[0]["value"]) == pytest.approx(kappa)
    assert k[0]["cells"] == "10"
    view.close()
    w.close()


def test_agreement_of_an_unmerged_project_says_why_it_is_empty(qtbot, tmp_path):
    from annotator_copies import make_project

    w = open_window(qtbot, make_project(tmp_path / "solo.cvproj"))
    tools = w.annotator_tools
    with qtbot.waitSignal(tools.agreement_computed, timeout=30000):
        tools.show_agreement()
    view = tools.agreement_window
    assert "no cell was labelled by two or more annotators" in view.summary.text()
    assert view.pairs.rowCount() == 0 and view.matrix.rowCount() == 0
    w.close()
