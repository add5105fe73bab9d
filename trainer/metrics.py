"""Classification metrics in plain NumPy (no scikit-learn): accuracy, per-class and macro
precision/recall/F1, and the confusion matrix, raw and normalised by true class.

Macro averages are taken over the classes that occur in the true labels or the predictions
(scikit-learn's default when no label list is given): a class the evaluated set does not
contain and the model never predicts says nothing about the model and would only pull the
average down. A class with no predictions has precision 0, one with no samples recall 0
(scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; row = true class, column = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} true labels but {y_pred.size} predictions")
    for name, y in (("true label", y_true), ("prediction", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"a {name} is outside 0..{num_classes - 1}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@dataclass
class ClassificationMetrics:
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    balanced_accuracy: float  # = the mean recall over the classes present in y_true
    precision: np.ndarray  # (K,)
    recall: np.ndarray  # (K,)
    f1: np.ndarray  # (K,)
    support: np.ndarray  # (K,) true samples per class
    confusion: np.ndarray  # (K, K) counts
    n: int

    @property
    def confusion_normalized(self) -> np.ndarray:
        """Each row divided by its class's support (rows of absent classes stay 0)."""
        return _safe_div(self.confusion, self.confusion.sum(axis=1, keepdims=True))

    def to_dict(self, classes: list[str] | None = None) -> dict:
        k = len(self.support)
        names = classes if classes is not None else [str(i) for i in range(k)]
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "balanced_accuracy": self.balanced_accuracy,
            "classes": list(names),
            "per_class": [
                {"class": names[i], "precision": float(self.precision[i]),
                 "recall": float(self.recall[i]), "f1": float(self.f1[i]),
                 "support": int(self.support[i])}
                for i in range(k)
            ],
            "confusion": self.confusion.tolist(),
            "confusion_normalized": np.round(self.confusion_normalized, 6).tolist(),
        }


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> ClassificationMetrics:
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    n = int(cm.sum())

    def mean(v: np.ndarray, mask: np.ndarray) -> float:
        return float(v[mask].mean()) if mask.any() else 0.0

    return ClassificationMetrics(
        accuracy=float(tp.sum() / n) if n else 0.0,
        macro_precision=mean(precision, present),
        macro_recall=mean(recall, present),
        macro_f1=mean(f1, present),
        balanced_accuracy=mean(recall, support > 0),
        precision=precision, recall=recall, f1=f1, support=support, confusion=cm, n=n,
    )
