"""Early stopping on validation accuracy, as a small pure state machine (no torch), so the rule
can be tested on plain numbers and its state saved in a model file for resuming."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from trainer.formats.protocol import StopReason


@dataclass
class Decision:
    stop: bool
    reason: StopReason | None  # set when stop is True
    improved: bool  # this epoch is the best so far (save it as the best model)


@dataclass
class EarlyStopping:
    """Stop when validation accuracy has not improved for ``patience`` epochs (0 = never),
    when the training loss is not finite, or when ``max_epochs`` have run.

    An epoch improves when its accuracy beats the best so far by more than ``min_delta``; the
    first epoch always improves. A non-finite validation accuracy counts as no improvement.
    """

    patience: int = 10
    max_epochs: int = 100
    min_delta: float = 0.0
    best: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    last_epoch: int = 0

    def update(self, epoch: int, val_acc: float, train_loss: float = 0.0) -> Decision:
        self.last_epoch = epoch
        if not math.isfinite(train_loss):
            return Decision(True, StopReason.NON_FINITE_LOSS, False)
        improved = math.isfinite(val_acc) and val_acc > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.bad_epochs = float(val_acc), epoch, 0
        else:
            self.bad_epochs += 1
        if epoch >= self.max_epochs:
            return Decision(True, StopReason.FINISHED, improved)
        if self.patience and self.bad_epochs >= self.patience:
            return Decision(True, StopReason.EARLY_STOP, improved)
        return Decision(False, None, improved)

    def state(self) -> dict:
        d = asdict(self)
        d["best"] = None if not math.isfinite(self.best) else self.best
        return d

    @classmethod
    def from_state(cls, state: dict, **overrides) -> EarlyStopping:
        state = {**state, **overrides}
        if state.get("best") is None:
            state["best"] = -math.inf
        return cls(**state)
