"""Metrics against numbers computed by hand."""

import numpy as np
import pytest

from trainer.metrics import classification_metrics, confusion_matrix


def test_metrics_match_a_hand_computed_example():
    # class 0: 3 true, class 1: 2 true, class 2: 1 true
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y_true, y_pred, 3)
    assert m.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m.accuracy == pytest.approx(4 / 6)
    # precision: 2/2, 1/2, 1/2 ; recall: 2/3, 1/2, 1/1
    assert m.precision.tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert m.recall.tolist() == pytest.approx([2 / 3, 0.5, 1.0])
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 / 1.5]
    assert m.f1.tolist() == pytest.approx(f1)
    assert m.macro_precision == pytest.approx(2 / 3)
    assert m.macro_recall == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m.macro_f1 == pytest.approx(sum(f1) / 3)
    assert m.confusion_normalized[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    assert m.support.tolist() == [3, 2, 1]


def test_a_class_absent_from_truth_and_predictions_does_not_count_in_macro_averages():
    m = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), 4)
    # classes 2 and 3 never occur: macro over classes 0 and 1 only
    assert m.macro_recall == pytest.approx((1.0 + 0.5) / 2)
    assert m.confusion_normalized[3].tolist() == [0, 0, 0, 0]


def test_a_predicted_class_with_no_samples_counts_with_zero_recall_and_precision():
    m = classification_metrics(np.array([0, 0]), np.array([0, 1]), 2)
    assert m.precision.tolist() == [1.0, 0.0]
    assert m.macro_precision == pytest.approx(0.5)
    assert m.balanced_accuracy == pytest.approx(0.5)  # only class 0 has samples


def test_out_of_range_labels_are_refused():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
