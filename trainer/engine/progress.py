"""A progress bar on the terminal (stderr), fed by the same events as the protocol."""

from __future__ import annotations

import sys
from typing import IO


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TerminalProgress:
    """Renders ``batch`` events as a one-line bar and every other event as a line of text."""

    def __init__(self, stream: IO[str] | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._bar_shown = False

    def __call__(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind == "batch":
            frac = ev["step"] / max(ev["steps"], 1)
            done = int(frac * self.width)
            bar = "#" * done + "." * (self.width - done)
            text = (f"\repoch {ev['epoch']}/{ev['epochs']} [{bar}] {frac:4.0%} "
                    f"loss {ev['train_loss']:.4f} acc {ev['train_acc']:.3f} "
                    f"{ev['samples_per_s']:,.0f}/s ETA {_duration(ev.get('eta_s'))}  ")
            self.stream.write(text)
            self._bar_shown = True
        else:
            self._line(self._describe(ev))
        self.stream.flush()

    def _line(self, text: str | None) -> None:
        if text is None:
            return
        if self._bar_shown:
            self.stream.write("\r" + " " * 100 + "\r")
            self._bar_shown = False
        self.stream.write(text + "\n")

    @staticmethod
    def _describe(ev: dict) -> str | None:
        kind = ev.get("event")
        if kind == "started":
            return (f"training {ev['model']} on {ev['device_name']} ({ev['fast_path']}): "
                    f"{ev['n_train']:,} cells x augmentation = {ev['n_train_augmented']:,} per "
                    f"epoch, {ev['n_val']:,} validation, {len(ev['classes'])} classes")
        if kind == "epoch":
            star = " *" if ev.get("improved") else ""
            vl = ev.get("val_loss")
            return (f"epoch {ev['epoch']}/{ev['epochs']}: loss {ev['train_loss']:.4f} "
                    f"acc {ev['train_acc']:.3f} | val loss "
                    f"{vl if vl is None else format(vl, '.4f')} acc {ev['val_acc']:.4f} "
                    f"macro-F1 {ev['macro_f1']:.4f} | {ev['samples_per_s']:,.0f} samples/s "
                    f"{ev['epoch_s']:.1f} s ETA {_duration(ev.get('eta_s'))}{star}")
        if kind == "stopped":
            return f"stopped: {ev['reason']} after epoch {ev['epoch']} {ev.get('detail') or ''}"
        if kind == "finished":
            m = ev.get("metrics", {})
            return (f"finished: best epoch {ev['best_epoch']} val acc {m.get('val_acc')} "
                    f"macro-F1 {m.get('macro_f1')} -> {ev['model_path']}")
        if kind == "error":
            return f"ERROR ({ev['kind']}): {ev['message']}"
        if kind == "notice":
            return f"note: {ev['message']}"
        return None
