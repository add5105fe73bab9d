"""``cellviewer annotator-agreement PROJECT [--by image|region] [--csv OUT]``: how much the
annotators of a merged project agree, over the cells two or more of them labelled (a label or
confirm action of their own in the history): percent agreement, Cohen's κ per pair, Fleiss' κ
for three or more, per-class agreement and each pair's confusion matrix, with the number of
cells behind each figure. Read-only."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("annotator-agreement", help="agreement between annotators (kappa)",
                       description=__doc__)
    p.add_argument("project", type=Path, help="a CellViewer project (.cvproj)")
    p.add_argument("--by", choices=("image", "region"), default=None,
                   help="also the figures per image or per region")
    p.add_argument("--csv", "--out", dest="csv", type=Path, default=None, metavar="OUT",
                   help="write every figure as CSV rows (group, figure, annotators, class, "
                        "value, cells)")
    p.set_defaults(func=run)


def _num(v: float | None) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.3f}"


def run(args: argparse.Namespace) -> int:
    from cellviewer.cli.main import CommandError
    from cellviewer.core.merge.agreement import agreement_rows, project_agreement
    from cellviewer.core.store import ProjectError, ProjectStore

    try:
        with ProjectStore.open(args.project, readonly=True) as store:
            results = project_agreement(store, args.by)
    except (ProjectError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    if args.csv is not None:
        rows = agreement_rows(results)
        try:
            with open(args.csv, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, ["group", "figure", "annotators", "class", "value",
                                       "cells"])
                w.writeheader()
                w.writerows(rows)
        except OSError as exc:
            raise CommandError(f"{args.csv}: cannot write ({exc.strerror or exc})") from exc
    for r in results:
        print(f"{r.group}: {r.n_cells} cells labelled by two or more of "
              f"{', '.join(r.annotators) or 'nobody'}; agreement {_num(r.percent)}")
        if r.fleiss is not None:
            print(f"  Fleiss' kappa {_num(r.fleiss)} ({r.fleiss_cells} cells labelled by all)")
        for p in r.pairs:
            print(f"  {p.a} / {p.b}: {p.n_cells} cells, agreement {_num(p.percent)}, "
                  f"Cohen's kappa {_num(p.kappa)}")
        for k, (value, n) in r.per_class.items():
            print(f"  class {k}: agreement {_num(value)} ({n} cells)")
    return 0
