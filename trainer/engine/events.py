"""Where a run's events go: stdout (the protocol), ``events.jsonl`` in the run folder, a
terminal progress display, and in-process listeners; plus the per-epoch ``metrics.csv``."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from trainer.formats.protocol import encode_event, parse_line

METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "macro_f1", "lr",
                   "samples_per_s", "epoch_s", "elapsed_s")


class EventSink:
    """Writes each event once to every destination. Events emitted before the run folder is
    known (e.g. a refused configuration) go to stdout and the listeners only."""

    def __init__(
        self,
        stdout: IO[str] | None = None,
        listeners: Sequence[Callable[[dict], None]] | None = None,
    ) -> None:
        self.stdout = stdout
        self.listeners = list(listeners or [])
        self._jsonl: IO[str] | None = None
        self.history: list[dict] = []

    def open_run_dir(self, run_dir: Path) -> None:
        self.close()
        self._jsonl = open(run_dir / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def emit(self, event: str, **fields: Any) -> dict:
        line = encode_event(event, t=round(time.time(), 3), **fields)
        obj = parse_line(line)
        assert obj is not None
        self.history.append(obj)
        if self.stdout is not None:
            try:
                self.stdout.write(line + "\n")
                self.stdout.flush()
            except (BrokenPipeError, ValueError, OSError):
                # the reader went away (the app closed or crashed): keep training and keep
                # writing events.jsonl, from which the app picks the run up again
                self.stdout = None
        if self._jsonl is not None:
            self._jsonl.write(line + "\n")
            self._jsonl.flush()
        for listener in self.listeners:
            listener(obj)
        return obj

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None


class MetricsCsv:
    """``metrics.csv``: one row per epoch, appended (a resumed run continues the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, row: dict[str, Any]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRICS_COLUMNS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k)) for k in METRICS_COLUMNS})

    def truncate_after(self, epoch: int) -> None:
        """Drop rows after ``epoch`` (a resume from an earlier model file rewrites them)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= epoch]
        with open(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRICS_COLUMNS)
            w.writeheader()
            w.writerows(rows)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def stderr_log(message: str) -> None:
    """A log line (stderr: stdout carries only the protocol). A run kept going after the app
    that started it quit has nobody reading its stderr any more: its notes are dropped, the run
    goes on (events.jsonl keeps what matters)."""
    try:
        sys.stderr.write(f"[trainer] {message}\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass
