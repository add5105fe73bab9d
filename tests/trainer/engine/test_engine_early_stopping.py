"""Early stopping on validation accuracy: patience, the first epoch, non-finite loss, resume."""

import math

from trainer.engine.early_stopping import EarlyStopping
from trainer.formats.protocol import StopReason


def run(accs, patience=3, max_epochs=100):
    es = EarlyStopping(patience=patience, max_epochs=max_epochs)
    for epoch, acc in enumerate(accs, start=1):
        d = es.update(epoch, acc)
        if d.stop:
            return epoch, d.reason, es
    return None, None, es


def test_stops_after_patience_epochs_without_improvement():
    epoch, reason, es = run([0.5, 0.6, 0.6, 0.59, 0.61, 0.6, 0.6, 0.6], patience=3)
    assert (epoch, reason) == (8, StopReason.EARLY_STOP)
    assert (es.best, es.best_epoch) == (0.61, 5)


def test_equal_accuracy_is_not_an_improvement_and_the_first_epoch_always_is():
    es = EarlyStopping(patience=2)
    assert es.update(1, 0.0).improved
    assert not es.update(2, 0.0).improved
    assert es.update(3, 0.0).reason == StopReason.EARLY_STOP


def test_max_epochs_wins_and_patience_zero_never_stops_early():
    epoch, reason, _ = run([0.5] * 5, patience=0, max_epochs=5)
    assert (epoch, reason) == (5, StopReason.FINISHED)


def test_non_finite_loss_stops_at_once():
    es = EarlyStopping(patience=10)
    d = es.update(1, 0.9, train_loss=math.nan)
    assert d.stop and d.reason == StopReason.NON_FINITE_LOSS and not d.improved
    assert not es.update(2, math.nan).improved  # a NaN accuracy never improves


def test_state_round_trip_continues_counting():
    es = EarlyStopping(patience=3)
    es.update(1, 0.7)
    es.update(2, 0.6)
    again = EarlyStopping.from_state(es.state())
    assert again.update(3, 0.6).stop is False
    assert again.update(4, 0.6).reason == StopReason.EARLY_STOP
    fresh = EarlyStopping.from_state(EarlyStopping().state())
    assert fresh.best == -math.inf
