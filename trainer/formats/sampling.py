"""FlagLimit sampling (the study's class-balanced sampling) and the sampling report.

For a FlagLimit L:

- **FlagMin** = 5 % of L, rounded *up*: ``ceil(0.05 * L)``, computed in integers. A class with
  fewer than FlagMin samples is excluded. Rounding up makes the rule exactly "a class is
  excluded when its count is below 5 % of L": for an integer count c, c < 0.05 L holds if and
  only if c < ceil(0.05 L). At L = 4096, FlagMin = 205 (204.8 rounded up).
- Every other class keeps ``min(count, L)`` samples drawn at random.
- The kept samples are split 80/20 per class (stratified): a class with n kept samples puts
  ``round(0.8 n)`` (halves up) in training and the rest in validation.

Randomness: class c draws from its own generator ``np.random.default_rng([seed, c])``, which
shuffles the class's samples once; the first ``min(count, L)`` of that order are kept, and of
those the first ``n_val`` go to validation. So the result depends only on the labels, L and
the seed; one class's draw does not depend on which other classes exist; and a class's sample
at a smaller L is a subset of its sample at a larger L.

Only labels >= 0 count: -1 marks an unlabelled cell and is never sampled.

NumPy only (no torch): the desktop app shows the report before a run starts.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np

from trainer.formats.augment_plan import AUGMENT_FACTOR, augmented_count

FLAG_LIMITS = (256, 512, 1024, 2048, 4096, 8192, 16384)
FLAG_MIN_PERCENT = 5


def flag_min(limit: int) -> int:
    """FlagMin for FlagLimit ``limit``: ``ceil(5 % of limit)`` (integer arithmetic)."""
    return -(-FLAG_MIN_PERCENT * int(limit) // 100)


def _class_counts(labels: np.ndarray, num_classes: int | None) -> np.ndarray:
    labels = np.asarray(labels)
    valid = labels[labels >= 0].astype(np.int64)
    k = int(valid.max()) + 1 if valid.size else 0
    if num_classes is not None:
        if k > num_classes:
            raise ValueError(f"a label is {k - 1} but there are only {num_classes} classes")
        k = num_classes
    return np.bincount(valid, minlength=k)


def _n_val(n_used: int, val_fraction: float) -> int:
    """Validation share of a class with ``n_used`` kept samples: n - round((1-f) n), halves up."""
    n_train = int(np.floor((1.0 - val_fraction) * n_used + 0.5))
    n_train = max(n_train, 1) if n_used else 0  # a kept class always trains on something
    return n_used - n_train


@dataclass
class SampleSplit:
    """The FlagLimit sample of a patch set: indices into it, and the classes that survived."""

    train_idx: np.ndarray  # int64 indices into the patch set, sorted
    val_idx: np.ndarray  # int64, sorted
    kept_classes: list[int]  # original class indices kept (ascending); model class k = kept[k]
    excluded_classes: list[int]
    limit: int
    seed: int
    flag_min: int = 0
    val_fraction: float = 0.2

    @property
    def class_map(self) -> np.ndarray:
        """Original class index -> model class index (-1 where excluded)."""
        size = max(self.kept_classes + self.excluded_classes, default=-1) + 1
        out = np.full(size, -1, dtype=np.int64)
        out[self.kept_classes] = np.arange(len(self.kept_classes))
        return out

    def model_labels(self, labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The model's labels (0..K-1) of the samples ``labels[idx]`` (all must be kept)."""
        mapped = self.class_map[np.asarray(labels)[idx].astype(np.int64)]
        if mapped.size and mapped.min() < 0:
            raise ValueError("some of these samples belong to an excluded class")
        return mapped

    def class_names(self, classes: list[str]) -> list[str]:
        """Names of the model's classes, in model order."""
        return [classes[c] for c in self.kept_classes]


def flaglimit_split(
    labels: np.ndarray,
    limit: int,
    seed: int = 42,
    val_fraction: float = 0.2,
    num_classes: int | None = None,
) -> SampleSplit:
    """Sample ``labels`` at FlagLimit ``limit`` and split 80/20 per class (see the module doc).

    ``num_classes`` (optional) makes classes with no sample at all appear in
    ``excluded_classes``; otherwise only classes present in ``labels`` are considered.
    """
    if limit < 1:
        raise ValueError(f"FlagLimit must be >= 1, got {limit}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    counts = _class_counts(labels, num_classes)
    fmin = flag_min(limit)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(len(counts)))
    kept, excluded, train, val = [], [], [], []
    for c, count in enumerate(counts):
        if count < fmin or count == 0:
            if count or num_classes is not None:
                excluded.append(c)
            continue
        kept.append(c)
        members = order[starts[c]:starts[c] + count]
        shuffled = np.random.default_rng([seed, c]).permutation(members)
        n_used = min(int(count), int(limit))
        n_val = _n_val(n_used, val_fraction)
        val.append(shuffled[:n_val])
        train.append(shuffled[n_val:n_used])
    return SampleSplit(
        train_idx=_sorted_cat(train), val_idx=_sorted_cat(val),
        kept_classes=kept, excluded_classes=excluded,
        limit=int(limit), seed=int(seed), flag_min=fmin, val_fraction=float(val_fraction),
    )


def _sorted_cat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(parts)).astype(np.int64)


@dataclass
class LimitSummary:
    """The sample at one FlagLimit, per class (arrays indexed by original class)."""

    limit: int
    flag_min: int
    used: np.ndarray  # samples kept per class (0 where excluded)
    train: np.ndarray
    val: np.ndarray
    excluded: np.ndarray  # bool
    n_available: int  # labelled cells in the full set

    @property
    def kept_classes(self) -> list[int]:
        return [int(c) for c in np.flatnonzero(~self.excluded)]

    @property
    def n_used(self) -> int:
        return int(self.used.sum())

    @property
    def n_train(self) -> int:
        return int(self.train.sum())

    @property
    def n_val(self) -> int:
        return int(self.val.sum())

    @property
    def n_train_augmented(self) -> int:
        return augmented_count(self.n_train)

    @property
    def reduction(self) -> float:
        """How many times smaller the sample is than the full labelled set."""
        return self.n_available / self.n_used if self.n_used else float("inf")


@dataclass
class SamplingReport:
    """Per FlagLimit and class: available, used and excluded counts, plus totals."""

    classes: list[str]
    available: np.ndarray  # (K,) labelled cells per class
    limits: list[LimitSummary] = field(default_factory=list)
    val_fraction: float = 0.2

    @property
    def n_available(self) -> int:
        return int(self.available.sum())

    def summary(self, limit: int) -> LimitSummary:
        for s in self.limits:
            if s.limit == limit:
                return s
        raise KeyError(f"no FlagLimit {limit} in this report")

    def rows(self) -> list[dict]:
        """One row per (limit, class) and one ``(total)`` row per limit, for CSV or a table."""
        out = []
        for s in self.limits:
            for c, name in enumerate(self.classes):
                out.append({
                    "limit": s.limit, "flag_min": s.flag_min, "class_index": c, "class": name,
                    "available": int(self.available[c]), "used": int(s.used[c]),
                    "excluded": int(bool(s.excluded[c])), "train": int(s.train[c]),
                    "val": int(s.val[c]), "train_augmented": "", "reduction": "",
                })
            out.append({
                "limit": s.limit, "flag_min": s.flag_min, "class_index": "", "class": "(total)",
                "available": s.n_available, "used": s.n_used,
                "excluded": int(s.excluded.sum()), "train": s.n_train, "val": s.n_val,
                "train_augmented": s.n_train_augmented, "reduction": f"{s.reduction:.3f}",
            })
        return out

    def to_csv(self, path: str | os.PathLike) -> None:
        rows = self.rows()
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["limit"])
            w.writeheader()
            w.writerows(rows)

    def format_table(self) -> str:
        """A plain-text table: classes down, FlagLimits across; 'excl' marks an excluded
        class; totals, train/validation and the augmented training size below."""
        head = ["class", "available"] + [str(s.limit) for s in self.limits]
        body: list[list[str]] = []
        for c, name in enumerate(self.classes):
            cells = [name, str(int(self.available[c]))]
            cells += ["excl" if s.excluded[c] else str(int(s.used[c])) for s in self.limits]
            body.append(cells)
        sep = len(body)
        total = [str(self.n_available)]
        body.append(["FlagMin", ""] + [str(s.flag_min) for s in self.limits])
        body.append(["classes kept", str(len(self.classes))]
                    + [str(len(s.kept_classes)) for s in self.limits])
        body.append(["total used", *total] + [str(s.n_used) for s in self.limits])
        body.append(["train", ""] + [str(s.n_train) for s in self.limits])
        body.append(["validation", ""] + [str(s.n_val) for s in self.limits])
        body.append([f"train x{AUGMENT_FACTOR:g} aug", ""]
                    + [str(s.n_train_augmented) for s in self.limits])
        body.append(["reduction", "1"] + [f"{s.reduction:.2f}x" for s in self.limits])
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

        def fmt(r: list[str]) -> str:
            pairs = enumerate(zip(r, widths, strict=True))
            return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in pairs)

        rule = "  ".join("-" * w for w in widths)
        lines = [fmt(head), rule] + [fmt(r) for r in body[:sep]] + [rule]
        lines += [fmt(r) for r in body[sep:]]
        return "\n".join(lines)


def sampling_report(
    labels: np.ndarray,
    classes: list[str],
    limits=FLAG_LIMITS,
    val_fraction: float = 0.2,
) -> SamplingReport:
    """The sampling report of ``labels`` (indices into ``classes``; -1 ignored) at ``limits``.

    Counts only: they equal the sizes of :func:`flaglimit_split`'s result for any seed.
    """
    available = _class_counts(labels, len(classes))
    report = SamplingReport(classes=list(classes), available=available,
                            val_fraction=val_fraction)
    for limit in limits:
        fmin = flag_min(limit)
        excluded = (available < fmin) | (available == 0)
        used = np.where(excluded, 0, np.minimum(available, limit)).astype(np.int64)
        val = np.array([_n_val(int(u), val_fraction) for u in used], dtype=np.int64)
        report.limits.append(LimitSummary(
            limit=int(limit), flag_min=fmin, used=used, train=used - val, val=val,
            excluded=excluded, n_available=int(available.sum()),
        ))
    return report
