"""One-to-one matching of detections to labelled centres within a radius (the Hungarian
algorithm, ``scipy.optimize.linear_sum_assignment``, on the distances; pairs farther than the
radius forbidden), as ``benchmarks/bench_detect.py`` scores the classical detector."""

from __future__ import annotations

import numpy as np


def match(pred: np.ndarray, truth: np.ndarray, radius: float) -> tuple[int, np.ndarray]:
    """(true positives, mask of the matched predictions)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    pred, truth = np.asarray(pred).reshape(-1, 2), np.asarray(truth).reshape(-1, 2)
    matched = np.zeros(len(pred), bool)
    if len(pred) == 0 or len(truth) == 0:
        return 0, matched
    d = cdist(pred, truth)
    cost = np.where(d <= radius, d, 1e6)
    rows, cols = linear_sum_assignment(cost)
    ok = cost[rows, cols] <= radius
    matched[rows[ok]] = True
    return int(ok.sum()), matched


def scores(tp: int, n_pred: int, n_truth: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_truth if n_truth else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "tp": tp, "fp": n_pred - tp, "fn": n_truth - tp}


def best_threshold(found: list[tuple[np.ndarray, np.ndarray]], truths: list[np.ndarray],
                   radius: float, thresholds: np.ndarray | None = None
                   ) -> tuple[float, dict[str, float]]:
    """The threshold (of those given, default 0.05 … 0.95) with the best F1 over all images,
    and its scores; ``found``: per image (xy (N, 2), scores (N,)) found at a threshold no
    higher than the lowest tried (a higher threshold keeps a subset of the peaks)."""
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3) if thresholds is None else thresholds
    best_t, best = float(grid[0]), scores(0, 0, sum(len(t) for t in truths))
    for t in grid:
        tp = n_pred = n_truth = 0
        for (xy, s), truth in zip(found, truths, strict=True):
            keep = s >= t
            k, _ = match(xy[keep], truth, radius)
            tp, n_pred, n_truth = tp + k, n_pred + int(keep.sum()), n_truth + len(truth)
        sc = scores(tp, n_pred, n_truth)
        if sc["f1"] > best["f1"]:
            best_t, best = float(t), sc
    return best_t, best
